"""Perplexity and bits per byte with a sliding window, and sampling with the KV cache."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core._checks import check_positive_int
from ..core._params import checked
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


def _as_ids(text_or_ids, vocab_size: int, name: str) -> torch.Tensor:
    """A text's byte ids, or the given ids checked: integers in 0..vocab_size - 1."""
    if isinstance(text_or_ids, str | bytes):
        ids = torch.tensor(ByteTokenizer().encode(text_or_ids), dtype=torch.long)
    elif isinstance(text_or_ids, torch.Tensor):
        ids = text_or_ids.detach()
    else:
        try:
            arr = np.asarray(text_or_ids)
            ids = torch.as_tensor(arr.astype(arr.dtype.newbyteorder("=")))  # native order
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a str, bytes or integer token ids") from err
    if ids.numel() == 0:  # [] is float to numpy; an empty prompt is fine (generate adds BOS)
        return torch.zeros(0, dtype=torch.long)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(
            f"{name} must hold integer token ids; got dtype {ids.dtype} (a float id would be "
            f"truncated)"
        )
    ids = ids.long().flatten().cpu()
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ValueError(
            f"{name} holds token id {bad}; ids must be in 0..{vocab_size - 1} "
            f"(the model's vocab_size is {vocab_size})"
        )
    return ids


def _optional_int(value, name: str, low: int, high: int, *, none: bool = True) -> int | None:
    """An integer in low..high (bool is not an integer), or None where ``none``."""
    if value is None and none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        kind = "an integer or None" if none else "an integer"
        raise TypeError(f"{name} must be {kind}; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} (={value}) must be in {low}..{high}")
    return int(value)


@torch.no_grad()
@checked
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

    ``model``: lrkit's :class:`Llama`, or any causal LM called as ``model(ids)`` that returns
    the logits or an object with ``.logits`` and has ``config.vocab_size`` and
    ``config.max_position_embeddings`` (a Hugging Face ``LlamaForCausalLM``, compressed or
    not). A text is encoded with the byte tokenizer; give another model's token ids instead
    (``bits_per_byte`` is then bits per token).

    Windows of ``context`` tokens (default: the model's maximum) start every ``stride``
    tokens (default ``context // 2``); each token is scored once, in the first window that
    has it among its last ``stride`` positions (the first window scores all its tokens after
    the first), so most tokens see at least ``context - stride`` tokens of history.
    ``context`` is an integer in 2..max_position_embeddings (a window scores a token from
    the ones before it), ``stride`` one in 1..context, ``batch_size`` (windows per forward
    pass) one >= 1. Token ids must be integers in 0..vocab_size - 1.
    """
    from tqdm.auto import tqdm

    cfg = model.config
    ids = _as_ids(text_or_ids, cfg.vocab_size, "text_or_ids")
    # A window scores token t+1 from tokens <= t, so it needs at least 2 tokens.
    ctx = _optional_int(context, "context", 2, cfg.max_position_embeddings)
    ctx = cfg.max_position_embeddings if ctx is None else ctx
    stride = _optional_int(stride, "stride", 1, ctx)
    stride = max(ctx // 2, 1) if stride is None else stride
    batch_size = check_positive_int(batch_size, "batch_size")
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
        out = model(x[:, :-1])
        logits = getattr(out, "logits", out)  # a Hugging Face model returns an output object
        logp = F.log_softmax(logits.float(), dim=-1)  # (B, T-1, V)
        nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)  # (B, T-1): token t+1 given <= t
        for row, (_, first) in enumerate(group):
            total += float(nll[row, first - 1 :].sum())
            count += length - first
    mean = total / count
    return Perplexity(math.exp(mean), mean / math.log(2), mean, count)


@torch.no_grad()
@checked
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
    most likely tokens only (an integer in 1..vocab_size; None samples from all). Token ids
    must be integers in 0..vocab_size - 1. A prompt that leaves no room for
    ``max_new_tokens`` in the context is truncated to its last tokens, with a warning.
    Returns a string for a string prompt, else a tensor of ids (prompt and continuation).
    """
    from ..core._random import make_generator

    ctx, vocab = model.config.max_position_embeddings, model.config.vocab_size
    max_new_tokens = _optional_int(max_new_tokens, "max_new_tokens", 1, ctx - 1, none=False)
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool):
        raise TypeError(f"temperature must be a real number; got {temperature!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature (={temperature}) must be a finite number >= 0")
    top_k = _optional_int(top_k, "top_k", 1, vocab)  # 1 is greedy; vocab_size is plain sampling
    tok = ByteTokenizer()
    ids = _as_ids(prompt, vocab, "prompt")
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
        bos = model.config.bos_token_id
        if bos is None:
            raise ValueError("prompt is empty and the model has no bos_token_id to start from")
        ids = torch.tensor([bos])
    device = next(model.parameters()).device
    gen = make_generator(seed, device)
    out = ids.to(device)[None]  # (1, T)
    cache = (model.new_cache() if hasattr(model, "new_cache") else KVCache()) if use_cache else None
    logits = model(out, cache)[:, -1]  # (1, V)
    for _ in range(max_new_tokens):
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            scaled = logits.float() / temperature
            if top_k is not None:
                kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(scaled, dim=-1), 1, generator=gen)  # (1, 1)
        out = torch.cat([out, nxt], dim=1)
        if out.shape[1] >= ctx:
            break
        logits = model(nxt, cache)[:, -1] if use_cache else model(out)[:, -1]
    return tok.decode(out[0].tolist()) if isinstance(prompt, str) else out[0].cpu()
