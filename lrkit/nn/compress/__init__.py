"""Whole-model compression: replace a model's Linear and Conv2d layers by factorized ones.

``compress_model`` speaks the conventions users know from PEFT and torchao:

- ``target_modules``: a string is a regex matched against the whole qualified module name
  (``re.fullmatch``); a list matches exact names or name suffixes (``"q_proj"`` matches
  ``model.layers.0.self_attn.q_proj``); None takes every Linear and Conv2d;
- ``exclude_modules``: the same forms, removed from the selection;
- ``filter_fn(module, name) -> bool``, as in torchao's ``quantize_``;
- the output layer (the model's last Linear, e.g. a classifier) and layers named ``lm_head``,
  ``embed_tokens`` or ``embed_out`` are left alone unless named by ``target_modules``, as
  PEFT leaves the output layer;
- ``rank_pattern``: per-module ranks, a dict from a name or regex to a rank (PEFT's).

Everything is checked and every new layer computed before the first module is replaced,
so an error leaves the model as it was, also with ``inplace=True``. With ``inplace=False``
(the default) the caller's model is never touched: a deep copy is compressed.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import re
from collections.abc import Callable

import torch
from torch import nn

from ...core._checks import check_choice, check_positive_int, warn_adjusted
from ...core._params import checked
from ..allocate import RankAllocation, allocate_ranks
from ..aware import NEEDS, truncate
from ..calibrate import LayerStats, _batches, calibrate, calibrate_blocks
from ..conv import FactorizedConv2d
from ..linear import METHODS, FactorizedLinear
from ..report import CompressionReport, ModuleReport, layer_size, model_nbits, model_params

__all__ = ["compress_model", "decompress", "CompressionReport", "ModuleReport"]

SUPPORTED = (nn.Linear, nn.Conv2d)
OUTPUT_NAMES = ("lm_head", "embed_tokens", "embed_out")  # left dense unless targeted by name
RANKED = ("svd", "rsvd", "lplr", "cur")  # linear methods whose size is a rank
LOWRANK = ("svd", "rsvd", "asvd", "whiten", "fwsvd")  # store rank (m + n + 1) values
AWARE = ("asvd", "whiten", "fwsvd")  # ranked too, and fed each layer's calibration statistics


# -- selection ------------------------------------------------------------------------------
def _matches(name: str, pattern) -> bool:
    if isinstance(pattern, str):
        return re.fullmatch(pattern, name) is not None
    return any(name == p or name.endswith("." + p) for p in pattern)


def _check_pattern(value, what: str):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{what} must be a regex string or a list of names; got {value!r}")


def _select(model, target_modules, exclude_modules, filter_fn) -> list[tuple[str, nn.Module]]:
    inside = {  # the parts of layers lrkit already factorized: never selected again
        f"{n}.{sub}"
        for n, m in model.named_modules()
        if isinstance(m, FactorizedLinear | FactorizedConv2d)
        for sub, _ in m.named_modules()
        if sub
    }
    named = [(n, m) for n, m in model.named_modules() if n and n not in inside]
    linears = [n for n, m in named if isinstance(m, nn.Linear)]
    output = linears[-1] if linears else None  # the last Linear: the output layer
    chosen = []
    for name, module in named:
        if target_modules is None:
            if not isinstance(module, SUPPORTED):
                continue
            if name.split(".")[-1] in OUTPUT_NAMES or name == output:
                continue
        elif not _matches(name, target_modules):
            continue
        if exclude_modules is not None and _matches(name, exclude_modules):
            continue
        if filter_fn is not None and not filter_fn(module, name):
            continue
        chosen.append((name, module))
    if not chosen:
        names = [n for n, _ in named]
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
        if (
            target_modules is None
            and not linears
            and not any(isinstance(m, nn.Conv2d) for _, m in named)
        ):
            kinds = sorted({type(m).__name__ for _, m in named})
            raise ValueError(
                f"compress_model replaces nn.Linear and nn.Conv2d modules; this "
                f"{type(model).__name__} has none, only {', '.join(kinds) or 'no submodules'}"
            )
        raise ValueError(
            f"no module matched target_modules={target_modules!r}, "
            f"exclude_modules={exclude_modules!r}, filter_fn={filter_fn!r}; the model's "
            f"modules are: {shown}"
        )
    for name, module in chosen:
        if not isinstance(module, SUPPORTED):
            raise TypeError(
                f"module {name!r} is a {type(module).__name__}; compress_model replaces "
                f"{', '.join(t.__name__ for t in SUPPORTED)} modules"
            )
        w = module.weight
        if w.is_meta:
            raise ValueError(f"module {name!r} is on the meta device: its weights are not loaded")
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"module {name!r} has NaN or Inf weights")
    return chosen


# -- sizes of each layer ----------------------------------------------------------------------
def _pattern_matches(name: str, pattern: str) -> bool:
    """A rank_pattern key matches like a target_modules entry (the name or a suffix of it)
    or as a regex fully matching the name."""
    return _matches(name, [pattern]) or re.fullmatch(pattern, name) is not None


def _rank_for(name, module, rank, param_ratio, rank_pattern, conv_method):
    for pattern, r in (rank_pattern or {}).items():
        if _pattern_matches(name, pattern):
            what = f"rank_pattern[{pattern!r}]"
            if isinstance(r, tuple) and isinstance(module, nn.Conv2d) and conv_method == "tucker":
                if len(r) != 2:
                    raise ValueError(f"{what} (={r!r}) must be a rank or (r_out, r_in)")
                return tuple(check_positive_int(v, what) for v in r)
            return check_positive_int(r, what)
    if rank is not None:
        return rank
    if param_ratio is None:
        raise ValueError(
            f"module {name!r} has no size: no rank_pattern key matches it; give rank= or "
            f"param_ratio= for the modules rank_pattern leaves out"
        )
    if isinstance(module, nn.Linear):  # k (m + n + 1) values per rank-k layer
        m, n = module.weight.shape
        return max(1, math.floor(param_ratio * m * n / (m + n + 1)))
    out, cin, kh, kw = module.weight.shape
    budget = param_ratio * out * cin * kh * kw
    if conv_method == "cp":  # R (out + in + kh + kw) values
        return max(1, math.floor(budget / (out + cin + kh + kw)))
    # Tucker-2 with r_out = r_in = r: r (in + out) + r^2 kh kw values; the positive root
    a, b = kh * kw, cin + out
    return max(1, math.floor((-b + math.sqrt(b * b + 4 * a * budget)) / (2 * a)))


def _saves(module, rank, conv_method) -> bool:
    """Whether a rank-``rank`` factorization stores fewer values than the dense weight."""
    if isinstance(module, nn.Linear):
        m, n = module.weight.shape
        return rank * (m + n + 1) < m * n
    out, cin, kh, kw = module.weight.shape
    if conv_method == "cp":
        return rank * (out + cin + kh + kw) < out * cin * kh * kw
    r_out, r_in = rank if isinstance(rank, tuple) else (rank, rank)
    return r_in * cin + r_out * r_in * kh * kw + r_out * out < out * cin * kh * kw


@checked
def compress_model(
    model: nn.Module,
    method: str | Callable = "svd",
    *,
    rank: int | None = None,
    param_ratio: float | None = None,
    conv_method: str = "tucker",
    conv_kwargs: dict | None = None,
    target_modules=None,
    exclude_modules=None,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
    rank_pattern: dict | None = None,
    calibration=None,
    loss_fn: Callable | None = None,
    allocation: str | dict | None = None,
    sequential: bool | str = False,
    inplace: bool = False,
    progress: bool = True,
    **method_kwargs,
) -> tuple[nn.Module, CompressionReport]:
    """Replace the selected Linear and Conv2d modules of ``model`` by factorized layers.

    Parameters
    ----------
    model : any torch module (an ``nn.Sequential``, a CNN, lrkit's Llama, a Hugging Face
        model).
    method : how Linear weights are factorized: a name of
        :data:`lrkit.nn.METHODS` (``"svd"``, ``"rsvd"``, ``"lplr"``, ``"cur"``, ``"kron"``,
        ``"monarch"``, ``"butterfly"``) or a callable ``f(W, **kwargs)`` returning a
        factorization. Conv2d weights use ``conv_method`` (``"tucker"`` or ``"cp"``), with
        ``conv_kwargs`` (e.g. ``dict(seed=0, n_iter_max=50)``).
    rank, param_ratio : the size of each layer, one of the two (for the rank methods and
        convs): a rank, or the fraction of each layer's parameters kept, in (0, 1] (for a
        Linear, rank (m + n + 1) <= ratio m n; for a Tucker conv with r_out = r_in = r,
        r (in + out) + r^2 kh kw <= ratio out in kh kw; for CP, R (out + in + kh + kw)). A
        layer whose rank would not save parameters is left dense with a warning, so
        ``param_ratio=1`` (the break-even rank, not full rank) leaves layers dense or nearly.
        Methods sized otherwise (``monarch``: ``nblocks=``) take
        their size from ``method_kwargs``.
    target_modules, exclude_modules, filter_fn, rank_pattern : selection, see the module
        docstring.
    calibration, loss_fn : for the data-aware methods ``"asvd"``, ``"whiten"`` and
        ``"fwsvd"`` (:mod:`lrkit.nn.aware`): the model's inputs (a tensor, split into
        batches of 8, or an iterable of batches) run through :func:`lrkit.nn.calibrate`
        first; ``fwsvd`` needs gradients of ``loss_fn(model, batch)`` (default: the
        next-token loss of a causal language model).
    allocation : how ``param_ratio`` is shared among the Linear layers: None or
        ``"uniform"`` (each keeps that fraction), ``"whiten"`` (one global threshold on the
        whitened spectra), ``"fisher"`` (on the Fisher-weighted spectra, a second-order
        estimate of the loss), ``"sensitivity"`` (each layer's measured increase of the
        calibration loss at a few fractions, ASVD's: costs layers x 4 passes over the
        calibration data), all by :func:`lrkit.nn.allocate_ranks` and needing
        ``calibration``; or a dict ``{name: rank}`` (e.g. a :class:`RankAllocation`). The
        allocation used is ``report.allocation``.
    sequential : calibrate and compress one block at a time (``True``: the
        ``nn.ModuleList`` holding most selected Linears, e.g. ``model.layers``; or its
        name), each block's statistics taken on the outputs of the blocks already
        compressed (:func:`lrkit.nn.calibrate_blocks`), as SVD-LLM and GPTQ do. Memory holds
        one block's activations and statistics, so this is how the same call scales to a
        model whose statistics do not fit at once; with ``inplace=True`` the model is
        compressed as the blocks go (an error midway leaves the earlier blocks compressed).
        For ``asvd`` and ``whiten``. It re-weights each truncation by the inputs the block
        now sees; it does not ask the block to undo the errors before it, so it need not
        beat the one-pass statistics (on lrkit's shipped Llama it does not).
    inplace : compress ``model`` itself instead of a deep copy.
    progress : show a progress bar (tqdm) over the layers.
    method_kwargs : passed to the Linear method (``seed=``, ``bits_left=``, ...).

    Returns
    -------
    (compressed model, CompressionReport)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(method, str):
        check_choice(method, "method", (*METHODS, *AWARE))
    elif not callable(method):
        raise TypeError(f"method must be a name or a callable; got {method!r}")
    target_modules = _check_pattern(target_modules, "target_modules")
    exclude_modules = _check_pattern(exclude_modules, "exclude_modules")
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn must be callable(module, name); got {filter_fn!r}")
    if rank_pattern is not None and not isinstance(rank_pattern, dict):
        raise TypeError(
            f"rank_pattern must be a dict of name or regex to rank; got {rank_pattern!r}"
        )
    aware = not callable(method) and method in AWARE
    ranked = not callable(method) and (method in RANKED or aware)
    if aware and calibration is None:
        raise ValueError(f"method {method!r} needs calibration= (the model's inputs)")
    if rank is not None and param_ratio is not None:
        raise ValueError("give rank or param_ratio, not both")
    # types and bounds of rank, param_ratio, conv_method, inplace: the parameter table
    if param_ratio is not None:
        if not callable(method) and method not in LOWRANK:
            raise ValueError(
                f"param_ratio sizes the low-rank methods {', '.join(map(repr, LOWRANK))} (and "
                f"convs); give {method!r} its size with rank= or its own arguments"
            )
    fn = method if callable(method) else METHODS.get(method)
    takes_rank = ranked or "rank" in inspect.signature(fn).parameters
    if not ranked and (rank is not None or param_ratio is not None or rank_pattern):
        if not takes_rank or param_ratio is not None:
            raise ValueError(
                f"method {getattr(method, '__name__', method)!r} is not sized by rank or "
                f"param_ratio here; pass its own size (e.g. nblocks= for 'monarch') or "
                f"rank= if it takes one"
            )

    chosen = _select(model, target_modules, exclude_modules, filter_fn)
    needs_size = ranked or any(isinstance(m, nn.Conv2d) for _, m in chosen)
    sized_by_dict = isinstance(allocation, dict)
    if (
        needs_size
        and rank is None
        and param_ratio is None
        and not rank_pattern
        and not sized_by_dict
    ):
        raise ValueError(f"method {method!r} needs rank= or param_ratio= (or rank_pattern=)")

    linears = [n for n, m in chosen if isinstance(m, nn.Linear)]
    strategy = allocation if isinstance(allocation, str) and allocation != "uniform" else None
    if allocation == "uniform" and param_ratio is None:
        allocation = None  # each layer's own rank= or rank_pattern= already is uniform
    if allocation is not None and not isinstance(allocation, dict) and param_ratio is None:
        raise ValueError(f"allocation={allocation!r} shares param_ratio=; give one")
    if strategy and calibration is None:
        raise ValueError(f"allocation={allocation!r} needs calibration= (the model's inputs)")
    if sequential is not False and not isinstance(sequential, bool | str):
        raise TypeError(f"sequential must be a bool or the name of the blocks' ModuleList; "
                        f"got {sequential!r}")  # fmt: skip
    if sequential is not False:
        if not aware:
            raise ValueError(
                f"sequential= feeds each block's statistics to a data-aware method (asvd or "
                f"whiten); method {method!r} uses none"
            )
        if method == "fwsvd":
            raise ValueError(
                "method 'fwsvd' needs gradients through the whole model; it cannot run "
                "sequential=True (use asvd or whiten, or sequential=False)"
            )
        if isinstance(calibration, dict):
            raise ValueError("sequential= computes its own statistics: give calibration= as "
                             "the model's inputs, not precomputed LayerStats")  # fmt: skip
    method_needs = set(NEEDS[method]) if aware else set()
    alloc_needs = {"whiten": {"xtx"}, "fisher": {"fisher"}, "sensitivity": method_needs}.get(
        strategy, set()
    )
    one_shot = alloc_needs | (method_needs if sequential is False else set())
    stats = {}
    if isinstance(calibration, dict):  # statistics computed before (lrkit.nn.calibrate)
        stats = calibration
        for name in linears:
            st = stats.get(name)
            if not isinstance(st, LayerStats):
                raise TypeError(f"calibration[{name!r}] must be the LayerStats calibrate "
                                f"returns; got {type(st).__name__}")  # fmt: skip
            for need in one_shot:
                if getattr(st, need) is None:
                    raise ValueError(f"calibration[{name!r}] lacks {need!r}, which method "
                                     f"{method!r} / allocation {allocation!r} needs")  # fmt: skip
    elif one_shot:  # the statistics of every selected Linear, on the model as given
        stats = calibrate(model, calibration, target_modules=linears, stats=tuple(sorted(one_shot)),
                          loss_fn=loss_fn, progress=progress)  # fmt: skip
    allocated = None
    if isinstance(allocation, dict):
        rank_pattern = {**(rank_pattern or {}), **allocation}
        allocated = allocation if isinstance(allocation, RankAllocation) else None
    elif allocation is not None and linears:
        if strategy == "sensitivity" and isinstance(calibration, dict):
            raise ValueError('allocation="sensitivity" measures the loss: calibration= must be '
                             "the model's inputs, not precomputed statistics")  # fmt: skip
        data = None if strategy != "sensitivity" else list(_batches(calibration, 8))
        allocated = allocate_ranks(
            model, linears, param_ratio=param_ratio, strategy=allocation, stats=stats,
            method=method if aware else "svd", data=data, loss_fn=loss_fn, progress=progress,
        )  # fmt: skip
        rank_pattern = {**(rank_pattern or {}), **{re.escape(n): r for n, r in allocated.items()}}

    report = CompressionReport(params_before=model_params(model), nbits_before=model_nbits(model))
    report.allocation = allocated
    build = functools.partial(
        _build, method=method, rank=rank, param_ratio=param_ratio, rank_pattern=rank_pattern,
        conv_method=conv_method, conv_kwargs=conv_kwargs, ranked=ranked, takes_rank=takes_rank,
        aware=aware, method_kwargs=method_kwargs,
    )  # fmt: skip
    if sequential is not False:
        # One block at a time, each seeing the blocks compressed before it. In place as it
        # goes (memory: the model once); on a copy unless the caller asked inplace=True.
        target = model if inplace else copy.deepcopy(model)
        blocks = calibrate_blocks(
            target, calibration, blocks=None if sequential is True else sequential,
            target_modules=linears, stats=tuple(sorted(method_needs)), progress=progress,
        )  # fmt: skip
        for _, block_stats in blocks:
            for name, st in block_stats.items():
                new = build(name, target.get_submodule(name), st, report)
                if new is not None:
                    _replace(target, name, new)
        for name, module in chosen:  # convs (never inside the statistics' blocks)
            if isinstance(module, nn.Conv2d):
                new = build(name, target.get_submodule(name), None, report)
                if new is not None:
                    _replace(target, name, new)
    else:
        # Plan and build every new layer before replacing anything.
        plan = []
        items = chosen
        if progress:
            from tqdm.auto import tqdm

            items = tqdm(chosen, desc="compressing", unit="layer")
        for name, module in items:
            new = build(name, module, stats.get(name), report)
            if new is not None:
                plan.append((name, new))
        target = model if inplace else copy.deepcopy(model)
        for name, new in plan:
            _replace(target, name, new)

    for pattern in rank_pattern or {}:
        if not any(_pattern_matches(name, pattern) for name, _ in chosen):
            warn_adjusted(f"rank_pattern key {pattern!r} matches no selected module")
    report.params_after, report.nbits_after = model_params(target), model_nbits(target)
    return target, report


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _build(name, module, st, report, *, method, rank, param_ratio, rank_pattern, conv_method,
           conv_kwargs, ranked, takes_rank, aware, method_kwargs):  # fmt: skip
    """The factorized layer replacing ``module`` (None: it stays dense), its row added to
    ``report``."""
    is_conv = isinstance(module, nn.Conv2d)
    sized = is_conv or ranked or (takes_rank and (rank is not None or bool(rank_pattern)))
    r = _rank_for(name, module, rank, param_ratio, rank_pattern, conv_method) if sized else None
    before = layer_size(module)
    kind = type(module).__name__
    label = conv_method if is_conv else (method if isinstance(method, str) else "custom")
    if is_conv and conv_method == "tucker":
        out, cin = module.weight.shape[:2]
        r_out, r_in = r if isinstance(r, tuple) else (r, r)
        if r_out > out or r_in > cin:  # a side with fewer channels keeps all of them
            r_out, r_in = min(r_out, out), min(r_in, cin)
            warn_adjusted(f"module {name!r}: Tucker ranks clipped to the channels, {r}")
        r = (r_out, r_in)
    elif sized and not is_conv and r > min(module.weight.shape):
        raise ValueError(
            f"rank (={r}) for module {name!r} must be <= {min(module.weight.shape)}, the "
            f"smaller side of its weight of shape {tuple(module.weight.shape)}"
        )
    if sized and (is_conv or method in LOWRANK) and not _saves(module, r, conv_method):
        warn_adjusted(
            f"module {name!r} stays dense: rank {r} would not save parameters for a "
            f"weight of shape {tuple(module.weight.shape)}"
        )
        report.modules.append(
            ModuleReport(name, kind, "dense", r, before[0], before[0], before[1], before[1],
                         note="rank too large to save parameters")
        )  # fmt: skip
        return None
    if is_conv:
        new = FactorizedConv2d.from_conv(module, conv_method, rank=r, **(conv_kwargs or {}))
    elif aware:
        fact = truncate(method, module.weight.detach(), r, st, name, **method_kwargs)
        bias = None if module.bias is None else module.bias.detach()
        new = FactorizedLinear(fact, bias)
    else:
        kw = dict(method_kwargs, rank=r) if r is not None else method_kwargs
        new = FactorizedLinear.from_linear(module, method, **kw)
    after = layer_size(new)
    if after[1] >= before[1]:  # any method: a layer that stores no fewer bits stays dense
        warn_adjusted(
            f"module {name!r} stays dense: {label} would store {after[1]:,} bits, the "
            f"dense layer {before[1]:,}"
        )
        report.modules.append(
            ModuleReport(name, kind, "dense", r, before[0], before[0], before[1], before[1],
                         note=f"{label} would not save bits")
        )  # fmt: skip
        return None
    if r is None:  # a method sized by its own arguments: say what it built
        fact = new.factorization
        r = getattr(fact, "rank", None) or getattr(fact, "nblocks", None)
        r = f"nblocks={r}" if hasattr(fact, "nblocks") else r
    report.modules.append(ModuleReport(name, kind, label, r, before[0], after[0], before[1],
                                       after[1]))  # fmt: skip
    return new


@checked
def decompress(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Merge every factorized layer back into a dense Linear or Conv2d (the analogue of
    PEFT's ``merge_and_unload``). A copy unless ``inplace=True``."""
    target = model if inplace else copy.deepcopy(model)
    for name, module in list(target.named_modules()):
        if isinstance(module, FactorizedLinear | FactorizedConv2d):
            dense = module.to_linear() if isinstance(module, FactorizedLinear) else module.to_conv()
            parent_name, _, child = name.rpartition(".")
            parent = target.get_submodule(parent_name) if parent_name else target
            setattr(parent, child, dense)
    return target
