"""pipelines.allocator: glibc keeps freed memory inside the block and settles afterwards."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from pipelines import allocator

MB = 2**20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@pytest.fixture
def mallinfo():
    libc = allocator._LIBC
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33")
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2


def mapped_for(mallinfo, megabytes: int) -> bool:
    """Whether an array of this size gets a mapping of its own (rather than heap memory)."""
    before = mallinfo().hblkhd
    a = np.ones(megabytes * MB // 8)
    mapped = mallinfo().hblkhd >= before + megabytes * MB
    del a
    return mapped


def test_freed_arrays_stay_in_the_heap_inside_the_block(mallinfo):
    with allocator.keep_freed_memory() as active:
        assert active
        assert not mapped_for(mallinfo, 64)  # from the heap, not a mapping of its own
        a = np.ones(64 * MB // 8)
        del a
        assert mallinfo().fordblks >= 64 * MB  # freed, and kept for the next array
    assert allocator._depth == 0


def test_afterwards_the_thresholds_are_where_glibc_settles(mallinfo):
    with allocator.keep_freed_memory():
        pass
    # mmap threshold 32 MiB: an 8 MB array comes from the heap (glibc's default of 128 KiB,
    # frozen by any mallopt, would map and unmap it every time), a larger one is mapped (256 MB:
    # larger than any free chunk these tests leave in the heap, which malloc would reuse first)
    assert [mapped_for(mallinfo, 8) for _ in range(3)] == [False, False, False]
    assert mapped_for(mallinfo, 256)


def test_blocks_nest_and_the_outer_one_restores(mallinfo):
    with allocator.keep_freed_memory():
        with allocator.keep_freed_memory() as inner:
            assert inner
        assert not mapped_for(mallinfo, 64)  # the inner block's end did not restore
    assert allocator._depth == 0
    assert mapped_for(mallinfo, 256)


def test_settings_are_restored_when_the_block_raises(mallinfo):
    with pytest.raises(RuntimeError), allocator.keep_freed_memory():
        raise RuntimeError("boom")
    assert allocator._depth == 0 and not allocator._active
    assert mapped_for(mallinfo, 256)


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(allocator, "_LIBC", None)
    with allocator.keep_freed_memory() as active:
        with allocator.keep_freed_memory() as inner:
            assert active is False and inner is False
    assert allocator._depth == 0


@pytest.mark.parametrize("env", [{"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}, {"MALLOC_TOP_PAD_": "1"}])
def test_own_malloc_settings_of_the_process_are_left_alone(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert allocator._glibc() is None
