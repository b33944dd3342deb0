"""Train the course's small Llama on the shipped corpus, resumably.

    python -m lrkit.llm.train --out runs/tiny            # train (resumes if --out has a checkpoint)
    python -m lrkit.llm.train --out /tmp/smoke --smoke   # a few steps of a tiny model

Deterministic: the batch of step s is drawn from a generator seeded with (seed, s), so a run
that resumes from a checkpoint sees the same data as one that never stopped. AdamW with
linear warmup and cosine decay to ``min_lr``, gradient clipping, periodic held-out
evaluation (bits per byte on a fixed slice of the held-out part, also at every checkpoint),
a checkpoint every ``--ckpt-every`` steps (model, optimizer, step) and a CSV log;
with every checkpoint the model is also written in Hugging Face format (``config.json`` +
``model.safetensors``) to ``--out``, and ``trainer_state.json`` records its step and
held-out bits per byte.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import load_ids
from .evaluate import perplexity
from .model import Llama, LlamaConfig

SMOKE = dict(
    hidden=32,
    layers=2,
    heads=2,
    kv_heads=1,
    intermediate=64,
    context=32,
    batch=4,
    steps=12,
    warmup=2,
    eval_every=6,
    ckpt_every=6,
    eval_tokens=2048,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="run directory (checkpoint, log, final model)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=688)
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=6000, help="total optimizer steps (cosine length)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument(
        "--eval-tokens", type=int, default=65536, help="held-out slice for periodic eval"
    )
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--stop-after", type=int, default=None, help="stop at this step (resume later)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--smoke", action="store_true", help="a tiny model for a few steps (tests, CI)")
    args = p.parse_args(argv)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    return args


def lr_at(step: int, args) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))


def batch_at(step: int, data: torch.Tensor, args) -> torch.Tensor:
    """The batch of step ``step``: ``batch`` random windows of ``context + 1`` bytes."""
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    starts = torch.randint(0, data.numel() - args.context - 1, (args.batch,), generator=g)
    return torch.stack([data[s : s + args.context + 1] for s in starts.tolist()]).long()


def make_model(args) -> Llama:
    torch.manual_seed(args.seed)
    cfg = LlamaConfig(
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.context,
    )
    return Llama(cfg)


def make_optimizer(model: Llama, args) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]  # matrices and embedding
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]  # norm weights
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)


SHAPE_KEYS = ("hidden", "layers", "heads", "kv_heads", "intermediate", "context", "seed")


def train(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out / "checkpoint.pt", out / "log.csv"
    data = load_ids("train")
    heldout = load_ids("heldout")[: args.eval_tokens]
    model = make_model(args)
    opt = make_optimizer(model, args)
    step, tokens, elapsed = 0, 0, 0.0
    if ckpt_path.is_file():  # resume
        ckpt = torch.load(ckpt_path, weights_only=False)
        for k in SHAPE_KEYS:
            if ckpt["args"][k] != getattr(args, k):
                raise ValueError(
                    f"--{k.replace('_', '-')}={getattr(args, k)} differs from the "
                    f"checkpoint's {ckpt['args'][k]}; use another --out"
                )
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, tokens, elapsed = ckpt["step"], ckpt["tokens"], ckpt["elapsed"]
        print(f"resumed at step {step} ({tokens:,} tokens, {elapsed / 60:.1f} min)")
    (out / "args.json").write_text(json.dumps(vars(args), indent=1) + "\n")
    if log_path.is_file():  # rows written after the checkpoint are redone: drop them
        rows = list(csv.reader(open(log_path, newline="")))
        rows = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    new_log = not log_path.is_file() or log_path.stat().st_size == 0
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "tokens", "lr", "train_loss", "heldout_bpb", "elapsed_s"])

    def save_checkpoint(bpb: float):
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "tokens": tokens,
                "elapsed": elapsed,
                "args": vars(args),
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)  # atomic: an interruption never leaves half a checkpoint
        # the latest weights in Hugging Face format, and their step and held-out score;
        # written aside and then renamed, so a reader never sees a half-written file
        staging = out / ".staging"
        model.save_pretrained(staging)
        state = {
            "step": step,
            "tokens": tokens,
            "elapsed_s": round(elapsed, 1),
            "heldout_bpb": bpb,
            "eval_tokens": args.eval_tokens,
        }
        (staging / "trainer_state.json").write_text(json.dumps(state, indent=1) + "\n")
        for name in ("config.json", "model.safetensors", "trainer_state.json"):
            os.replace(staging / name, out / name)

    last = min(args.steps, args.stop_after or args.steps)
    from tqdm.auto import tqdm

    bar = tqdm(total=last, initial=step, desc="train", disable=None)
    loss = None
    model.train()
    while step < last:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        xy = batch_at(step, data, args)  # (B, T+1)
        logits = model(xy[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xy[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        tokens += xy[:, 1:].numel()
        elapsed += time.perf_counter() - t0
        bpb = ""
        checkpoint = step % args.ckpt_every == 0 or step == last
        if step % args.eval_every == 0 or checkpoint:  # every checkpoint has its bpb
            model.eval()
            bpb = perplexity(model, heldout, batch_size=8).bits_per_byte
            model.train()
            bar.set_postfix(loss=f"{loss.item():.3f}", heldout_bpb=f"{bpb:.3f}")
        writer.writerow(
            [
                step,
                tokens,
                f"{lr_at(step - 1, args):.6g}",
                f"{loss.item():.5f}",
                f"{bpb:.5f}" if bpb != "" else "",
                f"{elapsed:.1f}",
            ]
        )
        if checkpoint:
            log.flush()
            save_checkpoint(bpb)
        bar.update(1)
    bar.close()
    log.close()
    model.eval()
    return {
        "step": step,
        "tokens": tokens,
        "elapsed_s": elapsed,
        "loss": loss.item() if loss is not None else None,
    }


def main(argv=None):
    result = train(parse_args(argv))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
