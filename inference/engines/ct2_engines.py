"""CTranslate2 engines: token-id streams from decoder-only and encoder-decoder models."""

from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import ctranslate2
import numpy as np

from ..models.convert import verify_model_bin
from .engine_protocols import EarlyStop, NoPromptCache
from .healed_generation import FirstTokenRejected, top_k
from .stream import close_open_streams
from .tokenizer import CodeTokenizer


_LIVE_MODELS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _release_models() -> None:
    """Free CTranslate2 models before the interpreter shuts down: a model still alive during
    finalization aborts the process ("terminate called without an active exception")."""
    close_open_streams()
    for engine in list(_LIVE_MODELS):
        engine.release()


def host_array(view: ctranslate2.StorageView) -> np.ndarray:
    """A float32 NumPy copy of a StorageView on any device (CUDA logits cannot be read in place)."""
    view = view.to(ctranslate2.DataType.float32).to_device(ctranslate2.Device.cpu)
    return np.array(view, copy=True)

class StaticPromptCache:
    """Bounds CTranslate2's static-prompt cache, which otherwise keeps every entry until unload.

    Each cached entry holds the KV state of its prompt (about 150 MB per 1,000 tokens on a
    135M model). CTranslate2 frees entries only by reloading the model (about 60 ms, and 130 MB
    of weights freed and allocated again), which empties the whole cache. So a full cache is
    emptied only when its least recently used entry has gone unused for `stale_after_s`: one
    editor moving to another place gets its new prompt cached within seconds, while several
    editors typing at once keep the entries they fill and run the other prompts uncached,
    instead of reloading the model at nearly every request.
    """

    def __init__(self, generator: ctranslate2.Generator, max_entries: int, *, stale_after_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._generator = generator
        self._max = max_entries
        self.stale_after_s = stale_after_s
        self.clock = clock
        self._last_used: OrderedDict[int, float] = OrderedDict()  # least recently used first
        self.resets = 0
        self.hits = 0  # requests whose static prompt was cached already
        self.fills = 0  # requests that cached a new static prompt
        self.refused = 0  # requests run uncached (the cache was full of prompts in use)
        self.released = 0  # prompts dropped by `release` (the model went unused for a while)

    def admit(self, static_tokens: list[str]) -> bool:
        """Whether `static_tokens` may be cached for this request (False: run it uncached)."""
        key = hash(tuple(static_tokens))
        now = self.clock()
        if key not in self._last_used and len(self._last_used) >= self._max:
            if now - next(iter(self._last_used.values())) < self.stale_after_s:
                self.refused += 1
                return False
            self._empty()
            self.resets += 1
        if key in self._last_used:
            self.hits += 1
        else:
            self.fills += 1
        self._last_used[key] = now
        self._last_used.move_to_end(key)
        return True

    def release(self) -> int:
        """Empty the cache now, freeing its entries' memory (the model is reloaded); the number of
        prompts it held. Not during a generation."""
        held = len(self._last_used)
        if held:
            self._empty()
            self.released += held
        return held

    def _empty(self) -> None:
        self._generator.unload_model()
        self._generator.load_model()
        self._last_used.clear()

    def __len__(self) -> int:
        return len(self._last_used)

    def stats(self) -> dict[str, int]:
        """The counters, as `codet5.status` reports them."""
        return {"hits": self.hits, "fills": self.fills, "refused": self.refused, "resets": self.resets,
                "released": self.released}


class DecoderEngine:
    """A decoder-only model (Llama, SmolLM2, CodeGen) on a CTranslate2 Generator."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: CodeTokenizer,
        *,
        device: str,
        compute_type: str,
        threads: int,
        max_cached_prompts: int,
    ) -> None:
        self.tokenizer = tokenizer
        verify_model_bin(model_dir)
        self.generator = ctranslate2.Generator(
            str(model_dir), device=device, compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        self.static_cache = StaticPromptCache(self.generator, max_cached_prompts)
        _LIVE_MODELS.add(self)

    def release(self) -> None:
        """Drop the CTranslate2 model now."""
        self.generator = None
        self.static_cache = None

    def release_cached_prompts(self) -> int:
        """Free the cached static prompts now; how many there were."""
        return self.static_cache.release()

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The static-prompt cache's counters."""
        return self.static_cache.stats()

    def prefill(self, prompt_ids: list[int], stop: Callable[[], bool]) -> int | None:
        """Always None: CTranslate2 reuses a static prompt only on an exact match, filled by a generation."""
        return None

    def _static_options(self, tokens: list[str], static_len: int) -> tuple[int, dict]:
        static_len = min(static_len, len(tokens) - 1)
        if static_len <= 0 or not self.static_cache.admit(tokens[:static_len]):
            return 0, {}
        return static_len, {"static_prompt": tokens[:static_len], "cache_static_prompt": True}

    def next_token_candidates(self, prompt_ids: list[int], static_len: int, k: int) -> list[int]:
        """The `k` most likely ids after the prompt, most likely first."""
        tokens = self.tokenizer.tokens(prompt_ids)
        static_len, options = self._static_options(tokens, static_len)
        result = self.generator.generate_batch(
            [tokens[static_len:]], max_length=1, return_logits_vocab=True, include_prompt_in_result=False, **options
        )
        return top_k(host_array(result[0].logits[0][0]).ravel(), k)

    def stream_checked(
        self,
        prompt_ids: list[int],
        static_len: int,
        max_new_tokens: int,
        end_tokens: list[str],
        accept_first: Callable[[int], bool],
        k: int,
    ) -> Iterator[int]:
        """Like `stream`, but speculative about the first token: when `accept_first` refuses it,
        decoding stops and FirstTokenRejected carries that step's `k` most likely ids.

        One prompt pass serves both the check and the generation when the first token is
        accepted, instead of a separate pass for the candidates.
        """
        tokens = self.tokenizer.tokens(prompt_ids)
        static_len, options = self._static_options(tokens, static_len)
        steps: queue.Queue = queue.Queue()
        closed = threading.Event()
        refused = threading.Event()

        def on_step(step: ctranslate2.GenerationStepResult) -> bool:
            if step.step == 0 and not accept_first(step.token_id):
                refused.set()
            steps.put(step)
            return closed.is_set() or refused.is_set()

        pending = self.generator.generate_batch(
            [tokens[static_len:]], max_length=max_new_tokens, end_token=end_tokens, include_prompt_in_result=False,
            return_logits_vocab=True, asynchronous=True, callback=on_step, **options,
        )[0]

        def finish() -> None:
            try:
                steps.put(pending.result())
            except Exception as exc:  # handed to the consumer
                steps.put(exc)

        waiter = threading.Thread(target=finish, name="ct2-generate", daemon=True)
        waiter.start()
        try:
            while True:
                item = steps.get()
                if isinstance(item, Exception):
                    raise item
                if not isinstance(item, ctranslate2.GenerationStepResult):  # the final result
                    if refused.is_set():
                        raise FirstTokenRejected(top_k(host_array(item.logits[0][0]).ravel(), k))
                    return
                if refused.is_set() or item.token in end_tokens:
                    continue  # wait for the final result
                yield item.token_id
        finally:
            closed.set()
            waiter.join()

    def stream(
        self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]
    ) -> Iterator[int]:
        """Ids generated after the prompt; its first `static_len` ids are cached for reuse.

        Closing the iterator stops decoding at the next step.
        """
        tokens = self.tokenizer.tokens(prompt_ids)
        static_len, options = self._static_options(tokens, static_len)
        steps = self.generator.generate_tokens(
            tokens[static_len:], max_length=max_new_tokens, end_token=end_tokens, **options
        )
        try:
            for step in steps:
                if step.token in end_tokens:
                    return
                yield step.token_id
        finally:
            steps.close()


class EncoderDecoderEngine(NoPromptCache):
    """A T5-family model (CodeT5, CodeT5+) on a CTranslate2 Translator."""

    def __init__(self, model_dir: Path, tokenizer: CodeTokenizer, *, device: str, compute_type: str, threads: int) -> None:
        self.tokenizer = tokenizer
        verify_model_bin(model_dir)
        self.translator = ctranslate2.Translator(
            str(model_dir), device=device, compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        _LIVE_MODELS.add(self)

    def release(self) -> None:
        """Drop the CTranslate2 model now."""
        self.translator = None

    def stream(self, source_ids: list[int], max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        """Ids the decoder writes for the encoder input `source_ids`, one by one."""
        steps = self.translator.generate_tokens(
            self.tokenizer.tokens(source_ids), max_decoding_length=max_new_tokens, end_token=end_tokens,
            max_input_length=0,
        )
        try:
            for step in steps:
                if step.token in end_tokens:
                    return
                yield step.token_id
        finally:
            steps.close()

    def next_token_candidates(self, source_ids: list[int], prefix_ids: list[int], k: int) -> list[int]:
        """The `k` most likely decoder ids after the forced `prefix_ids`, most likely first.

        Alternatives mode forwards the prefix in one pass but returns no logits, so the ranked
        alternatives of the first free position are asked for instead.
        """
        result = self.translator.translate_batch(
            [self.tokenizer.tokens(source_ids)],
            target_prefix=[self.tokenizer.tokens(prefix_ids)],
            beam_size=1,
            num_hypotheses=k,
            return_alternatives=True,
            max_decoding_length=len(prefix_ids) + 1,
            max_input_length=0,
        )
        return self.tokenizer.ids([h[len(prefix_ids)] for h in result[0].hypotheses if len(h) > len(prefix_ids)])

    def continue_prefix(
        self,
        source_ids: list[int],
        prefix_ids: list[int],
        max_new_tokens: int,
        end_tokens: list[str],
        early_stop: EarlyStop | None = None,
    ) -> Iterator[int]:
        """Ids the decoder writes after a forced `prefix_ids` (CodeT5+ decoder-only mode).

        `translate_batch` with `return_alternatives=True, num_hypotheses=1` forwards the prefix in
        one pass (token-by-token otherwise: 20x slower at 512 tokens). In that mode the first new
        token comes from the alternatives step and only the later ones reach the callback, so the
        ids are yielded once decoding ends; `early_stop` sees the callback ids (all new ids but
        the first) and ends decoding when it returns True. Closing the iterator stops decoding.
        """
        stop = threading.Event()
        seen: list[int] = []

        def on_step(step: ctranslate2.GenerationStepResult) -> bool:
            seen.append(step.token_id)
            return stop.is_set() or (early_stop is not None and early_stop(seen))

        results: queue.Queue = queue.Queue()

        def run() -> None:
            try:
                out = self.translator.translate_batch(
                    [self.tokenizer.tokens(source_ids)],
                    target_prefix=[self.tokenizer.tokens(prefix_ids)],
                    beam_size=1,
                    num_hypotheses=1,
                    return_alternatives=True,
                    max_decoding_length=len(prefix_ids) + max_new_tokens,
                    max_input_length=0,
                    end_token=end_tokens,
                    callback=on_step,
                )
                results.put(out[0].hypotheses[0][len(prefix_ids):])
            except BaseException as exc:  # handed to the consumer thread
                results.put(exc)

        worker = threading.Thread(target=run, name="ct2-translate", daemon=True)
        worker.start()
        try:
            outcome = results.get()
            if isinstance(outcome, BaseException):
                raise outcome
            ends = set(end_tokens)
            for token in outcome:
                if token in ends:
                    break
                token_id = self.tokenizer.token_id(token)
                if token_id is not None:
                    yield token_id
        finally:
            stop.set()
            worker.join()
