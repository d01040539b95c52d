"""What a result was measured on: machine, load, software versions, commit, date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def gpu_name() -> str:
    """The first CUDA device CTranslate2 sees, named by nvidia-smi, or "none"."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() == 0:
            return "none"
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (ImportError, OSError, subprocess.SubprocessError):
        return "none"
    return smi.stdout.strip().splitlines()[0] if smi.stdout.strip() else "a CUDA device"


def git_commit() -> str:
    """The short commit of HEAD, with "+changes" when the code under test differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--", "inference", "lsp_server"], cwd=REPO,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = head.stdout.strip() or "unknown"
    return commit + ("+changes" if status.stdout.strip() else "")


def machine_info() -> dict[str, object]:
    """A JSON-ready description of this machine and the software under test, now."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    try:
        import psutil

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gb = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gb": memory_gb,
        "load_average": load_average(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "ctranslate2": _version("ctranslate2"),
        "pygls": _version("pygls"),
        "commit": git_commit(),
    }


class LoadSampler:
    """Samples the 1-minute load average in the background while a benchmark runs."""

    def __init__(self, interval_s: float = 10.0) -> None:
        import threading

        self._interval = interval_s
        self._stop = threading.Event()
        self.samples: list[float] = []
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            load = load_average()
            if load is not None:
                self.samples.append(load[0])
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        load = load_average()
        if load is not None:
            self.samples.append(load[0])

    def summary(self) -> dict[str, float | int]:
        """Mean and maximum of the 1-minute load average seen, and how many samples."""
        if not self.samples:
            return {"samples": 0}
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2),
                "samples": len(self.samples)}
