"""Read a CTranslate2 `model.bin`'s index and write a copy with the output projection untied.

The file (binary version 6, as `ctranslate2.specs.model_spec.ModelSpec._serialize` writes it) is
a header (version, spec name, spec revision), the variables in name order (each: name, rank, the
dimensions, a dtype id, a byte count and the bytes), then the aliases (alias, target). Strings are
a uint16 length that counts a terminating NUL, the UTF-8 bytes and the NUL; integers are
little-endian.

A tied decoder (the default model's embedding matrix is also its output projection) stores
`decoder/projection/weight` as an alias of `decoder/embeddings/weight`, and CTranslate2 aliases
the int8 scale with it. `untie_projection` writes a copy whose projection is its own variable:
every row (the same model, one more copy of the matrix), or only the first `rows` (a smaller
output vocabulary: the copy only ever produces ids below `rows`), to time what the projection
costs a decoding step.
"""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BINARY_VERSION = 6
EMBEDDING = "decoder/embeddings/weight"
PROJECTION = "decoder/projection/weight"
SCALE = "_scale"  # suffix of an int8 weight's per-row scale
CHUNK = 16 << 20


@dataclass(frozen=True)
class Variable:
    """One variable of a model.bin: where its bytes are, not the bytes."""

    name: str
    shape: tuple[int, ...]
    dtype: int  # CTranslate2's DataType id (0 float32, 1 int8, ...)
    offset: int
    size: int


@dataclass(frozen=True)
class ModelIndex:
    spec: str
    revision: int
    variables: dict[str, Variable]
    aliases: dict[str, str]


def _read(stream: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, stream.read(struct.calcsize(fmt)))[0]


def _read_string(stream: BinaryIO) -> str:
    return stream.read(_read(stream, "H"))[:-1].decode("utf-8")


def _write_string(stream: BinaryIO, text: str) -> None:
    data = text.encode("utf-8")
    stream.write(struct.pack("<H", len(data) + 1) + data + b"\0")


def read_index(path: Path) -> ModelIndex:
    """The header, variables and aliases of the model.bin at `path` (the weights stay on disk)."""
    with open(path, "rb") as stream:
        version = _read(stream, "I")
        if version != BINARY_VERSION:
            raise ValueError(f"{path}: binary version {version}, only {BINARY_VERSION} is supported")
        spec, revision = _read_string(stream), _read(stream, "I")
        variables = {}
        for _ in range(_read(stream, "I")):
            name = _read_string(stream)
            shape = tuple(_read(stream, "I") for _ in range(_read(stream, "B")))
            dtype, size = _read(stream, "B"), _read(stream, "I")
            variables[name] = Variable(name, shape, dtype, stream.tell(), size)
            stream.seek(size, 1)
        aliases = {_read_string(stream): _read_string(stream) for _ in range(_read(stream, "I"))}
    return ModelIndex(spec, revision, variables, aliases)


def _rows(variable: Variable, rows: int) -> Variable:
    """The first `rows` rows of `variable`: the same offset, fewer bytes."""
    return Variable(variable.name, (rows, *variable.shape[1:]), variable.dtype, variable.offset,
                    variable.size // variable.shape[0] * rows)


def _copy_bytes(source: BinaryIO, offset: int, size: int, target: BinaryIO) -> None:
    source.seek(offset)
    while size:
        chunk = source.read(min(CHUNK, size))
        target.write(chunk)
        size -= len(chunk)


def untie_projection(model_dir: Path, out_dir: Path, rows: int | None = None) -> Path:
    """A copy of the model in `model_dir` whose output projection is the embedding's first `rows`
    rows (all by default) as variables of its own; the other files are copied alongside."""
    index = read_index(model_dir / "model.bin")
    if index.aliases.get(PROJECTION) != EMBEDDING:
        raise ValueError(f"{model_dir}: the output projection is not tied to the embedding")
    embedding = index.variables[EMBEDDING]
    rows = embedding.shape[0] if rows is None else rows
    if not 0 < rows <= embedding.shape[0]:
        raise ValueError(f"rows must be within 1 and {embedding.shape[0]}, not {rows}")
    sources = dict(index.variables)
    sources[PROJECTION] = _rows(embedding, rows)
    if EMBEDDING + SCALE in index.variables:
        sources[PROJECTION + SCALE] = _rows(index.variables[EMBEDDING + SCALE], rows)
    aliases = {alias: target for alias, target in index.aliases.items() if alias != PROJECTION}
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file() and path.name != "model.bin":
            shutil.copy2(path, out_dir / path.name)
    with open(model_dir / "model.bin", "rb") as source, open(out_dir / "model.bin", "wb") as target:
        target.write(struct.pack("<I", BINARY_VERSION))
        _write_string(target, index.spec)
        target.write(struct.pack("<II", index.revision, len(sources)))
        for name in sorted(sources):
            variable = sources[name]
            _write_string(target, name)
            target.write(struct.pack("<B", len(variable.shape)))
            target.write(struct.pack(f"<{len(variable.shape)}I", *variable.shape))
            target.write(struct.pack("<BI", variable.dtype, variable.size))
            _copy_bytes(source, variable.offset, variable.size, target)
        target.write(struct.pack("<I", len(aliases)))
        for alias, name in aliases.items():
            _write_string(target, alias)
            _write_string(target, name)
    return out_dir
