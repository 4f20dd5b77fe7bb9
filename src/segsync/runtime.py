"""Process-wide settings every segsync process starts with.

``segsync.cli.main`` applies them, so the daemon, every command and the sandbox server run with them;
benchmarks that call the library directly apply them too, so that they measure what the commands do.
"""

from __future__ import annotations

import ctypes
import gc
import sys

#: glibc's ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 128 * 1024 * 1024
MMAP_THRESHOLD = 4 * 1024 * 1024


def tune_process() -> None:
    """The collector's thresholds, and glibc's heap kept instead of handed back and forth (below)."""
    tune_gc()
    tune_malloc()


def tune_gc() -> None:
    """segsync holds pages of tens of thousands of small objects (rows, mapped records) that never form cycles;
    at the default threshold (700) the collector re-walked them so often that it cost 10-25 % of a pull's CPU."""
    gc.set_threshold(50_000, 20, 100)


def tune_malloc() -> bool:
    """Stop glibc from giving the top of its heap back to the system as soon as 128 KB there are free.

    A page of a pull allocates thousands of buffers of a few KB (orjson's output among them) and frees them
    together; at glibc's defaults the heap top then crossed the trim threshold on nearly every page and each
    crossing cost an ``sbrk`` pair. Measured: ``orjson.dumps`` of a one-element list took 2 µs instead of
    0.05 µs, with a ``brk`` call per free. glibc raises the thresholds by itself only after the first large
    block is freed, so a process was fast or slow depending on its history. Fixed thresholds end that: up to
    128 MB of free heap is kept for reuse, and blocks of 4 MB or more still come from (and return to) ``mmap``
    (at 32 MB, glibc's own ceiling, a pull was 3 % faster again but compute's peak grew by 0.2 GiB).
    Returns whether the settings applied (not on other C libraries or systems)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl (Alpine) and other C libraries: their own allocators
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
