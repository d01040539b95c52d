"""What one cached prompt costs in memory: RSS with a model loaded, then after each distinct prompt
that CTranslate2's static-prompt cache keeps (`cache_static_prompt=True`).

Each entry holds the keys and values of every layer for its static tokens, so its size depends on
the model (layers x KV heads x head size) and the prompt's length. The prompts are windows of a
standard-library file, far enough apart that no two share a prefix. `maxCachedPrompts` is chosen
from this figure.

`python -m bench.prompt_cache_memory [--model default] [--tokens 1000] [--entries 4]` writes
`bench/results/prompt-cache-memory-<model>.json`.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import sysconfig
from pathlib import Path
from typing import Any

import psutil

from .machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"
SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"
MB = 1 << 20


def _rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / MB


def measure(model: str, tokens: int, entries: int, threads: int) -> dict[str, Any]:
    """RSS after load, then after each of `entries` distinct cached prompts of `tokens` tokens, with
    the server's mmap threshold (large freed buffers go back to the OS, as in the server)."""
    from inference import CodeModel
    from inference.engines.memory import map_large_buffers

    map_large_buffers()

    before = _rss_mb()
    code_model = CodeModel(model, cpu_threads=threads, local_files_only=True, max_cached_prompts=entries)
    generator = code_model._engine.generator
    tokenizer = code_model.tokenizer
    ids = tokenizer.encode(SOURCE.read_text(encoding="utf-8"))
    loaded = _rss_mb()
    rows = []
    for entry in range(entries):
        start = entry * (tokens + 500)
        window = tokenizer.tokens(ids[start: start + tokens + 8])
        generator.generate_batch([window[tokens:]], max_length=2, static_prompt=window[:tokens],
                                 cache_static_prompt=True, include_prompt_in_result=False)
        rows.append({"entries": entry + 1, "rss_mb": round(_rss_mb(), 1)})
    per_entry = [(b["rss_mb"] - a["rss_mb"]) for a, b in zip([{"rss_mb": loaded}, *rows], rows)]
    return {"model": code_model.preset.name, "static_tokens": tokens, "threads": threads,
            "rss_before_load_mb": round(before, 1), "rss_loaded_mb": round(loaded, 1), "rows": rows,
            "per_entry_mb": [round(x, 1) for x in per_entry],
            "median_entry_mb": round(sorted(per_entry)[len(per_entry) // 2], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_cache_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--tokens", type=int, default=1000, help="static prompt length in tokens")
    parser.add_argument("--entries", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    result = measure(args.model, args.tokens, args.entries, args.threads)
    result["machine"] = machine_info()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"prompt-cache-memory-{result['model']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
