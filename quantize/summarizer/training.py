"""Train the summarizer's encoder and cross-attention on the CPU, on any decoder `Seq2SeqShape` fits.

The decoder, the embeddings and the output projection stay frozen (they are the completion
model's). The delta holds only the trained tensors (`delta.safetensors`); a resume checkpoint
(`resume.pt`: the trained tensors, the optimizer, the step and the log so far) is written every
few minutes, both atomically, so an interrupted run started again with the same command continues
where it stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer

from inference.summarizer_assembly import END_TOKEN, START_TOKEN, SUMMARY_PREFIX
from quantize.summarizer.data import read_jsonl
from quantize.summarizer.extract import Pair
from quantize.summarizer.seq2seq import DecoderSeq2Seq, Seq2SeqShape

DELTA_FILE = "delta.safetensors"
LOG_FILE = "train_log.jsonl"
RESUME_FILE = "resume.pt"

Example = tuple[list[int], list[int]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the defaults are the shipped model's)."""

    encoder_layers: int = 2
    cross_every: int = 3
    cross_start: int = 0
    encoder_mlp_trained: bool = True
    max_source_tokens: int = 256
    max_target_tokens: int = 40
    batch_size: int = 16
    steps: int = 1400
    warmup_steps: int = 60
    cross_learning_rate: float = 1e-3
    encoder_learning_rate: float = 3e-4
    weight_decay: float = 0.01
    seed: int = 1234
    threads: int = 2
    bf16: bool = False  # matrix products in bfloat16 (autocast; the trained tensors and the optimizer stay float32)
    max_minutes: float = 70.0
    valid_every_minutes: float = 10.0
    checkpoint_every_minutes: float = 5.0
    valid_loss_examples: int = 128
    valid_bleu_examples: int = 48
    start_token: str = START_TOKEN
    end_token: str = END_TOKEN
    summary_prefix: str = SUMMARY_PREFIX  # forced after the start token (see SUMMARY_PREFIX)
    init_delta: str = ""  # continue from a trained delta instead of the no-op initialization
    extra_data: str = ""  # another data directory whose train and valid pairs are added (the five-language set)


def encode(tokenizer: Tokenizer, pair: Pair, config: TrainConfig) -> Example:
    """Source: the code's tokens, cut to the budget; target: the summary then the end token."""
    source = tokenizer.encode(pair.code, add_special_tokens=False).ids[: config.max_source_tokens]
    target = tokenizer.encode(pair.summary, add_special_tokens=False).ids[: config.max_target_tokens - 1]
    return source, [*target, tokenizer.token_to_id(config.end_token)]


def batches(examples: list[Example], size: int, rng: random.Random) -> Iterator[list[Example]]:
    """Endless batches of similar source length (less padding), in random order."""
    while True:
        order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), rng.random()))
        groups = [order[i : i + size] for i in range(0, len(order), size)]
        rng.shuffle(groups)
        for group in groups:
            yield [examples[i] for i in group]


def collate(batch: Sequence[Example], start: list[int], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(source, source mask, decoder input, labels): the decoder reads the forced `start` ids then
    the target; labels are -100 where nothing is to be predicted (the forced ids, padding)."""
    src_len = max(len(s) for s, _ in batch)
    tgt_len = max(len(t) for _, t in batch) + len(start) - 1
    source = torch.full((len(batch), src_len), pad_id)
    mask = torch.zeros((len(batch), src_len), dtype=torch.bool)
    target_in = torch.full((len(batch), tgt_len), pad_id)
    labels = torch.full((len(batch), tgt_len), -100)
    for row, (s, t) in enumerate(batch):
        source[row, : len(s)], mask[row, : len(s)] = torch.tensor(s), True
        decoder = [*start, *t[:-1]]
        target_in[row, : len(decoder)] = torch.tensor(decoder)
        labels[row, len(start) - 1 : len(decoder)] = torch.tensor(t)
    return source, mask, target_in, labels


def batch_loss(model: DecoderSeq2Seq, batch: Sequence[Example], start: list[int], pad_id: int) -> torch.Tensor:
    """Mean cross-entropy of the target tokens (logits only where a token is predicted: the
    vocabulary projection is the largest matrix of a small model)."""
    source, mask, target_in, labels = collate(batch, start, pad_id)
    memory, memory_mask = model.encode(source, mask)
    states = model.decode_states(target_in, memory, memory_mask)
    scored = labels != -100
    return F.cross_entropy(model.logits(states[scored]), labels[scored])


def learning_scale(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_delta(model: DecoderSeq2Seq, out_dir: Path, info: dict, start_token: str = START_TOKEN,
               end_token: str = END_TOKEN, summary_prefix: str = SUMMARY_PREFIX) -> Path:
    """Write the trained tensors and their metadata atomically (temporary file, then rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = dict(model.named_parameters())
    tensors = {name: params[name].detach().contiguous().clone() for name in model.trainable_names()}
    metadata = {"shape": json.dumps(asdict(model.shape)), "start_token": start_token, "end_token": end_token,
                "summary_prefix": summary_prefix, "info": json.dumps(info)}
    tmp = out_dir / f".{DELTA_FILE}.tmp"
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, out_dir / DELTA_FILE)
    return out_dir / DELTA_FILE


def validate(model: DecoderSeq2Seq, tokenizer: Tokenizer, loss_examples: list[Example], bleu_pairs: list[Pair],
             config: TrainConfig, start: list[int], end_id: int, pad_id: int) -> dict:
    from inference.summary.bleu import sentence_bleu

    model.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
        losses = [float(batch_loss(model, loss_examples[i : i + 16], start, pad_id))
                  for i in range(0, len(loss_examples), 16)]
        bleus = []
        for pair in bleu_pairs:
            source = encode(tokenizer, pair, config)[0]
            hypothesis = tokenizer.decode(model.greedy(source, start, end_id))
            bleus.append(sentence_bleu([pair.summary], hypothesis))
    model.train()
    scores = {"valid_loss": sum(losses) / len(losses)}
    return scores | ({"valid_bleu": 100 * sum(bleus) / len(bleus)} if bleus else {})


def load_model(base: Path, config: TrainConfig, tokenizer_dir: Path) -> DecoderSeq2Seq:
    """The untrained summarizer around the decoder in `base` (a GGUF file or a transformers
    directory); its tokenizer is written to `tokenizer_dir`."""
    from inference.summarizer_assembly import read_checkpoint

    checkpoint = read_checkpoint(base)
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save_tokenizer(tokenizer_dir)
    shape = Seq2SeqShape.from_config(checkpoint.config, encoder_layers=config.encoder_layers,
                                     cross_every=config.cross_every, cross_start=config.cross_start,
                                     encoder_mlp_trained=config.encoder_mlp_trained)
    return DecoderSeq2Seq.from_decoder(checkpoint.weights, shape)


def _save_resume(path: Path, model: DecoderSeq2Seq, optimizer: torch.optim.Optimizer, step: int, minutes: float) -> None:
    params = dict(model.named_parameters())
    state = {"trained": {n: params[n].detach().clone() for n in model.trainable_names()},
             "optimizer": optimizer.state_dict(), "step": step, "minutes": minutes}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def split_pairs(data_dir: Path, extra_data: str, split: str) -> list[Pair]:
    """The pairs of one split of `data_dir`, then those of `extra_data`'s (when given)."""
    pairs = read_jsonl(data_dir / f"{split}.jsonl")
    return pairs + read_jsonl(Path(extra_data) / f"{split}.jsonl") if extra_data else pairs


def train(base: Path, data_dir: Path, out_dir: Path, config: TrainConfig, log: callable = print) -> Path:
    """Train from the completion model `base` (a GGUF file or a transformers directory) on `data_dir`'s
    pairs; continue from `out_dir`'s resume checkpoint if there is one (a run with the same config)."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = random.Random(config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(Path(base), config, out_dir / "tokenizer")
    tokenizer = Tokenizer.from_file(str(out_dir / "tokenizer" / "tokenizer.json"))
    end_id = tokenizer.token_to_id(config.end_token)
    start = [tokenizer.token_to_id(config.start_token), *tokenizer.encode(config.summary_prefix, add_special_tokens=False).ids]
    pad_id = end_id
    if config.init_delta:
        from safetensors.torch import load_file

        trained = load_file(config.init_delta)
        missing = set(model.trainable_names()) - set(trained)
        if missing:
            raise ValueError(f"{config.init_delta} lacks {sorted(missing)[:3]}")
        model.load_state_dict(trained, strict=False)
    model.freeze_decoder()
    model.train()
    train_examples = [encode(tokenizer, p, config) for p in split_pairs(data_dir, config.extra_data, "train")]
    valid_pairs = split_pairs(data_dir, config.extra_data, "valid")
    rng.shuffle(valid_pairs)
    loss_examples = [encode(tokenizer, p, config) for p in valid_pairs[: config.valid_loss_examples]]
    bleu_pairs = valid_pairs[config.valid_loss_examples : config.valid_loss_examples + config.valid_bleu_examples]
    groups = [
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder")],
         "lr": config.encoder_learning_rate},
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder")],
         "lr": config.cross_learning_rate},
    ]
    base_rates = [g["lr"] for g in groups]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    log_path, resume_path = out_dir / LOG_FILE, out_dir / RESUME_FILE
    info = {"config": asdict(config), "train_examples": len(train_examples), "base": str(base)}

    def record(entry: dict) -> None:
        with log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        log(json.dumps(entry))

    done_steps, done_minutes = 0, 0.0
    if resume_path.is_file():
        state = torch.load(resume_path, weights_only=True)
        model.load_state_dict(state["trained"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        done_steps, done_minutes = state["step"], state["minutes"]
        log(f"resuming at step {done_steps} ({done_minutes:.1f} minutes done)")
    else:
        log_path.unlink(missing_ok=True)
        record({"step": 0, **validate(model, tokenizer, loss_examples, bleu_pairs, config, start, end_id, pad_id)})
    if done_steps >= config.steps:
        return out_dir / DELTA_FILE
    stream = batches(train_examples, config.batch_size, rng)
    for _ in range(done_steps):  # the same batches as an uninterrupted run
        next(stream)
    began = last_valid = last_checkpoint = time.monotonic()
    running: list[float] = []
    for step, batch in enumerate(stream, start=done_steps + 1):
        scale = learning_scale(step - 1, config)
        for group, rate in zip(optimizer.param_groups, base_rates):
            group["lr"] = rate * scale
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            loss = batch_loss(model, batch, start, pad_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running.append(loss.item())
        now = time.monotonic()
        minutes = done_minutes + (now - began) / 60
        done = step >= config.steps or minutes >= config.max_minutes
        if done or now - last_valid >= 60 * config.valid_every_minutes:
            last_valid = now
            entry = {"step": step, "minutes": round(minutes, 1), "train_loss": sum(running) / len(running),
                     **validate(model, tokenizer, loss_examples, bleu_pairs, config, start, end_id, pad_id)}
            running = []
            record(entry)
            save_delta(model, out_dir, {**info, "steps": step, "minutes": round(minutes, 1), **entry},
                       config.start_token, config.end_token, config.summary_prefix)
        if done or now - last_checkpoint >= 60 * config.checkpoint_every_minutes:
            last_checkpoint = now
            _save_resume(resume_path, model, optimizer, step, minutes)
        if done:
            break
    return out_dir / DELTA_FILE
