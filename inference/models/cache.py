"""Where converted models live on disk, how a directory gets there without half-writes, and how the
leftovers of builds that were killed are removed."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; leftovers are then removed only when long idle
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "CODET5_LSP_CACHE"
# Temporary names of builds under models_dir(): atomic_directory's `.NAME.XXXX.partial` / `.old`,
# the embedded builds' `.NAME-build-XXXX`, the GGUF intermediates `.gguf-hf-XXXX` / `.gguf-build-XXXX`.
_LEFTOVER_SUFFIXES = (".partial", ".old")
_LEFTOVER_MARKERS = ("-build-", ".gguf-hf-")
# A leftover written to this recently may belong to a build that holds no lock (code outside this
# package, or the seconds before a build takes it): left for a later start.
IDLE_BEFORE_REMOVAL_S = 120.0 if fcntl is not None else 86_400.0


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
def _lock(exclusive: bool) -> Iterator[bool]:
    """Hold the build lock (an advisory lock on the models_dir() directory itself, so no lock file);
    yields whether it was acquired (exclusive: without waiting)."""
    if fcntl is None:
        yield True
        return
    root = models_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a cache that cannot be created: nothing is built there, nothing to protect
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def building(target: Path) -> Iterator[None]:
    """Mark a build of `target` in progress (a shared lock, when `target` is under models_dir()): no
    cleaner removes temporary build directories meanwhile. The kernel releases it if the process dies."""
    if not Path(target).resolve().is_relative_to(models_dir().resolve()):
        yield
        return
    with _lock(exclusive=False):
        yield


def _is_leftover(path: Path) -> bool:
    name = path.name
    return name.startswith(".") and path.is_dir() and not path.is_symlink() and (
        name.endswith(_LEFTOVER_SUFFIXES) or any(marker in name for marker in _LEFTOVER_MARKERS)
    )


def _last_write(path: Path) -> float:
    """The newest modification time of `path` and everything under it."""
    newest = path.lstat().st_mtime
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
            except OSError:
                continue
    return newest


def remove_build_leftovers(now: float | None = None) -> list[Path]:
    """Remove the temporary directories of interrupted builds from models_dir() and its subfolders
    (one level, e.g. `bench/`); returns what was removed.

    Only when no live process is building (the build lock is free) and only leftovers not written
    to for IDLE_BEFORE_REMOVAL_S. Never raises: a leftover that cannot be removed stays.
    """
    root = models_dir()
    if not root.is_dir():
        return []
    removed: list[Path] = []
    with _lock(exclusive=True) as free:
        if not free:
            return []
        now = time.time() if now is None else now
        try:
            folders = [root, *(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]
            candidates = [p for folder in folders for p in folder.iterdir() if _is_leftover(p)]
        except OSError:
            return []
        for path in candidates:
            try:
                if now - _last_write(path) < IDLE_BEFORE_REMOVAL_S:
                    continue
                shutil.rmtree(path)
            except OSError:
                continue
            removed.append(path)
    return removed


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of `final`; rename it to `final` only on success.

    An existing `final` is replaced only once the new directory is complete. On error the
    temporary directory is removed and `final` is left as it was. The build lock is held
    throughout, so that no other process takes the temporary directory for a leftover.
    """
    final = Path(final)
    with building(final):
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
