"""Rank allocation: how many ranks each layer keeps under one budget for the whole model.

The budget is a fraction of the targeted layers' parameters; a rank-k layer of shape
(m, n) stores ``k (m + n + 1)`` values. Strategies:

- ``"uniform"``: every layer keeps the same fraction (what ``param_ratio`` alone does);
- ``"whiten"``: one global threshold on the whitened spectra. Layer l's rank-k truncation
  leaves the output error ``sum_{i>k} sigma_i(W_l L_l)^2`` on the calibration data (SVD-LLM's
  identity, :func:`lrkit.nn.whiten`); normalised by the layer's whole output energy
  ``||W_l L_l||_F^2``, each singular value is worth ``sigma_i^2 / ||W_l L_l||_F^2`` per
  ``m + n + 1`` parameters. The ranks that are worth the most per parameter are kept, across
  all layers, until the budget is spent (a greedy fill, which is optimal for this separable
  objective because each layer's gains decrease with i).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..core._checks import warn_adjusted
from ..core._params import checked
from .aware import cholesky_shifted

__all__ = ["allocate_ranks"]


def _cost(module: nn.Linear) -> int:
    m, n = module.weight.shape
    return m + n + 1  # values per rank of U diag(S) Vh


@checked
def allocate_ranks(
    model: nn.Module, names, *, param_ratio: float, strategy: str = "uniform", stats=None
) -> dict[str, int]:
    """Ranks for the Linear modules ``names`` of ``model`` that keep at most ``param_ratio``
    of their parameters in total (each layer at least rank 1). ``strategy="whiten"`` needs
    ``stats`` from :func:`lrkit.nn.calibrate` (with ``"xtx"``). Returns ``{name: rank}``, the
    form ``compress_model(rank_pattern=...)`` takes."""
    modules = {name: model.get_submodule(name) for name in names}
    for name, module in modules.items():
        if not isinstance(module, nn.Linear):
            kind = type(module).__name__
            raise TypeError(f"allocate_ranks sizes Linear layers; {name!r} is a {kind}")
    dense = sum(module.weight.numel() for module in modules.values())
    budget = param_ratio * dense
    if strategy == "uniform":
        return {
            name: max(1, math.floor(param_ratio * m.weight.numel() / _cost(m)))
            for name, m in modules.items()
        }
    if stats is None or any(stats.get(n) is None or stats[n].xtx is None for n in modules):
        raise ValueError('strategy="whiten" needs stats= with "xtx" for every layer (calibrate)')
    floor = sum(_cost(m) for m in modules.values())  # rank 1 everywhere
    if floor > budget:
        raise ValueError(
            f"param_ratio (={param_ratio}) is below what rank 1 in every layer needs "
            f"({floor / dense:.4g} of the parameters)"
        )
    gains = []  # (value per parameter, name) for ranks 2, 3, ... of each layer
    for name, m in modules.items():
        L, _ = cholesky_shifted(stats[name].xtx.to(m.weight.device), name)
        s2 = torch.linalg.svdvals(m.weight.detach().double() @ L).square()
        s2 = (s2 / s2.sum()).tolist()
        gains += [(g / _cost(m), name) for g in s2[1:]]
    ranks = dict.fromkeys(modules, 1)
    spent = floor
    for _, name in sorted(gains, key=lambda t: -t[0]):
        cost = _cost(modules[name])
        if spent + cost > budget:
            continue  # a cheaper layer's next rank may still fit
        ranks[name] += 1
        spent += cost
    for name, m in modules.items():
        if ranks[name] * _cost(m) >= m.weight.numel():
            warn_adjusted(f"module {name!r}: allocated rank {ranks[name]} saves no parameters")
    return ranks
