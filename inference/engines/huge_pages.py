"""Back a model's weights with transparent huge pages (Linux), off the request path.

A decode step streams every weight once; on 4 kB pages that is a TLB miss per page (123,000 per
step of the 0.5B default) and the CPU's prefetchers stop at every page boundary. ONNX Runtime packs
its weights into buffers of its own at load, which glibc maps on 4 kB pages unless the system
makes every mapping huge (`transparent_hugepage=always`; the usual setting is `madvise`). So after
a session has loaded, the anonymous mappings it added are marked for huge pages (`MADV_HUGEPAGE`)
and collapsed into them (`MADV_COLLAPSE`, Linux 6.1 and later; before that the kernel's khugepaged
does it over the following minutes) by a thread at the lowest priority, so that requests keep the
CPU. Measured in bench/huge_pages.py.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from pathlib import Path

from .memory import glibc_function

MAPS = Path("/proc/self/maps")
HUGE_PAGE_BYTES = 2 << 20
MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", 14)
MADV_COLLAPSE = 25  # Linux 6.1
COLLAPSE_CHUNK_BYTES = 64 << 20  # collapsed a piece at a time, so that the kernel never holds a long stretch
LOWEST_PRIORITY = 19


def anonymous_regions(maps: Path = MAPS) -> dict[int, int]:
    """Start -> end of this process's private writable anonymous mappings (the heap included) of at
    least a huge page; empty where there is no /proc."""
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return {}
    regions = {}
    for line in lines:
        fields = line.split()
        start, end = (int(value, 16) for value in fields[0].split("-"))
        anonymous = len(fields) < 6 or fields[5] == "[heap]"
        if fields[1].startswith("rw") and fields[1].endswith("p") and anonymous and end - start >= HUGE_PAGE_BYTES:
            regions[start] = end
    return regions


def back_with_huge_pages(regions: dict[int, int]) -> int:
    """Mark `regions` for huge pages and collapse them into huge pages now where the kernel can;
    the bytes collapsed (0 where it cannot: marked only, or not Linux)."""
    madvise = glibc_function("madvise")
    if madvise is None:
        return 0
    madvise.argtypes, madvise.restype = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int], ctypes.c_int  # addresses are 64-bit
    collapsed = 0
    for start, end in sorted(regions.items()):
        if madvise(start, end - start, MADV_HUGEPAGE) != 0:
            continue
        for piece in range(start, end, COLLAPSE_CHUNK_BYTES):
            length = min(COLLAPSE_CHUNK_BYTES, end - piece)
            if madvise(piece, length, MADV_COLLAPSE) == 0:
                collapsed += length
    return collapsed


def back_new_regions_in_background(before: dict[int, int]) -> threading.Thread:
    """Back the mappings added (or grown) since `before` (from `anonymous_regions`) with huge pages,
    in a daemon thread at the lowest priority; the thread, started."""
    added = {start: end for start, end in anonymous_regions().items() if before.get(start) != end}

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        back_with_huge_pages(added)

    thread = threading.Thread(target=run, name="huge-pages", daemon=True)
    thread.start()
    return thread
