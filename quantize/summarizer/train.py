"""Train the compact T5 summarizer on one CPU thread, with periodic checkpoints and a loss log."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from quantize.summarizer.extract import Pair

IGNORE_INDEX = -100
NAME_TASK_TOKEN = "<extra_id_0>"
FINAL_DIR = "final"
CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Model shape and optimisation settings (the defaults are the shipped model's)."""

    vocab_size: int = 8192
    d_model: int = 256
    d_kv: int = 32
    num_heads: int = 8
    d_ff: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 2
    dropout: float = 0.0
    max_source_tokens: int = 128
    max_target_tokens: int = 48
    batch_size: int = 16
    steps: int = 2400
    warmup_steps: int = 150
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    bag_of_words_weight: float = 0.5
    centering_weight: float = 1.0
    copy_init: float = 0.1  # 0: plain T5 initialization; else see `copy_friendly_init`
    seed: int = 1234
    max_minutes: float = 45.0
    checkpoint_minutes: float = 4.0
    valid_examples: int = 256
    name_copy_start: float = 0.5
    name_copy_end: float = 0.1
    name_copy_decay: float = 0.4


Example = tuple[list[int], list[int]]
Task = tuple[Example, Example | None]  # (summarization, name copy or None)


def encode_pair(tokenizer: PreTrainedTokenizerFast, pair: Pair, config: TrainConfig) -> Example:
    """Source `<s> code </s>` cut like the server cuts it (keep the final `</s>`); target `summary </s>`."""
    source = tokenizer(pair.code, add_special_tokens=True).input_ids
    if len(source) > config.max_source_tokens:
        source = source[: config.max_source_tokens - 1] + source[-1:]
    target = tokenizer(pair.summary, add_special_tokens=False).input_ids[: config.max_target_tokens - 1]
    return source, [*target, tokenizer.eos_token_id]


def name_words(name: str) -> str:
    """The words of an identifier, lowercased: `getUser_name` -> "get user name"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return " ".join(w.lower() for w in re.split(r"[_\s]+", spaced) if w)


def name_copy_example(tokenizer: PreTrainedTokenizerFast, pair: Pair, config: TrainConfig) -> Example:
    """Auxiliary task: `<s> <extra_id_0> code </s>` -> the function name's words.

    A from-scratch encoder-decoder first learns a language model of summaries and ignores the
    encoder; copying the name (whose pieces are shared tokens, see the tokenizer) makes attending
    to the code pay off from the first steps. The marker keeps it apart from summarization; the
    source keeps the summarization source's length (its last code token makes room for the marker).
    """
    source, _ = encode_pair(tokenizer, pair, config)
    source = [source[0], tokenizer.convert_tokens_to_ids(NAME_TASK_TOKEN), *source[1:-2], source[-1]]
    target = tokenizer(name_words(pair.name), add_special_tokens=False).input_ids[: config.max_target_tokens - 1]
    return source, [*target, tokenizer.eos_token_id]


def build_model(tokenizer: PreTrainedTokenizerFast, config: TrainConfig) -> T5ForConditionalGeneration:
    """A CodeT5-shaped T5 v1.0: ReLU FFN, tied embeddings, decoding starts from `<pad>` (id 0)."""
    t5 = T5Config(
        vocab_size=len(tokenizer),
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.encoder_layers,
        num_decoder_layers=config.decoder_layers,
        num_heads=config.num_heads,
        feed_forward_proj="relu",
        dropout_rate=config.dropout,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        n_positions=config.max_source_tokens,  # recorded as the converted model's context length
    )
    model = T5ForConditionalGeneration(t5)
    if config.copy_init:
        copy_friendly_init(model, config.copy_init)
    return model


@torch.no_grad()
def copy_friendly_init(model: T5ForConditionalGeneration, residual_scale: float) -> None:
    """Start with a decoder that already reads the code: a copy prior instead of nothing.

    The encoder's sublayer outputs are scaled by `residual_scale` (small), so its output starts as
    the tokens' own embeddings; each decoder cross-attention starts uniform (zero queries) with
    identity values and output, so it adds the mean of the code's token embeddings to the decoder
    state, and the tied output layer then favours the code's own tokens (identifiers reused in the
    summary). Training refines this path instead of having to discover it, which a from-scratch model
    here never did in the CPU budget.
    """
    for block in model.encoder.block:
        block.layer[0].SelfAttention.o.weight.mul_(residual_scale)
        block.layer[1].DenseReluDense.wo.weight.mul_(residual_scale)
    for block in model.decoder.block:
        attention = block.layer[1].EncDecAttention
        attention.q.weight.zero_()
        attention.v.weight.copy_(torch.eye(*attention.v.weight.shape))
        attention.o.weight.copy_(torch.eye(*attention.o.weight.shape))


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padded label positions are ignored by the loss."""
    source_len = max(len(s) for s, _ in examples)
    target_len = max(len(t) for _, t in examples)
    input_ids = torch.full((len(examples), source_len), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), target_len), IGNORE_INDEX, dtype=torch.long)
    for row, (source, target) in enumerate(examples):
        input_ids[row, : len(source)] = torch.tensor(source)
        labels[row, : len(target)] = torch.tensor(target)
    return {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": labels}


def batches(tasks: list[Task], batch_size: int, rng: random.Random) -> Iterator[list[Task]]:
    """Endless shuffled batches of similar source lengths (less padding), reshuffled every epoch."""
    while True:
        order = list(tasks)
        rng.shuffle(order)
        chunk = batch_size * 50
        epoch = []
        for start in range(0, len(order), chunk):
            group = sorted(order[start : start + chunk], key=lambda t: len(t[0][0]))
            epoch.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
        rng.shuffle(epoch)
        yield from epoch


def name_copy_share(step: int, config: TrainConfig) -> float:
    """Curriculum: the share of examples turned into the name-copy task, falling linearly from
    `name_copy_start` to `name_copy_end` over the first `name_copy_decay` of the steps."""
    decay_steps = max(1, round(config.name_copy_decay * config.steps))
    progress = min(1.0, step / decay_steps)
    return config.name_copy_start + (config.name_copy_end - config.name_copy_start) * progress


def pick_tasks(batch: Sequence[Task], share: float, rng: random.Random) -> list[Example]:
    """Each example of `batch` as its name-copy form with probability `share`, else its summary."""
    return [copy if copy is not None and rng.random() < share else summary for summary, copy in batch]


def pooled_states(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of each example's encoder states over its real (not padded) positions."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1)


def centering_loss(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean square (per dimension) of the encoder output averaged over every real position of the batch.

    Without it a from-scratch encoder collapses: T5 has no bias terms, so the decoder uses the
    encoder as one, and the encoder output becomes nearly the same vector at every position and for
    every function (measured: cosine 0.97-0.99 between two functions' mean outputs, the constant
    part 90% of the residual norm); the decoder then never learns to read the code. Kept centred,
    the encoder output carries only what differs between tokens and functions.
    """
    mask = attention_mask.bool()
    return states[mask].mean(0).pow(2).mean()


def bag_of_words_loss(model: T5ForConditionalGeneration, states: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of each target token under one distribution predicted, through
    the tied output layer, from the example's pooled encoder output minus the batch's mean of it:
    the encoder is asked for what sets this function's summary apart, not for the common words."""
    pooled = pooled_states(states, attention_mask)
    pooled = pooled - pooled.mean(0, keepdim=True)
    if model.config.tie_word_embeddings:
        pooled = pooled * model.config.d_model**-0.5
    log_probs = torch.log_softmax(model.lm_head(pooled), dim=-1)
    keep = (labels != IGNORE_INDEX) & (labels != model.config.eos_token_id)
    picked = log_probs.gather(1, labels.clamp(min=0)) * keep
    return -(picked.sum(1) / keep.sum(1).clamp(min=1)).mean()


def training_loss(model: T5ForConditionalGeneration, batch: dict[str, torch.Tensor], config: TrainConfig) -> torch.Tensor:
    """Label-smoothed cross-entropy of the targets, plus the weighted centering and bag-of-words losses of the encoder."""
    encoded = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = model(encoder_outputs=encoded, attention_mask=batch["attention_mask"], labels=batch["labels"]).logits
    loss = torch.nn.functional.cross_entropy(
        logits.view(-1, logits.size(-1)), batch["labels"].view(-1), ignore_index=IGNORE_INDEX, label_smoothing=config.label_smoothing
    )
    states, mask = encoded.last_hidden_state, batch["attention_mask"]
    if config.centering_weight:
        loss = loss + config.centering_weight * centering_loss(states, mask)
    if config.bag_of_words_weight:
        loss = loss + config.bag_of_words_weight * bag_of_words_loss(model, states, mask, batch["labels"])
    return loss


def swapped_sources(examples: list[Example]) -> list[Example]:
    """Each target paired with the next example's source: the loss a model that ignores the code gets."""
    return [(examples[(i + 1) % len(examples)][0], target) for i, (_, target) in enumerate(examples)]


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warmup to the peak, then linear decay to zero at `config.steps`."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    return config.learning_rate * max(0.0, (config.steps - step) / max(1, config.steps - config.warmup_steps))


@torch.no_grad()
def mean_loss(model: T5ForConditionalGeneration, examples: list[Example], pad_id: int, batch_size: int) -> float:
    """Token-weighted mean cross-entropy over `examples` (evaluation mode)."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start : start + batch_size], pad_id)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        total += float(model(**batch).loss) * n
        tokens += n
    model.train()
    return total / max(1, tokens)


def _save(model: T5ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast, out: Path, info: dict) -> None:
    """Save model + tokenizer + `training.json` to `out`, replacing it only once fully written."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def train(
    train_pairs: list[Pair],
    valid_pairs: list[Pair],
    tokenizer: PreTrainedTokenizerFast,
    config: TrainConfig,
    out_dir: Path,
    log=print,
) -> Path:
    """Train; checkpoint to `out_dir/checkpoint` every few minutes, the finished model to `out_dir/final`.

    Stops early (keeping what it has, in `final`) when `config.max_minutes` is reached.
    """
    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [
        (encode_pair(tokenizer, p, config), name_copy_example(tokenizer, p, config) if name_words(p.name) else None)
        for p in train_pairs
    ]
    valid_examples = [encode_pair(tokenizer, p, config) for p in valid_pairs[: config.valid_examples]]
    valid_swapped = swapped_sources(valid_examples)
    model = build_model(tokenizer, config)
    parameters = sum(p.numel() for p in model.parameters())
    log(f"{len(tasks)} training pairs, {parameters / 1e6:.1f}M parameters")
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    pad = tokenizer.pad_token_id
    started = last_checkpoint = time.monotonic()
    log_path = out_dir / LOG_FILE
    log_file = log_path.open("w", encoding="utf-8")
    running, seen, step = 0.0, 0, 0
    stream = batches(tasks, config.batch_size, rng)
    model.train()
    info = {"config": asdict(config), "parameters": parameters, "train_examples": len(tasks)}
    try:
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            examples = pick_tasks(next(stream), name_copy_share(step, config), rng)
            loss = training_loss(model, collate(examples, pad), config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            running += loss.item()
            seen += 1
            now = time.monotonic()
            minutes = (now - started) / 60
            checkpoint_due = now - last_checkpoint >= config.checkpoint_minutes * 60
            out_of_time = minutes >= config.max_minutes
            if (step + 1) % 50 == 0 or checkpoint_due or out_of_time:
                record = {"step": step + 1, "loss": round(running / seen, 4), "lr": learning_rate(step, config), "minutes": round(minutes, 2)}
                running, seen = 0.0, 0
                if checkpoint_due or out_of_time:
                    record["valid_loss"] = round(mean_loss(model, valid_examples, pad, config.batch_size), 4)
                    record["valid_loss_swapped"] = round(mean_loss(model, valid_swapped, pad, config.batch_size), 4)
                    _save(model, tokenizer, out_dir / CHECKPOINT_DIR, {**info, **record})
                    last_checkpoint = time.monotonic()
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                log(json.dumps(record))
            if out_of_time:
                break
        record = {
            "step": step + 1,
            "minutes": round((time.monotonic() - started) / 60, 2),
            "valid_loss": round(mean_loss(model, valid_examples, pad, config.batch_size), 4),
            "valid_loss_swapped": round(mean_loss(model, valid_swapped, pad, config.batch_size), 4),
            "stopped_early": step + 1 < config.steps,
        }
        log_file.write(json.dumps({**record, "final": True}) + "\n")
        log(json.dumps(record))
        _save(model, tokenizer, out_dir / FINAL_DIR, {**info, **record})
    finally:
        log_file.close()
    return out_dir / FINAL_DIR
