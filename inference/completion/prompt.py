"""The prompt stage: the text around the cursor becomes what the engine runs.

The prefix is healed (`healing.py`: backed off to a clean token boundary; the first generated
token must re-create the cut), then laid out in the preset's format (left to right, fill in the
middle, CodeT5+'s modes: `inference/models/prompt_formats.py`) within one token budget that also
holds the new tokens and the cut. A model without a local tokenizer (a server's) gets the healed
text and tokenizes it itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engines.completion_model import CapabilityError, CompletionPrompt
from ..models.presets import PromptFormat
from ..models.prompt_formats import (
    DecoderPrompt,
    EncoderDecoderPrompt,
    codet5_clm_prompt,
    codet5_span_prompt,
    fim_prompt,
    plain_prompt,
)
from .healing import HealedPrefix, heal_prefix, limit_cut

if TYPE_CHECKING:
    from ..engines.completion_model import CompletionModel
    from ..engines.tokenizer import CodeTokenizer


def completion_prompt(
    model: CompletionModel, prefix: str, suffix: str = "", *, max_new_tokens: int = 48,
    max_context_tokens: int | None = None, other_files: str = "",
) -> CompletionPrompt:
    """The prompt of `model` for the code between `prefix` and `suffix`; CapabilityError if the
    model does not complete code.

    Prompt and output fit in `max_context_tokens` (default and upper bound: the model's window).
    An infilling format is used when the preset has one and `suffix` is more than whitespace.
    `other_files` (chunks of other files, rendered by the context stage) comes first, before an
    infilling format's own tokens.
    """
    preset = model.preset
    fmt = preset.completion_format
    if fmt is None:
        raise CapabilityError(f"{preset.name} does not complete code")
    window = preset.max_context_tokens
    context_tokens = min(max_context_tokens or window, window)
    tokenizer = model.tokenizer
    if tokenizer is None:  # a server's model: its own tokenizer reads the healed text, sent whole
        healed = heal_prefix(prefix)
        new_tokens = max_new_tokens + (model.count_tokens(healed.cut) + 1 if healed.cut else 0)
        return CompletionPrompt(prefix, suffix, max_new_tokens, context_tokens, fmt, healed.cut, new_tokens,
                                other_files + healed.kept, [])
    healed = limit_cut(heal_prefix(prefix), lambda text: tokenizer.encode_with_offsets(text)[1])
    new_tokens = max_new_tokens + (len(tokenizer.encode(healed.cut)) + 1 if healed.cut else 0)
    budget = context_tokens - new_tokens
    if suffix.strip() and preset.infill_format is not None:
        fmt = preset.infill_format
    if fmt is PromptFormat.CODET5_SPAN:  # the sentinel follows the prefix as in training: nothing to heal
        healed = HealedPrefix(kept=prefix, cut="")
    model_input: DecoderPrompt | EncoderDecoderPrompt
    if fmt is PromptFormat.PLAIN:
        model_input = plain_prompt(tokenizer, other_files + healed.kept, budget, preset.add_bos)
        if not model_input.ids:  # nothing before the cursor once healed (the start of a file): start as documents do
            model_input = DecoderPrompt(ids=document_start(tokenizer), static_len=0)
        context = model_input.ids
    elif fmt is PromptFormat.FIM:
        assert preset.fim is not None
        model_input = fim_prompt(tokenizer, healed.kept, suffix, preset.fim, budget, other_files)
        context = model_input.ids
    elif fmt is PromptFormat.CODET5_CLM:
        model_input = codet5_clm_prompt(tokenizer, healed.kept, preset.clm_token, budget)
        assert model_input.prefix_ids is not None
        context = model_input.prefix_ids
    else:
        model_input = codet5_span_prompt(tokenizer, healed.kept, suffix, budget)
        context = tokenizer.encode(healed.kept)
    return CompletionPrompt(prefix, suffix, max_new_tokens, context_tokens, fmt, healed.cut, new_tokens, model_input,
                            context)


def document_start(tokenizer: CodeTokenizer) -> list[int]:
    """The token a document starts after, for a prompt with nothing before the cursor: BOS, else
    EOS (which separates documents in training; Qwen and SmolLM2 prompts have no BOS)."""
    for token in (tokenizer.bos_token, tokenizer.eos_token):
        token_id = tokenizer.token_id(token) if token else None
        if token_id is not None:
            return [token_id]
    return []
