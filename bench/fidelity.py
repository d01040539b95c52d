"""Quantization fidelity: the same SmolLM2 weights as CTranslate2 float32 and int8, side by side.

Both models are converted from one float32 checkpoint dequantized from the embedded model's
GGUF (`bench.artifacts`); the embedded int8 model goes through the same steps, and the report
says whether its weights file is byte-identical to the int8 one measured here. Each model runs
in its own child process (`python -m bench.fidelity measure ...`) so that the peak RSS is that
model's alone: HumanEval single-line infilling and the py150 sample, bare engine path, greedy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from .artifacts import directory_size, smollm2_ct2
from .machine import LoadSampler
from .stats import format_interval, markdown_table, median, p95

RESULTS = Path(__file__).resolve().parent / "results"
QUANTIZATIONS = ("float32", "int8")
GOAL_POINTS = 1.0  # int8 within this many points of float32 on HumanEval pass@1 and py150 EM
SPEED_TASKS = 50  # HumanEval tasks timed with the models taking turns, so that both see the same load
GPU_ROWS = {
    "float16": "python -m bench.fidelity --device cuda --quantizations float32,float16",
    "int8_float16": "python -m bench.fidelity --device cuda --quantizations float32,int8_float16",
    "bitsandbytes 8-bit / 4-bit": "the checkpoints come from `codet5-quantize <float32 checkpoint> --out DIR --bnb 8` "
                                  "(or 4) on a CUDA machine; this harness does not load them yet (CTranslate2 only)",
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _current_rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def measure(model_dir: Path, compute_type: str, device: str = "cpu", *, humaneval_limit: int | None = None,
            py150_limit: int | None = None) -> dict[str, Any]:
    """Load one model and run both benchmarks' engine path on it (call in a fresh process)."""
    from inference import CodeModel

    from . import codexglue_line, humaneval

    started = time.perf_counter()
    model = CodeModel(model_dir, device=device, compute_type=compute_type, local_files_only=True)
    loaded = {"load_s": round(time.perf_counter() - started, 2), "rss_loaded_mb": round(_current_rss_mb(), 1)}
    with LoadSampler() as load:
        he = humaneval.run(humaneval.load_tasks(limit=humaneval_limit), model, ["engine"]) if humaneval_limit != 0 else None
        py150 = (codexglue_line.score(model, codexglue_line.load_answers(limit=py150_limit), ["engine"])
                 if py150_limit != 0 else None)
    return {"model_dir": str(model_dir), "compute_type": model.compute_type, "device": model.device, **loaded,
            "peak_rss_mb": round(_peak_rss_mb(), 1), "load": load.summary(), "humaneval": he, "py150": py150}


def interleaved_latency(model_dirs: dict[str, Path], device: str = "cpu", tasks: int = SPEED_TASKS) -> dict[str, Any]:
    """Engine-path latency per HumanEval task with the models taking turns on each task (same load for all)."""
    from inference import CodeModel

    from . import humaneval

    models = {q: CodeModel(d, device=device, compute_type=q, local_files_only=True) for q, d in model_dirs.items()}
    times: dict[str, list[float]] = {q: [] for q in models}
    with LoadSampler() as load:
        for task in humaneval.load_tasks(limit=tasks):
            for quantization, model in models.items():
                start = time.perf_counter()
                humaneval.engine_line(model, task)
                times[quantization].append((time.perf_counter() - start) * 1000)
    first = next(iter(times))
    return {"tasks": tasks, "load": load.summary(),
            **{q: {"p50_ms": round(median(t), 1), "p95_ms": round(p95(t), 1),
                   "speedup_vs_first": round(median([a / b for a, b in zip(times[first], t)]), 2)}
               for q, t in times.items()}}


def _measure_in_child(model_dir: Path, compute_type: str, device: str, humaneval_limit: int | None,
                      py150_limit: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench.fidelity", "--device", device]
        if humaneval_limit is not None:
            command += ["--humaneval-limit", str(humaneval_limit)]
        if py150_limit is not None:
            command += ["--py150-limit", str(py150_limit)]
        command += ["measure", "--model-dir", str(model_dir), "--compute-type", compute_type, "--out", str(out)]
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
        return json.loads(out.read_text(encoding="utf-8"))


def _attempts(result: dict[str, Any]) -> list[Any]:
    from .humaneval import Attempt

    names = {f.name for f in fields(Attempt)}
    return [Attempt(**{k: v for k, v in a.items() if k in names}) for a in result["attempts"]["engine"]]


def _predictions(result: dict[str, Any]) -> list[Any]:
    from .codexglue_line import Prediction

    return [Prediction(**p) for p in result["predictions"]["engine"]]


def _same_bytes(a: Path, b: Path) -> bool:
    """Whether two files have the same contents."""
    from inference.models.wheel_sources import sha256_file

    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


def compare_runs(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Paired comparisons of two measured models (HumanEval pass@1 and EM, py150 EM and edit sim)."""
    from . import codexglue_line, humaneval
    from .stats import mcnemar_exact

    out: dict[str, Any] = {}
    if first["humaneval"] and second["humaneval"]:
        a, b = _attempts(first["humaneval"]), _attempts(second["humaneval"])
        out["humaneval"] = humaneval.compare(a, b)
        only_a = sum(x.exact and not y.exact for x, y in zip(a, b))
        only_b = sum(y.exact and not x.exact for x, y in zip(a, b))
        out["humaneval"]["exact_only_first"], out["humaneval"]["exact_only_second"] = only_a, only_b
        out["humaneval"]["exact_mcnemar_p"] = mcnemar_exact(only_a, only_b)
    if first["py150"] and second["py150"]:
        out["py150"] = codexglue_line.compare(_predictions(first["py150"]), _predictions(second["py150"]))
    return out


def run(quantizations: tuple[str, ...] = QUANTIZATIONS, *, device: str = "cpu", humaneval_limit: int | None = None,
        py150_limit: int | None = None, speed_tasks: int = SPEED_TASKS, results: Path = RESULTS,
        name: str = "fidelity") -> dict[str, Any]:
    """Measure each quantization in its own process, compare each with the first; write `results/<name>.json`."""
    from inference.models.embedded import ensure_embedded_model

    started = time.perf_counter()
    models: dict[str, Any] = {}
    for quantization in quantizations:
        model_dir = smollm2_ct2(quantization)
        print(f"bench: fidelity {quantization} ({model_dir})", file=sys.stderr, flush=True)
        measured = _measure_in_child(model_dir, quantization, device, humaneval_limit, py150_limit)
        measured["size_mb"] = round(directory_size(model_dir / "model.bin") / 2**20, 1)
        models[quantization] = measured
    embedded = ensure_embedded_model("smollm2-135m") / "model.bin"
    int8 = smollm2_ct2("int8") / "model.bin"
    result = {
        "device": device,
        "quantizations": list(quantizations),
        "humaneval_limit": humaneval_limit,
        "py150_limit": py150_limit,
        "speed": interleaved_latency({q: smollm2_ct2(q) for q in quantizations}, device, speed_tasks)
        if speed_tasks else None,
        "seconds": round(time.perf_counter() - started, 1),
        "embedded_int8_identical": _same_bytes(embedded, int8),
        "models": models,
        "comparison": {q: compare_runs(models[quantizations[0]], models[q]) for q in quantizations[1:]},
        "gpu_not_measured": GPU_ROWS if device == "cpu" else {},
    }
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def _pct(summary: dict[str, Any], key: str) -> str:
    return f"{100 * summary[key]:.1f}% {format_interval(*summary[key + '_ci'], scale=100)}"


def markdown(result: dict[str, Any]) -> str:
    """The report section for a `run` result."""
    base = result["quantizations"][0]
    rows = []
    for quantization, m in result["models"].items():
        he = m["humaneval"]["summary"]["engine"] if m["humaneval"] else None
        py = m["py150"]["summary"]["engine"] if m["py150"] else None
        rows.append([
            quantization, m["compute_type"], m["size_mb"],
            _pct(he, "pass_at_1") if he else "-", _pct(he, "exact_match") if he else "-",
            round(he["latency_p50_ms"]) if he else "-",
            _pct(py, "exact_match") if py else "-",
            f"{py['edit_sim']:.1f} {format_interval(*py['edit_sim_ci'])}" if py else "-",
            round(py["latency_p50_ms"]) if py else "-",
            m["rss_loaded_mb"], m["peak_rss_mb"], m.get("load", {}).get("mean", "-"),
        ])
    first = result["models"][base]
    tasks = first["humaneval"]["tasks"] if first["humaneval"] else 0
    samples = first["py150"]["samples"] if first["py150"] else 0
    parts = [
        "## Quantization fidelity (CTranslate2, same weights)",
        "",
        f"SmolLM2-135M-Instruct dequantized from the embedded Q4_1 GGUF to a float32 checkpoint, then converted by "
        f"`inference.models.convert` at each quantization (`bench.artifacts`); each model runs in its own process on "
        f"{result['device']}, bare engine path, greedy: {tasks} HumanEval single-line infilling tasks (left to right) "
        f"and {samples} py150 samples. The embedded int8 model's weights are "
        f"{'byte-identical to' if result['embedded_int8_identical'] else 'NOT identical to'} the int8 row's. "
        "Peak RSS: the whole process (`ru_maxrss`) while loaded and generating. Intervals: Wilson 95% for "
        f"proportions, bootstrap 95% for edit sim. Run time {result['seconds'] / 60:.1f} min.",
        "",
        markdown_table(["model", "compute type", "size MB", "HumanEval pass@1 [95% CI]", "HumanEval EM [95% CI]",
                        "HumanEval p50 ms", "py150 EM [95% CI]", "py150 edit sim [95% CI]", "py150 p50 ms",
                        "RSS loaded MB", "peak RSS MB", "load (mean)"], rows),
    ]
    if speed := result.get("speed"):
        others = [q for q in result["quantizations"][1:] if q in speed]
        parts += ["", f"Latency with the models taking turns on each of the first {speed['tasks']} HumanEval tasks "
                      f"(same machine load for all: mean {speed['load'].get('mean', '-')}): "
                  + "; ".join(f"{q} p50 {speed[q]['p50_ms']:.0f} ms, p95 {speed[q]['p95_ms']:.0f} ms"
                              for q in result["quantizations"])
                  + "".join(f"; {q} is {speed[q]['speedup_vs_first']:.2f}x as fast as {base} (median per-task ratio)"
                            for q in others) + ". The p50 columns above come from runs at different times, under "
                  "different load (last column)."]
    if result["gpu_not_measured"]:
        parts += ["", "Not measured (these need a CUDA GPU holding the real weights, which this run did not have):",
                  *(f"- {q}: `{command}`" if command.startswith("python") else f"- {q}: {command}"
                    for q, command in result["gpu_not_measured"].items())]
    for quantization, c in result["comparison"].items():
        base_he = first["humaneval"]["summary"]["engine"] if first["humaneval"] else None
        other = result["models"][quantization]
        lines = [f"{quantization} vs {base}, paired:"]
        if "humaneval" in c:
            h = c["humaneval"]
            delta = 100 * (other["humaneval"]["summary"]["engine"]["pass_at_1"] - base_he["pass_at_1"])
            lines.append(f"- HumanEval pass@1 {delta:+.1f} pts {format_interval(*h['difference_ci'], scale=100)} "
                         f"(passes only with {base}: {h['only_first']}, only with {quantization}: {h['only_second']}, "
                         f"McNemar exact p {h['mcnemar_p']:.3g}); exact match only {base} {h['exact_only_first']}, "
                         f"only {quantization} {h['exact_only_second']} (p {h['exact_mcnemar_p']:.3g}); same line on "
                         f"{h['same_line']} of {tasks} tasks. Goal (within {GOAL_POINTS:g} point): "
                         f"{'met' if abs(delta) <= GOAL_POINTS else 'missed'}.")
        if "py150" in c:
            p = c["py150"]
            delta = 100 * (other["py150"]["summary"]["engine"]["exact_match"]
                           - first["py150"]["summary"]["engine"]["exact_match"])
            lines.append(f"- py150 EM {delta:+.1f} pts (only {base}: {p['only_first']}, only {quantization}: "
                         f"{p['only_second']}, McNemar exact p {p['mcnemar_p']:.3g}); edit sim "
                         f"{p['edit_sim_difference']:+.1f} {format_interval(*p['edit_sim_difference_ci'])}; same "
                         f"prediction on {p['same_prediction']} of {samples}. Goal (within {GOAL_POINTS:g} point): "
                         f"{'met' if abs(delta) <= GOAL_POINTS else 'missed'}.")
        parts += ["", *lines]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fidelity", description=__doc__)
    parser.add_argument("--quantizations", default=",".join(QUANTIZATIONS), help="the first is the baseline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--humaneval-limit", type=int, help="only the first N HumanEval tasks (0: none)")
    parser.add_argument("--py150-limit", type=int, help="only the first N py150 samples (0: none)")
    parser.add_argument("--speed-tasks", type=int, default=SPEED_TASKS,
                        help=f"HumanEval tasks timed with the models taking turns (default {SPEED_TASKS}; 0: skip)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--name", default="fidelity", help="results file name (default fidelity)")
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("measure", help="(internal) measure one model in this process")
    child.add_argument("--model-dir", type=Path, required=True)
    child.add_argument("--compute-type", required=True)
    child.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "measure":
        measured = measure(args.model_dir, args.compute_type, args.device, humaneval_limit=args.humaneval_limit,
                           py150_limit=args.py150_limit)
        args.out.write_text(json.dumps(measured, indent=1) + "\n", encoding="utf-8")
        return 0
    result = run(tuple(q.strip() for q in args.quantizations.split(",") if q.strip()), device=args.device,
                 humaneval_limit=args.humaneval_limit, py150_limit=args.py150_limit, speed_tasks=args.speed_tasks,
                 results=args.results, name=args.name)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
