"""Run a generated program in a separate, time- and memory-limited Python process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MEMORY_LIMIT_BYTES = 1 << 30


@dataclass(frozen=True)
class Outcome:
    passed: bool
    status: str  # "passed", "failed" (non-zero exit: an exception, a failed assert) or "timeout"
    detail: str = ""  # the last line of stderr when it failed


# The memory limit is set by the child itself, not by a `preexec_fn`: that runs between fork and
# exec in a copy of a multi-threaded process (the model's threads), where a lock another thread
# held at fork time (the import lock, malloc's) is never released; a HumanEval run hung there.
_BOOTSTRAP = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT_BYTES}, {MEMORY_LIMIT_BYTES})); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run_program(source: str, timeout_s: float = 5.0) -> Outcome:
    """Run `source` with a fresh interpreter (isolated mode, empty working directory).

    It passes when it exits with status 0 within `timeout_s`; the whole process group is killed
    at the time limit.
    """
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as workdir:
        program = Path(workdir) / "program.py"
        program.write_text(source, encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(program)], cwd=workdir, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
        )
        try:
            _, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, 9)
            except ProcessLookupError:
                pass
            process.communicate()
            return Outcome(False, "timeout")
    if process.returncode == 0:
        return Outcome(True, "passed")
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return Outcome(False, "failed", lines[-1][:200] if lines else f"exit status {process.returncode}")
