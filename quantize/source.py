"""Resolve the SRC argument of `codet5-quantize`: a model directory, a `.gguf` file or a hub id."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from inference.models.convert import is_ct2_dir

HUB_CONNECT_TIMEOUT_S = 5.0
# Weights and tokenizer files only; other frameworks' weights and ONNX exports are skipped.
_HUB_IGNORE = ["*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.ot", "*.gguf", "onnx/*", "flax_model*", "tf_model*"]


class SourceError(Exception):
    """SRC cannot be used (missing, not a model, or a hub id that cannot be fetched)."""


@dataclass(frozen=True)
class Source:
    """A resolved model source: `kind` is "hf" (a directory) or "gguf" (a file)."""

    kind: str
    path: Path
    label: str


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float = HUB_CONNECT_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub endpoint opens within `timeout` (always True behind a proxy)."""
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _looks_like_hub_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith((".", "/", "~")) or text.count("/") > 1 or text.endswith(".gguf"):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _download(repo_id: str, progress: Callable[[str], None] | None) -> Path:
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    cached_only = _offline() or not _hub_reachable()
    try:
        if cached_only:
            return Path(snapshot_download(repo_id, local_files_only=True))
        if progress is not None:
            progress(f"Downloading {repo_id} from the Hugging Face hub")
        files = HfApi().list_repo_files(repo_id)
        # Prefer safetensors: skip the duplicate PyTorch pickles when both are published.
        ignore = _HUB_IGNORE + (["*.bin"] if any(f.endswith(".safetensors") for f in files) else [])
        return Path(snapshot_download(repo_id, ignore_patterns=ignore))
    except LocalEntryNotFoundError as exc:
        why = "HF_HUB_OFFLINE is set" if _offline() else "the Hugging Face hub is unreachable"
        raise SourceError(
            f"{repo_id!r} is not a local path, and as a hub id it is not in the local Hugging Face "
            f"cache while {why}; download the model where a network is available and pass its directory"
        ) from exc
    except GatedRepoError as exc:
        raise SourceError(
            f"{repo_id!r} is gated: accept its licence on huggingface.co and log in (hf auth login)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise SourceError(f"{repo_id!r} is neither a local path nor a model on the hub") from exc
    except Exception as exc:  # the hub client's transport errors share no base class with OSError
        raise SourceError(f"could not download {repo_id!r}: {exc}") from exc


def resolve_source(text: str, progress: Callable[[str], None] | None = None) -> Source:
    """Resolve SRC to a local model directory or GGUF file, downloading hub ids when possible."""
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise SourceError(f"{path} is a file but not a .gguf model")
        return Source("gguf", path, str(path))
    if path.is_dir():
        if is_ct2_dir(path):
            raise SourceError(f"{path} is already a CTranslate2 model; pass its Hugging Face source")
        if not (path / "config.json").is_file():
            raise SourceError(f"{path} has no config.json: not a Hugging Face model directory")
        return Source("hf", path, str(path))
    if not _looks_like_hub_id(text):
        raise SourceError(f"{text} does not exist")
    return Source("hf", _download(text, progress), text)
