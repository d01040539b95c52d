"""inference/engines/huge_pages.py: which mappings are a session's, and moving them to huge pages."""

from __future__ import annotations

import ctypes
import mmap
import sys
from pathlib import Path

import pytest

from inference.engines.huge_pages import HUGE_PAGE_BYTES, MADV_COLLAPSE, anonymous_regions, back_new_regions_in_background


MAPS = """\
55d0a0000000-55d0a0400000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000800000 rw-p 00000000 00:00 0 
7f0000800000-7f0000900000 rw-p 00000000 00:00 0 
7f0001000000-7f0002000000 rw-p 00000000 08:01 1234                       /work/model.onnx.data
7f0003000000-7f0004000000 r--p 00000000 00:00 0 
7f0005000000-7f0006000000 rw-s 00000000 00:01 99                         /dev/zero (deleted)
7ffc00000000-7ffc00400000 rw-p 00000000 00:00 0                          [stack]
"""


def test_the_regions_are_private_writable_anonymous_mappings_of_a_huge_page_or_more(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(MAPS)
    assert anonymous_regions(maps) == {0x55D0A0000000: 0x55D0A0400000, 0x7F0000000000: 0x7F0000800000}
    assert anonymous_regions(tmp_path / "missing") == {}


def _huge_bytes(start: int, end: int) -> int:
    """AnonHugePages of the mappings overlapping [start, end), from /proc/self/smaps."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            low, high = (int(v, 16) for v in head.split("-"))
            inside = low < end and high > start
        elif inside and line.startswith("AnonHugePages:"):
            total += int(line.split()[1]) * 1024
    return total


def _private_mapping(size: int) -> tuple[mmap.mmap, int]:
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    mapping.write(b"\x01" * size)  # touched: its pages exist
    return mapping, ctypes.addressof(ctypes.c_char.from_buffer(mapping))


@pytest.mark.skipif(sys.platform != "linux", reason="transparent huge pages are Linux's")
def test_only_the_mappings_added_since_the_snapshot_move_to_huge_pages():
    if "[madvise]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
        pytest.skip("transparent huge pages are not given on request here (always, or never)")
    size = 8 * HUGE_PAGE_BYTES
    probe, probe_start = _private_mapping(size)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(probe_start, size, MADV_COLLAPSE) != 0:
        pytest.skip("this kernel cannot collapse on request (MADV_COLLAPSE: Linux 6.1)")
    probe.close()
    old, old_start = _private_mapping(size)
    old.madvise(mmap.MADV_DONTFORK)  # flags of its own: the new mapping cannot merge into it
    before = anonymous_regions()
    new, new_start = _private_mapping(size)
    assert anonymous_regions().items() >= {(s, e) for s, e in before.items() if s <= old_start < e}  # the old one unchanged
    huge_before = _huge_bytes(new_start, new_start + size)
    back_new_regions_in_background(before).join(timeout=60)
    assert huge_before == 0
    assert _huge_bytes(new_start, new_start + size) >= 3 * HUGE_PAGE_BYTES  # the aligned huge pages inside the new mapping
    assert _huge_bytes(old_start, old_start + size) == 0
    assert new[:4] == b"\x01" * 4 and new[size - 1:] == b"\x01"  # the contents are kept
    old.close()
    new.close()
