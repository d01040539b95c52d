"""Where a running process spends its CPU time, by component, from Linux `perf` samples.

`profile(pid, seconds)` samples the process (`perf record -F 499 -p PID`) and reads the samples
back by shared object and symbol (`perf report --stdio --sort dso,sym`); `shares` groups them.
oneDNN's JIT kernels have no symbols unless the process runs with `ONEDNN_JIT_PROFILE=2` (oneDNN
then writes their names to /tmp/perf-PID.map), which tells its int8 packing (`*_u8_copy_*`
kernels) from its int8 multiply-accumulate (`*_s8u8s32_kern`) and its float32 kernels. oneDNN's compiled code and CTranslate2's own
operators both live in libctranslate2; their symbols tell them apart.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

JIT_PROFILE_ENV = {"ONEDNN_JIT_PROFILE": "2"}  # oneDNN: write /tmp/perf-PID.map for its JIT code
FREQUENCY_HZ = 499
# "  75.35%  [JIT] tid 29641   [.] jit_avx512_core_u8_copy_at_kern"
SAMPLE_LINE = re.compile(r"^\s*(?P<share>\d+(?:\.\d+)?)%\s+(?P<dso>.+?)\s+\[(?P<space>[.kgu])\]\s+(?P<symbol>.*?)\s*$")
COMPONENTS = (
    "oneDNN JIT: int8 packing (u8/s8 copy kernels)",
    "oneDNN JIT: int8 multiply (s8u8s32 kernels)",
    "oneDNN JIT: float32 (attention products)",
    "oneDNN JIT: other",
    "oneDNN compiled code",
    "CTranslate2 own operators",
    "kernel",
    "libc",
    "libgomp (OpenMP)",
    "Python",
    "other",
)


def component(dso: str, symbol: str) -> str:
    """The component of COMPONENTS a sample in `dso` at `symbol` belongs to."""
    if dso.startswith("[JIT]"):
        if "u8_copy" in symbol or "s8_copy" in symbol:
            return COMPONENTS[0]
        if "s8u8s32" in symbol or "s8s8s32" in symbol:
            return COMPONENTS[1]
        return COMPONENTS[2] if any(name in symbol for name in ("f32", "gemv", "smalln")) else COMPONENTS[3]
    if "libctranslate2" in dso:
        return COMPONENTS[4] if symbol.startswith("dnnl::") else COMPONENTS[5]
    if dso.startswith("[kernel"):
        return COMPONENTS[6]
    if dso.startswith("libc.so") or dso.startswith("libc-"):
        return COMPONENTS[7]
    if dso.startswith("libgomp"):
        return COMPONENTS[8]
    if dso.startswith("python") or dso.startswith("libpython"):
        return COMPONENTS[9]
    return COMPONENTS[10]


def parse_report(text: str) -> list[tuple[float, str, str]]:
    """(percent, shared object, symbol) of each line of `perf report --stdio --sort dso,sym`."""
    rows = []
    for line in text.splitlines():
        match = None if line.startswith("#") else SAMPLE_LINE.match(line)
        if match:
            rows.append((float(match["share"]), match["dso"], match["symbol"]))
    return rows


def shares(rows: list[tuple[float, str, str]]) -> dict[str, float]:
    """Percent of the samples per component, in COMPONENTS order (components with none left out)."""
    totals: Counter[str] = Counter()
    for share, dso, symbol in rows:
        totals[component(dso, symbol)] += share
    return {name: round(totals[name], 2) for name in COMPONENTS if totals[name]}


def top_symbols(rows: list[tuple[float, str, str]], count: int = 12) -> list[dict[str, object]]:
    """The `count` symbols with the most samples, JIT code named without its thread id."""
    merged: Counter[tuple[str, str]] = Counter()
    for share, dso, symbol in rows:
        merged[("[JIT]" if dso.startswith("[JIT]") else dso, symbol)] += share
    return [{"percent": round(share, 2), "dso": dso, "symbol": symbol} for (dso, symbol), share in merged.most_common(count)]


def available() -> str | None:
    """None when `perf` can sample here, else why not."""
    if shutil.which("perf") is None:
        return "perf is not installed"
    try:
        done = subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"perf did not run: {exc}"
    return None if done.returncode == 0 else f"perf record failed: {done.stderr.strip()[:200]}"


def profile(pid: int, seconds: float) -> dict[str, object]:
    """Samples of process `pid` for `seconds`: the share per component and the top symbols."""
    with tempfile.TemporaryDirectory(prefix="perf-shares-") as tmp:
        data = Path(tmp) / "perf.data"
        subprocess.run(["perf", "record", "-q", "-F", str(FREQUENCY_HZ), "-p", str(pid), "-o", str(data), "--", "sleep", str(seconds)],
                       check=True, capture_output=True, timeout=seconds + 60)
        report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,sym"],
                                check=True, capture_output=True, text=True, timeout=300).stdout
    samples = re.search(r"^# Samples: (\S+)", report, re.MULTILINE)
    rows = parse_report(report)
    return {"samples": samples[1] if samples else "unknown", "frequency_hz": FREQUENCY_HZ, "seconds": seconds,
            "shares": shares(rows), "top_symbols": top_symbols(rows)}
