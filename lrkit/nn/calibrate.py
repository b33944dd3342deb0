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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..core._checks import warn_adjusted
from ..core._params import checked

__all__ = ["LayerStats", "calibrate", "calibrate_blocks", "next_token_loss"]


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


def _recorder(st: LayerStats, name: str, stats):
    """A forward pre-hook adding a Linear's inputs to ``st``."""

    def record(module, args):
        x = args[0].detach().reshape(-1, module.in_features)  # (tokens, in)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"calibration inputs of module {name!r} hold NaN or Inf")
        x64 = x.double()
        st.n_tokens += x.shape[0]
        if "xtx" in stats:
            g = x64.mT @ x64  # (in, in)
            st.xtx = g if st.xtx is None else st.xtx + g
        if "abs_mean" in stats:
            a = x64.abs().sum(0)  # (in,)
            st.abs_sum = a if st.abs_sum is None else st.abs_sum + a

    return record


def _check_stats(stats) -> tuple:
    stats = (stats,) if isinstance(stats, str) else tuple(stats)
    for s in stats:
        if s not in ("xtx", "abs_mean", "fisher"):
            raise ValueError(f"stats (={s!r}) must be among 'xtx', 'abs_mean', 'fisher'")
    return stats


def _select_linears(model, target_modules, exclude_modules, filter_fn):
    from .compress import _select  # the same selection rules (imported here: no cycle)

    chosen = _select(model, target_modules, exclude_modules, filter_fn)
    for name, module in chosen:
        if not isinstance(module, nn.Linear):
            raise TypeError(
                f"calibrate collects Linear inputs; module {name!r} is a {type(module).__name__}"
            )
    return chosen


def _warn_few_tokens(out, chosen, stats):
    for name, module in chosen:
        st = out[name]
        if "xtx" in stats and 0 < st.n_tokens < module.in_features:
            warn_adjusted(
                f"module {name!r}: {st.n_tokens} calibration tokens for {module.in_features} "
                f"input channels: X^T X is singular (rank <= {st.n_tokens})"
            )


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
    stats = _check_stats(stats)
    chosen = _select_linears(model, target_modules, exclude_modules, filter_fn)
    out = {name: LayerStats() for name, _ in chosen}
    want_fisher = "fisher" in stats
    loss_fn = loss_fn or next_token_loss

    def hook(name):
        return _recorder(out[name], name, stats)

    weights = [m.weight for _, m in chosen]
    was_required = [w.requires_grad for w in weights]
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in chosen]
    was_training = model.training
    model.eval()
    try:
        items = _batches(data, batch_size)
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(items, desc="calibrating", unit="batch")
        if want_fisher:  # a frozen model (requires_grad off) still gives gradients here
            for w in weights:
                w.requires_grad_(True)
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
        if want_fisher:
            for w, r in zip(weights, was_required, strict=True):
                w.requires_grad_(r)
    _warn_few_tokens(out, chosen, stats)
    return out


# -- one block at a time ------------------------------------------------------------------
class _Captured(Exception):
    """Raised by the hook on the first block once its inputs are stored: the rest of the
    model need not run."""


# Keyword arguments holding a KV cache: a block run twice on the same inputs (once to
# collect statistics, once after compression) must not append to a cache twice.
_CACHE_KWARGS = ("past_key_value", "past_key_values", "layer_past", "cache")


def find_blocks(model: nn.Module, names) -> str:
    """The qualified name of the ``nn.ModuleList`` holding most of the Linears ``names``:
    the model's stack of transformer blocks (``layers`` in lrkit's Llama, ``model.layers``
    in Hugging Face's)."""
    best, count = None, 0
    for lname, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module):
            prefix = f"{lname}." if lname else ""
            k = sum(n.startswith(prefix) for n in names)
            if k > count:
                best, count = lname, k
    if best is None:
        raise ValueError(
            "sequential calibration runs a stack of blocks (an nn.ModuleList) one at a time; "
            f"the model {type(model).__name__} has none holding the selected Linears"
        )
    return best


def _hidden(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args, kwargs, h):
    if args:
        return (h, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": h}


@checked
def calibrate_blocks(
    model: nn.Module,
    data,
    *,
    blocks: str | None = None,
    target_modules=None,
    exclude_modules=None,
    filter_fn: Callable | None = None,
    stats=("xtx", "abs_mean"),
    batch_size: int = 8,
    progress: bool = True,
) -> Iterator[tuple[str, dict[str, LayerStats]]]:
    """Sequential calibration (as SVD-LLM and GPTQ do): yield ``(block name, {linear name:
    LayerStats})`` for one block of the model at a time, in order.

    The inputs of the first block are captured once (the model runs up to it); then each
    block runs on the stored inputs with hooks on its Linears, and its statistics are
    yielded. **The caller may replace the block's Linears before asking for the next one**
    (``compress_model(sequential=True)`` compresses them): the block then runs again, as it
    now is, to make the next block's inputs, so the statistics of every block see the errors
    of the blocks compressed before it. Memory holds one set of hidden states (tokens x
    width) and one block's statistics at a time, never the whole model's: this is how the
    same code compresses a model whose activations and statistics would not fit at once.

    ``blocks``: the qualified name of the ``nn.ModuleList`` of blocks (default: the one
    holding most selected Linears, :func:`find_blocks`); every selected Linear must lie in
    it. Each block is called as the model calls it (the captured positional and keyword
    arguments, the hidden states replaced; a KV cache argument set to None), and its output
    is the tensor, or the first element of the tuple, it returns. Fisher statistics need
    gradients through the whole model and are not available here.
    """
    stats = _check_stats(stats)
    if "fisher" in stats:
        raise ValueError(
            "stats 'fisher' needs gradients of the loss through the whole model; sequential "
            "calibration runs one block at a time (use calibrate)"
        )
    chosen = _select_linears(model, target_modules, exclude_modules, filter_fn)
    names = [n for n, _ in chosen]
    blocks = find_blocks(model, names) if blocks is None else blocks
    if not isinstance(blocks, str):
        raise TypeError(f"blocks must be the name of an nn.ModuleList; got {blocks!r}")
    stack = model.get_submodule(blocks)
    if not isinstance(stack, nn.ModuleList):
        raise TypeError(f"blocks (={blocks!r}) must name an nn.ModuleList; got a "
                        f"{type(stack).__name__}")  # fmt: skip
    prefix = f"{blocks}." if blocks else ""
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        raise ValueError(
            f"sequential calibration covers the Linears inside {blocks!r}; {outside[:3]} lie "
            f"outside it: exclude them (exclude_modules=) or calibrate in one pass"
        )
    return _run_blocks(model, data, blocks, stack, chosen, stats, batch_size, progress)


def _run_blocks(model, data, blocks, stack, chosen, stats, batch_size, progress):
    inputs = []  # per batch: (args, kwargs) of the first block

    def capture(module, args, kwargs):
        kwargs = {k: (None if k in _CACHE_KWARGS else v) for k, v in kwargs.items()}
        if "use_cache" in kwargs:
            kwargs["use_cache"] = False
        h = _hidden(args, kwargs)
        if not bool(torch.isfinite(h).all()):
            raise ValueError(f"the inputs of {blocks}.0 hold NaN or Inf")
        inputs.append(_with_hidden(tuple(a for a in args), kwargs, h.detach()))
        raise _Captured

    was_training = model.training
    model.eval()
    handle = stack[0].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            for batch in _batches(data, batch_size):
                try:
                    model(batch)
                except _Captured:
                    pass
    finally:
        handle.remove()
        model.train(was_training)
    if not inputs:
        raise ValueError("data holds no batch: sequential calibration needs inputs")
    prefix = f"{blocks}." if blocks else ""
    indices = range(len(stack))
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="blocks", unit="block")
    for i in indices:
        bname = f"{prefix}{i}"
        mine = [(n, m) for n, m in chosen if n.startswith(bname + ".")]
        out = {n: LayerStats() for n, _ in mine}
        if mine:
            block = model.get_submodule(bname)
            handles = [
                block.get_submodule(n[len(bname) + 1 :]).register_forward_pre_hook(
                    _recorder(out[n], n, stats)
                )
                for n, _ in mine
            ]
            try:
                _forward_block(model, block, inputs)
            finally:
                for h in handles:
                    h.remove()
            _warn_few_tokens(out, mine, stats)
            yield bname, out
        block = model.get_submodule(bname)  # as the caller left it
        if i + 1 < len(stack):
            outputs = _forward_block(model, block, inputs)
            for j, h in enumerate(outputs):
                if not bool(torch.isfinite(h).all()):
                    raise ValueError(f"the outputs of block {bname!r} hold NaN or Inf")
                inputs[j] = _with_hidden(*inputs[j], h)


def _forward_block(model, block, inputs) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            outs = [block(*args, **kwargs) for args, kwargs in inputs]
    finally:
        model.train(was_training)
    return [o[0] if isinstance(o, tuple | list) else o for o in outs]
