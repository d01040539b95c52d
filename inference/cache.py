"""Where converted models live on disk, and how a directory gets there without half-writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

CACHE_ENV = "CODET5_LSP_CACHE"


def cache_root() -> Path:
    """The cache root: `$CODET5_LSP_CACHE` if set, else the platform's user cache dir."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("codet5-lsp"))


def models_dir() -> Path:
    """The directory holding converted models (not created here)."""
    return cache_root() / "models"


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `final`; rename it to `final` only on success.

    An existing `final` is replaced only once the new directory is complete. On error the
    temporary directory is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
