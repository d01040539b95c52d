"""Decoding speed under glibc's mmap threshold: the server's setting against glibc's default and 1 MB.

The server fixes glibc's mmap threshold (`inference.engines.memory.map_large_buffers`) so that large
freed buffers go back to the OS. A threshold below the buffers CTranslate2 allocates at every
decoding step (a layer's keys and values over the whole context) makes every step map, fault in
and unmap them again. Each threshold runs in its own process (the setting is process-wide), the
processes interleaved repetition by repetition; each times a prompt pass alone (1 new token) and
the same prompt with 65 new tokens, and reports the decode time and minor page faults per token.

`python -m bench.heap` (the embedded default model, 2 threads) writes `bench/results/heap.json`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from .machine import LoadSampler, machine_info
from .stats import median, p95

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "inspect.py"
NEW_TOKENS = 64
MB = 1 << 20


def _timed(generator: Any, tokens: list[str], length: int) -> tuple[float, int]:
    """Seconds and minor page faults of one generation of exactly `length` new tokens."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    generator.generate_batch([tokens], max_length=length, min_length=length, include_prompt_in_result=False)
    return time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def measure(model_dir: Path, threshold: int | None, contexts: list[int], threads: int) -> list[dict[str, float]]:
    """One repetition in this process: per context, prompt-pass ms and decode ms / page faults per token."""
    from inference.engines.memory import map_large_buffers

    if threshold is not None and not map_large_buffers(threshold):
        raise SystemExit("bench: mallopt is not available here (not glibc)")
    import ctranslate2
    import tokenizers

    generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type="int8", intra_threads=threads)
    tokens = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(SOURCE.read_text()).tokens
    rows = []
    for context in contexts:
        prompt = tokens[len(tokens) // 2: len(tokens) // 2 + context]
        _timed(generator, prompt, 2)  # first use of this shape
        prompt_s, prompt_faults = _timed(generator, prompt, 1)
        full_s, full_faults = _timed(generator, prompt, NEW_TOKENS + 1)
        rows.append({"context": context, "prompt_ms": 1000 * prompt_s,
                     "decode_ms_per_token": 1000 * (full_s - prompt_s) / NEW_TOKENS,
                     "faults_per_token": (full_faults - prompt_faults) / NEW_TOKENS})
    return rows


def _child(model_dir: Path, threshold: int | None, contexts: list[int], threads: int) -> list[dict[str, float]]:
    command = [sys.executable, "-m", "bench.heap", "--child", str(threshold or 0), "--model-dir", str(model_dir),
               "--contexts", ",".join(map(str, contexts)), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(done.stdout)


def run(model_dir: Path, contexts: list[int], threads: int, repeats: int) -> dict[str, Any]:
    """Medians and p95 per context and threshold, with each threshold's decode time over the server's."""
    from inference.engines.memory import LARGE_BUFFER_BYTES

    settings = {"glibc default": None, "1 MB": MB, f"server ({LARGE_BUFFER_BYTES // MB} MB)": LARGE_BUFFER_BYTES}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    for _ in range(repeats):
        for name, threshold in settings.items():
            samples[name] += _child(model_dir, threshold, contexts, threads)
    results: dict[str, Any] = {}
    server = list(settings)[-1]
    for context in contexts:
        rows = {name: [r for r in samples[name] if r["context"] == context] for name in settings}
        server_decode = median([r["decode_ms_per_token"] for r in rows[server]])
        cell = {}
        for name in settings:
            cell[name] = {key: {"median": round(median([r[key] for r in rows[name]]), 1), "p95": round(p95([r[key] for r in rows[name]]), 1)}
                          for key in ("prompt_ms", "decode_ms_per_token", "faults_per_token")}
            cell[name]["decode_ratio_to_server"] = round(median([r["decode_ms_per_token"] for r in rows[name]]) / server_decode, 2)
        results[str(context)] = cell
    return {"thresholds": dict(settings), "threads": threads, "repeats": repeats,
            "new_tokens": NEW_TOKENS, "source": SOURCE.name, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.heap", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a CTranslate2 model (default: the embedded default model)")
    parser.add_argument("--contexts", default="200,700,1000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "heap.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one repetition at this threshold (0: glibc's)
    args = parser.parse_args(argv)
    contexts = [int(n) for n in args.contexts.split(",")]
    if args.child is not None:
        print(json.dumps(measure(args.model_dir, args.child or None, contexts, args.threads)))
        return 0
    if args.model_dir is None:
        from inference.models.embedded import ensure_embedded_model

        args.model_dir = ensure_embedded_model()
    machine = machine_info()
    with LoadSampler() as load:
        result = run(args.model_dir, contexts, args.threads, args.repeats)
    result.update(command="python -m bench.heap " + " ".join(sys.argv[1:]), model_dir=str(args.model_dir),
                  machine=machine, load=load.summary())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for context, cell in result["results"].items():
        for name, figures in cell.items():
            print(f"context {context:>5} {name:16} prompt {figures['prompt_ms']['median']:7.1f} ms  decode "
                  f"{figures['decode_ms_per_token']['median']:5.1f} ms/token (p95 {figures['decode_ms_per_token']['p95']:5.1f}, "
                  f"x{figures['decode_ratio_to_server']})  faults/token {figures['faults_per_token']['median']:7.1f}")
    print(f"bench: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
