"""pipelines.allocator: glibc keeps freed memory inside the block and gives it back after."""
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


def test_freed_arrays_stay_in_the_heap_inside_the_block(mallinfo):
    with allocator.keep_freed_memory() as active:
        assert active
        mapped = mallinfo().hblkhd
        a = np.ones(64 * MB // 8)
        assert mallinfo().hblkhd == mapped  # from the heap, not a mapping of its own
        del a
        assert mallinfo().fordblks >= 64 * MB  # freed, and kept for the next array
    # after the block glibc's defaults are back: a large array gets a mapping of its own again
    before = mallinfo().hblkhd
    b = np.ones(128 * MB // 8)
    assert mallinfo().hblkhd >= before + 128 * MB
    del b


def test_blocks_nest_and_the_outer_one_restores(mallinfo):
    with allocator.keep_freed_memory():
        with allocator.keep_freed_memory() as inner:
            assert inner
        mapped = mallinfo().hblkhd
        a = np.ones(64 * MB // 8)
        assert mallinfo().hblkhd == mapped  # the inner block's end did not restore the defaults
        del a
    assert allocator._depth == 0


def test_without_glibc_nothing_happens(monkeypatch):
    monkeypatch.setattr(allocator, "_LIBC", None)
    with allocator.keep_freed_memory() as active:
        assert active is False
    assert allocator._depth == 0
