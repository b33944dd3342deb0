"""A result's structure as JSON-able data, and back: what a saved compressed model needs
besides its tensors' values (which go to safetensors)."""

from __future__ import annotations

import torch

from .factorization import _RESULT_TYPES, Factorization

__all__ = ["structure", "from_structure"]


def structure(fact: Factorization) -> dict:
    """Everything but the tensors' values, as JSON-able data: the class, its plain
    attributes, and each stored tensor's shape and dtype. With the tensors saved apart
    (safetensors), :func:`from_structure` rebuilds the result without recomputing it."""

    def field(value):
        if value is None:
            return None
        if isinstance(value, Factorization):
            return {"result": structure(value)}
        if isinstance(value, list | tuple):
            return {"list": [field(t) for t in value]}
        return {"tensor": [list(value.shape), str(value.dtype).removeprefix("torch.")]}

    attrs = {k: _to_json(v) for k, v in vars(fact).items() if k not in fact._fields}
    fields = {f: field(getattr(fact, f)) for f in fact._fields}
    return {"class": type(fact).__name__, "attrs": attrs, "fields": fields}


def from_structure(spec: dict, device=None) -> Factorization:
    """A result of the structure ``spec`` holding uninitialised tensors on ``device``."""

    def field(value):
        if value is None:
            return None
        if "result" in value:
            return from_structure(value["result"], device)
        if "list" in value:
            return [field(t) for t in value["list"]]
        shape, dtype = value["tensor"]
        return torch.empty(shape, dtype=getattr(torch, dtype), device=device)

    cls = _RESULT_TYPES.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"unknown result class {spec.get('class')!r} in a saved structure")
    new = object.__new__(cls)
    new.__dict__.update({k: _from_json(v) for k, v in spec["attrs"].items()})
    new.__dict__.update({f: field(v) for f, v in spec["fields"].items()})
    return new


def _to_json(v):
    """A plain attribute of a result as JSON-able data (tagged where JSON has no type)."""
    if isinstance(v, torch.Size):
        return {"size": list(v)}
    if isinstance(v, torch.dtype):
        return {"dtype": str(v).removeprefix("torch.")}
    if isinstance(v, torch.Tensor):  # a fit history
        return {"values": v.tolist(), "dtype": str(v.dtype).removeprefix("torch.")}
    if isinstance(v, tuple):
        return {"tuple": [_to_json(x) for x in v]}
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise TypeError(f"cannot describe an attribute of type {type(v).__name__} as JSON")


def _from_json(v):
    if isinstance(v, dict):
        if "size" in v:
            return torch.Size(v["size"])
        if "values" in v:
            return torch.tensor(v["values"], dtype=getattr(torch, v["dtype"]))
        if "dtype" in v:
            return getattr(torch, v["dtype"])
        if "tuple" in v:
            return tuple(_from_json(x) for x in v["tuple"])
    return v
