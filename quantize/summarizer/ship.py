"""Convert the trained summarizer to CTranslate2 int8 inside the package and write its model card."""

from __future__ import annotations

import json
from pathlib import Path

from inference.convert import convert_to_ct2
from quantize.summarizer.data import read_jsonl
from quantize.summarizer.train import CHECKPOINT_DIR, FINAL_DIR, LOG_FILE, TrainConfig, encode_pair, mean_loss, swapped_sources

SOURCE_CHECK_EXAMPLES = 256

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "inference" / "data" / "summarizer"
SOURCE_LABEL = "codet5-lsp embedded summarizer (python -m quantize.summarizer)"
QUANTIZATION = "int8"
CARD = "MODEL_CARD.md"
SCORES_PLACEHOLDER = "<!-- scores:start -->\n(run `python -m bench.summarization --card inference/data/summarizer/MODEL_CARD.md`)\n<!-- scores:end -->"


def trained_model_dir(work: Path) -> Path:
    """The finished model, or the last checkpoint of a run that was cut off."""
    for name in (FINAL_DIR, CHECKPOINT_DIR):
        if (work / "model" / name / "config.json").is_file():
            return work / "model" / name
    raise FileNotFoundError(f"no trained model under {work / 'model'}; run `python -m quantize.summarizer train` first")


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def convert_trained(work: Path, out: Path | None = None) -> Path:
    """Convert the trained model under `work` to int8 at `out` (default: the package) and write the card."""
    out = out or PACKAGE_DIR
    src = trained_model_dir(work)
    convert_to_ct2(src, out, QUANTIZATION, source_label=SOURCE_LABEL)
    (out / CARD).write_text(model_card(work, src, out), encoding="utf-8")
    return out


def _package_rows(manifest: dict) -> str:
    rows = ["| source | version | licence (from its metadata) | files | pairs | after dedup |", "|---|---|---|---:|---:|---:|"]
    for s in manifest["sources"]:
        if s["pairs_after_dedup"]:
            rows.append(f"| {s['name']} | {s['version']} | {s['licence']} | {s['files']} | {s['pairs']} | {s['pairs_after_dedup']} |")
    return "\n".join(rows)


def source_dependence(model_dir: Path, work: Path) -> tuple[float, float]:
    """Validation loss with each function's own code, and with the next function's code instead.

    A model that reads the code does clearly better with its own; equal losses mean the decoder
    writes from its language model alone and ignores the encoder.
    """
    import torch
    from transformers import PreTrainedTokenizerFast, T5ForConditionalGeneration

    torch.set_num_threads(1)
    model = T5ForConditionalGeneration.from_pretrained(model_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    config = TrainConfig(**json.loads((model_dir / "training.json").read_text(encoding="utf-8"))["config"])
    pairs = read_jsonl(work / "data" / "valid.jsonl")[:SOURCE_CHECK_EXAMPLES]
    examples = [encode_pair(tokenizer, p, config) for p in pairs]
    pad = tokenizer.pad_token_id
    return mean_loss(model, examples, pad, config.batch_size), mean_loss(model, swapped_sources(examples), pad, config.batch_size)


READS_CODE_MARGIN = 0.05


def _status(own: float, swapped: float) -> str:
    if swapped - own > READS_CODE_MARGIN:
        return "How well it summarizes is measured below, against a function-name baseline."
    return (
        "**Status: not usable.** Its decoder does not read the code (see the check under Training): "
        "it writes nearly the same generic sentence for every function."
    )


def _training_summary(work: Path, info: dict) -> str:
    """What the run did: steps, time, and which weights were kept."""
    log = [json.loads(line) for line in (work / "model" / LOG_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    final = next((r for r in log if r.get("final")), None)
    if final is not None:
        limit = " (stopped by its time limit)" if final["stopped_early"] else ""
        return f"It ran {final['step']} steps in {final['minutes']} minutes{limit}; final validation loss {final['valid_loss']}."
    last = log[-1]
    return (
        f"The run did not finish (its log ends at step {last['step']}, {last['minutes']} minutes); the shipped "
        f"weights are its last checkpoint, step {info['step']} (validation loss {info['valid_loss']})."
    )


def model_card(work: Path, src: Path, out: Path) -> str:
    """The model card text: data, licences, sizes, architecture, training, and a scores section to fill."""
    manifest = json.loads((work / "data" / "manifest.json").read_text(encoding="utf-8"))
    info = json.loads((src / "training.json").read_text(encoding="utf-8"))
    config = info["config"]
    log = [json.loads(line) for line in (work / "model" / LOG_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    checkpoints = [r for r in log if "valid_loss" in r]
    own, swapped = source_dependence(src, work)
    command = (work / "command.txt").read_text(encoding="utf-8").strip()
    excluded = ", ".join(f"{e['name']} {e['version']} ({e['licence']})" for e in manifest["excluded_distributions"])
    curve = "\n".join(
        f"| {r['step']} | {r['minutes']} | {r.get('loss', '')} | {r['valid_loss']} | {r.get('valid_loss_swapped', '')} |"
        for r in checkpoints
    )
    pairs, modules = manifest["pairs"], manifest["modules"]
    return f"""# Embedded summarizer

A compact CodeT5-architecture model (`T5ForConditionalGeneration`) that writes a one-sentence
summary of a Python function, meant as the offline default for hover summaries and "Generate
docstring": trained by this project's own reproducible recipe (`quantize/summarizer/`) from
permissively licensed Python code that is installed on the machine, on one CPU thread, and shipped as
CTranslate2 {QUANTIZATION} files ({directory_size(out) / 1e6:.1f} MB on disk).

{_status(own, swapped)} Real CodeT5 checkpoints (Salesforce/codet5-base-multi-sum, CodeT5+) are
much better where they are available.

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

T5 v1.0 as CodeT5: ReLU feed-forward, tied input/output embeddings, decoding starts from `<pad>`
(id 0). d_model {config['d_model']}, {config['num_heads']} heads of {config['d_kv']}, d_ff {config['d_ff']},
{config['encoder_layers']} encoder and {config['decoder_layers']} decoder layers,
{info['parameters'] / 1e6:.1f}M parameters. Byte-level BPE tokenizer trained on the training
split's code and summaries, vocabulary {config['vocab_size']}, CodeT5's special tokens (`<pad>` 0,
`</s>` 1, `<unk>` 2, `<s>` 3, `<mask>` 4, `<extra_id_0..9>`); the encoder sees `<s> code </s>`,
cut to {config['max_source_tokens']} tokens; targets are at most {config['max_target_tokens']} tokens.

## Training

`{command}` (then `python -m quantize.summarizer convert`), or `python -m quantize.summarizer all`
for data, training and conversion in one go. AdamW (peak learning rate {config['learning_rate']},
weight decay {config['weight_decay']}), {config['warmup_steps']} warmup steps then linear decay to
zero at step {config['steps']}, batch {config['batch_size']}, dropout {config['dropout']}, label
smoothing {config['label_smoothing']}, gradient clipping 1.0, seed {config['seed']}, torch with one
thread. Curriculum: each training example is turned, with a probability falling linearly from
{config['name_copy_start']} to {config['name_copy_end']} over the first {config['name_copy_decay']:.0%} of the steps
(then staying there), into an auxiliary task (`<s> <extra_id_0> code </s>` -> the function name's
words) that makes the decoder read the encoder from the start. Two auxiliary losses on the encoder:
its output averaged over every real position of the batch is pushed to zero (weight
{config['centering_weight']}; mean square per dimension), and a bag-of-words loss (weight {config['bag_of_words_weight']}) asks each
example's pooled output, minus the batch's mean, for its target's words through the tied output layer.
Copy-friendly initialization (`copy_init` {config['copy_init']}): the encoder's sublayer outputs start scaled by
that factor, so the encoder starts by passing its tokens' embeddings through; each decoder cross-attention
starts uniform with identity values and output, so the decoder starts with the mean of the code's token
embeddings in its state, which the tied output layer turns into a preference for the code's own tokens.
Without them the encoder collapsed in every earlier run: T5 has no bias terms, the decoder used the
encoder as one, and the encoder's output became nearly the same vector at every position and for every
function (cosine 0.97-0.99 between two functions' mean outputs), so the decoder never read the code.
{_training_summary(work, info)}
Validation loss (without label smoothing) is measured on the first {config['valid_examples']} validation pairs,
also with each target paired with the next function's code ("swapped").

Does the decoder read the code? Validation loss with each function's own code: {own:.4f}; with
the next function's code instead: {swapped:.4f}
({'it does' if swapped - own > READS_CODE_MARGIN else 'no: the summaries come from the decoder alone, whatever the code'}).

| step | minutes | training loss (last 50 steps, smoothed, both tasks) | validation loss | swapped code |
|---:|---:|---:|---:|---:|
{curve}

## Scores

Smoothed BLEU-4 with the CodeXGLUE code-to-text definition (`bench/bleu.py`, checked against the
official sample: 9.554726113590661), greedy decoding, CTranslate2 {QUANTIZATION}, one thread.

{SCORES_PLACEHOLDER}
"""
