"""Put the trained summarizer delta inside the package and write its model card."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from inference.summarizer_assembly import END_TOKEN, START_TOKEN
from quantize.summarizer.training import DELTA_FILE, LOG_FILE

CARD = "MODEL_CARD.md"
SCORES_PLACEHOLDER = "<!-- scores:start -->\n(run `python -m bench.summarization --summarizer PRESET --card MODEL_CARD.md`)\n<!-- scores:end -->"
# The decoders the recipe runs on: their names and licences, for the model card.
DECODER_NAMES = {"smollm2-135m": ("SmolLM2-135M", "Apache-2.0"),
                 "qwen2.5-coder-0.5b": ("Qwen2.5-Coder-0.5B-Instruct", "Apache-2.0")}


def package_dir(decoder: str) -> Path:
    """Where the package keeps the delta of the summarizer on `decoder` (SmolLM2's at the top, others in a subfolder)."""
    top = Path(__file__).resolve().parents[2] / "inference" / "data" / "summarizer"
    return top if decoder == "smollm2-135m" else top / decoder


def ship(run_dir: Path, work: Path, decoder: str, out: Path) -> Path:
    """Copy `run_dir`'s delta into `out` and write the model card there."""
    delta = run_dir / DELTA_FILE
    if not delta.is_file():
        raise FileNotFoundError(f"no trained delta at {delta}; run `python -m quantize.summarizer train` first")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{DELTA_FILE}.tmp"
    pack_delta(delta, tmp)
    os.replace(tmp, out / DELTA_FILE)
    (out / CARD).write_text(model_card(run_dir, work, out / DELTA_FILE, decoder), encoding="utf-8")
    return out


def pack_delta(src: Path, dst: Path) -> None:
    """Store each weight matrix as int8 rows with one float32 scale per row (`<name>.scale`).

    CTranslate2's int8 weights use exactly this scheme (per-row absmax / 127), so the assembled
    int8 model is the same as from the float32 delta, at a quarter of the size.
    """
    import numpy as np
    from safetensors.numpy import save_file
    from safetensors import safe_open

    tensors: dict[str, np.ndarray] = {}
    with safe_open(str(src), framework="numpy") as f:
        metadata = f.metadata()
        for name in f.keys():
            weight = f.get_tensor(name).astype(np.float32)
            if weight.ndim != 2:
                tensors[name] = weight
                continue
            amax = np.abs(weight).max(axis=1)
            amax[amax == 0] = 127.0
            # CTranslate2's own arithmetic (weight * (127 / amax), then rint): a tie rounds the same way
            tensors[name] = np.rint(weight * (np.float32(127.0) / amax)[:, None]).astype(np.int8)
            tensors[f"{name}.scale"] = (amax / np.float32(127.0)).astype(np.float32)
    save_file(tensors, str(dst), metadata=metadata)


def _package_rows(manifest: dict) -> str:
    rows = ["| source | version | licence (from its metadata) | files | pairs | after dedup |", "|---|---|---|---:|---:|---:|"]
    for s in manifest["sources"]:
        if s["pairs_after_dedup"]:
            rows.append(f"| {s['name']} | {s['version']} | {s['licence']} | {s['files']} | {s['pairs']} | {s['pairs_after_dedup']} |")
    return "\n".join(rows)


def _continued(config: dict) -> str:
    if not config.get("init_delta"):
        return ""
    return (f" The second training command continues from the first one's delta (`{config['init_delta']}`); "
            "the figures below are the second's.")


def _cross_layers(shape: dict) -> str:
    return ", ".join(str(i) for i in range(shape["decoder_layers"] - 1, shape.get("cross_start", 0) - 1, -shape["cross_every"]))


def model_card(run_dir: Path, work: Path, delta: Path, decoder: str) -> str:
    """The model card text: data, licences, sizes, architecture, training, and a scores section to fill."""
    from safetensors import safe_open

    manifest = json.loads((work / "data" / "manifest.json").read_text(encoding="utf-8"))
    with safe_open(str(delta), framework="numpy") as f:
        metadata = f.metadata()
        parameters = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith(".scale"))
    shape, info = json.loads(metadata["shape"]), json.loads(metadata["info"])
    config = info["config"]
    log = [json.loads(line) for line in (run_dir / LOG_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    command = (work / "command.txt").read_text(encoding="utf-8").strip()
    excluded = ", ".join(f"{e['name']} {e['version']} ({e['licence']})" for e in manifest["excluded_distributions"])
    curve = "\n".join(f"| {r['step']} | {r.get('minutes', 0)} | {r.get('train_loss', '')} | {r['valid_loss']:.4f} | "
                      f"{r['valid_bleu']:.2f} |" if "valid_bleu" in r else
                      f"| {r['step']} | {r.get('minutes', 0)} | {r.get('train_loss', '')} | {r['valid_loss']:.4f} | |" for r in log)
    cross = _cross_layers(shape)
    name, licence = DECODER_NAMES[decoder]
    frozen_below = (f" Layers 0-{min(int(c) for c in cross.split(', ')) - 1} never see the encoder: during training they "
                    "run once per batch without gradients." if shape.get("cross_start", 0) else "")
    encoder_mlp = ("" if shape.get("encoder_mlp_trained", True) else
                   " The encoder's feed-forward blocks stay the decoder's (frozen, not shipped: the assembly takes them "
                   "from the GGUF); its attention and norms are trained.")
    bleu_note = (f", greedy smoothed BLEU-4 on {config['valid_bleu_examples']} others" if config["valid_bleu_examples"] else
                 " (no greedy BLEU during training: without a cache it costs more than the training steps on this decoder)")
    pairs, modules = manifest["pairs"], manifest["modules"]
    return f"""# Embedded summarizer on {name}

Writes a one-sentence summary of a Python function (preset `{decoder}-summarizer`). Built by CodeT5+'s
recipe for scaling an encoder-decoder from a decoder-only model: a shallow encoder and a deep
decoder initialized from the completion model ({name}, {licence}), the decoder frozen, only the
encoder and new cross-attention blocks trained.

The package ships only what was trained: `delta.safetensors` ({delta.stat().st_size / 1e6:.1f} MB,
{parameters / 1e6:.1f}M parameters, int8 rows with float32 scales). At first use it is assembled with the completion model's weights
(dequantized from the same verified GGUF as the completion model) into one CTranslate2 encoder-decoder
(`TransformerSpec`) stored as int8 in the model cache (`inference/summarizer_assembly.py`).

## Data

Pairs of (function source with its docstring removed -> first sentence of its docstring) from the
Python {manifest['sources'][0]['version']} standard library (PSF-2.0) and from every installed
distribution whose metadata (`License-Expression`, else its `License ::` classifiers, else a short
`License` field) says MIT, BSD or Apache only. Test suites, vendored code and this project are left
out. Left out for their licence: {excluded}.

Cleaning: the docstring's first sentence of its first paragraph (before doctests and section
headers, reST roles reduced to text), 3-40 words, ASCII, mostly words, no URLs, signatures or
generated-code markers; code at most 4,000 characters that still parses. Deduplicated by
normalized code (comments and layout ignored) and by (name, summary). Split by module with seed
{manifest['seed']}: 5% of modules for test, 5% for validation, no module in two splits.

| split | pairs | modules |
|---|---:|---:|
| train | {pairs['train']} | {modules['train']} |
| valid | {pairs['valid']} | {modules['valid']} |
| test | {pairs['test']} | {modules['test']} |

{manifest['pairs_before_dedup']} pairs before deduplication.

{_package_rows(manifest)}

## Model

{name}'s tokenizer and embeddings (shared by encoder and decoder, frozen). Encoder:
{shape['encoder_layers']} bidirectional layers initialized from the decoder's first {shape['encoder_layers']}
(RMSNorm, rotary embeddings, {shape['heads']} query / {shape['kv_heads']} key-value heads{', q/k/v biases' if shape.get('qkv_bias') else ''}, SwiGLU), then RMSNorm.{encoder_mlp}
Decoder: {name}'s {shape['decoder_layers']} layers, frozen, with a pre-norm cross-attention block
({shape['heads']} query / {shape['kv_heads']} key-value heads, no rotary, no biases) between self-attention and the feed-forward
block in layers {cross}; the other layers' blocks are zero when assembled.{frozen_below} Cross-attention output
projections start at zero, so training starts from the language model itself. The encoder sees the
code's tokens cut to {config['max_source_tokens']}; the decoder starts from `{metadata.get('start_token', START_TOKEN)}`, is
given `{metadata.get('summary_prefix', '')}` (forced, so the first word is not read from the language model's attention
sink at position 0) and ends with `{metadata.get('end_token', END_TOKEN)}`; targets are at most {config['max_target_tokens']} tokens.

## Training

```
{command}
python -m quantize.summarizer ship --decoder {decoder}
```

The decoder's weights are its embedded GGUF, dequantized with numpy.{_continued(config)} AdamW (learning rate {config['encoder_learning_rate']} for the encoder,
{config['cross_learning_rate']} for cross-attention, weight decay {config['weight_decay']}), {config['warmup_steps']} warmup steps
then cosine decay to a tenth at step {config['steps']} (or {config['max_minutes']} minutes), batch {config['batch_size']}
of similar source lengths, gradient clipping 1.0, seed {config['seed']}, torch on {config['threads']} CPU threads{' (matrix products in bfloat16 autocast)' if config.get('bf16') else ''}.
It ran {info['steps']} steps in {info['minutes']} minutes on {info['train_examples']} training pairs.
Validation: loss on {config['valid_loss_examples']} validation pairs{bleu_note}.

| step | minutes | training loss (since the last row) | validation loss | validation BLEU-4 |
|---:|---:|---:|---:|---:|
{curve}

## Scores

Smoothed BLEU-4 with the CodeXGLUE code-to-text definition (`bench/bleu.py`, checked against the
official sample: 9.554726113590661), greedy decoding, CTranslate2 int8.

{SCORES_PLACEHOLDER}
"""
