"""CodeModel: one object that loads a model and streams completions and summaries."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .runtime import ctranslate2

from .completion_model import CapabilityError, CompletionPrompt
from ..models.convert import read_metadata
from .engine_protocols import DecoderBackend, EncoderDecoderBackend
from .healed_generation import (
    HEALING_CANDIDATES,
    FirstTokenRejected,
    HealingFilter,
    NoHealingToken,
    accepts_first_token,
    pick_healing_token,
)
from ..completion.prompt import completion_prompt
from ..models.presets import Architecture, Preset, PromptFormat
from ..models.prompt_formats import (
    SPAN_END,
    SPAN_SENTINEL,
    DecoderPrompt,
    EncoderDecoderPrompt,
    chat_summary_prompt,
    summary_prompt,
)
from ..models.resolve import INT4, RUNTIMES, Backend, ResolvedModel, onnx_runtime_builds, resolve_model
from .stream import StopPredicate, TextStream
from .tokenizer import CodeTokenizer, IncrementalDecoder

Progress = Callable[[str], None]


def pick_device(device: str) -> str:
    """`auto` -> `cuda` when CTranslate2 sees a GPU, else `cpu`."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "auto":
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device


def pick_compute_type(compute_type: str, device: str) -> str:
    """`auto` -> int8 on CPU, int8_float16 on CUDA; int4 (ONNX Runtime's 4-bit weights) on CPU;
    anything else must be supported there."""
    if compute_type == "auto":
        return "int8_float16" if device == "cuda" else "int8"
    if compute_type == INT4:
        if device != "cpu":
            raise ValueError(f"compute type int4 runs on the CPU (ONNX Runtime), not on {device}")
        return compute_type
    supported = ctranslate2.get_supported_compute_types(device)
    if compute_type not in supported:
        raise ValueError(f"compute type {compute_type!r} is not supported on {device}; choose one of {sorted(supported)}")
    return compute_type


def pick_runtime(runtime: str, spec: str, device: str, compute_type: str) -> str:
    """`auto` -> ONNX Runtime for an embedded completion model on CPU in int8 or int4 (it continues
    earlier prompts from their longest common prefix: bench/RESULTS.md), else CTranslate2. An
    explicit choice must be possible here; int4 is ONNX Runtime's alone."""
    from ..models.presets import find_preset

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if compute_type == INT4:
        if runtime == Backend.CTRANSLATE2.value:
            raise ValueError("compute type int4 runs on the onnxruntime runtime, not on ctranslate2")
        return Backend.ONNXRUNTIME.value
    onnx_fits = device == "cpu" and compute_type == "int8"
    if runtime == "auto":
        return Backend.ONNXRUNTIME.value if onnx_fits and onnx_runtime_builds(find_preset(spec)) else Backend.CTRANSLATE2.value
    if runtime == Backend.ONNXRUNTIME.value and not onnx_fits:
        raise ValueError(f"the onnxruntime runtime runs int8 on the CPU, not {compute_type} on {device}")
    return runtime


def resolve_for(
    model: str, device: str, compute_type: str, runtime: str, *, local_files_only: bool = False,
    trust_remote_code: bool = False, progress: Progress | None = None,
) -> tuple[str, str, ResolvedModel]:
    """The device, compute type and runnable directory these settings choose (`pick_device`,
    `pick_compute_type`, `pick_runtime`), the directory fetched and converted first if needed."""
    device = pick_device(device)
    compute_type = pick_compute_type(compute_type, device)
    resolved = resolve_model(model, local_files_only=local_files_only, trust_remote_code=trust_remote_code,
                             runtime=pick_runtime(runtime, model, device, compute_type),
                             quantization=INT4 if compute_type == INT4 else "int8", progress=progress)
    return device, compute_type, resolved


def default_threads() -> int:
    """All cores the process may use, at most 8."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:
        return max(1, min(8, os.cpu_count() or 1))


def _speculatively_healed(
    cut: str,
    texts: list[str],
    checked: Callable[[Callable[[int], bool]], Iterator[int]],
    rest: Callable[[list[int]], Iterator[int]],
) -> Iterator[int]:
    """Ids of a healed generation that first bets on the model's own first token.

    Most of the time the most likely token already re-creates the cut, and one prompt pass
    serves both; when it does not, the refused step's alternatives give the constrained first
    token and generation continues after it (`rest`).
    """
    if not cut:
        steps = rest([])
    else:
        try:
            yield from checked(lambda token: accepts_first_token(token, cut, texts))
            return
        except FirstTokenRejected as refused:
            token = pick_healing_token(refused.candidates, cut, texts)
        if token is None:
            raise NoHealingToken(cut)
        yield token
        steps = rest([token])
    try:
        yield from steps
    finally:
        steps.close()


def _tail_stop(tokenizer: CodeTokenizer, context: list[int], stop: StopPredicate) -> Callable[[list[int]], bool]:
    """Early stop for CodeT5+ decoder-only mode, whose engine reports all new ids but the first:
    the predicate sees the text of those, which ends a line or block where the whole text does."""
    tail = IncrementalDecoder(tokenizer, context)

    def early(seen: list[int]) -> bool:
        tail.push(seen[-1])
        return bool(tail.text) and stop(tail.text)

    return early


def _healed(
    cut: str,
    candidates: Callable[[], list[int]],
    texts: list[str],
    rest: Callable[[list[int]], Iterator[int]],
) -> Iterator[int]:
    """Ids of a healed generation: a first token constrained to agree with `cut`, then `rest(first)`.

    Nothing runs until the first id is asked for; NoHealingToken if no likely token agrees.
    """
    first: list[int] = []
    if cut:
        token = pick_healing_token(candidates(), cut, texts)
        if token is None:
            raise NoHealingToken(cut)
        first = [token]
    yield from first
    steps = rest(first)
    try:
        yield from steps
    finally:
        steps.close()


class CodeModel:
    """A code model ready to complete and summarize.

    Args:
        model: a preset name (`codet5-lsp models` lists them; "default" is the embedded
            Qwen2.5-Coder-0.5B), a Hugging Face hub id, or a local directory (Hugging Face
            checkpoint, or a model converted for CTranslate2 or ONNX Runtime).
        device: "auto", "cpu" or "cuda".
        compute_type: "auto" (int8 on CPU, int8_float16 on CUDA) or any CTranslate2 compute type.
        cpu_threads: threads for one generation (0 = all cores, at most 8).
        local_files_only: never try the network.
        trust_remote_code: let transformers run code shipped with a checkpoint (off by default).
        max_cached_prompts: live entries of the reused-prompt cache (each holds KV memory).
        draft_tokens: ONNX Runtime: ids guessed ahead by prompt lookup per decoding pass (0: none).
        runtime: "auto", "ctranslate2" or "onnxruntime" (`pick_runtime`).
        progress: called with short messages while the model is fetched, converted and loaded.

    A model of an OpenAI-compatible server is a RemoteCodeModel, a sibling: `load_model`
    (inference.engines.loading) returns either.
    """

    def __init__(
        self,
        model: str | Path = "default",
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        *,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        max_cached_prompts: int = 2,
        draft_tokens: int = 2,
        runtime: str = "auto",
        progress: Progress | None = None,
    ) -> None:
        self.device, self.compute_type, resolved = resolve_for(
            str(model), device, compute_type, runtime, local_files_only=local_files_only,
            trust_remote_code=trust_remote_code, progress=progress,
        )
        self.path = resolved.path
        self.preset: Preset = resolved.preset
        self.backend = resolved.backend
        if progress:
            progress(f"Loading {self.preset.name} ({self.device}, {self.compute_type})")
        self.tokenizer = CodeTokenizer(resolved.path)
        threads = cpu_threads or default_threads()
        self._engine: DecoderBackend | EncoderDecoderBackend
        if resolved.backend is Backend.TRANSFORMERS:
            from .hf_engine import TransformersDecoderEngine, TransformersEncoderDecoderEngine

            engine_class = (
                TransformersDecoderEngine if self.preset.architecture is Architecture.DECODER else TransformersEncoderDecoderEngine
            )
            self._engine = engine_class(resolved.path, device=self.device, threads=threads, trust_remote_code=trust_remote_code)
        elif resolved.backend is Backend.ONNXRUNTIME:
            from .onnx_engine import OnnxDecoderEngine

            self._engine = OnnxDecoderEngine(resolved.path, self.tokenizer, threads=threads, max_cached_prompts=max_cached_prompts,
                                             draft_tokens=draft_tokens)
        elif self.preset.architecture is Architecture.DECODER:
            from .ct2_engines import DecoderEngine

            self._engine = DecoderEngine(
                resolved.path, self.tokenizer, device=self.device, compute_type=self.compute_type,
                threads=threads, max_cached_prompts=max_cached_prompts,
            )
        else:
            from .ct2_engines import EncoderDecoderEngine

            self._engine = EncoderDecoderEngine(
                resolved.path, self.tokenizer, device=self.device, compute_type=self.compute_type, threads=threads
            )
        self.summary_prefix: str = (read_metadata(resolved.path) or {}).get("summary_prefix", "")
        self._end_tokens = [
            t for t in (self.tokenizer.eos_token, *self.preset.extra_end_tokens) if t and self.tokenizer.token_id(t) is not None
        ]

    @property
    def runtime(self) -> str:
        """What runs the model: "onnxruntime", "ctranslate2" or "transformers"."""
        return self.backend.value

    @property
    def can_complete(self) -> bool:
        return self.preset.completion_format is not None

    @property
    def can_summarize(self) -> bool:
        if self.preset.architecture is Architecture.DECODER:
            return self.preset.summary_format is not None
        return self.preset.summarizes

    def release_cached_prompts(self) -> int:
        """Free the cached static prompts (CTranslate2 decoders cache them; the other engines do
        not); how many there were. Never while a generation runs."""
        return self._engine.release_cached_prompts()

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The cached static prompts' counters (hits, fills, ...); None for an engine without that cache."""
        return self._engine.prompt_cache_stats()

    def prefill(self, prompt: CompletionPrompt, stop: Callable[[], bool]) -> int | None:
        """Compute the state of a decoder prompt ahead of its request, in the engine's prefix cache;
        how many ids were run, None when the engine keeps no such cache or the prompt is not a
        decoder's."""
        model_input = prompt.model_input
        if not isinstance(model_input, DecoderPrompt) or not model_input.ids:
            return None
        return self._engine.prefill(model_input.ids, stop)

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in `text`."""
        return len(self.tokenizer.encode(text))

    def complete(
        self, prefix: str, suffix: str = "", *, max_new_tokens: int = 48, stop: StopPredicate | None = None,
        max_context_tokens: int | None = None,
    ) -> TextStream:
        """Stream the code that continues `prefix` (and fits before `suffix`, if the model infills):
        `generate` on the `completion_prompt` (inference.completion.prompt), which says more."""
        return self.generate(completion_prompt(self, prefix, suffix, max_new_tokens=max_new_tokens,
                                               max_context_tokens=max_context_tokens), stop=stop)

    def generate(self, prompt: CompletionPrompt, *, stop: StopPredicate | None = None) -> TextStream:
        """Stream the engine's continuation of a ready prompt, healed: only continuations whose
        first token re-creates `prompt.cut` are kept, so the stream's text always continues the
        prompt's prefix exactly. Nothing is computed until the stream is iterated."""
        fmt, cut, new_tokens = prompt.format, prompt.cut, prompt.new_tokens
        healing = HealingFilter(cut) if cut else None
        model_input = prompt.model_input
        if fmt in (PromptFormat.PLAIN, PromptFormat.FIM):
            assert isinstance(model_input, DecoderPrompt)
            if not model_input.ids:  # an engine cannot start from nothing
                return TextStream(iter(()), IncrementalDecoder(self.tokenizer, []), None, stop)
            ids = _speculatively_healed(
                cut,
                self.tokenizer.token_texts,
                lambda accept: self._engine.stream_checked(
                    model_input.ids, model_input.static_len, new_tokens, self._end_tokens, accept, HEALING_CANDIDATES
                ),
                lambda first: self._engine.stream(
                    [*model_input.ids, *first], model_input.static_len, new_tokens - len(first), self._end_tokens
                ),
            )
        elif fmt is PromptFormat.CODET5_CLM:
            assert isinstance(model_input, EncoderDecoderPrompt) and model_input.prefix_ids is not None
            clm_prefix = model_input.prefix_ids
            early = _tail_stop(self.tokenizer, prompt.context, stop) if stop is not None else None
            ids = _healed(
                cut,
                lambda: self._engine.next_token_candidates(model_input.source_ids, clm_prefix, HEALING_CANDIDATES),
                self.tokenizer.token_texts,
                lambda first: self._engine.continue_prefix(
                    model_input.source_ids, [*clm_prefix, *first], new_tokens - len(first), self._end_tokens, early
                ),
            )
        else:
            assert isinstance(model_input, EncoderDecoderPrompt)
            sentinel = self.tokenizer.token_id(SPAN_SENTINEL)
            ends = [*self._end_tokens, SPAN_END]
            ids = (i for i in self._engine.stream(model_input.source_ids, new_tokens + 1, ends) if i != sentinel)
        return TextStream(ids, IncrementalDecoder(self.tokenizer, prompt.context), healing, stop)

    def summarize(self, code: str, *, max_new_tokens: int = 48) -> TextStream:
        """Stream a natural-language summary of `code`: from the encoder-decoder (code in the
        encoder), or from a decoder asked by its preset's instruction prompt, ending at the end of
        its first line. CapabilityError if the model cannot summarize (or its tokenizer lacks the
        prompt's special tokens)."""
        if not self.can_summarize:
            raise CapabilityError(f"{self.preset.name} does not summarize code")
        if self.preset.architecture is Architecture.DECODER:
            try:
                prompt = chat_summary_prompt(self.tokenizer, code, self.preset.max_context_tokens - max_new_tokens)
            except ValueError as exc:
                raise CapabilityError(f"{self.preset.name} cannot summarize: {exc}") from exc
            ids = self._engine.stream(prompt.ids, prompt.static_len, max_new_tokens, self._end_tokens)
            return TextStream(ids, IncrementalDecoder(self.tokenizer, prompt.ids), stop=_line_ended)
        prompt = summary_prompt(self.tokenizer, code, self.preset.max_context_tokens)
        if self.summary_prefix:  # forced decoder text the model was trained to continue
            prefix = self.tokenizer.encode(self.summary_prefix)
            ids = self._engine.continue_prefix(prompt.source_ids, prefix, max_new_tokens, self._end_tokens)
        else:
            ids = self._engine.stream(prompt.source_ids, max_new_tokens, self._end_tokens)
        return TextStream(ids, IncrementalDecoder(self.tokenizer, []))


def _line_ended(text: str) -> bool:
    """Stop rule of a decoder's summary: a line break after some text (a one-line reply is done)."""
    return "\n" in text.lstrip()
