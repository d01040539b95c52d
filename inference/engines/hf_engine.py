"""Transformers backend for checkpoints CTranslate2 cannot convert (bitsandbytes 8/4-bit on CUDA)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .engine_protocols import EarlyStop, NoPromptCache
from .healed_generation import FirstTokenRejected, top_k



class _TransformersModel(NoPromptCache):
    """Greedy token streams from a transformers model."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str,
        threads: int,
        trust_remote_code: bool = False,
        bnb_bits: int | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, BitsAndBytesConfig

        torch.set_num_threads(threads)
        options: dict = {"trust_remote_code": trust_remote_code}
        if bnb_bits is not None:
            if device != "cuda":
                raise ValueError("bitsandbytes quantization needs a CUDA device")
            options["quantization_config"] = BitsAndBytesConfig(load_in_8bit=bnb_bits == 8, load_in_4bit=bnb_bits == 4)
            options["device_map"] = "auto"
        loader = AutoModelForSeq2SeqLM if isinstance(self, TransformersEncoderDecoderEngine) else AutoModelForCausalLM
        self.model = loader.from_pretrained(str(model_dir), **options).eval()
        if bnb_bits is None:
            self.model.to(device)
        self.device = torch.device(device)
        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)

    def _end_ids(self, end_tokens: list[str]) -> set[int]:
        ids = self._tokenizer.convert_tokens_to_ids(end_tokens)
        return {i for i in ids if i is not None}

    @torch.inference_mode()
    def _greedy(
        self, inputs: dict, decoder_key: str, first: list[int], max_new_tokens: int, end_ids: set[int],
        early_stop: EarlyStop | None = None,
    ) -> Iterator[int]:
        past = None
        feed = torch.tensor([first], device=self.device)
        seen: list[int] = []
        for _ in range(max_new_tokens):
            out = self.model(**inputs, **{decoder_key: feed}, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = int(out.logits[0, -1].argmax())
            if token in end_ids:
                return
            seen.append(token)
            yield token
            if early_stop is not None and early_stop(seen):
                return
            feed = torch.tensor([[token]], device=self.device)
            if decoder_key == "input_ids":
                inputs = {"attention_mask": torch.ones(1, len(first) + len(seen), device=self.device)}


class TransformersDecoderEngine(_TransformersModel):
    """Decoder-only model; same interface as the CTranslate2 DecoderEngine."""

    @torch.inference_mode()
    def next_token_candidates(self, prompt_ids: list[int], static_len: int, k: int) -> list[int]:
        out = self.model(input_ids=torch.tensor([prompt_ids], device=self.device))
        return top_k(out.logits[0, -1].float().cpu().numpy(), k)

    def stream_checked(
        self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str],
        accept_first: Callable[[int], bool], k: int,
    ) -> Iterator[int]:
        """`stream`, refused with FirstTokenRejected when `accept_first` refuses the first token."""
        candidates = self.next_token_candidates(prompt_ids, static_len, k)
        if not accept_first(candidates[0]):
            raise FirstTokenRejected(candidates)
        yield from self.stream(prompt_ids, static_len, max_new_tokens, end_tokens)

    def stream(self, prompt_ids: list[int], static_len: int, max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        """Decoder-only: ids after the prompt (`static_len` is ignored: no prompt cache here)."""
        mask = {"attention_mask": torch.ones(1, len(prompt_ids), device=self.device)}
        return self._greedy(mask, "input_ids", prompt_ids, max_new_tokens, self._end_ids(end_tokens))



class TransformersEncoderDecoderEngine(_TransformersModel):
    """T5-family model; same interface as the CTranslate2 EncoderDecoderEngine."""

    def _encoded(self, source_ids: list[int]) -> dict:
        source = torch.tensor([source_ids], device=self.device)
        with torch.inference_mode():
            encoder_outputs = self.model.get_encoder()(input_ids=source)
        return {"encoder_outputs": encoder_outputs, "attention_mask": torch.ones_like(source)}

    def stream(self, source_ids: list[int], max_new_tokens: int, end_tokens: list[str]) -> Iterator[int]:
        start = self.model.config.decoder_start_token_id
        return self._greedy(self._encoded(source_ids), "decoder_input_ids", [start], max_new_tokens, self._end_ids(end_tokens))

    @torch.inference_mode()
    def next_token_candidates(self, source_ids: list[int], prefix_ids: list[int], k: int) -> list[int]:
        start = self.model.config.decoder_start_token_id
        decoder = torch.tensor([[start, *prefix_ids]], device=self.device)
        out = self.model(**self._encoded(source_ids), decoder_input_ids=decoder)
        return top_k(out.logits[0, -1].float().cpu().numpy(), k)

    def continue_prefix(
        self, source_ids: list[int], prefix_ids: list[int], max_new_tokens: int, end_tokens: list[str],
        early_stop: EarlyStop | None = None,
    ) -> Iterator[int]:
        start = self.model.config.decoder_start_token_id
        return self._greedy(
            self._encoded(source_ids), "decoder_input_ids", [start, *prefix_ids], max_new_tokens,
            self._end_ids(end_tokens), early_stop,
        )
