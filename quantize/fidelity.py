"""How closely a quantized model follows its float32 source on a few fixed code prompts.

Both models are run teacher-forced over the same token sequences; at every position we compare
the next-token logits: the share of positions whose top-1 token agrees and the largest absolute
logit difference. Decoder-only models score every position of each prompt; encoder-decoder
models read the first half of each prompt (by lines) in the encoder and score the decoder over
the second half.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.engines.ct2_engines import host_array

FIDELITY_PROMPTS: tuple[str, ...] = (
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "import os\n\n\ndef read_lines(path):\n    with open(path) as handle:\n        return [line.rstrip() for line in handle]\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        self.items.append(item)\n",
    "function sum(values) {\n  let total = 0;\n  for (const v of values) {\n    total += v;\n  }\n  return total;\n}\n",
    "fn max(a: i32, b: i32) -> i32 {\n    if a > b {\n        a\n    } else {\n        b\n    }\n}\n",
)


@dataclass(frozen=True)
class Case:
    """One teacher-forced sequence: `source` feeds the encoder (None for decoder-only models)."""

    source: list[int] | None
    target: list[int]


@dataclass(frozen=True)
class Fidelity:
    """Next-token agreement of a candidate model with its reference over `positions` positions."""

    prompts: int
    positions: int
    top1_agreement: float
    max_abs_logit_diff: float

    def summary(self) -> str:
        return (
            f"{self.prompts} prompts, {self.positions} positions: "
            f"top-1 agreement {self.top1_agreement:.1%}, "
            f"max |logit diff| {self.max_abs_logit_diff:.4g}"
        )


# Maps a case to next-token logits of shape (positions, vocabulary).
LogitsFn = Callable[[Case], np.ndarray]


def build_cases(tokenizer: Any, is_encoder_decoder: bool, prompts: Sequence[str]) -> list[Case]:
    """Token sequences for `prompts`, split into encoder and decoder halves for seq2seq models."""
    cases = []
    for prompt in prompts:
        if not is_encoder_decoder:
            cases.append(Case(None, list(tokenizer(prompt).input_ids)))
            continue
        lines = prompt.splitlines(keepends=True)
        half = max(1, len(lines) // 2)
        source = list(tokenizer("".join(lines[:half])).input_ids)
        target = list(tokenizer("".join(lines[half:]), add_special_tokens=False).input_ids)
        cases.append(Case(source, target))
    return cases


def torch_logits_fn(model: Any) -> LogitsFn:
    """Teacher-forced logits from a transformers model (on whatever device it lives on)."""
    import torch

    def logits(case: Case) -> np.ndarray:
        device = model.device
        with torch.inference_mode():
            if case.source is None:
                output = model(input_ids=torch.tensor([case.target], device=device))
            else:
                start = model.config.decoder_start_token_id
                output = model(
                    input_ids=torch.tensor([case.source], device=device),
                    decoder_input_ids=torch.tensor([[start, *case.target]], device=device),
                )
        return output.logits[0].float().cpu().numpy()

    return logits


def ct2_logits_fn(model: Any, tokenizer: Any) -> LogitsFn:
    """Teacher-forced logits from a CTranslate2 `Generator` or `Translator`.

    A Generator scores the whole sequence in one `forward_batch`. A Translator has no forward
    method, so the target is forced as a prefix and `return_logits_vocab` returns the raw logits
    of each decoder step (`min_decoding_length=0`, or the first step has its end token masked).
    """
    import ctranslate2

    def logits(case: Case) -> np.ndarray:
        if isinstance(model, ctranslate2.Generator):
            return host_array(model.forward_batch([case.target]))[0]
        target = tokenizer.convert_ids_to_tokens(case.target)
        result = model.translate_batch(
            [tokenizer.convert_ids_to_tokens(case.source)],
            target_prefix=[target],
            beam_size=1,
            max_decoding_length=len(target) + 1,
            min_decoding_length=0,
            return_logits_vocab=True,
        )[0]
        return np.stack([host_array(step) for step in result.logits[0]])

    return logits


def compare(reference: LogitsFn, candidate: LogitsFn, cases: Sequence[Case]) -> Fidelity:
    """Top-1 agreement and largest logit difference of `candidate` against `reference`."""
    agree = positions = 0
    max_diff = 0.0
    for case in cases:
        ref, cand = reference(case), candidate(case)
        steps = min(len(ref), len(cand))
        # Converters may pad the vocabulary; compare the columns both models have.
        vocab = min(ref.shape[-1], cand.shape[-1])
        ref, cand = ref[:steps, :vocab], cand[:steps, :vocab]
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        positions += steps
        max_diff = max(max_diff, float(np.abs(ref - cand).max()) if steps else 0.0)
    return Fidelity(
        prompts=len(cases),
        positions=positions,
        top1_agreement=agree / positions if positions else 0.0,
        max_abs_logit_diff=max_diff,
    )


def load_float32_model(hf_dir: Path, *, trust_remote_code: bool = False) -> Any:
    """The float32 transformers model of `hf_dir` (seq2seq or causal, from its config), in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    config = AutoConfig.from_pretrained(hf_dir, trust_remote_code=trust_remote_code)
    model_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = model_class.from_pretrained(
        hf_dir, dtype=torch.float32, trust_remote_code=trust_remote_code
    )
    return model.eval()


def compare_hf_to_ct2(
    hf_dir: Path,
    ct2_dir: Path,
    prompts: Sequence[str] = FIDELITY_PROMPTS,
    *,
    trust_remote_code: bool = False,
    device: str = "cpu",
    compute_type: str = "default",
) -> Fidelity:
    """Fidelity of the CTranslate2 model in `ct2_dir` against the float32 model in `hf_dir`."""
    import ctranslate2
    from transformers import AutoTokenizer

    reference = load_float32_model(hf_dir, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=trust_remote_code)
    seq2seq = bool(reference.config.is_encoder_decoder)
    engine_class = ctranslate2.Translator if seq2seq else ctranslate2.Generator
    engine = engine_class(str(ct2_dir), device=device, compute_type=compute_type)
    cases = build_cases(tokenizer, seq2seq, prompts)
    return compare(torch_logits_fn(reference), ct2_logits_fn(engine, tokenizer), cases)
