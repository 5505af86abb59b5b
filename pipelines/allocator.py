"""Keep freed memory in the C allocator while a step that churns through large arrays runs.

NumPy takes its arrays from the C library's ``malloc``.  glibc serves every block above its
mmap threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it on ``free``, and it trims
the heap top once more than 128 KB of it is free.  A step that makes and drops a few hundred
arrays of 0.5 GB each therefore asks the kernel for fresh pages every time, and the kernel
zeroes each page before handing it out.  On virtual machines with free-page reporting (the
virtio balloon; the project's standard machine has it) the hypervisor also takes the freed
pages back, so touching them again costs a fault in the host too: there, writing memory that
is new to the process runs at 0.4-0.6 GB/s against about 7 GB/s for memory it reuses
(docs/BENCHMARKS.md).

``keep_freed_memory()`` makes glibc keep what is freed while the block runs: no mmap for
large blocks (they come from the heap) and the trim threshold and top pad at their largest
value (2 GiB; ``mallopt`` takes an int), so a freed array is reused by the next one instead of
going back to the kernel.  On leaving the outermost block ``malloc_trim(0)`` returns the free
memory to the kernel, so the process does not keep its peak.  glibc's own thresholds adapt to
the program (the mmap threshold grows to the size of freed mapped blocks, at most 32 MiB, the
trim threshold to twice that) until the first ``mallopt``, which ends the adapting for good;
so afterwards the thresholds are set to where that adapting settles in any process that has
freed a 32 MiB array: mmap threshold 32 MiB, trim threshold 64 MiB, top pad 128 KiB.  Where
the C library is not glibc (macOS, musl), or where the process was started with malloc
settings of its own (``GLIBC_TUNABLES`` naming ``glibc.malloc``, ``MALLOC_*_``), it does
nothing.  The settings are process-wide for the duration of the block; they change where memory
comes from, never what a program computes.  Polars and DuckDB have allocators of their own and
are not affected.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h, mallopt(3))
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4
KEEPING = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 2**31 - 1}
# afterwards: where glibc's adapting thresholds settle (see the module docstring)
SETTLED = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20, M_TOP_PAD: 128 * 1024}

_lock = threading.Lock()
_depth = 0
_active = False


def _glibc() -> ctypes.CDLL | None:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in tunables or any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return None  # the process was started with malloc settings of its own: leave them
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (and mallopt's parameters above)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


def _set(settings: dict[int, int]) -> bool:
    """Apply every setting (each is tried even if one is refused); True if all took."""
    if _LIBC is None:
        return False
    results = [_LIBC.mallopt(param, value) == 1 for param, value in settings.items()]
    return all(results)


@contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Within the block, glibc reuses freed memory instead of returning it to the kernel (see
    the module docstring).  Yields whether the settings took effect.  Blocks may nest (the
    outermost one sets and restores); the settings are restored also when the block raises."""
    global _depth, _active
    with _lock:
        _depth += 1
        if _depth == 1:
            _active = _set(KEEPING)
        active = _active
    try:
        yield active
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _LIBC is not None:
                if not _set(SETTLED):  # pragma: no cover - glibc refused values of its own range
                    log.warning("could not reset glibc's malloc thresholds")
                _LIBC.malloc_trim(0)
                _active = False


def release_free_memory() -> None:
    """Give memory that is free but kept back to the kernel: glibc's (``malloc_trim``) and
    pyarrow's default memory pool's.  For a long-lived process after a step that held large
    frames (the quality gates read up to 49M rows into pandas)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        pass
    if _LIBC is not None:
        with _lock:
            if _depth == 0:  # inside a keep_freed_memory() block the memory is kept on purpose
                _LIBC.malloc_trim(0)
