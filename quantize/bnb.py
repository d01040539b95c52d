"""bitsandbytes 8-bit / 4-bit transformers checkpoints (the `--bnb` option; CUDA only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.models.cache import atomic_directory

BNB_BITS = (8, 4)
INSTALL_HINT = "pip install 'codet5-lsp[cuda]'"


class BnbUnavailable(Exception):
    """bitsandbytes quantization cannot run on this machine."""


def check_bnb_available() -> None:
    """Raise BnbUnavailable unless a CUDA GPU and the bitsandbytes package are both present."""
    import torch

    if not torch.cuda.is_available():
        raise BnbUnavailable(
            "--bnb needs a CUDA GPU (bitsandbytes quantizes on the GPU) and none is available; "
            f"run it on a GPU machine after {INSTALL_HINT}, or use --quantization for CTranslate2"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise BnbUnavailable(f"--bnb needs the bitsandbytes package: {INSTALL_HINT}") from exc


def bnb_config(bits: int) -> Any:
    """The BitsAndBytesConfig for `bits` (8: LLM.int8; 4: NF4 with double quantization)."""
    import torch
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    raise ValueError(f"--bnb takes {' or '.join(map(str, BNB_BITS))}, not {bits}")


def write_bnb_checkpoint(
    src: Path,
    out: Path,
    bits: int,
    *,
    trust_remote_code: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Quantize the Hugging Face model in `src` with bitsandbytes and save it (atomically) to `out`.

    Returns the quantized model, loaded on GPU 0, so callers can check its fidelity.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    check_bnb_available()
    config = AutoConfig.from_pretrained(src, trust_remote_code=trust_remote_code)
    model_class = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    if progress is not None:
        progress(f"Quantizing with bitsandbytes to {bits}-bit")
    model = model_class.from_pretrained(
        src,
        quantization_config=bnb_config(bits),
        device_map={"": 0},
        trust_remote_code=trust_remote_code,
    )
    tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return model.eval()
