"""A small bidirectional byte encoder that fills in masked bytes, with full or Linformer attention.

The masked-language-model objective of BERT (Devlin et al. 2019), on bytes: in each window
of ``seq_len`` bytes, 15% of the positions (``rate``) are replaced by a mask token (id 256)
and the model predicts the original byte there; the loss is the cross-entropy at the masked
positions only. Unlike BERT, every chosen byte becomes the mask token (no random or kept
bytes), and exactly ``round(rate * seq_len)`` positions are chosen in every window, so no
batch is ever without a target.

The encoder is pre-norm Transformer blocks over learned position embeddings, its attention
either ``"full"`` (softmax over all n positions, ``scaled_dot_product_attention``) or
``"linformer"`` (:class:`~lrkit.nn.LinformerSelfAttention`, k projected rows). Nothing is
causal: every position sees every other, which is what Linformer needs.

:func:`train_encoder` trains it the way ``lrkit.llm.train`` trains the Llama: the batch and
the mask of step s come from a generator seeded with (seed, s), so a run resumed from its
checkpoint (``out=``) sees what a run that never stopped saw; AdamW, linear warmup and
cosine decay, gradient clipping, a progress bar. The data is a tensor of byte ids (the
corpus of ``lrkit.llm.load_ids``, read by the caller: ``nn`` does not import ``llm``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.functional import cross_entropy
from torch.nn.functional import scaled_dot_product_attention as sdpa

from ..core._params import checked
from ..core._random import make_generator
from .linformer import LinformerSelfAttention

__all__ = ["ByteEncoder", "mask_bytes", "masked_byte_loss", "train_encoder", "evaluate_encoder"]

MASK = 256  # the mask token's id, after the 256 byte values
IGNORE = -100  # target at positions that are not masked (cross_entropy's ignore_index)


class FullSelfAttention(nn.Module):
    """Bidirectional multi-head softmax attention over all n positions, with the linear maps
    of :class:`LinformerSelfAttention` (no bias on q, k, v; a bias on the output)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, n, dim = x.shape

        def split(t):
            return t.view(B, n, self.heads, dim // self.heads).transpose(1, 2)  # (B, h, n, d_h)

        out = sdpa(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))  # (B, h, n, d_h)
        return self.to_out(out.transpose(1, 2).reshape(B, n, dim))  # (B, n, dim)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(LN x), then x + MLP(LN x)."""

    def __init__(self, dim: int, attention: nn.Module):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), attention
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ByteEncoder(nn.Module):
    """Bytes (batch, n) -> logits over the 256 byte values (batch, n, 256), bidirectional.

    ``attention``: ``"full"`` or ``"linformer"`` (then ``k`` and ``share`` as in
    :class:`LinformerSelfAttention`). ``seq_len``: the longest input, the length of the
    position embeddings and of Linformer's projections. The output layer shares the byte
    rows of the embedding. ``seed``: int or None; the global random state is left as it was.
    """

    def __init__(
        self, *, dim: int = 128, layers: int = 2, heads: int = 4, seq_len: int = 256,
        attention: str = "full", k: int = 64, share: str = "headwise", seed: int | None = 0,
    ):  # fmt: skip
        super().__init__()
        if attention not in ("full", "linformer"):
            raise ValueError(f"attention (={attention!r}) must be one of 'full', 'linformer'")
        if dim % heads:
            raise ValueError(f"heads (={heads}) must divide dim (={dim})")
        self.config = dict(
            dim=dim, layers=layers, heads=heads, seq_len=seq_len, attention=attention, k=k,
            share=share,
        )  # fmt: skip
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global generator
            if seed is not None:
                torch.manual_seed(seed)

            def attn():
                if attention == "full":
                    return FullSelfAttention(dim, heads)
                sub = int(torch.randint(2**62, ()))  # each layer its own E, F, from the seed
                return LinformerSelfAttention(dim, seq_len, k=k, heads=heads, share=share, seed=sub)

            self.embed = nn.Embedding(257, dim)  # 256 bytes and the mask token
            # small, as GPT-2 draws them: the output layer reuses these rows, and logits
            # near 0 start the loss near ln 256 (every byte equally likely)
            nn.init.normal_(self.embed.weight, std=0.02)
            self.pos = nn.Parameter(0.02 * torch.randn(seq_len, dim))  # (seq_len, dim)
            self.blocks = nn.ModuleList(Block(dim, attn()) for _ in range(layers))
            self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32, torch.uint8):
            raise ValueError(f"ids must be (batch, n) integers; got {ids.dtype} {tuple(ids.shape)}")
        n = ids.shape[1]
        if not 1 <= n <= self.pos.shape[0]:
            raise ValueError(f"n (={n}), the length of ids, must be in [1, {self.pos.shape[0]}]")
        x = self.embed(ids.long()) + self.pos[:n]  # (B, n, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x) @ self.embed.weight[:256].T  # (B, n, 256)


# -- the objective ------------------------------------------------------------------------------
def _check_ids(ids) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"ids must be an integer torch.Tensor; got {ids!r:.60}")
    if ids.ndim != 2 or ids.numel() == 0:
        raise ValueError(f"ids must have shape (batch, n), not empty; got {tuple(ids.shape)}")
    if int(ids.min()) < 0 or int(ids.max()) > 255:
        raise ValueError(
            f"ids must be bytes, in [0, 255]; got [{int(ids.min())}, {int(ids.max())}]"
        )
    return ids.long()


@checked
def mask_bytes(ids: torch.Tensor, *, rate: float = 0.15, seed=None):
    """``(inputs, targets)``: ``round(rate n)`` positions of each row (at least one) set to
    the mask token in ``inputs``; ``targets`` holds their bytes there and -100 elsewhere.
    ``ids``: (batch, n) bytes, never modified. ``seed``: int, torch.Generator or None."""
    ids = _check_ids(ids)
    B, n = ids.shape
    m = max(1, round(rate * n))
    g = make_generator(seed, ids.device)
    chosen = torch.rand(B, n, generator=g, device=ids.device).argsort(dim=1)[:, :m]  # (B, m)
    where = torch.zeros(B, n, dtype=torch.bool, device=ids.device).scatter_(1, chosen, True)
    inputs = ids.masked_fill(where, MASK)  # (B, n)
    targets = ids.masked_fill(~where, IGNORE)  # (B, n)
    return inputs, targets


@checked
def masked_byte_loss(model: nn.Module, ids: torch.Tensor, *, rate: float = 0.15, seed=None):
    """Cross-entropy (nats per masked byte) of ``model``'s predictions at the masked positions
    of ``ids`` (batch, n), masked by :func:`mask_bytes`; differentiable."""
    inputs, targets = mask_bytes(ids, rate=rate, seed=seed)
    logits = model(inputs)  # (B, n, 256)
    return cross_entropy(logits.reshape(-1, 256), targets.reshape(-1), ignore_index=IGNORE)


def _windows(data: torch.Tensor, starts: torch.Tensor, seq_len: int) -> torch.Tensor:
    return torch.stack([data[s : s + seq_len] for s in starts.tolist()]).long()  # (B, seq_len)


def _check_data(data, seq_len: int, name: str) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or data.ndim != 1 or data.is_floating_point():
        raise TypeError(f"{name} must be a 1-D tensor of byte ids (lrkit.llm.load_ids)")
    if data.numel() <= seq_len:
        raise ValueError(f"{name} has {data.numel()} bytes; it needs more than seq_len = {seq_len}")
    return data


@checked
def evaluate_encoder(
    model: ByteEncoder, data: torch.Tensor, *, batches: int = 4, batch_size: int = 16,
    rate: float = 0.15, seed: int = 0,
) -> float:  # fmt: skip
    """Mean masked-byte loss (nats) on ``batches * batch_size`` windows of ``data`` spread
    evenly over it, with masks from ``seed``: the same positions and masks at every call."""
    seq_len = model.config["seq_len"]
    data = _check_data(data, seq_len, "data")
    count = batches * batch_size
    starts = torch.linspace(0, data.numel() - seq_len - 1, count).long()
    was_training = model.training
    model.eval()
    total, dev = 0.0, next(model.parameters()).device
    with torch.no_grad():
        for b in range(batches):
            ids = _windows(data, starts[b * batch_size : (b + 1) * batch_size], seq_len)
            total += float(masked_byte_loss(model, ids.to(dev), rate=rate, seed=seed + b))
    model.train(was_training)
    return total / batches


@checked
def train_encoder(
    model: ByteEncoder, data: torch.Tensor, *, steps: int, batch_size: int = 16,
    lr: float = 1e-3, warmup: int = 10, rate: float = 0.15, seed: int = 0, heldout=None,
    eval_every: int = 50, out=None, stop_after: int | None = None, progress: bool = True,
) -> dict:  # fmt: skip
    """Train ``model`` in place for ``steps`` AdamW steps on random windows of ``data``.

    Step s reads ``batch_size`` windows of ``seq_len`` bytes and masks them, both drawn from
    ``seed`` and s; the learning rate rises linearly over ``warmup`` steps and falls along a
    cosine to lr / 10 at ``steps``; gradients are clipped to norm 1. With ``heldout``
    (byte ids), :func:`evaluate_encoder` runs every ``eval_every`` steps and at the end.
    With ``out`` (a folder), a checkpoint (model, optimizer, step, history) is written every
    ``eval_every`` steps and at the end, and a later call with the same ``out`` resumes from
    it; ``stop_after`` ends this call at that step (the schedule still runs to ``steps``),
    for a run in several sittings. Returns the history: ``step``, ``train_loss`` (per
    step), ``heldout`` ((step, loss) pairs) and ``seconds_per_step`` (the mean over the
    steps run in this call).
    """
    seq_len = model.config["seq_len"]
    data = _check_data(data, seq_len, "data")
    if heldout is not None:
        _check_data(heldout, seq_len, "heldout")
    if warmup > steps:
        raise ValueError(f"warmup (={warmup}) must be <= steps = {steps}")
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    history = {"step": 0, "train_loss": [], "heldout": [], "seconds_per_step": float("nan")}
    ckpt = Path(out) / "checkpoint.pt" if out is not None else None
    if ckpt is not None and ckpt.is_file():  # resume
        state = torch.load(ckpt, weights_only=False, map_location=dev)
        if state["config"] != model.config or state["seed"] != seed:
            raise ValueError(
                f"the checkpoint in {out} is of another run (config {state['config']}, "
                f"seed {state['seed']}); use another out"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history = state["history"]

    def lr_at(step):  # warmup, then cosine from lr to lr / 10
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return lr / 10 + 0.45 * lr * (1 + math.cos(math.pi * t))

    def save():
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "history": history,
             "config": model.config, "seed": seed},
            tmp,
        )  # fmt: skip
        os.replace(tmp, ckpt)  # atomic: an interruption never leaves half a checkpoint

    from tqdm.auto import tqdm

    start, elapsed = history["step"], 0.0
    last = min(steps, stop_after or steps)
    bar = tqdm(total=last, initial=start, desc="train", disable=not progress or None)
    model.train()
    for step in range(start, last):
        t0 = time.perf_counter()
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, data.numel() - seq_len, (batch_size,), generator=g)
        ids = _windows(data, starts, seq_len).to(dev)  # (B, seq_len)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = masked_byte_loss(model, ids, rate=rate, seed=seed * 1_000_003 + step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        elapsed += time.perf_counter() - t0
        history["step"] = step + 1
        history["train_loss"].append(loss.item())
        if (step + 1) % eval_every == 0 or step + 1 == last:
            if heldout is not None:
                history["heldout"].append((step + 1, evaluate_encoder(model, heldout, seed=seed)))
                bar.set_postfix(
                    loss=f"{loss.item():.3f}", heldout=f"{history['heldout'][-1][1]:.3f}"
                )
            if ckpt is not None:
                save()
        bar.update(1)
    bar.close()
    if last > start:
        history["seconds_per_step"] = elapsed / (last - start)
    return history
