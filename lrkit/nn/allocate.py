"""Rank allocation: how many ranks each layer keeps under one budget for the whole model.

The budget is a fraction of the targeted layers' parameters; a rank-k layer of shape
(m, n) stores ``k (m + n + 1)`` values, and no layer goes above the largest rank that still
saves parameters, ``k (m + n + 1) < m n``. Strategies:

- ``"uniform"``: every layer keeps the same fraction (what ``param_ratio`` alone does);
- ``"whiten"``: one global threshold on the whitened spectra. Layer l's rank-k truncation
  leaves the output error ``sum_{i>k} sigma_i(W_l L_l)^2`` on the calibration data (SVD-LLM's
  identity, :func:`lrkit.nn.whiten`); normalised by the layer's whole output energy
  ``||W_l L_l||_F^2``, each singular value is worth ``sigma_i^2 / ||W_l L_l||_F^2`` per
  ``m + n + 1`` parameters;
- ``"fisher"``: the same fill on the Fisher-weighted spectra, not normalised. With F the
  accumulated squared gradients, the loss grows by about ``1/2 sum_ij F_ij dW_ij^2`` (the
  Fisher approximation of the Hessian); with one weight per output row (``mean_j F_ij``,
  as :func:`lrkit.nn.fwsvd`) that is ``1/2 sum_{i>k} sigma_i(D W)^2``, in units of loss that
  compare across layers, so no normalisation is needed;
- ``"sensitivity"`` (ASVD's idea, Yuan et al. 2023): measure each layer's increase of the
  calibration loss when only that layer is truncated (by ``method``) at a few fractions kept,
  then choose one threshold tau on that increase: each layer keeps the smallest fraction
  whose (interpolated) increase is at most tau, and tau is the smallest that meets the
  budget (a bisection: the parameters kept fall as tau grows).

The greedy fill of ``"whiten"`` and ``"fisher"`` keeps the ranks worth the most per parameter
across all layers until the budget is spent; it is optimal for these separable objectives
because each layer's gains decrease with the rank. Every strategy ends when no layer's next
rank fits the budget (or every layer is at its largest saving rank), so the budget is met
to within one rank step per layer.

:func:`proportional_ranks` is the other kind of allocation, for budgets counted in ranks
rather than parameters: integer ranks proportional to given weights (Palu's Fisher
allocation of a KV cache's latent ranks, used by :func:`lrkit.nn.compress_kv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..core._checks import as_tensor
from ..core._params import checked
from .aware import cholesky_shifted, truncate

__all__ = ["allocate_ranks", "RankAllocation", "proportional_ranks"]


def _cost(module: nn.Linear) -> int:
    m, n = module.weight.shape
    return m + n + 1  # values per rank of U diag(S) Vh


def _cap(module: nn.Linear) -> int:
    """The largest rank that stores fewer values than the dense weight."""
    m, n = module.weight.shape
    return max(1, (m * n - 1) // _cost(module))


class RankAllocation(dict):
    """``{module name: rank}`` (what ``compress_model(allocation=...)`` takes), with what the
    strategy decided from: ``strategy``, the asked ``param_ratio``, ``kept`` (the fraction of
    the layers' parameters the ranks keep) and ``details`` (per layer: its share of the score
    kept, or its measured loss increases for ``"sensitivity"``)."""

    def __init__(self, ranks, *, strategy, param_ratio, shapes, details=None, threshold=None):
        super().__init__(ranks)
        self.strategy, self.param_ratio = strategy, param_ratio
        self.shapes = shapes  # {name: (m, n)}
        self.details = details or {}
        self.threshold = threshold

    @property
    def params_dense(self) -> int:
        return sum(m * n for m, n in self.shapes.values())

    @property
    def params_kept(self) -> int:
        return sum(self[k] * (m + n + 1) for k, (m, n) in self.shapes.items())

    @property
    def kept(self) -> float:
        return self.params_kept / self.params_dense

    def layer_ratios(self) -> dict[str, float]:
        """The fraction of its own parameters each layer keeps."""
        return {k: self[k] * (m + n + 1) / (m * n) for k, (m, n) in self.shapes.items()}

    def summary(self) -> str:
        lines = [
            f"{self.strategy} allocation: {self.kept:.4f} of {self.params_dense:,} parameters "
            f"kept (asked {self.param_ratio:.4g})",
            f"{'module':44s} {'shape':>11s} {'rank':>5s} {'kept':>6s}",
        ]
        for name, ratio in self.layer_ratios().items():
            m, n = self.shapes[name]
            lines.append(f"{name:44s} {f'{m}x{n}':>11s} {self[name]:5d} {ratio:6.3f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RankAllocation({dict(self)!r}, strategy={self.strategy!r}, kept={self.kept:.4f})"


def _greedy(modules, gains, budget: float) -> dict[str, int]:
    """Rank 1 everywhere, then the ranks of ``gains`` [(value per parameter, name), one
    entry per rank 2, 3, ... of each layer, decreasing within a layer] by value."""
    ranks = dict.fromkeys(modules, 1)
    spent = sum(_cost(m) for m in modules.values())
    for _, name in sorted(gains, key=lambda t: -t[0]):
        module = modules[name]
        if ranks[name] >= _cap(module) or spent + _cost(module) > budget:
            continue  # a cheaper layer's next rank may still fit
        ranks[name] += 1
        spent += _cost(module)
    return ranks


def _spectrum_gains(modules, stats, strategy):
    gains, details = [], {}
    for name, m in modules.items():
        W = m.weight.detach().double()
        if strategy == "whiten":
            L, _ = cholesky_shifted(stats[name].xtx.to(W.device), name)
            s2 = torch.linalg.svdvals(W @ L).square()
            s2 = s2 / s2.sum()  # each direction's share of the layer's output energy
        else:
            fisher = stats[name].fisher.to(W.device)
            d = fisher.mean(1).sqrt()  # (out,): one weight per output row
            s2 = torch.linalg.svdvals(d[:, None] * W).square() / 2  # loss units
        details[name] = s2.cpu()
        gains += [(g / _cost(m), name) for g in s2[1 : _cap(m)].tolist()]
    return gains, details


def _batch_loss(model, data, loss_fn) -> float:
    with torch.no_grad():
        return sum(float(loss_fn(model, b)) for b in data) / len(data)


def _sensitivities(model, modules, *, method, stats, data, loss_fn, ratios, progress):
    """{name: [loss increase when only that layer keeps each ratio]}, the calibration loss
    measured with a forward hook that swaps the layer's output (the model is not changed)."""
    base = _batch_loss(model, data, loss_fn)
    out = {}
    items = list(modules.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="sensitivity", unit="layer")
    for name, module in items:
        m, n = module.weight.shape
        rises = []
        for p in ratios:
            rank = min(_cap(module), max(1, math.floor(p * m * n / _cost(module))))
            W = module.weight.detach()
            approx = truncate(method, W, rank, stats.get(name), name).to_dense().to(W.dtype)

            def swap(mod, args, output, approx=approx):
                return F.linear(args[0], approx, mod.bias)

            handle = module.register_forward_hook(swap)
            try:
                rises.append(_batch_loss(model, data, loss_fn) - base)
            finally:
                handle.remove()
        out[name] = rises
    return out


def _fractions_at(tau: float, ratios, rises) -> float:
    """The smallest fraction kept whose increase, made non-increasing in the fraction and
    interpolated linearly between the measured ones, is at most tau."""
    mono = list(rises)
    for j in range(len(mono) - 2, -1, -1):
        mono[j] = max(mono[j], mono[j + 1])  # more parameters never cost more loss
    if mono[-1] > tau:
        return ratios[-1]
    if mono[0] <= tau:
        return ratios[0]
    for j in range(len(ratios) - 1):
        if mono[j] > tau >= mono[j + 1]:
            t = (mono[j] - tau) / (mono[j] - mono[j + 1])
            return ratios[j] + t * (ratios[j + 1] - ratios[j])
    return ratios[-1]  # unreachable: mono is non-increasing


@checked
def allocate_ranks(
    model: nn.Module,
    names,
    *,
    param_ratio: float,
    strategy: str = "uniform",
    stats=None,
    method: str = "svd",
    data=None,
    loss_fn: Callable | None = None,
    ratios=(0.2, 0.4, 0.6, 0.8),
    progress: bool = False,
) -> RankAllocation:
    """Ranks for the Linear modules ``names`` of ``model`` that keep at most ``param_ratio``
    of their parameters in total (each layer at least rank 1).

    ``strategy``: ``"uniform"``, ``"whiten"`` (needs ``stats`` from :func:`lrkit.nn.calibrate`
    with ``"xtx"``), ``"fisher"`` (``stats`` with ``"fisher"``) or ``"sensitivity"`` (needs
    ``data``, a list of batches: the calibration loss ``loss_fn(model, batch)`` (default: the
    next-token loss) is measured with each layer alone truncated by ``method`` (``"svd"``,
    or ``"asvd"``/``"whiten"``/``"fwsvd"`` with ``stats``) at each fraction of ``ratios``;
    cost: ``len(names) * len(ratios)`` passes over ``data``). See the module docstring.
    Returns a :class:`RankAllocation`, a dict ``{name: rank}`` that ``compress_model``
    takes as ``allocation=`` or ``rank_pattern=``.
    """
    modules = {name: model.get_submodule(name) for name in names}
    for name, module in modules.items():
        if not isinstance(module, nn.Linear):
            kind = type(module).__name__
            raise TypeError(f"allocate_ranks sizes Linear layers; {name!r} is a {kind}")
    shapes = {name: tuple(m.weight.shape) for name, m in modules.items()}
    dense = sum(m * n for m, n in shapes.values())
    budget = param_ratio * dense
    floor = sum(_cost(m) for m in modules.values())  # rank 1 everywhere
    if floor > budget:
        raise ValueError(
            f"param_ratio (={param_ratio}) is below what rank 1 in every layer needs; the "
            f"smallest achievable is {floor / dense:.4g} of the parameters"
        )
    info = dict(strategy=strategy, param_ratio=param_ratio, shapes=shapes)
    if strategy == "uniform":
        ranks = {
            name: min(_cap(m), max(1, math.floor(param_ratio * m.weight.numel() / _cost(m))))
            for name, m in modules.items()
        }
        return RankAllocation(ranks, **info)
    if strategy in ("whiten", "fisher"):
        need = "xtx" if strategy == "whiten" else "fisher"
        missing = [n for n in modules if stats is None or getattr(stats.get(n), need, None) is None]
        if missing:
            raise ValueError(
                f"strategy={strategy!r} needs stats= with {need!r} for every layer "
                f"(lrkit.nn.calibrate); missing for {missing[:3]}"
            )
        gains, details = _spectrum_gains(modules, stats, strategy)
        return RankAllocation(_greedy(modules, gains, budget), details=details, **info)
    # sensitivity
    if data is None:
        raise ValueError('strategy="sensitivity" needs data= (a list of calibration batches)')
    data = list(data.split(8) if isinstance(data, torch.Tensor) else data)
    if not data:
        raise ValueError('strategy="sensitivity" needs at least one batch in data=')
    ratios = sorted(float(r) for r in ratios)
    if not ratios or ratios[0] <= 0 or ratios[-1] > 1:
        raise ValueError(f"ratios (={ratios}) must be fractions in (0, 1]")
    if loss_fn is None:
        from .calibrate import next_token_loss

        loss_fn = next_token_loss
    was_training = model.training
    model.eval()
    try:
        rises = _sensitivities(
            model, modules, method=method, stats=stats or {}, data=data, loss_fn=loss_fn,
            ratios=ratios, progress=progress,
        )  # fmt: skip
    finally:
        model.train(was_training)

    def ranks_at(tau):
        return {
            name: min(_cap(m), max(1, math.floor(
                _fractions_at(tau, ratios, rises[name]) * m.weight.numel() / _cost(m))))
            for name, m in modules.items()
        }  # fmt: skip

    def spent(ranks):
        return sum(r * _cost(modules[n]) for n, r in ranks.items())

    everything = [v for r in rises.values() for v in r]
    lo, hi = min(everything) - 1.0, max(everything) + 1.0  # all at the largest / smallest ratio
    if spent(ranks_at(hi)) > budget:
        raise ValueError(
            f"param_ratio (={param_ratio}) is below what the smallest fraction tried "
            f"(ratios[0] = {ratios[0]}) keeps, {spent(ranks_at(hi)) / dense:.4g} of the "
            f"parameters; give ratios= that start lower"
        )
    if spent(ranks_at(lo)) > budget:
        for _ in range(100):  # bisection on tau: the smallest that meets the budget
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if spent(ranks_at(mid)) <= budget else (mid, hi)
        ranks = ranks_at(hi)
    else:
        ranks, hi = ranks_at(lo), lo
    # What rounding left: one rank at a time to the layer that suffers most where it stands.
    used = spent(ranks)
    while True:
        open_ = [n for n, m in modules.items() if ranks[n] < _cap(m) and used + _cost(m) <= budget]
        if not open_:
            break
        name = max(open_, key=lambda n: _interp(ranks[n], modules[n], ratios, rises[n]))
        ranks[name] += 1
        used += _cost(modules[name])
    return RankAllocation(ranks, details=rises, threshold=hi, **info)


def _interp(rank, module, ratios, rises) -> float:
    """A layer's loss increase at ``rank``, interpolated from its measured ones."""
    return _lin(rank * _cost(module) / module.weight.numel(), ratios, rises)


def _lin(p, xs, ys) -> float:
    if p <= xs[0]:
        return ys[0]
    for j in range(len(xs) - 1):
        if p <= xs[j + 1]:
            t = (p - xs[j]) / (xs[j + 1] - xs[j])
            return ys[j] + t * (ys[j + 1] - ys[j])
    return ys[-1]


@checked
def proportional_ranks(weights, total: int, *, step: int, high: int) -> list[int]:
    """Integer ranks proportional to ``weights`` (>= 0), multiples of ``step`` (or ``high``),
    each in ``min(step, high)..high``, summing to at most ``total`` and short of it by less
    than ``step`` unless every rank is at ``high`` (Palu's Fisher allocation).

    Water-filling: shares ``clip(lam * w_i, minimum, high)`` with the one ``lam`` that
    spends the budget; each share is then rounded down to a step, and the steps left go
    to the largest remainders."""
    w = as_tensor(weights, "weights").to(torch.float64).flatten()
    if w.numel() == 0:
        raise ValueError("weights is empty; give one weight per group")
    if bool((w < 0).any()):
        raise ValueError(f"weights must be >= 0 (Fisher information); got {float(w.min()):.4g}")
    w = w.tolist()
    low = min(step, high)
    n = len(w)
    if total < n * low:
        raise ValueError(
            f"a budget of {total} ranks cannot give each of the {n} groups its minimum "
            f"{low} (rank_step); raise the rank or lower rank_step"
        )
    total = min(total, n * high)
    if sum(w) == 0:
        w = [1.0] * n  # no information: equal shares

    # x_i = clip(lam w_i, low, high), with lam found by bisection so that sum(x) = total
    # (the sum grows with lam from n * low <= total to n * high >= total)
    def spent(lam):
        return sum(min(max(lam * wi, low), high) for wi in w)

    lo_lam, hi_lam = 0.0, high / min(wi for wi in w if wi > 0)
    for _ in range(200):
        mid = (lo_lam + hi_lam) / 2
        lo_lam, hi_lam = (mid, hi_lam) if spent(mid) < total else (lo_lam, mid)
    x = [min(max(lo_lam * wi, low), high) for wi in w]  # sum(x) <= total
    ranks = [high if x[i] >= high else max(low, int(x[i] // step) * step) for i in range(n)]
    for i in sorted(range(n), key=lambda i: x[i] - ranks[i], reverse=True):
        add = min(step, high - ranks[i])  # the steps left, to the largest remainders
        if 0 < add <= total - sum(ranks):
            ranks[i] += add
    return ranks
