"""`load_model`: a local engine-backed CodeModel, or a RemoteCodeModel for an `openai:` spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .openai_backend import is_remote_spec

if TYPE_CHECKING:
    from .model import CodeModel
    from .remote_model import RemoteCodeModel


def load_model(
    model: str | Path = "default",
    device: str = "auto",
    compute_type: str = "auto",
    cpu_threads: int = 0,
    *,
    local_files_only: bool = False,
    trust_remote_code: bool = False,
    max_cached_prompts: int = 2,
    draft_tokens: int = 2,
    runtime: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> CodeModel | RemoteCodeModel:
    """The model `model` names (see CodeModel's arguments); `openai:<base URL>[#<model id>]` names
    a model of an OpenAI-compatible server, which decides device, compute type and threads itself.
    Only a local model loads a runtime (CTranslate2, or ONNX Runtime: `runtime`)."""
    if is_remote_spec(str(model)):
        from .remote_model import RemoteCodeModel

        return RemoteCodeModel(str(model), progress=progress)
    from .model import CodeModel

    return CodeModel(
        model, device, compute_type, cpu_threads, local_files_only=local_files_only,
        trust_remote_code=trust_remote_code, max_cached_prompts=max_cached_prompts, draft_tokens=draft_tokens,
        runtime=runtime,
        progress=progress,
    )


def model_directory(
    model: str | Path = "default",
    device: str = "auto",
    compute_type: str = "auto",
    runtime: str = "auto",
    *,
    local_files_only: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The local directory `load_model` would load with these settings, fetched and converted
    first if needed (`codet5-lsp models pull`)."""
    from .model import resolve_for

    return resolve_for(str(model), device, compute_type, runtime, local_files_only=local_files_only, progress=progress)[2].path
