"""Whether the device a user asked for exists here, said before a model load fails obscurely."""

from __future__ import annotations

from .runtime import ctranslate2


class DeviceUnavailable(RuntimeError):
    """The requested device is not on this machine; the message says what to use instead."""


def check_device(device: str) -> None:
    """Raise DeviceUnavailable when `device` is "cuda" and CTranslate2 sees no GPU.

    Without this check, loading on a machine with no GPU fails deep in the runtime with
    messages such as "CUDA driver version is insufficient for CUDA runtime version".
    """
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise DeviceUnavailable("no CUDA device found (CTranslate2 sees no GPU here): use --device cpu or --device auto")
