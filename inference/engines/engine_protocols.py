"""What CodeModel asks of an engine: CTranslate2's (ct2_engines) and transformers' (hf_engine) both serve it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

EarlyStop = Callable[[list[int]], bool]


class PromptCaching(Protocol):
    """An engine that may keep prompts cached for reuse (their KV state)."""

    def release_cached_prompts(self) -> int:
        """Free the prompts kept cached for reuse now; how many there were (0 without such a cache)."""
        ...

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """The prompt cache's counters (hits, fills, ...); None without such a cache."""
        ...

    def prefill(self, prompt_ids: list[int], stop: Callable[[], bool]) -> int | None:
        """Compute and cache the state of `prompt_ids` ahead of a request for it (`stop()` may end
        it early); how many ids were run, None when this engine cannot continue a cached prefix."""
        ...


class NoPromptCache:
    """PromptCaching for an engine that keeps no prompts cached."""

    def release_cached_prompts(self) -> int:
        """Always 0: this engine keeps no prompts cached."""
        return 0

    def prompt_cache_stats(self) -> dict[str, int] | None:
        """Always None: this engine keeps no prompts cached."""
        return None

    def prefill(self, prompt_ids: list[int], stop: Callable[[], bool]) -> int | None:
        """Always None: this engine keeps no prompts cached."""
        return None


class DecoderBackend(PromptCaching, Protocol):
    """A decoder-only model: ids continue a prompt whose first `static_len` ids may be cached."""

    def stream(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        """Ids generated after the prompt, one by one; closing the iterator stops decoding."""
        ...

    def stream_checked(
        self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str],
        accept_first: Callable[[int], bool], k: int,
    ) -> Iterator[int]:
        """`stream`, refused with FirstTokenRejected (the `k` most likely ids) when `accept_first`
        refuses the first token."""
        ...


class EncoderDecoderBackend(PromptCaching, Protocol):
    """An encoder-decoder model: the decoder writes ids for the encoder input `source_ids`."""

    def stream(self, source_ids: list[int], max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        """Ids the decoder writes, one by one; closing the iterator stops decoding."""
        ...

    def next_token_candidates(self, source_ids: list[int], prefix_ids: list[int], k: int) -> list[int]:
        """The `k` most likely ids after the forced decoder prefix `prefix_ids`."""
        ...

    def continue_prefix(
        self, source_ids: list[int], prefix_ids: list[int], max_new_tokens: int, end_tokens: list[str],
        early_stop: EarlyStop | None = None,
    ) -> Iterator[int]:
        """Ids the decoder writes after a forced `prefix_ids`; `early_stop(new ids)` may end it."""
        ...
