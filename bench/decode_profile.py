"""The default model's decode step against the memory-bandwidth bound (issue 13), and what it is made of.

A decoding step reads every weight once, so `model.bin bytes / read bandwidth` (bench.bandwidth)
is the fastest a step can be. Each variant of VARIANTS (the server's settings, one thread, other
compute types, an untied or cut output projection, ...) runs in its own process, the processes
interleaved repetition by repetition in a rotating order. A process decodes, per context length
n, after a cached static prompt of n tokens (`static_prompt=..., cache_static_prompt=True`, as
the server's prompt cache) and 4 new prompt tokens:

- fill: the first request, which computes and caches the static prompt's state;
- first token: a request for 1 new token once the state is cached: a pass over 3 of the new
  tokens, then one decoding step (CTranslate2 runs a prompt's last token as the first step);
- decode step: (time for 1 + K new tokens - time for 1) / K, with the minor page faults per step.

Every generation is forced to its exact length (min_length = max_length) with token id 0 as the
end token: the real one (id 151,645) lies outside a cut projection's logits. With `perf` on the
machine, a process of the server's settings also sends such requests in a loop while `perf`
samples it (bench.perf_shares), once for 1 + K tokens and once for first tokens alone: the share
of the CPU time per component. With --llama-python and --llama-gguf, llama.cpp decodes the same
text on the same threads afterwards (bench.llama_decode), for comparison.

`CODET5_LSP_CACHE=... python -m bench.decode_profile [--variants default,1-thread] [--contexts 8,256,512,1024,2048]`
writes bench/results/decode-profile.json and prints its tables in Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inference.engines.memory import LARGE_BUFFER_BYTES

from . import bandwidth, perf_shares
from .machine import LoadSampler, machine_info
from .stats import bootstrap_interval, format_interval, markdown_table, median, p95

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "inspect.py"
PROMPT_TOKENS = 4  # new prompt tokens after the cached static prompt
END_IDS = [0]
BASELINE = "default"


@dataclass(frozen=True)
class Variant:
    """One way to run the model; the defaults are the server's."""

    description: str
    threads: int = 0  # 0: the server's default_threads()
    compute_type: str = "int8"
    untie: bool = False  # the output projection as its own copy of the embedding (bench.model_bin)
    projection_rows: int | None = None  # with untie: only the first rows of the vocabulary
    mmap_threshold: int | None = LARGE_BUFFER_BYTES  # None: glibc's default
    server_options: bool = False  # a per-step callback and return_logits_vocab, as DecoderEngine.stream_checked
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = {
    BASELINE: Variant(f"the server's settings: all cores (at most 8), int8, {LARGE_BUFFER_BYTES >> 20} MB mmap threshold, "
                      "OMP_WAIT_POLICY=PASSIVE"),
    "1-thread": Variant("1 intra thread", threads=1),
    "server-options": Variant("a per-step callback and return_logits_vocab=True, as the server's first-token check",
                              server_options=True),
    "int8_float32": Variant("compute type int8_float32", compute_type="int8_float32"),
    "float32": Variant("compute type float32 (the int8 weights dequantized at load)", compute_type="float32"),
    "glibc-mmap": Variant("glibc's default (dynamic) mmap threshold instead of the server's", mmap_threshold=None),
    "trim-64mb": Variant("glibc keeps up to 64 MB free at the heap's top (MALLOC_TRIM_THRESHOLD_; default 128 kB)",
                         env=(("MALLOC_TRIM_THRESHOLD_", str(64 << 20)),)),
    "untied": Variant("output projection untied: its own full copy of the embedding", untie=True),
    "cut-32768": Variant("untied output projection of the first 32,768 rows only", untie=True, projection_rows=32768),
    "omp-active": Variant("OMP_WAIT_POLICY=ACTIVE", env=(("OMP_WAIT_POLICY", "ACTIVE"),)),
    "dnnl-avx512-core": Variant("oneDNN kept to AVX-512 without VNNI", env=(("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"),)),
    "dnnl-avx2": Variant("oneDNN kept to AVX2", env=(("ONEDNN_MAX_CPU_ISA", "AVX2"),)),
}


def threads_of(variant: Variant) -> int:
    from inference.engines.model import default_threads

    return variant.threads or default_threads()


class Decoder:
    """A CTranslate2 generator set up as `variant`, timing requests after cached static prompts."""

    def __init__(self, model_dir: Path, variant: Variant, longest: int) -> None:
        from inference.engines.memory import map_large_buffers

        if variant.mmap_threshold is not None and not map_large_buffers(variant.mmap_threshold):
            raise SystemExit("bench: mallopt is not available here (not glibc)")
        import tokenizers

        from inference.engines.runtime import ctranslate2

        self.generator = ctranslate2.Generator(str(model_dir), device="cpu", compute_type=variant.compute_type,
                                               intra_threads=threads_of(variant), inter_threads=1)
        text = SOURCE.read_text(encoding="utf-8")
        self.tokens = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode(text).tokens[:longest + PROMPT_TOKENS]
        self.options: dict[str, Any] = {"callback": lambda step: False, "return_logits_vocab": True} if variant.server_options else {}

    def timed(self, context: int, length: int) -> tuple[float, int]:
        """Milliseconds and minor page faults of one request of exactly `length` new tokens."""
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        self.generator.generate_batch([self.tokens[context: context + PROMPT_TOKENS]], max_length=length, min_length=length,
                                      end_token=END_IDS, static_prompt=self.tokens[:context], cache_static_prompt=True,
                                      include_prompt_in_result=False, **self.options)
        return 1000 * (time.perf_counter() - start), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def measure(decoder: Decoder, contexts: list[int], new_tokens: int, samples: int) -> list[dict[str, Any]]:
    """Per context: fill, first-token and decode-step times (`samples` of each)."""
    rows = []
    for context in contexts:
        fill_ms, _ = decoder.timed(context, 1)
        decoder.timed(context, 2)  # first use of these shapes
        first = [decoder.timed(context, 1) for _ in range(samples)]
        full = [decoder.timed(context, 1 + new_tokens) for _ in range(samples)]
        first_ms, first_faults = median([t for t, _ in first]), median([f for _, f in first])
        rows.append({"context": context, "fill_ms": fill_ms, "first_token_ms": [t for t, _ in first],
                     "step_ms": [(t - first_ms) / new_tokens for t, _ in full],
                     "faults_per_step": median([(f - first_faults) / new_tokens for _, f in full]),
                     "load": os.getloadavg()[0]})
    return rows


def decode_loop(decoder: Decoder, context: int, new_tokens: int) -> None:
    """Print "ready", then decode after the cached `context` until stdin closes."""
    decoder.timed(context, 2)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        decoder.timed(context, 1 + new_tokens)


def _child_command(name: str, model_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "bench.decode_profile", "--child", name, "--model-dir", str(model_dir), *options]


def _child_env(variant: Variant, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **dict(variant.env), **(extra or {})}


def _run_child(name: str, model_dir: Path, contexts: list[int], new_tokens: int, samples: int) -> list[dict[str, Any]]:
    command = _child_command(name, model_dir, "--contexts", ",".join(map(str, contexts)),
                             "--new-tokens", str(new_tokens), "--samples", str(samples))
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO, env=_child_env(VARIANTS[name]), timeout=900)
    return json.loads(done.stdout)


def _perf_child(model_dir: Path, context: int, new_tokens: int, seconds: float) -> dict[str, Any]:
    """perf samples of a process with the server's settings asking for 1 + `new_tokens` tokens after
    a cached `context`, again and again (0: first-token requests alone)."""
    command = _child_command(BASELINE, model_dir, "--contexts", str(context), "--new-tokens", str(new_tokens), "--loop")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                               env=_child_env(VARIANTS[BASELINE], perf_shares.JIT_PROFILE_ENV))
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("bench: the decode loop did not start")
        return {"context": context, "new_tokens": 1 + new_tokens, **perf_shares.profile(process.pid, seconds)}
    finally:
        process.stdin.close()
        process.wait(timeout=120)
        Path(f"/tmp/perf-{process.pid}.map").unlink(missing_ok=True)  # oneDNN's JIT symbol map of that process


def _model_dirs(model_dir: Path, names: list[str], scratch: Path) -> dict[str, Path]:
    """Each variant's model directory: the model itself, or an untied copy written under `scratch`."""
    from .model_bin import untie_projection

    dirs = {}
    for name in names:
        variant = VARIANTS[name]
        dirs[name] = untie_projection(model_dir, scratch / name, variant.projection_rows) if variant.untie else model_dir
    return dirs


def _ratio(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Ratio of medians of (variant, baseline) pairs, with a bootstrap interval over the pairs."""
    def statistic(items: list[tuple[float, float]]) -> float:
        return median([v for v, _ in items]) / median([b for _, b in items])

    return {"ratio": round(statistic(pairs), 3), "interval": [round(x, 3) for x in bootstrap_interval(pairs, statistic)]}


def summarize(runs: dict[str, list[list[dict[str, Any]]]], contexts: list[int]) -> dict[str, dict[str, Any]]:
    """Per context and variant: medians and p95 over all samples, ratios to the baseline paired by repetition."""
    def rows(name: str, context: int) -> list[dict[str, Any]]:
        return [row for repetition in runs[name] for row in repetition if row["context"] == context]

    summary: dict[str, dict[str, Any]] = {}
    for context in contexts:
        cell = {}
        for name in runs:
            mine = rows(name, context)
            figures: dict[str, Any] = {key: {"median": round(median([x for r in mine for x in r[key]]), 1),
                                             "p95": round(p95([x for r in mine for x in r[key]]), 1)}
                                       for key in ("first_token_ms", "step_ms")}
            figures["fill_ms"] = round(median([r["fill_ms"] for r in mine]), 0)
            figures["faults_per_step"] = round(median([r["faults_per_step"] for r in mine]), 1)
            figures["samples"] = len(mine)
            if name != BASELINE and BASELINE in runs:
                base = rows(BASELINE, context)
                for key in ("step_ms", "first_token_ms"):
                    figures[f"{key}_vs_baseline"] = _ratio([(median(a[key]), median(b[key])) for a, b in zip(mine, base)])
            cell[name] = figures
        summary[str(context)] = cell
    return summary


def run(model_dir: Path, names: list[str], contexts: list[int], repeats: int, new_tokens: int, samples: int,
        perf_contexts: list[int], perf_seconds: float, llama: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """The whole benchmark: variants interleaved, then the perf profiles, llama.cpp's decode on
    `llama` (a Python with llama-cpp-python, the GGUF) if given, then the bandwidth bound."""
    runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="decode-profile-") as scratch:
        dirs = _model_dirs(model_dir, names, Path(scratch))
        for repetition in range(repeats):
            shift = repetition % len(names)
            for name in names[shift:] + names[:shift]:
                print(f"bench: repetition {repetition + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
                runs[name].append(_run_child(name, dirs[name], contexts, new_tokens, samples))
    unavailable = perf_shares.available() if perf_contexts else "not asked for"
    perf = [] if unavailable else [_perf_child(model_dir, context, tokens, perf_seconds)
                                   for context in perf_contexts for tokens in (new_tokens, 0)]
    reference = None
    if llama:
        from . import llama_decode

        reference = llama_decode.measure(*llama, model_dir, SOURCE.read_text(encoding="utf-8"), contexts, new_tokens,
                                         max(samples, repeats), threads_of(VARIANTS[BASELINE]))
    summary = summarize(runs, contexts)
    shortest = summary[str(min(contexts))]
    bound = [bandwidth.decode_bound(model_dir, threads_of(VARIANTS[name]), shortest[name]["step_ms"]["median"])
             for name in (BASELINE, "1-thread") if name in shortest]
    return {"variants": {name: asdict(VARIANTS[name]) | {"threads": threads_of(VARIANTS[name])} for name in names},
            "contexts": contexts, "repeats": repeats, "new_tokens": new_tokens, "samples_per_process": samples,
            "prompt_tokens": PROMPT_TOKENS, "source": SOURCE.name, "bound": bound, "summary": summary,
            "perf": perf, "perf_unavailable": unavailable, "llama_cpp": reference, "runs": runs}


def tables(result: dict[str, Any]) -> str:
    """The result as Markdown tables: the bound, the cells per context and variant, the perf shares."""
    parts = [markdown_table(
        ["threads", "read bandwidth GB/s", "weights MB", "bound ms/step", "measured ms/step", "x bound"],
        [[b["threads"], b["bandwidth_gbs"], b["weight_mb"], round(b["bound_ms"], 1), b["decode_step_ms"], b["times_bound"]]
         for b in result["bound"]])]
    rows = []
    for context, cell in result["summary"].items():
        for name, f in cell.items():
            ratios = [f"{f[k]['ratio']:.2f} {format_interval(*f[k]['interval'], digits=2)}" if k in f else "1 (baseline)"
                      for k in ("step_ms_vs_baseline", "first_token_ms_vs_baseline")]
            rows.append([int(context), name, f"{f['first_token_ms']['median']:.0f} / {f['first_token_ms']['p95']:.0f}",
                         f"{f['step_ms']['median']:.1f} / {f['step_ms']['p95']:.1f}", *ratios,
                         f["faults_per_step"], f"{f['fill_ms']:.0f}"])
    parts.append(markdown_table(["cached tokens", "variant", "first token ms", "decode step ms", "step / default",
                                 "first token / default", "page faults/step", "fill ms"], rows))
    reference = result.get("llama_cpp")
    if reference and BASELINE in result["variants"]:
        bandwidth_gbs = next(b["bandwidth_gbs"] for b in result["bound"] if b["threads"] == reference["threads"])
        parts.append(f"llama.cpp ({Path(reference['gguf']).name}, {reference['gguf_mb']} MB: bound "
                     f"{reference['gguf_mb'] / bandwidth_gbs:.1f} ms/step at {bandwidth_gbs} GB/s), {reference['threads']} threads, "
                     "beside ours (default):\n\n" + markdown_table(
                         ["cached tokens", "llama.cpp first token ms", "llama.cpp decode step ms", "ours first token ms",
                          "ours decode step ms"],
                         [[int(context), f"{r['first_token_ms']['median']:.0f} / {r['first_token_ms']['p95']:.0f}",
                           f"{r['step_ms']['median']:.1f} / {r['step_ms']['p95']:.1f}",
                           f"{result['summary'][context][BASELINE]['first_token_ms']['median']:.0f}",
                           f"{result['summary'][context][BASELINE]['step_ms']['median']:.1f}"]
                          for context, r in reference["results"].items()]))
    for profile in result["perf"]:
        kind = f"requests for {profile['new_tokens']} tokens" if profile["new_tokens"] > 1 else "first-token requests"
        parts.append(f"perf, {kind} after {profile['context']} cached tokens ({profile['samples']} samples, "
                     f"{profile['seconds']} s at {profile['frequency_hz']} Hz):\n\n"
                     + markdown_table(["component", "share of samples"],
                                      [[name, f"{share:.1f}%"] for name, share in profile["shares"].items()]))
    return "\n\n".join(parts)


def _numbers(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a CTranslate2 decoder (default: the embedded default model)")
    parser.add_argument("--variants", default="default,1-thread", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--contexts", default="8,256,512,1024,2048", help="cached static prompt lengths in tokens")
    parser.add_argument("--repeats", type=int, default=4, help="processes per variant, interleaved (default 4)")
    parser.add_argument("--new-tokens", type=int, default=16, help="decoding steps timed per request (default 16)")
    parser.add_argument("--samples", type=int, default=2, help="requests of each kind per context and process (default 2)")
    parser.add_argument("--perf-contexts", default="8,1024", help="contexts profiled with perf ('' to skip)")
    parser.add_argument("--perf-seconds", type=float, default=8.0)
    parser.add_argument("--llama-python", type=Path, help="also llama.cpp's decode: a Python with llama-cpp-python")
    parser.add_argument("--llama-gguf", type=Path, help="with --llama-python: the GGUF the default was converted from")
    parser.add_argument("--out", type=Path, default=RESULTS / "decode-profile.json")
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one process of this variant
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)  # with --child: decode until stdin closes
    args = parser.parse_args(argv)
    contexts = _numbers(args.contexts)
    if args.child:
        decoder = Decoder(args.model_dir, VARIANTS[args.child], max(contexts))
        if args.loop:
            decode_loop(decoder, contexts[0], args.new_tokens)
        else:
            print(json.dumps(measure(decoder, contexts, args.new_tokens, args.samples)))
        return 0
    if bool(args.llama_python) != bool(args.llama_gguf):
        parser.error("--llama-python and --llama-gguf go together")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if args.model_dir is None:
        from inference.models.embedded import ensure_embedded_model

        args.model_dir = ensure_embedded_model()
    started, machine = time.perf_counter(), machine_info()
    with LoadSampler() as load:
        result = run(args.model_dir, names, contexts, args.repeats, args.new_tokens, args.samples,
                     _numbers(args.perf_contexts), args.perf_seconds,
                     (args.llama_python, args.llama_gguf) if args.llama_python else None)
    result.update(command="python -m bench.decode_profile " + " ".join(sys.argv[1:]), model_dir=str(args.model_dir),
                  machine=machine, load=load.summary(), seconds=round(time.perf_counter() - started))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(tables(result))
    print(f"bench: wrote {args.out} ({result['seconds']} s, load {result['load']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
