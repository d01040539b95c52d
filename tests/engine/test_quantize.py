"""The `codet5-quantize` command (run as a subprocess) and the fidelity check behind it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import ctranslate2
import pytest
import torch
from transformers import AutoTokenizer

from inference.models.convert import is_ct2_dir, read_metadata
from quantize.fidelity import (
    FIDELITY_PROMPTS,
    build_cases,
    compare,
    compare_hf_to_ct2,
    ct2_logits_fn,
    load_float32_model,
    torch_logits_fn,
)
from tests.tiny_gguf import write_llama_gguf

REPO = Path(__file__).resolve().parents[2]
FIDELITY_LINE = re.compile(
    r"Fidelity vs float32 transformers: (\d+) prompts, (\d+) positions: "
    r"top-1 agreement ([\d.]+)%, max \|logit diff\| ([\d.e+-]+)"
)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": path, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "quantize", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )


def fidelity_figures(stdout: str) -> tuple[int, float, float]:
    """(positions, top-1 agreement in [0, 1], max logit difference) printed by the CLI."""
    match = FIDELITY_LINE.search(stdout)
    assert match, stdout
    return int(match[2]), float(match[3]) / 100, float(match[4])


# --- the command line ---------------------------------------------------------------------------


def test_cli_float32_llama_reports_size_and_exact_fidelity(tiny_models, tmp_path):
    out = tmp_path / "llama-f32"
    result = run_cli(str(tiny_models.llama_hf), "--out", str(out), "--quantization", "float32")
    assert result.returncode == 0, result.stderr
    assert is_ct2_dir(out) and read_metadata(out)["quantization"] == "float32"
    size = re.search(r"Size on disk: ([\d.]+) MiB", result.stdout)
    assert size and float(size[1]) == pytest.approx(
        sum(f.stat().st_size for f in out.iterdir()) / 2**20, abs=0.06
    )
    positions, agreement, max_diff = fidelity_figures(result.stdout)
    assert positions > 100
    assert agreement == 1.0
    assert max_diff < 1e-3


def test_cli_int8_t5_is_smaller_and_close(tiny_models, tmp_path):
    out = tmp_path / "t5-int8"
    result = run_cli(str(tiny_models.t5_hf), "--out", str(out))  # int8 is the default
    assert result.returncode == 0, result.stderr
    assert read_metadata(out)["quantization"] == "int8"
    share = re.search(r"Size on disk: [\d.]+ MiB, (\d+)% of the source", result.stdout)
    assert share and int(share[1]) < 60
    _, agreement, max_diff = fidelity_figures(result.stdout)
    assert agreement >= 0.9
    assert 0 < max_diff < 2.0


def test_cli_no_fidelity_skips_the_check(tiny_models, tmp_path):
    result = run_cli(str(tiny_models.codegen_hf), "--out", str(tmp_path / "cg"), "--no-fidelity")
    assert result.returncode == 0, result.stderr
    assert "Size on disk" in result.stdout
    assert "Fidelity" not in result.stdout


def test_cli_gguf_source(tiny_models, tmp_path):
    gguf_file = write_llama_gguf(tiny_models.llama_hf, tmp_path / "tiny.gguf")
    out = tmp_path / "models" / "from-gguf"
    result = run_cli(str(gguf_file), "--out", str(out), "--quantization", "float32")
    assert result.returncode == 0, result.stderr
    assert read_metadata(out)["source"] == str(gguf_file)
    _, agreement, max_diff = fidelity_figures(result.stdout)
    assert agreement == 1.0 and max_diff < 1e-3
    assert sorted(p.name for p in out.parent.iterdir()) == ["from-gguf"]


def test_cli_refuses_to_overwrite_without_force(tiny_models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli(str(tiny_models.llama_hf), "--out", str(out), "--no-fidelity")
    assert result.returncode == 2
    assert "--force" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    forced = run_cli(str(tiny_models.llama_hf), "--out", str(out), "--no-fidelity", "--force")
    assert forced.returncode == 0, forced.stderr
    assert is_ct2_dir(out) and not (out / "keep.txt").exists()


def test_cli_hub_id_offline_fails_fast(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    result = run_cli("Salesforce/codet5p-220m", "--out", str(tmp_path / "out"), env=env, timeout=60)
    assert result.returncode == 2
    assert "HF_HUB_OFFLINE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_hub_id_unreachable_fails_fast(tmp_path):
    env = {
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: nothing listens there
    }
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[proxy] = ""
    result = run_cli("Salesforce/codet5p-220m", "--out", str(tmp_path / "out"), env=env, timeout=60)
    assert result.returncode == 2
    assert "unreachable" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cli_bnb_without_gpu_is_a_clear_error(tiny_models, tmp_path):
    result = run_cli(str(tiny_models.llama_hf), "--out", str(tmp_path / "bnb"), "--bnb", "4")
    assert result.returncode == 2
    assert "GPU" in result.stderr and "codet5-lsp[cuda]" in result.stderr
    assert not (tmp_path / "bnb").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--quantization", "int4"],
        ["--bnb", "3"],
        ["--bnb", "8", "--quantization", "int8"],
    ],
)
def test_cli_bad_arguments_exit_2(tiny_models, tmp_path, args):
    result = run_cli(str(tiny_models.llama_hf), "--out", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert "error" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "ct2-dir", "not-gguf", "no-config"])
def test_cli_unusable_sources_exit_2(tiny_models, tmp_path, kind):
    sources = {
        "missing": tmp_path / "missing" / "model",
        "ct2-dir": tiny_models.llama_int8,
        "not-gguf": tiny_models.llama_hf / "config.json",
        "no-config": tmp_path,
    }
    result = run_cli(str(sources[kind]), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.startswith("codet5-quantize: error:")


def test_cli_broken_checkpoint_exits_1(tiny_models, tmp_path):
    src = Path(shutil.copytree(tiny_models.llama_hf, tmp_path / "src"))
    (src / "model.safetensors").write_bytes(b"truncated")
    result = run_cli(str(src), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "conversion failed" in result.stderr
    assert not (tmp_path / "out").exists()


# --- the fidelity check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hf", "ct2", "min_agreement", "max_diff"),
    [
        ("llama_hf", "llama_float32", 1.0, 1e-3),
        ("t5_hf", "t5_float32", 1.0, 1e-3),
        ("llama_hf", "llama_int8", 0.9, 2.0),
        ("codegen_hf", "codegen_int8", 0.9, 2.0),
        ("t5_hf", "t5_int8", 0.9, 2.0),
    ],
)
def test_fidelity_of_conversions(tiny_models, hf, ct2, min_agreement, max_diff):
    fidelity = compare_hf_to_ct2(getattr(tiny_models, hf), getattr(tiny_models, ct2))
    assert fidelity.prompts == len(FIDELITY_PROMPTS)
    assert fidelity.positions > 50
    assert fidelity.top1_agreement >= min_agreement
    assert fidelity.max_abs_logit_diff < max_diff


def test_fidelity_detects_a_different_model(tiny_models):
    """Same tokenizer, different network: the check must not report agreement."""
    reference = load_float32_model(tiny_models.llama_hf)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.llama_hf)
    other = ctranslate2.Generator(str(tiny_models.codegen_int8))
    cases = build_cases(tokenizer, False, FIDELITY_PROMPTS)
    fidelity = compare(torch_logits_fn(reference), ct2_logits_fn(other, tokenizer), cases)
    assert fidelity.top1_agreement < 0.8
    assert fidelity.max_abs_logit_diff > 1.0


def test_fidelity_between_torch_models(tiny_models):
    """The torch-vs-torch path that `--bnb` uses: identical models agree exactly, bfloat16 nearly."""
    reference = load_float32_model(tiny_models.t5_hf)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.t5_hf)
    cases = build_cases(tokenizer, True, FIDELITY_PROMPTS)
    same = compare(torch_logits_fn(reference), torch_logits_fn(reference), cases)
    assert same.top1_agreement == 1.0 and same.max_abs_logit_diff == 0.0
    bf16 = load_float32_model(tiny_models.t5_hf).to(torch.bfloat16)
    close = compare(torch_logits_fn(reference), torch_logits_fn(bf16), cases)
    assert 0.0 < close.max_abs_logit_diff < 2.0
    assert close.top1_agreement >= 0.8


def test_seq2seq_cases_split_prompts_between_encoder_and_decoder(tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models.t5_hf)
    prompt = "def f():\n    return 1\n"
    (case,) = build_cases(tokenizer, True, [prompt])
    assert tokenizer.decode(case.source, skip_special_tokens=True) == "def f():\n"
    assert case.source[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(case.target) == "    return 1\n"
    (decoder_case,) = build_cases(tokenizer, False, [prompt])
    assert decoder_case.source is None
    assert tokenizer.decode(decoder_case.target, skip_special_tokens=True) == prompt


def test_cli_hub_id_resolves_from_the_local_cache_offline(tiny_models, tmp_path):
    """A hub id already in the Hugging Face cache converts with the hub out of reach."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-home" / "hub" / "models--tiny--llama"
    shutil.copytree(tiny_models.llama_hf, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    out = tmp_path / "out"
    result = run_cli("tiny/llama", "--out", str(out), "--no-fidelity", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert read_metadata(out)["source"] == "tiny/llama"
