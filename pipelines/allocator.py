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
going back to the kernel.  On leaving the outermost block glibc's defaults are set again and
``malloc_trim(0)`` returns the free memory to the kernel, so the process does not keep its
peak.  Where the C library is not glibc (macOS, musl) it does nothing.  The settings are
process-wide for the duration of the block; they change where memory comes from, never what
a program computes.  Polars and DuckDB have allocators of their own and are not affected.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

# glibc's mallopt parameters and their defaults (malloc.h, mallopt(3))
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_TOP_PAD: 128 * 1024, M_MMAP_MAX: 65536}
KEEPING = {M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 2**31 - 1, M_MMAP_MAX: 0}

_lock = threading.Lock()
_depth = 0


def _glibc() -> ctypes.CDLL | None:
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
    return _LIBC is not None and all(_LIBC.mallopt(param, value) == 1 for param, value in settings.items())


@contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Within the block, glibc reuses freed memory instead of returning it to the kernel (see
    the module docstring).  Yields whether the settings took effect.  Blocks may nest; the
    defaults come back when the outermost one ends."""
    global _depth
    with _lock:
        _depth += 1
        active = _set(KEEPING) if _depth == 1 else _LIBC is not None
    try:
        yield active
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _LIBC is not None:
                if not _set(DEFAULTS):  # pragma: no cover - glibc refused its own defaults
                    log.warning("could not restore glibc's malloc defaults")
                _LIBC.malloc_trim(0)
