"""inference.engines.memory: glibc's handling of large buffers, measured in child processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHURN = """
import ctypes, sys
import psutil
from inference.engines.memory import map_large_buffers
if sys.argv[1] == "mapped":
    assert map_large_buffers()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
process = psutil.Process()
before = process.memory_info().rss
for size in (40 << 20, 8 << 20, 30 << 20, 12 << 20, 24 << 20):  # buffers of varying size, as generations make
    pointer = libc.malloc(size)
    ctypes.memset(pointer, 1, size)
    libc.free(ctypes.c_void_p(pointer))
print((process.memory_info().rss - before) >> 20)
"""


def _retained_mb(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", CHURN, mode], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_mapped_large_buffers_go_back_to_the_os() -> None:
    assert _retained_mb("default") >= 20  # glibc's adaptive threshold keeps freed buffers in the heap
    assert _retained_mb("mapped") <= 4
