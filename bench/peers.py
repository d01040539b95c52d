"""Engines side by side on the same model and the same prompts: CTranslate2 (ours), llama.cpp, transformers.

Every runner gets the same token ids (SmolLM2's tokenizer; llama.cpp is handed ids, not text),
greedy decoding, and generates exactly `new_tokens` tokens (end-of-text is not allowed to stop
it), so the work is identical. Each generated token's arrival time is recorded: time to first
token is the prompt pass; a completion is the time to the `completion_tokens`-th token (a typical
line); tokens/s is over the decode steps after the first token.

Two cases per prompt length:
- *cold*: nothing cached (each runner starts from an empty KV cache; prompts are windows at
  different offsets of the same source, so no run sees the previous one's text);
- *typing*: the previous request's prompt with its last `tail_tokens` tokens replaced, as when the
  user types on: CTranslate2 with the server's static-prompt cache (the stable part cached), llama.cpp
  with its own prompt reuse (the longest common prefix with its previous call stays evaluated).
  transformers has no prompt cache on its naive path and is left out of this case.

Runners are interleaved repetition by repetition, so a load change on this shared machine hits all
of them alike; ratios are of medians over the repetitions.
"""

from __future__ import annotations

import ctypes
import gc
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

LENGTHS = (128, 512, 1024, 2048)
NEW_TOKENS = 32
COMPLETION_TOKENS = 16
TAIL_TOKENS = 24
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Timing:
    """One generation: when each token arrived, in ms after the call."""

    arrivals_ms: list[float]

    @property
    def first_token_ms(self) -> float:
        return self.arrivals_ms[0]

    def completion_ms(self, tokens: int = COMPLETION_TOKENS) -> float:
        return self.arrivals_ms[min(tokens, len(self.arrivals_ms)) - 1]

    @property
    def tokens_per_s(self) -> float:
        steps = len(self.arrivals_ms) - 1
        return steps / ((self.arrivals_ms[-1] - self.arrivals_ms[0]) / 1000) if steps > 0 else 0.0


class Runner(Protocol):
    name: str

    def cold(self, ids: list[int], new_tokens: int) -> Timing: ...

    def typing(self, static: list[int], tail: list[int], new_tokens: int) -> Timing | None: ...

    def close(self) -> None: ...


def _timed(tokens: Iterator[object], new_tokens: int) -> Timing:
    """Consume `tokens` until `new_tokens` arrived, recording each arrival."""
    started = time.perf_counter()
    arrivals = []
    for _ in tokens:
        arrivals.append((time.perf_counter() - started) * 1000)
        if len(arrivals) == new_tokens:
            break
    if hasattr(tokens, "close"):
        tokens.close()
    return Timing(arrivals)


class Ct2Runner:
    """ctranslate2.Generator, as `inference.engines.ct2_engines.DecoderEngine` drives it."""

    def __init__(self, model_dir: Path, compute_type: str, threads: int, name: str, device: str = "cpu") -> None:
        import ctranslate2

        self.name = name
        self.generator = ctranslate2.Generator(str(model_dir), device=device, compute_type=compute_type, intra_threads=threads)
        self.tokenizer = _tokenizer(model_dir)

    def _tokens(self, ids: list[int], new_tokens: int, **options: Any) -> Iterator[object]:
        return self.generator.generate_tokens(self.tokenizer.convert_ids_to_tokens(ids), max_length=new_tokens,
                                              min_length=new_tokens, sampling_topk=1, **options)

    def cold(self, ids: list[int], new_tokens: int) -> Timing:
        return _timed(self._tokens(ids, new_tokens), new_tokens)

    def typing(self, static: list[int], tail: list[int], new_tokens: int) -> Timing:
        static_tokens = self.tokenizer.convert_ids_to_tokens(static)
        return _timed(self._tokens(tail, new_tokens, static_prompt=static_tokens, cache_static_prompt=True), new_tokens)

    def clear(self) -> None:
        """Drop cached static prompts (the engine's own bound does the same: unload and reload)."""
        self.generator.unload_model()
        self.generator.load_model()

    def close(self) -> None:
        del self.generator


class LlamaCppRunner:
    """llama-cpp-python's `Llama.generate` (greedy), with its prompt reuse for the typing case."""

    def __init__(self, gguf: Path, threads: int, name: str, context: int = 4096) -> None:
        from llama_cpp import Llama

        self.name = name
        self.llama = Llama(model_path=str(gguf), n_ctx=context, n_batch=512, n_threads=threads,
                           n_threads_batch=threads, verbose=False)

    def _tokens(self, ids: list[int]) -> Iterator[int]:
        return self.llama.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True)

    def cold(self, ids: list[int], new_tokens: int) -> Timing:
        self.llama.reset()
        return _timed(self._tokens(ids), new_tokens)

    def typing(self, static: list[int], tail: list[int], new_tokens: int) -> Timing:
        return _timed(self._tokens(static + tail), new_tokens)

    def close(self) -> None:
        self.llama.close()


class TransformersRunner:
    """transformers, the naive Python path: one forward pass per token with its KV cache.

    float32 on CPU; on CUDA, float16 (the usual way to serve a model of this size there).
    """

    def __init__(self, hf_dir: Path, threads: int, name: str, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        self.name = name
        self.device = device
        dtype = torch.float32 if device == "cpu" else torch.float16
        self.model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype).to(device).eval()

    def _tokens(self, ids: list[int], new_tokens: int) -> Iterator[int]:
        torch = self.torch
        with torch.inference_mode():
            output = self.model(torch.tensor([ids], device=self.device), use_cache=True)
            for _ in range(new_tokens):
                token = int(output.logits[0, -1].argmax())  # int() waits for the device
                yield token
                output = self.model(torch.tensor([[token]], device=self.device),
                                    past_key_values=output.past_key_values, use_cache=True)

    def cold(self, ids: list[int], new_tokens: int) -> Timing:
        return _timed(self._tokens(ids, new_tokens), new_tokens)

    def typing(self, static: list[int], tail: list[int], new_tokens: int) -> None:
        return None

    def close(self) -> None:
        del self.model
        gc.collect()


class RemoteRunner:
    """Our OpenAI-compatible backend (`inference.engines.openai_backend`) against a llama.cpp server on the GGUF.

    The server is started here (`python -m llama_cpp.server`, with `--logits_all false`: the
    backend's healing fallback, which asks for log-probabilities, is not exercised by this raw
    timing); prompts go as text (the ids decoded),
    so the server's tokenizer may split them a little differently. The server may stop at end of
    text: a run that ends early counts the tokens it got.
    """

    def __init__(self, gguf: Path, threads: int, name: str, tokenizer: Any, context: int = 4096) -> None:
        from inference.engines.openai_backend import OpenAICompletionEngine, parse_remote_spec

        self.name = name
        self.tokenizer = tokenizer
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
             "--n_ctx", str(context), "--n_threads", str(threads), "--n_threads_batch", str(threads),
             "--logits_all", "false"],  # its default keeps every position's logits: a slower prompt pass
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.engine = OpenAICompletionEngine(parse_remote_spec(f"openai:http://127.0.0.1:{port}/v1"), timeout=120)
        self.model = self._wait(120)

    def _wait(self, timeout_s: float) -> str:
        from inference.engines.openai_backend import RemoteModelError

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.process.returncode}")
            try:
                return self.engine.resolve_model()
            except RemoteModelError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def cold(self, ids: list[int], new_tokens: int) -> Timing:
        return _timed(self.engine.stream(self.model, self.tokenizer.decode(ids), new_tokens), new_tokens)

    def typing(self, static: list[int], tail: list[int], new_tokens: int) -> Timing:
        return self.cold(static + tail, new_tokens)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(30)


PROBE = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)
llama.create_completion("def add(a, b):", max_tokens=2, temperature=0)
"""


def llama_cpp_problem(gguf: Path) -> str | None:
    """Why llama.cpp cannot run here, or None: it is tried in a child process first, since a build
    whose CPU kernels this machine refuses kills its process (e.g. AMX inside a VM that does not
    enable it: rebuild with GGML_NATIVE off, see README)."""
    try:
        probe = subprocess.run([sys.executable, "-c", PROBE, str(gguf)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "llama.cpp did not complete 2 tokens within 300 s"
    if probe.returncode == 0:
        return None
    if "No module named 'llama_cpp'" in probe.stderr:
        return "llama-cpp-python is not installed: pip install '.[peers]'"
    detail = (probe.stderr.strip().splitlines() or [f"killed by signal {-probe.returncode}"])[-1]
    return f"llama.cpp fails on this machine (exit {probe.returncode}: {detail})"


def _die_with_parent() -> None:
    """In the server's child process: SIGTERM it when the benchmark's process dies, even by a crash."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tokenizer(model_dir: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(Path(model_dir) / "tokenizer.json"))


def source_ids(tokenizer: Any, paths: Sequence[Path]) -> list[int]:
    """Token ids of the concatenated source files (the prompts are windows of it)."""
    text = "\n\n".join(Path(p).read_text(encoding="utf-8") for p in paths)
    return tokenizer(text, add_special_tokens=False).input_ids


def windows(ids: list[int], length: int, count: int) -> list[list[int]]:
    """`count` windows of `length` tokens spread evenly over `ids`, none overlapping another."""
    stride = (len(ids) - length) // max(1, count - 1)
    if len(ids) < length * count or stride < length:
        raise ValueError(f"need {length * count} source tokens, have {len(ids)}")
    return [ids[i * stride: i * stride + length] for i in range(count)]


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 2), "p95": round(p95, 2), "n": len(ordered)}


def figures(timings: list[Timing]) -> dict[str, dict[str, float]]:
    return {"first_token_ms": _summary([t.first_token_ms for t in timings]),
            "completion_ms": _summary([t.completion_ms() for t in timings]),
            "tokens_per_s": _summary([t.tokens_per_s for t in timings])}


def measure(runners: Sequence[Runner], ids: list[int], *, lengths: Sequence[int] = LENGTHS, repeats: int = 5,
            new_tokens: int = NEW_TOKENS, tail_tokens: int = TAIL_TOKENS, progress: Callable[[str], None] | None = None,
            ) -> dict[str, Any]:
    """Cold and typing timings of every runner at every prompt length, interleaved by repetition."""
    results: dict[str, Any] = {}
    for length in lengths:
        prompts = windows(ids, length, repeats + 1)
        cold: dict[str, list[Timing]] = {r.name: [] for r in runners}
        typing: dict[str, list[Timing]] = {r.name: [] for r in runners}
        for runner in runners:  # warm-up: first calls allocate
            runner.cold(prompts[-1][:64], 2)
        for rep in range(repeats):
            for runner in runners:
                cold[runner.name].append(runner.cold(prompts[rep], new_tokens))
        static, tail = prompts[-1][: length - tail_tokens], prompts[-1][length - tail_tokens:]
        for runner in runners:
            if isinstance(runner, Ct2Runner):
                runner.clear()
            if runner.typing(static, tail, 1) is None:  # fills the runner's cache with the static part
                continue
            for rep in range(repeats):
                typed = prompts[rep][:tail_tokens]  # a different tail every time
                typing[runner.name].append(runner.typing(static, typed, new_tokens))
        results[str(length)] = {"cold": {n: figures(t) for n, t in cold.items()},
                                "typing": {n: figures(t) for n, t in typing.items() if t}}
        if progress:
            progress(f"{length} tokens: " + ", ".join(
                f"{n} {results[str(length)]['cold'][n]['completion_ms']['median']:.0f} ms" for n in cold))
    return results


def ratios(results: dict[str, Any], ours: str, case: str = "cold", metric: str = "completion_ms") -> dict[str, dict[str, float]]:
    """theirs / ours of the medians per prompt length (above 1: ours is faster)."""
    table: dict[str, dict[str, float]] = {}
    for length, cases in results.items():
        row = cases[case]
        if ours not in row:
            continue
        mine = row[ours][metric]["median"]
        table[length] = {name: round(figs[metric]["median"] / mine, 2) for name, figs in row.items() if name != ours}
    return table


def run(*, model_dir: Path, gguf: Path | None, hf_dir: Path | None, sources: Sequence[Path], threads: int = 2,
        lengths: Sequence[int] = LENGTHS, repeats: int = 5, device: str = "cpu", compute_type: str = "int8") -> dict[str, Any]:
    """Build the runners that can run here, measure them, and say which were left out and why.

    On `device="cuda"` llama.cpp is left out (the builds here are CPU builds) and transformers
    runs in float16 on the GPU.
    """
    runners: list[Runner] = [Ct2Runner(model_dir, compute_type, threads, f"ctranslate2 {compute_type} {device} (ours)", device)]
    skipped: dict[str, str] = {}
    if device != "cpu":
        skipped["llama.cpp"] = "the llama.cpp build here runs on the CPU only"
    elif gguf is None:
        skipped["llama.cpp"] = "no GGUF given"
    else:
        problem = llama_cpp_problem(gguf)
        if problem:
            skipped["llama.cpp"] = problem
        else:
            runners.append(LlamaCppRunner(gguf, threads, f"llama.cpp {_gguf_type(gguf)}"))
            tokenizer = runners[0].tokenizer  # type: ignore[attr-defined]
            runners.append(RemoteRunner(gguf, threads, f"ours via OpenAI API -> llama.cpp server {_gguf_type(gguf)}", tokenizer))
    if hf_dir is None:
        skipped["transformers"] = "no float32 checkpoint given"
    elif device == "cpu":
        runners.append(TransformersRunner(hf_dir, threads, "transformers float32"))
    else:
        runners.append(TransformersRunner(hf_dir, threads, f"transformers float16 {device}", device))
    ids = source_ids(runners[0].tokenizer, sources)  # type: ignore[attr-defined]
    log = lambda m: print(f"bench peers: {m}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        results = measure(runners, ids, lengths=lengths, repeats=repeats, progress=log)
    finally:
        for runner in runners:
            runner.close()
    ours = runners[0].name
    return {"device": device, "compute_type": compute_type, "threads": threads, "new_tokens": NEW_TOKENS, "completion_tokens": COMPLETION_TOKENS,
            "tail_tokens": TAIL_TOKENS, "repeats": repeats, "ours": ours, "runners": [r.name for r in runners],
            "skipped": skipped, "sources": [str(p) for p in sources], "results": results,
            "ratios": {"cold": ratios(results, ours), "typing": ratios(results, ours, "typing"),
                       "first_token_cold": ratios(results, ours, metric="first_token_ms")}}


def _gguf_type(gguf: Path) -> str:
    """The GGUF's weight type as its file name says it (e.g. Q4_1)."""
    stem = gguf.stem
    return stem.rsplit(".", 1)[-1] if "." in stem else stem

