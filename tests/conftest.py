"""Shared fixtures: the tiny trained models every engine and server test runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.tiny_models import TinyModels


@pytest.fixture(scope="session")
def tiny_models() -> TinyModels:
    """Tiny Llama, CodeGen and T5 models (HF + CTranslate2), built once and cached on disk.

    Imported lazily so that test sessions that never use a model do not pay for torch.
    """
    from tests.tiny_models import get_tiny_models

    return get_tiny_models()
