"""Hugging Face or GGUF checkpoints -> self-contained CTranslate2 model directories.

Every output directory is written through `atomic_directory`, so a failed conversion leaves
nothing at the destination. A converted directory carries its tokenizer files and a small
metadata file (`codet5_lsp.json`) saying where it came from, how it was quantized, and a
sampled checksum of its weights that every load verifies.

Llama and Qwen2 GGUF files convert with numpy alone (inference/models/gguf_ct2.py); Hugging Face
directories and other GGUF architectures need torch and transformers (the `[hf]` extra).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inference.models.conversion_errors import CacheWriteError, ConversionError, CorruptModelError
from inference.models.cache import CACHE_ENV, atomic_directory, building, models_dir

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


HF_EXTRA_HINT = "pip install 'codet5-lsp[hf]'"
_WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})
# How libraries that wrap the OS error in their own exception (safetensors, tokenizers) spell it.
_WRITE_FAILURE_TEXTS = {f"os error {code}": code for code in _WRITE_FAILURES} | {
    os.strerror(code): code for code in _WRITE_FAILURES
}


def _write_errno(exc: BaseException | None) -> int | None:
    """The errno of a failure to write somewhere in `exc`'s chain of causes, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _WRITE_FAILURES:
            return exc.errno
        text = str(exc)
        for marker, code in _WRITE_FAILURE_TEXTS.items():
            if marker in text:
                return code
        exc = exc.__cause__ or exc.__context__
    return None


def _write_failure(exc: BaseException, out: Path) -> CacheWriteError | None:
    """A CacheWriteError for `exc` if it is a failure to write next to `out`, else None."""
    code = _write_errno(exc)
    if code is None:
        return None
    return CacheWriteError(f"cannot write the converted model to {out.parent}: {os.strerror(code)}. "
                           f"Free some space there, or set {CACHE_ENV} to a directory with room")


@contextmanager
def disk_full_hint(out: Path) -> Iterator[None]:
    """Report a failure to write (disk full, quota, read-only) anywhere in a build of `out` as a
    CacheWriteError that says what to do, instead of the raw `[Errno 28]`."""
    try:
        yield
    except CacheWriteError:
        raise
    except Exception as exc:
        if (full := _write_failure(exc, Path(out))) is not None:
            raise full from exc
        raise


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


_SAMPLED_BLOCKS = 33
_SAMPLED_BLOCK_BYTES = 1 << 16


WEIGHT_FILES = ("model.bin", "model.onnx.data")  # CTranslate2's, ONNX Runtime's (inference/models/gguf_onnx.py)


def weights_file(model_dir: Path) -> Path:
    """The file holding a converted directory's weights (model.bin unless it is an ONNX Runtime model)."""
    model_dir = Path(model_dir)
    return next((model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()), model_dir / WEIGHT_FILES[0])


def model_bin_checksum(model_dir: Path, blocks: int = _SAMPLED_BLOCKS, block_bytes: int = _SAMPLED_BLOCK_BYTES) -> dict[str, Any]:
    """Size of the weights file and the sha256 of `blocks` blocks spread evenly over it (its first,
    middle and last included): 2 MiB read whatever the model's size, so a load can afford to check it."""
    path = weights_file(model_dir)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        span = max(0, size - block_bytes)
        for i in range(blocks):
            handle.seek(span * i // max(1, blocks - 1))
            digest.update(handle.read(block_bytes))
    return {"size": size, "sampled_sha256": digest.hexdigest(), "blocks": blocks, "block_bytes": block_bytes}


def write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    """Write `codet5_lsp.json` into a finished model directory, with the checksum of its weights."""
    model_dir = Path(model_dir)
    if weights_file(model_dir).is_file():
        metadata = {**metadata, "model_bin": model_bin_checksum(model_dir)}
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def _rebuild_hint(model_dir: Path, metadata: dict[str, Any]) -> str:
    path = Path(model_dir)
    if path.parent.resolve() != models_dir().resolve():
        return f"convert it again (codet5-quantize SOURCE --out {path})"
    if path.name.startswith("local-"):
        return f"delete {path}; it is converted again from {metadata.get('source', 'its source')} at the next start"
    name = path.name.removesuffix(f"-{metadata.get('quantization', 'int8')}").replace("--", "/")
    return f"rebuild it with `codet5-lsp models pull {name}`"


def verify_model_bin(model_dir: Path) -> None:
    """Raise CorruptModelError if model.bin differs from the checksum its build recorded.

    Directories without a recorded checksum (older builds, models converted elsewhere) pass. The
    check samples 2 MiB: it finds a truncated file and damage that covers any sampled block (the
    start, the middle and the end always are), not every changed byte. An ONNX Runtime graph built
    for another version of its engine's interface is refused the same way (it must be rebuilt).
    """
    from inference.models.gguf_onnx import GRAPH_VERSION

    metadata = read_metadata(model_dir) or {}
    if is_onnx_dir(model_dir) and metadata.get("graph_version") != GRAPH_VERSION:
        raise CorruptModelError(f"the model in {model_dir} was built for another version of the ONNX Runtime engine; "
                                f"{_rebuild_hint(model_dir, metadata)}")
    recorded = metadata.get("model_bin")
    if not isinstance(recorded, dict):
        return
    try:
        actual = model_bin_checksum(model_dir, int(recorded.get("blocks", _SAMPLED_BLOCKS)),
                                    int(recorded.get("block_bytes", _SAMPLED_BLOCK_BYTES)))
    except (OSError, ValueError) as exc:
        raise CorruptModelError(f"the model in {model_dir} is broken ({exc}); {_rebuild_hint(model_dir, metadata)}") from exc
    if actual["size"] != recorded.get("size") or actual["sampled_sha256"] != recorded.get("sampled_sha256"):
        name = weights_file(model_dir).name
        what = (f"{name} has {actual['size']} bytes, its build wrote {recorded.get('size')}"
                if actual["size"] != recorded.get("size") else f"{name}'s bytes differ from what its build wrote")
        raise CorruptModelError(f"the model in {model_dir} is corrupt ({what}); {_rebuild_hint(model_dir, metadata)}")


def model_bin_intact(model_dir: Path) -> bool:
    """Whether model.bin matches its recorded checksum (True when none was recorded)."""
    try:
        verify_model_bin(model_dir)
    except CorruptModelError:
        return False
    return True


def read_metadata(model_dir: Path) -> dict[str, Any] | None:
    """The `codet5_lsp.json` metadata of a converted directory, or None if absent or unreadable."""
    try:
        data = json.loads((Path(model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_onnx_dir(model_dir: Path) -> bool:
    """Whether `model_dir` holds an ONNX Runtime decoder built by `convert_gguf_to_onnx`."""
    from inference.models.gguf_onnx import EMBEDDING_FILE, GRAPH_FILE, WEIGHTS_FILE

    model_dir = Path(model_dir)
    return all((model_dir / name).is_file() for name in (GRAPH_FILE, WEIGHTS_FILE, EMBEDDING_FILE, "tokenizer.json"))


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


def _hf_libraries(what: str) -> tuple[Any, Any]:
    """transformers and CTranslate2's TransformersConverter, or a ConversionError naming the `[hf]` extra."""
    try:
        import transformers
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:
        raise ConversionError(f"{what} needs torch and transformers ({exc}); {HF_EXTRA_HINT}") from exc
    return transformers, TransformersConverter


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
    else that fails during conversion (torch and transformers missing included).
    """
    import ctranslate2

    check_quantization(quantization)
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ConversionError(f"source model directory not found: {src}")
    architecture = _source_architecture(src)
    transformers, TransformersConverter = _hf_libraries(f"converting the Hugging Face checkpoint {src}")
    _report(progress, f"Converting to CTranslate2 {quantization}")
    with disk_full_hint(out), atomic_directory(out) as tmp:
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
        write_metadata(tmp, {
            "source": source_label if source_label is not None else str(src),
            "quantization": quantization,
            "ctranslate2": ctranslate2.__version__,
            "transformers": transformers.__version__,
            "format_version": FORMAT_VERSION,
            "architecture": architecture,
            "context_length": context_length(json.loads((src / "config.json").read_text(encoding="utf-8"))),
        })
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

    Needs torch, transformers and accelerate (the `[hf]` extra). transformers loads the GGUF but
    refuses to save a model it considers quantized by GGUF; its weights are already dequantized,
    so the quantizer and the quantization config are dropped before saving.
    """
    gguf_path, out = Path(gguf_path), Path(out)
    if not gguf_path.is_file():
        raise ConversionError(f"GGUF file not found: {gguf_path}")
    architecture = gguf_architecture(gguf_path)
    try:
        import accelerate  # noqa: F401  (transformers needs it to load GGUF weights)
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    except ImportError as exc:
        raise ConversionError(
            f"loading the {architecture} GGUF {gguf_path} needs torch, transformers and accelerate ({exc}); "
            f"{HF_EXTRA_HINT}"
        ) from exc
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
    with disk_full_hint(out), atomic_directory(out) as tmp:
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
    """GGUF file -> CTranslate2 directory at `out` (written atomically).

    Llama and Qwen2 files convert with numpy alone, tensor by tensor (inference/models/gguf_ct2.py);
    other architectures go through a temporary float32 Hugging Face directory, which needs the
    `[hf]` extra. `source_label` is what the metadata records as the source (default: the GGUF
    path). Raises ConversionError naming the file for an unreadable, truncated or unsupported
    GGUF, CacheWriteError when the disk is full.
    """
    import ctranslate2

    from inference.models import gguf_ct2

    check_quantization(quantization)
    gguf_path, out = Path(gguf_path), Path(out)
    label = source_label if source_label is not None else str(gguf_path)
    with building(out), disk_full_hint(out):
        model = gguf_ct2.GGUFModel(gguf_path)
        if model.architecture not in gguf_ct2.HF_ARCHITECTURES:
            return _convert_gguf_with_transformers(gguf_path, out, quantization, progress, label, model.architecture)
        return _write_conversion(model, out, quantization, progress, label, gguf_ct2.convert, ctranslate2=ctranslate2.__version__)


def _write_conversion(model: Any, out: Path, quantization: str, progress: Progress, label: str,
                      convert: Callable[..., dict[str, Any]], **metadata: str) -> Path:
    """`convert(model, directory, quantization, progress)` of an open GGUF into `out`, written
    atomically with its metadata."""
    with atomic_directory(out) as tmp:
        recorded = convert(model, tmp, quantization, progress)
        write_metadata(tmp, {"source": label, "quantization": quantization, **metadata,
                             "format_version": FORMAT_VERSION, **recorded})
    return out


def _convert_gguf_with_transformers(gguf_path: Path, out: Path, quantization: str, progress: Progress,
                                    label: str, architecture: str) -> Path:
    _hf_libraries(f"converting the {architecture} GGUF {gguf_path} (only llama and qwen2 convert without them)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Next to `out` rather than in /tmp: the float32 intermediate is several times the GGUF.
    with tempfile.TemporaryDirectory(prefix=".gguf-hf-", dir=out.parent) as tmp:
        hf_dir = gguf_to_hf(gguf_path, Path(tmp) / "hf", progress=progress)
        return convert_to_ct2(hf_dir, out, quantization, progress=progress, source_label=label)


def convert_gguf_to_onnx(
    gguf_path: Path,
    out: Path,
    quantization: str = "int8",
    progress: Progress = None,
    *,
    source_label: str | None = None,
) -> Path:
    """Llama/Qwen2 GGUF file -> ONNX Runtime decoder directory at `out` (written atomically), with
    numpy and onnx alone (inference/models/gguf_onnx.py). ConversionError as `convert_gguf_to_ct2`."""
    from inference.models import gguf_ct2, gguf_onnx

    gguf_path, out = Path(gguf_path), Path(out)
    label = source_label if source_label is not None else str(gguf_path)
    with building(out), disk_full_hint(out):
        return _write_conversion(gguf_ct2.GGUFModel(gguf_path), out, quantization, progress, label, gguf_onnx.convert)
