"""ONNX Runtime decoder engine: each prompt continues the longest common prefix of an earlier one.

The graph (inference/models/gguf_onnx.py) takes and returns every layer's key/value cache, both
bound to one buffer per layer that each pass extends in place, so the engine keeps the cache of
the last few sequences it ran (prompt and generated ids) and runs only the ids after the longest
prefix a new prompt shares with one of them: while a user types, a request re-reads the few ids
that changed instead of the lines around the cursor. llama.cpp's prompt cache works the same way;
CTranslate2's static prompt is reused only on an exact match.

Decoding guesses ahead by prompt lookup (inference/engines/prompt_lookup.py): when the last ids
recur earlier in the sequence, the ids that followed them there are run in the same pass as the
next id, and those the model agrees with are kept. On two cores a pass over 4 ids costs about 1.2
passes over one, so every agreed id saves most of a step. The output is the greedy one either way, up
to rounding: in int8 a pass over several ids quantizes its inputs row by row, a pass over one id
on its own (gguf_onnx), so a near tie may go the other way (the same line on 54 of 60 points).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.convert import verify_model_bin
from ..models.gguf_onnx import EMBEDDING_FILE, GRAPH_FILE
from .healed_generation import FirstTokenRejected, top_k
from .huge_pages import anonymous_regions, back_new_regions_in_background
from .prompt_lookup import draft
from .tokenizer import CodeTokenizer


@dataclass
class KVState:
    """The key/value cache of `ids`: two buffers per layer, [1, kv heads, capacity, head dim], whose
    first len(ids) positions hold the ids' keys and values. A pass writes the positions after them
    in place, so a state continued by a pass gives its buffers to the state that pass returns."""

    ids: list[int]
    buffers: list[np.ndarray]

    @property
    def capacity(self) -> int:
        """Positions the buffers hold."""
        return self.buffers[0].shape[2]

    @property
    def nbytes(self) -> int:
        """Memory the cache holds."""
        return sum(a.nbytes for a in self.buffers)

    def truncated(self, length: int) -> KVState:
        """The cache of `ids[:length]`, in the same buffers (the next pass overwrites the rest)."""
        return self if length == len(self.ids) else KVState(self.ids[:length], self.buffers)

    def with_room(self, length: int) -> KVState:
        """This state, or a copy in larger buffers when it cannot hold `length` ids: the next
        multiple of KV_CAPACITY_STEP at least KV_HEADROOM_IDS past `length` and half again the
        old capacity, so that a generation grows its buffers rarely."""
        if length <= self.capacity:
            return self
        capacity = -(-max(length + KV_HEADROOM_IDS, self.capacity * 3 // 2) // KV_CAPACITY_STEP) * KV_CAPACITY_STEP
        buffers = []
        for old in self.buffers:
            new = np.empty(old.shape[:2] + (capacity,) + old.shape[3:], old.dtype)
            new[:, :, :len(self.ids)] = old[:, :, :len(self.ids)]
            buffers.append(new)
        return KVState(self.ids, buffers)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of `a` and `b`."""
    n = min(len(a), len(b))
    mismatch = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(mismatch[0]) if mismatch.size else n


class PrefixCache:
    """Up to `capacity` KV states holding at most `max_bytes`; a request takes the one sharing the
    longest prefix with its prompt.

    A taken state is out of the cache while its generation runs and is put back (extended by what
    was generated) when it ends, so two generations never share one.
    """

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        self.capacity = max(0, capacity)
        self.max_bytes = max_bytes
        self._states: list[KVState] = []  # least recently used first
        self._lock = threading.Lock()
        self.hits = 0  # requests that continued a cached prefix
        self.fills = 0  # requests run from the start
        self.reused_ids = 0  # prompt ids read from the cache
        self.computed_ids = 0  # prompt ids run through the model
        self.released = 0  # states dropped by `release`

    def take(self, prompt_ids: list[int], *, counted: bool = True) -> KVState | None:
        """The cached state sharing the longest prefix with `prompt_ids`, cut to that prefix (at
        least one prompt id is left to run, for the next token's logits); None if none shares any.
        `counted`: a request's prompt (a prefill's is not counted in hits, fills and ids)."""
        with self._lock:
            best, best_length = None, 0
            for state in self._states:
                length = min(common_prefix(state.ids, prompt_ids), len(prompt_ids) - 1)
                if length > best_length:
                    best, best_length = state, length
            if best is not None:
                self._states.remove(best)
            if counted:
                self.hits += best is not None
                self.fills += best is None
                self.reused_ids += best_length
                self.computed_ids += len(prompt_ids) - best_length
        return best.truncated(best_length) if best is not None else None

    def put(self, state: KVState) -> None:
        """Keep `state` as the most recently used, dropping the least recently used beyond the
        capacity or the byte budget."""
        with self._lock:
            states = [s for s in self._states if s.ids != state.ids] + [state]
            states = states[-self.capacity:] if self.capacity else []
            while len(states) > 1 and self.max_bytes is not None and sum(s.nbytes for s in states) > self.max_bytes:
                states.pop(0)
            self._states = states

    def release(self) -> int:
        """Drop every cached state now; how many there were."""
        with self._lock:
            held = len(self._states)
            self._states = []
            self.released += held
        return held

    def stats(self) -> dict[str, int]:
        """The counters, as `codet5.status` reports them."""
        return {"hits": self.hits, "fills": self.fills, "reused_ids": self.reused_ids,
                "computed_ids": self.computed_ids, "released": self.released, "held": len(self._states)}


# Sequences kept at least, whatever `max_cached_prompts` says (a state of 1,000 ids of the 0.5B
# default is 25 MB, and its buffers have room for more: several editors on one daemon each keep
# theirs), and the memory they may hold.
MIN_CACHED_SEQUENCES = 8
MAX_CACHED_BYTES = 512 * 2**20
DRAFT_TOKENS = 2  # ids guessed ahead per pass (0: none): 2 was fastest of 2, 3, 4 and 8 on stdlib lines
PREFILL_CHUNK_IDS = 128  # a prefill runs its ids in passes of this many, checking between them whether to stop
# A request's uncached prompt runs in passes of at most this many ids: a pass's attention computes every (query, key)
# pair of its ids, the later keys too, so one long pass wastes time; 256 was fastest of 128, 256 and 512 (bench/RESULTS.md)
FIRST_PASS_CHUNK_IDS = 256
KV_CAPACITY_STEP = 256  # a KV buffer holds a multiple of this many positions
KV_HEADROOM_IDS = 128  # positions a new buffer holds past the ids it is made for (a line's generation and its drafts)


class OnnxDecoderEngine:
    """A Llama/Qwen2 decoder on ONNX Runtime (CPU), its prompts' KV caches kept for reuse: at least
    MIN_CACHED_SEQUENCES (more if `max_cached_prompts` says so) within MAX_CACHED_BYTES; up to
    `draft_tokens` ids guessed ahead per decoding pass."""

    def __init__(self, model_dir: Path, tokenizer: CodeTokenizer, *, threads: int, max_cached_prompts: int,
                 draft_tokens: int = DRAFT_TOKENS, huge_pages: bool = True) -> None:
        import onnxruntime
        from safetensors.numpy import load_file

        self.tokenizer = tokenizer
        verify_model_bin(model_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        before = anonymous_regions()
        self.session = onnxruntime.InferenceSession(str(Path(model_dir) / GRAPH_FILE), options,
                                                    providers=["CPUExecutionProvider"])
        # the session's packed weights moved to huge pages in the background (`huge_pages`), done when this thread ends
        self.huge_pages = back_new_regions_in_background(before) if huge_pages else None
        self._bound = onnxruntime.OrtValue.ortvalue_from_numpy  # a buffer as a value the session reads and writes
        embedding = load_file(str(Path(model_dir) / EMBEDDING_FILE))
        self._rows, self._scales = embedding["rows"], embedding["scales"]
        past = [i for i in self.session.get_inputs() if i.name.startswith("past_")]
        self._past_names = [i.name for i in past]
        self._present_names = [name.replace("past_", "present_", 1) for name in self._past_names]
        _, kv_heads, _, head_dim = past[0].shape
        self._empty = KVState([], [np.empty((1, kv_heads, 0, head_dim), np.float32) for _ in past])
        self.cache = PrefixCache(max(max_cached_prompts, MIN_CACHED_SEQUENCES), MAX_CACHED_BYTES)
        self.draft_tokens = draft_tokens
        self.drafted_ids = 0  # ids guessed by prompt lookup and run through the model
        self.accepted_ids = 0  # of those, the ones the model agreed with
        self.prefilled_ids = 0  # prompt ids run ahead of a request (`prefill`)

    def release_cached_prompts(self) -> int:
        """Free the cached KV states now; how many there were."""
        return self.cache.release()

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The prefix cache's counters and the drafted ids'."""
        return {**self.cache.stats(), "drafted_ids": self.drafted_ids, "accepted_ids": self.accepted_ids,
                "prefilled_ids": self.prefilled_ids}

    def prefill(self, prompt_ids: list[int], stop: Callable[[], bool]) -> int:
        """Run the ids of `prompt_ids` that no cached state holds, in passes of PREFILL_CHUNK_IDS,
        and keep the state for a request to continue; between passes `stop()` may end it (what
        was run is kept). How many ids were run. The last id is left for the request to run (its
        logits are the first token's)."""
        state = self.cache.take(prompt_ids, counted=False)
        start = len(state.ids) if state is not None else 0
        end = len(prompt_ids) - 1
        run = 0
        try:
            while start + run < end and not stop():
                chunk = prompt_ids[start + run: min(start + run + PREFILL_CHUNK_IDS, end)]
                _, state = self._run(chunk, state)
                run += len(chunk)
        finally:
            if state is not None:
                self.cache.put(state)
            self.prefilled_ids += run
        return run

    def _run(self, ids: list[int], state: KVState | None, positions: int = 1) -> tuple[np.ndarray, KVState]:
        """Logits [positions, vocab] after each of the last `positions` of `ids`, which continue
        `state` (None: from the start), and the extended state. The graph reads the cache from the
        buffers and writes the new ids' keys and values into them, past and present bound to the
        same memory (ONNX Runtime's `GroupQueryAttention` shares them when they are one buffer), so
        a pass neither reads nor writes a copy of the whole cache."""
        start = len(state.ids) if state is not None else 0
        total = start + len(ids)
        state = (state if state is not None else self._empty).with_room(total)
        token_ids = np.asarray(ids, np.int64)
        feeds = {
            "inputs_embeds": (self._rows[token_ids].astype(np.float32) * self._scales[token_ids, None])[None],
            "position_ids": np.arange(start, total, dtype=np.int64)[None],
            "seqlens_k": np.array([total - 1], np.int32),
            "total_sequence_length": np.array(total, np.int32),
            "last_positions": np.array([positions], np.int64),
        }
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output("logits")
        for past, present, buffer in zip(self._past_names, self._present_names, state.buffers):
            value = self._bound(buffer)
            binding.bind_ortvalue_input(past, value)
            binding.bind_ortvalue_output(present, value)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy()[0], KVState(state.ids + list(ids), state.buffers)

    def _start(self, prompt_ids: list[int]) -> tuple[np.ndarray, KVState]:
        """The logits after `prompt_ids` and its state: the longest cached prefix continued by the
        rest in passes of FIRST_PASS_CHUNK_IDS, into buffers with room for the whole prompt."""
        if not prompt_ids:
            raise ValueError("an empty prompt has nothing to continue")
        state = self.cache.take(prompt_ids)
        start = len(state.ids) if state is not None else 0
        state = (state if state is not None else self._empty).with_room(len(prompt_ids))
        for begin in range(start, len(prompt_ids), FIRST_PASS_CHUNK_IDS):
            logits, state = self._run(prompt_ids[begin: begin + FIRST_PASS_CHUNK_IDS], state)
        return logits, state

    def _generate(
        self, prompt_ids: list[int], max_new_tokens: int, end_tokens: list[str],
        accept_first: Callable[[int], bool] | None = None, k: int = 0,
    ) -> Iterator[int]:
        ends = {self.tokenizer.token_id(t) for t in end_tokens} - {None}
        logits, state = self._start(prompt_ids)
        try:
            if max_new_tokens <= 0:
                return
            token = int(np.argmax(logits[-1]))
            if accept_first is not None and not accept_first(token):
                raise FirstTokenRejected(top_k(logits[-1], k))
            produced = 0
            while token not in ends:
                yield token
                produced += 1
                if produced == max_new_tokens:
                    return
                guess = draft(np.asarray(state.ids + [token]), min(self.draft_tokens, max_new_tokens - produced - 1))
                logits, state = self._run([token, *guess], state, positions=len(guess) + 1)
                chosen = np.argmax(logits, axis=-1)
                agreed = 0
                while agreed < len(guess) and chosen[agreed] == guess[agreed]:
                    agreed += 1
                self.drafted_ids += len(guess)
                self.accepted_ids += agreed
                if agreed < len(guess):
                    state = state.truncated(len(state.ids) - len(guess) + agreed)
                for token in guess[:agreed]:
                    if token in ends:
                        return
                    yield token
                    produced += 1
                token = int(chosen[agreed])
        finally:
            self.cache.put(state)

    def stream(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        """Ids generated after the prompt (greedy); closing the iterator stops decoding. `static_len`
        is not needed: any prefix shared with a cached sequence is reused."""
        return self._generate(prompt_ids, max_new_tokens, end_tokens)

    def stream_checked(
        self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str],
        accept_first: Callable[[int], bool], k: int,
    ) -> Iterator[int]:
        """`stream`, refused with FirstTokenRejected (the `k` most likely ids) when `accept_first`
        refuses the first token."""
        return self._generate(prompt_ids, max_new_tokens, end_tokens, accept_first, k)

    def next_token_candidates(self, prompt_ids: list[int], static_len: int, k: int) -> list[int]:
        """The `k` most likely ids after the prompt, most likely first."""
        logits, state = self._start(prompt_ids)
        self.cache.put(state)
        return top_k(logits[-1], k)
