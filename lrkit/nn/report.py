"""What ``compress_model`` did: one row per module and the whole model's sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..core.factorization import dtype_bits
from .conv import FactorizedConv2d
from .linear import FactorizedLinear

__all__ = ["CompressionReport", "ModuleReport", "model_nbits", "model_params", "layer_size"]


@dataclass
class ModuleReport:
    """One replaced (or skipped) module: sizes before and after."""

    name: str
    type: str
    method: str
    rank: object
    params_before: int
    params_after: int
    nbits_before: int
    nbits_after: int
    note: str = ""


@dataclass
class CompressionReport:
    """Per-module rows and the whole model's totals (parameters = stored floating values;
    nbits = every stored bit, quantization codes at their width)."""

    modules: list[ModuleReport] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    nbits_before: int = 0
    nbits_after: int = 0

    @property
    def param_ratio(self) -> float:
        return self.params_after / self.params_before

    def compression_ratio(self) -> float:
        return self.nbits_before / self.nbits_after

    def __repr__(self) -> str:
        head = ("module", "type", "method", "rank", "params before", "params after",
                "bits before", "bits after")  # fmt: skip
        rows = [
            (m.name, m.type, m.method, str(m.rank), f"{m.params_before:,}", f"{m.params_after:,}",
             f"{m.nbits_before:,}", f"{m.nbits_after:,}")
            for m in self.modules
        ]  # fmt: skip
        rows.append(
            ("whole model", "", "", "", f"{self.params_before:,}", f"{self.params_after:,}",
             f"{self.nbits_before:,}", f"{self.nbits_after:,}")
        )  # fmt: skip
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
        text = [line(head), line(tuple("-" * w for w in widths)), *map(line, rows)]
        text.append(
            f"parameters kept: {self.param_ratio:.3f}; compression (bits): "
            f"{self.compression_ratio():.2f}x"
        )
        return "\n".join(text)

    def to_pandas(self):
        """The per-module rows as a pandas DataFrame (pandas must be installed)."""
        import pandas as pd

        return pd.DataFrame([vars(m) for m in self.modules])


# -- sizes --------------------------------------------------------------------------------
def model_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_nbits(model: nn.Module) -> int:
    """Every stored bit: factorized layers by their own count (codes at their width), the
    other parameters at their dtype, each shared (tied) parameter once."""
    total, skip, seen = 0, set(), set()
    for module in model.modules():  # parents come before their children
        if id(module) in skip:
            continue
        if isinstance(module, FactorizedLinear | FactorizedConv2d):
            total += module.nbits
            skip.update(id(m) for m in module.modules())
            continue
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * dtype_bits(p.dtype)
    return total


def layer_size(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, FactorizedLinear | FactorizedConv2d):
        return module.num_params, module.nbits
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * dtype_bits(p.dtype) for p in params)
