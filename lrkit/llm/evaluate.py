"""Perplexity and bits per byte with a sliding window, and sampling with the KV cache."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import KVCache, Llama
from .tokenizer import ByteTokenizer

__all__ = ["Perplexity", "perplexity", "generate"]


@dataclass
class Perplexity:
    """Result of :func:`perplexity`. With byte tokens, ``bits_per_byte = nll / ln 2``."""

    perplexity: float
    bits_per_byte: float
    nll: float  # mean negative log-likelihood per token, in nats
    tokens: int  # tokens scored


def _as_ids(text_or_ids) -> torch.Tensor:
    if isinstance(text_or_ids, str | bytes):
        return torch.tensor(ByteTokenizer().encode(text_or_ids), dtype=torch.long)
    return torch.as_tensor(text_or_ids).long().flatten()


@torch.no_grad()
def perplexity(
    model: Llama,
    text_or_ids,
    *,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> Perplexity:
    """Perplexity of ``model`` on a text (or token ids), by a sliding window.

    Windows of ``context`` tokens (default: the model's maximum) start every ``stride``
    tokens (default ``context // 2``); each token is scored once, in the first window that
    has it among its last ``stride`` positions (the first window scores all its tokens after
    the first), so most tokens see at least ``context - stride`` tokens of history.
    """
    from tqdm.auto import tqdm

    ids = _as_ids(text_or_ids)
    ctx = context or model.config.max_position_embeddings
    stride = stride or ctx // 2
    if not 1 <= stride <= ctx <= model.config.max_position_embeddings:
        raise ValueError(
            f"need 1 <= stride (={stride}) <= context (={ctx}) <= "
            f"max_position_embeddings (={model.config.max_position_embeddings})"
        )
    if ids.numel() < 2:
        raise ValueError("need at least 2 tokens to score")
    device = next(model.parameters()).device
    # (start, first scored position within the window) for every window
    windows, scored_to = [], 1
    start = 0
    while scored_to < ids.numel():
        # keep at least one token of history inside the window, and end at the last token
        start = max(0, min(start, scored_to - 1, ids.numel() - ctx))
        end = min(start + ctx, ids.numel())
        windows.append((start, scored_to - start))
        scored_to = end
        start += stride
    total, count = 0.0, 0
    batches = range(0, len(windows), batch_size)
    for b in tqdm(batches, disable=not progress, desc="perplexity"):
        group = windows[b : b + batch_size]
        length = min(ctx, ids.numel())
        x = torch.stack([ids[s : s + length] for s, _ in group]).to(device)  # (B, T)
        logp = F.log_softmax(model(x[:, :-1]).float(), dim=-1)  # (B, T-1, V)
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)  # (B, T-1): token t+1 given <= t
        for row, (_, first) in enumerate(group):
            total += float(nll[row, first - 1 :].sum())
            count += length - first
    mean = total / count
    return Perplexity(math.exp(mean), mean / math.log(2), mean, count)


@torch.no_grad()
def generate(
    model: Llama,
    prompt,
    *,
    max_new_tokens: int = 200,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed=None,
    use_cache: bool = True,
):
    """Continue ``prompt`` (a string, or token ids) by sampling, with the KV cache.

    ``temperature=0`` picks the most likely token (greedy). ``top_k`` samples among the k
    most likely tokens only. A prompt that leaves no room for ``max_new_tokens`` in the
    context is truncated to its last tokens, with a warning. Returns a string for a string
    prompt, else a tensor of ids (prompt and continuation).
    """
    from ..core._random import make_generator

    ctx = model.config.max_position_embeddings
    if not 1 <= max_new_tokens < ctx:
        raise ValueError(f"max_new_tokens (={max_new_tokens}) must be in 1..{ctx - 1}")
    if temperature < 0:
        raise ValueError(f"temperature (={temperature}) must be >= 0")
    tok = ByteTokenizer()
    ids = _as_ids(prompt)
    if ids.numel() + max_new_tokens > ctx:
        keep = ctx - max_new_tokens
        warnings.warn(
            f"prompt of {ids.numel()} tokens + max_new_tokens={max_new_tokens} exceeds the "
            f"context ({ctx}); keeping the last {keep} prompt tokens",
            UserWarning,
            stacklevel=2,
        )
        ids = ids[-keep:]
    if ids.numel() == 0:
        ids = torch.tensor([tok.bos_token_id])
    device = next(model.parameters()).device
    gen = make_generator(seed, device)
    out = ids.to(device)[None]  # (1, T)
    cache = KVCache() if use_cache else None
    logits = model(out, cache)[:, -1]  # (1, V)
    for _ in range(max_new_tokens):
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            scaled = logits.float() / temperature
            if top_k is not None:
                kth = torch.topk(scaled, min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(scaled, dim=-1), 1, generator=gen)  # (1, 1)
        out = torch.cat([out, nxt], dim=1)
        if out.shape[1] >= ctx:
            break
        logits = model(nxt, cache)[:, -1] if use_cache else model(out)[:, -1]
    return tok.decode(out[0].tolist()) if isinstance(prompt, str) else out[0].cpu()
