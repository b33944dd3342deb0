"""Saving a compressed model so it loads without recomputing a factorization.

A directory holds three files:

- ``config.json``: lrkit's format name and version, and for each factorized module its
  structure: the factorization's class, plain attributes and tensor shapes (a Linear), or
  the method and rank (a Conv2d);
- ``model.safetensors``: every tensor of the compressed model (tied weights stored once);
- ``report.json``: the :class:`CompressionReport`, when one is given.

``load_compressed(model, path)`` takes a model of the *dense* architecture (freshly built;
its weights are replaced), puts empty factorized layers where the config says, in the
dtypes they were saved in, and fills every tensor from the safetensors file: bit-exact, no
SVD or ALS run again. The dense rest keeps the given model's dtypes (build it in the dtype
it was saved in, e.g. ``build().double()``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from ..core._params import checked
from ..core._structure import from_structure, structure
from .conv import FactorizedConv2d
from .linear import FactorizedLinear
from .report import CompressionReport

__all__ = ["save_compressed", "load_compressed"]

FORMAT, VERSION = "lrkit-compressed-model", 1


@checked
def save_compressed(model: nn.Module, path, report: CompressionReport | None = None) -> None:
    """Write ``config.json``, ``model.safetensors`` and (if given) ``report.json`` to the
    directory ``path`` (created if needed)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    modules = {}
    for name, module in model.named_modules():
        if isinstance(module, FactorizedLinear):
            modules[name] = {
                "kind": "linear",
                "factorization": structure(module.factorization),  # current dtypes
                "bias": module.bias is not None,
            }
        elif isinstance(module, FactorizedConv2d):
            rank = module.rank
            modules[name] = {
                "kind": "conv2d",
                "method": module.method,
                "rank": list(rank) if isinstance(rank, tuple) else rank,
                "dtype": str(module.layers[0].weight.dtype).removeprefix("torch."),
            }
    from .. import __version__

    config = {"format": FORMAT, "version": VERSION, "lrkit": __version__, "modules": modules}
    (path / "config.json").write_text(json.dumps(config, indent=1))
    save_model(model, str(path / "model.safetensors"), metadata={"format": "pt"})
    if report is not None:
        (path / "report.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))


@checked
def load_compressed(model: nn.Module, path, *, inplace: bool = False) -> nn.Module:
    """The compressed model saved in ``path``, built on ``model`` (the dense architecture it
    was compressed from). A copy of ``model`` unless ``inplace=True``."""
    from safetensors.torch import load_model

    path = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} has no {name}; save with lrkit.nn.save_compressed")
    config = json.loads((path / "config.json").read_text())
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ValueError(
            f"{path / 'config.json'} is not an lrkit compressed model of version {VERSION} "
            f"(format {config.get('format')!r}, version {config.get('version')!r})"
        )
    target = model if inplace else copy.deepcopy(model)
    new = {}
    for name, spec in config["modules"].items():  # build all before replacing any
        try:
            dense = target.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the model has no module {name!r} named in {path}") from None
        device = next(dense.parameters()).device
        if spec["kind"] == "linear":
            if not isinstance(dense, nn.Linear):
                raise TypeError(f"module {name!r} is a {type(dense).__name__}, not a Linear")
            fact = from_structure(spec["factorization"], device)
            if tuple(fact.shape) != tuple(dense.weight.shape):
                raise ValueError(
                    f"module {name!r} has a weight of shape {tuple(dense.weight.shape)}; the "
                    f"saved factorization is {tuple(fact.shape)}"
                )
            bias = (
                torch.empty(fact.shape[0], dtype=fact.dtype, device=device)
                if spec["bias"]
                else None
            )
            new[name] = FactorizedLinear(fact, bias)
        else:
            if not isinstance(dense, nn.Conv2d):
                raise TypeError(f"module {name!r} is a {type(dense).__name__}, not a Conv2d")
            layer = FactorizedConv2d._empty(spec["method"], spec["rank"], dense)
            new[name] = layer.to(dtype=getattr(torch, spec["dtype"]))
    for name, layer in new.items():
        parent_name, _, child = name.rpartition(".")
        parent = target.get_submodule(parent_name) if parent_name else target
        setattr(parent, child, layer)
    load_model(target, str(path / "model.safetensors"), strict=True)
    return target
