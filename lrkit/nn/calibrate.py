"""Calibration statistics of a model's Linear layers, collected with hooks.

For each targeted Linear (y = x @ W.T), over all calibration tokens:

- ``xtx``: the input Gram matrix ``X^T X`` (in, in), accumulated in float64 (whitening);
- ``abs_mean``: the mean |x| of each input channel (in,) (ASVD);
- ``fisher``: the summed squared gradients of W (out, in) under a loss (Fisher weighting),
  computed with ``torch.autograd.grad``, so no ``.grad`` of the caller's model is touched.

Hooks are always removed, also when a batch raises. Non-finite activations are refused at
the first layer where they appear. The model is run in eval mode and given back in the
mode it had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..core._checks import warn_adjusted
from ..core._params import checked

__all__ = ["LayerStats", "calibrate", "next_token_loss"]


@dataclass
class LayerStats:
    """What one Linear saw: ``n_tokens`` input rows and the requested statistics."""

    n_tokens: int = 0
    xtx: torch.Tensor | None = None
    abs_sum: torch.Tensor | None = None
    fisher: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)

    @property
    def abs_mean(self) -> torch.Tensor | None:
        return None if self.abs_sum is None else self.abs_sum / max(self.n_tokens, 1)


@checked
def next_token_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each next token, for lrkit's Llama and Hugging Face causal LMs
    (their output is the logits, or has ``.logits``)."""
    out = model(batch)
    logits = getattr(out, "logits", out)  # (B, T, vocab)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten())


def _batches(data, batch_size: int) -> Iterable:
    if isinstance(data, torch.Tensor):
        return data.split(batch_size)  # along the first dimension
    return data


@checked
def calibrate(
    model: nn.Module,
    data,
    *,
    target_modules=None,
    exclude_modules=None,
    filter_fn: Callable | None = None,
    stats=("xtx", "abs_mean"),
    loss_fn: Callable | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict[str, LayerStats]:
    """Run ``data`` through ``model`` and return, per targeted Linear, its :class:`LayerStats`.

    ``data``: a tensor of inputs (split into ``batch_size`` rows along dim 0) or an iterable
    of batches, each passed as ``model(batch)`` (token ids (B, T) for a language model).
    Selection as in :func:`compress_model` (PEFT's ``target_modules``/``exclude_modules`` and
    torchao's ``filter_fn``); by default every Linear but the output layer. ``stats``: any
    of ``"xtx"``, ``"abs_mean"``, ``"fisher"``; Fisher needs gradients of ``loss_fn(model,
    batch)`` (default :func:`next_token_loss`).
    """
    from .compress import _select  # the same selection rules (imported here: no cycle)

    stats = tuple(stats)
    for s in stats:
        if s not in ("xtx", "abs_mean", "fisher"):
            raise ValueError(f"stats (={s!r}) must be among 'xtx', 'abs_mean', 'fisher'")
    chosen = [(n, m) for n, m in _select(model, target_modules, exclude_modules, filter_fn)]
    for name, module in chosen:
        if not isinstance(module, nn.Linear):
            raise TypeError(
                f"calibrate collects Linear inputs; module {name!r} is a {type(module).__name__}"
            )
    out = {name: LayerStats() for name, _ in chosen}
    want_fisher = "fisher" in stats
    loss_fn = loss_fn or next_token_loss

    def hook(name):
        def record(module, args):
            x = args[0].detach().reshape(-1, module.in_features)  # (tokens, in)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"calibration inputs of module {name!r} hold NaN or Inf")
            st, x64 = out[name], x.double()
            st.n_tokens += x.shape[0]
            if "xtx" in stats:
                g = x64.mT @ x64  # (in, in)
                st.xtx = g if st.xtx is None else st.xtx + g
            if "abs_mean" in stats:
                a = x64.abs().sum(0)  # (in,)
                st.abs_sum = a if st.abs_sum is None else st.abs_sum + a

        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in chosen]
    was_training = model.training
    model.eval()
    try:
        items = _batches(data, batch_size)
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc="calibrating", unit="batch")
        weights = [m.weight for _, m in chosen]
        for batch in items:
            if not want_fisher:
                with torch.no_grad():
                    model(batch)
                continue
            with torch.enable_grad():
                loss = loss_fn(model, batch)
                grads = torch.autograd.grad(loss, weights, allow_unused=True)
            for (name, _), g in zip(chosen, grads, strict=True):
                if g is not None:
                    f = g.detach().double().square()
                    st = out[name]
                    st.fisher = f if st.fisher is None else st.fisher + f
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for name, module in chosen:
        st = out[name]
        if "xtx" in stats and 0 < st.n_tokens < module.in_features:
            warn_adjusted(
                f"module {name!r}: {st.n_tokens} calibration tokens for {module.in_features} "
                f"input channels: X^T X is singular (rank <= {st.n_tokens})"
            )
    return out
