"""Hugging Face or GGUF checkpoints -> self-contained CTranslate2 model directories.

Every output directory is written through `atomic_directory`, so a failed conversion leaves
nothing at the destination. A converted directory carries its tokenizer files and a small
metadata file (`codet5_lsp.json`) saying where it came from and how it was quantized.
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.cache import CACHE_ENV, atomic_directory

Progress = Callable[[str], None] | None

QUANTIZATIONS = (
    "int8",
    "int8_float16",
    "int8_bfloat16",
    "int8_float32",
    "float16",
    "bfloat16",
    "float32",
)
METADATA_FILE = "codet5_lsp.json"
FORMAT_VERSION = 1
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
CT2_VOCABULARY_FILES = (
    "vocabulary.json",
    "vocabulary.txt",
    "shared_vocabulary.json",
    "shared_vocabulary.txt",
    "target_vocabulary.json",
    "target_vocabulary.txt",
)
# GGUF architectures that are encoder-decoder models; everything else loads as a causal LM.
_SEQ2SEQ_GGUF_ARCHITECTURES = frozenset({"t5"})


class ConversionError(Exception):
    """A conversion failed; the message says what failed and what to do about it."""


class CacheWriteError(ConversionError):
    """The converted model could not be written (the disk is full or read-only): the checkpoint is fine."""


_WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _write_failure(exc: BaseException, out: Path) -> CacheWriteError | None:
    """A CacheWriteError for `exc` if it is a failure to write next to `out`, else None."""
    if not (isinstance(exc, OSError) and exc.errno in _WRITE_FAILURES):
        return None
    return CacheWriteError(f"cannot write the converted model to {out.parent}: {exc.strerror}. "
                           f"Free some space there, or set {CACHE_ENV} to a directory with room")


def _report(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def check_quantization(quantization: str) -> str:
    """Return `quantization` if CTranslate2 can write it, else raise ValueError listing the valid ones."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"unknown quantization {quantization!r}; valid values: {', '.join(QUANTIZATIONS)}"
        )
    return quantization


def read_metadata(model_dir: Path) -> dict[str, Any] | None:
    """The `codet5_lsp.json` metadata of a converted directory, or None if absent or unreadable."""
    try:
        data = json.loads((Path(model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_ct2_dir(model_dir: Path) -> bool:
    """Whether `model_dir` looks like a CTranslate2 model (model.bin, config.json, a vocabulary)."""
    model_dir = Path(model_dir)
    return (
        (model_dir / "model.bin").is_file()
        and (model_dir / "config.json").is_file()
        and any((model_dir / name).is_file() for name in CT2_VOCABULARY_FILES)
    )


CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx")


def context_length(config: dict[str, Any]) -> int | None:
    """The longest sequence a checkpoint's learned or rotary positions cover, if its config says."""
    for key in CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _source_architecture(src: Path) -> str:
    try:
        config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConversionError(
            f"cannot read {src / 'config.json'}: {exc}; is {src} a Hugging Face model directory?"
        ) from exc
    except ValueError as exc:
        raise ConversionError(
            f"{src / 'config.json'} is not valid JSON ({exc}); re-download or re-export the model"
        ) from exc
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if architectures:
        return str(architectures[0])
    if isinstance(config, dict) and config.get("model_type"):
        return str(config["model_type"])
    raise ConversionError(
        f"{src / 'config.json'} names no architecture; is {src} a Hugging Face model directory?"
    )


def _copy_tokenizer_files(src: Path, dest: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
            copied.append(name)
    return copied


def convert_to_ct2(
    src: Path,
    out: Path,
    quantization: str = "int8",
    *,
    trust_remote_code: bool = False,
    progress: Progress = None,
    source_label: str | None = None,
) -> Path:
    """Convert the Hugging Face model directory `src` into a CTranslate2 directory at `out`.

    `out` is written atomically (replacing an existing directory only on success) and holds
    the tokenizer files of `src` and the metadata file. `source_label` is what the metadata
    records as the source (default: `src`). Raises ValueError for an unknown quantization,
    CacheWriteError when `out` cannot be written (disk full) and ConversionError for anything
    else that fails during conversion.
    """
    import ctranslate2
    import transformers
    from ctranslate2.converters import TransformersConverter

    check_quantization(quantization)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ConversionError(f"source model directory not found: {src}")
    architecture = _source_architecture(src)
    _report(progress, f"Converting to CTranslate2 {quantization}")
    with atomic_directory(out) as tmp:
        converter = TransformersConverter(str(src), trust_remote_code=trust_remote_code)
        try:
            converter.convert(str(tmp), quantization=quantization, force=True)
        except Exception as exc:
            if (full := _write_failure(exc, out)) is not None:
                raise full from exc
            raise ConversionError(
                f"CTranslate2 could not convert {src} ({architecture}): {exc}. "
                "Check that the directory holds a complete checkpoint of an architecture "
                "CTranslate2 supports (T5, Llama, CodeGen, GPT-2, ...); pass "
                "--trust-remote-code for models with custom code."
            ) from exc
        copied = _copy_tokenizer_files(src, tmp)
        if not copied:
            raise ConversionError(
                f"no tokenizer files in {src}; save the tokenizer next to the model "
                "(tokenizer.save_pretrained) and convert again"
            )
        metadata = {
            "source": source_label if source_label is not None else str(src),
            "quantization": quantization,
            "ctranslate2": ctranslate2.__version__,
            "transformers": transformers.__version__,
            "format_version": FORMAT_VERSION,
            "architecture": architecture,
            "context_length": context_length(json.loads((src / "config.json").read_text(encoding="utf-8"))),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return out


def gguf_architecture(gguf_path: Path) -> str:
    """The `general.architecture` a GGUF file declares (e.g. "llama")."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(gguf_path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise ConversionError(f"{gguf_path} is not a readable GGUF model file: {exc}") from exc


def gguf_to_hf(gguf_path: Path, out: Path, progress: Progress = None) -> Path:
    """Dequantize a GGUF model to a float32 Hugging Face directory at `out` (written atomically).

    transformers loads the GGUF (which needs the `gguf` and `accelerate` packages) but refuses to
    save a model it considers quantized by GGUF; its weights are already dequantized, so the
    quantizer and the quantization config are dropped before saving.
    """
    gguf_path, out = Path(gguf_path), Path(out)
    if not gguf_path.is_file():
        raise ConversionError(f"GGUF file not found: {gguf_path}")
    try:
        import accelerate  # noqa: F401  (transformers needs it to load GGUF weights)
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    except ImportError as exc:
        raise ConversionError(
            f"loading GGUF files needs transformers, gguf and accelerate ({exc}); "
            "pip install gguf accelerate"
        ) from exc
    architecture = gguf_architecture(gguf_path)
    model_class = (
        AutoModelForSeq2SeqLM if architecture in _SEQ2SEQ_GGUF_ARCHITECTURES else AutoModelForCausalLM
    )
    _report(progress, f"Loading {gguf_path.name} ({architecture})")
    try:
        model = model_class.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as exc:
        raise ConversionError(
            f"transformers could not load {gguf_path} ({architecture}): {exc}. "
            "Check that the file is complete and that this transformers version supports "
            "the architecture and quantization type."
        ) from exc
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _report(progress, "Saving dequantized weights")
    with atomic_directory(out) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return out


def convert_gguf_to_ct2(
    gguf_path: Path,
    out: Path,
    quantization: str = "int8",
    progress: Progress = None,
    *,
    source_label: str | None = None,
) -> Path:
    """GGUF file -> CTranslate2 directory, through a temporary Hugging Face directory.

    `source_label` is what the metadata records as the source (default: the GGUF path).
    """
    check_quantization(quantization)
    gguf_path, out = Path(gguf_path), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Next to `out` rather than in /tmp: the float32 intermediate is several times the GGUF.
    with tempfile.TemporaryDirectory(prefix=".gguf-hf-", dir=out.parent) as tmp:
        hf_dir = gguf_to_hf(gguf_path, Path(tmp) / "hf", progress=progress)
        return convert_to_ct2(
            hf_dir,
            out,
            quantization,
            progress=progress,
            source_label=source_label if source_label is not None else str(gguf_path),
        )
