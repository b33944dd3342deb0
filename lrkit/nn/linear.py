"""One layer for every matrix factorization: :class:`FactorizedLinear`.

A factorization result stores a few tensors and knows how to apply itself
(``fact.linear(x) = x @ W.T``). The layer turns those tensors into module state, with no
per-type code: floating tensors become ``nn.Parameter``s (trained), integer tensors
(quantization codes, indices) become buffers (kept). ``forward`` rebuilds the result from
the module's current tensors and calls its unchecked kernel, so ``.to(device)``,
``.half()``, ``state_dict`` and optimizers all see ordinary parameters.

One exception keeps the bit count honest: a floating tensor that the result counts at fewer
bits than its dtype holds (the range numbers of a quantization stored as float16, kept in
float32) holds values representable at that width; training would move it off them, so it
becomes a buffer too. A quantized result (``QuantizedLowRank``) with ranges stored at full
width (the default, float32) trains its ranges (scales); its codes stay fixed. Nothing here
re-quantizes during training.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn

from ..core._params import checked
from ..core._random import make_generator
from ..core.factorization import Factorization, dtype_bits
from ..core.lowrank import LowRank
from ..matrix.cur import cur
from ..matrix.lplr import lplr
from ..matrix.rsvd import rsvd
from ..matrix.svd import truncated_svd
from ..structured import Monarch, butterfly_project, kron_approx, monarch_project

__all__ = ["FactorizedLinear", "METHODS"]

# name -> a function of the weight (out, in) and keyword arguments returning a result
METHODS: dict[str, Callable[..., Factorization]] = {
    "svd": truncated_svd,
    "rsvd": rsvd,
    "lplr": lplr,
    "cur": cur,
    "kron": kron_approx,
    "monarch": monarch_project,
    "butterfly": butterfly_project,
}


def _slot(path: str) -> str:
    return path.replace(".", "_")  # "L.codes" -> "L_codes": module attribute names have no dots


class FactorizedLinear(nn.Module):
    """``y = x @ W.T + b`` with W held as an lrkit factorization of shape (out, in).

    Parameters
    ----------
    fact : a matrix result of lrkit (LowRank, QuantizedLowRank, KroneckerSum, Monarch,
        Butterfly, CUR with dense factors, Interpolative, QuantizedMatrix), shape (out, in).
        Its tensors are copied into the module (the caller's result is never changed).
    bias : tensor of shape (out,) or None.

    ``num_params`` and ``nbits`` are the factorization's, plus the bias.
    """

    def __init__(self, fact: Factorization, bias: torch.Tensor | None = None):
        super().__init__()
        if not isinstance(fact, Factorization) or len(fact.shape) != 2:
            raise TypeError(f"fact must be a 2-D lrkit factorization; got {fact!r}")
        if any(t.layout != torch.strided for t, _, _ in fact._leaves()):
            raise ValueError("a layer needs dense factors; this result holds sparse tensors")
        self.out_features, self.in_features = fact.shape
        self._slots: list[str] = []
        narrow = {f for t, bits, f in fact._leaves() if bits < dtype_bits(t.dtype)}

        def register(path: str, t: torch.Tensor) -> torch.Tensor:
            slot = _slot(path)
            t = t.detach().clone()
            field = path if path in narrow else path.rpartition(".")[0]  # "factors.0" -> list
            if (t.is_floating_point() or t.is_complex()) and field not in narrow:
                self.register_parameter(slot, nn.Parameter(t))
            else:
                self.register_buffer(slot, t)
            self._slots.append(slot)
            return torch.empty_like(t, device="meta")  # shape only: the module holds the data

        self._template = fact._named_map(register)  # its tensors are replaced at each call
        if bias is not None:
            bias = torch.as_tensor(bias).detach().clone()
            if bias.shape != (self.out_features,):
                raise ValueError(
                    f"bias must have shape ({self.out_features},); got {tuple(bias.shape)}"
                )
            self.bias = nn.Parameter(bias.to(device=fact.device, dtype=fact.dtype))
        else:
            self.register_parameter("bias", None)

    # -- the factorization, as the module holds it now -------------------------------------
    @property
    def factorization(self) -> Factorization:
        """The result built from the module's current parameters and buffers (autograd
        flows through it to the parameters). Rebuilt only when one of those tensors has been
        replaced by another object (``.to()`` of a buffer, ``load_state_dict(assign=True)``):
        optimizer steps change values in place and need no rebuild."""
        current = [getattr(self, s) for s in self._slots]
        cached = self.__dict__.get("_cached")
        if cached is None or any(a is not b for a, b in zip(cached[0], current, strict=True)):
            tensors = iter(current)
            cached = (current, self._template._map(lambda _: next(tensors)))
            self.__dict__["_cached"] = cached
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factorization.linear(x, self.bias)  # (..., out)

    # -- size ----------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        """Stored real floating values: the factorization's and the bias."""
        bias = 0 if self.bias is None else self.bias.numel()
        return self.factorization.num_params + bias

    @property
    def nbits(self) -> int:
        """Every stored bit: the factorization's (codes at their width) and the bias."""
        bias = 0 if self.bias is None else self.bias.numel() * dtype_bits(self.bias.dtype)
        return self.factorization.nbits + bias

    def extra_repr(self) -> str:
        fact = self.factorization
        kind = type(fact).__name__
        rank = f", rank={fact.rank}" if hasattr(fact, "rank") else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, {kind}{rank}, "
            f"bias={self.bias is not None}, params={self.num_params}"
        )

    # -- from and to nn.Linear ---------------------------------------------------------------
    @classmethod
    @checked
    def from_linear(
        cls, linear: nn.Linear, method: str | Callable[..., Factorization] = "svd", **method_kwargs
    ) -> FactorizedLinear:
        """Factorize ``linear.weight`` (out, in) with ``method`` and keep its bias.

        ``method``: one of ``"svd"`` (``rank=``), ``"rsvd"``, ``"lplr"``, ``"cur"``,
        ``"kron"``, ``"monarch"``, ``"butterfly"`` (the lrkit function of that name, given
        ``**method_kwargs``), or any callable ``f(W, **method_kwargs)`` returning a matrix
        result. Half-precision weights are factorized in float32 and the layer cast back.
        The given layer is not changed.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear; got {type(linear).__name__}")
        if isinstance(method, str):
            if method not in METHODS:
                raise ValueError(
                    f"method (={method!r}) must be one of {', '.join(map(repr, METHODS))} "
                    f"or a callable returning a factorization"
                )
            fn = METHODS[method]
        elif callable(method):
            fn = method
        else:
            raise TypeError(f"method must be a name or a callable; got {method!r}")
        try:  # name the method when it does not take an argument it was given
            inspect.signature(fn).bind(None, **method_kwargs)
        except TypeError as err:
            raise TypeError(f"method {getattr(fn, '__name__', method)!r}: {err}") from None
        W = linear.weight.detach()
        fact = fn(W, **method_kwargs)
        if not isinstance(fact, Factorization) or tuple(fact.shape) != tuple(W.shape):
            raise ValueError(
                f"method returned {fact!r}; a factorization of shape {tuple(W.shape)} is needed"
            )
        layer = cls(fact, None if linear.bias is None else linear.bias.detach())
        return layer.to(dtype=W.dtype) if W.dtype != fact.dtype else layer

    def to_linear(self) -> nn.Linear:
        """A dense ``nn.Linear`` with ``W = to_dense()`` and the same bias, device and dtype
        (the analogue of PEFT's ``merge_and_unload``)."""
        with torch.no_grad():
            W = self.factorization.to_dense()
            dense = nn.Linear(
                self.in_features, self.out_features, self.bias is not None,
                device=W.device, dtype=W.dtype,
            )  # fmt: skip
            dense.weight.copy_(W)
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    # -- trained from scratch ----------------------------------------------------------------
    @classmethod
    @checked
    def low_rank(
        cls, in_features: int, out_features: int, rank: int, *, bias: bool = True,
        device=None, dtype=None, seed=None,
    ) -> FactorizedLinear:  # fmt: skip
        """A rank-``rank`` layer ``U diag(S) Vh`` initialised at random for training.

        The init matches ``nn.Linear``'s output variance: with S = 1, Vh ~ N(0, 1/in) and
        U ~ N(0, 1/(3 rank)), each entry of W = U Vh has variance 1/(3 in), the variance of
        nn.Linear's uniform(-1/sqrt(in), 1/sqrt(in)) weights. The bias is drawn like
        nn.Linear's. ``seed``: int, torch.Generator or None.
        """
        # types and lower bounds: the parameter table (@checked); the bound from the sizes here
        if rank > min(in_features, out_features):
            raise ValueError(
                f"rank (={rank}) must be <= min(in_features, out_features) = "
                f"{min(in_features, out_features)}"
            )
        gen, kw = _generator(seed, device), dict(device=device, dtype=dtype or torch.float32)
        U = torch.randn(out_features, rank, generator=gen, **kw) / math.sqrt(3 * rank)
        Vh = torch.randn(rank, in_features, generator=gen, **kw) / math.sqrt(in_features)
        b = _uniform_bias(out_features, in_features, gen, kw) if bias else None
        return cls(LowRank(U, torch.ones(rank, **kw), Vh), b)

    @classmethod
    @checked
    def monarch(
        cls, in_features: int, out_features: int, nblocks: int, *, bias: bool = True,
        device=None, dtype=None, seed=None,
    ) -> FactorizedLinear:  # fmt: skip
        """A Monarch layer (Dao et al. 2022) initialised at random for training.

        ``nblocks`` must divide both sizes. The product ``P L P^T R`` sums ``in/nblocks``
        terms in R and ``nblocks`` terms in L; R ~ N(0, nblocks/in) and L ~ N(0, 1/(3
        nblocks)) give outputs the variance of nn.Linear's default init (1/3 of the input's).
        """
        b = nblocks  # an int >= 1 (the parameter table); that it divides both sizes: here
        if in_features % b or out_features % b:
            raise ValueError(
                f"nblocks (={b}) must divide in_features (={in_features}) and "
                f"out_features (={out_features})"
            )
        gen, kw = _generator(seed, device), dict(device=device, dtype=dtype or torch.float32)
        q = out_features // b
        R = torch.randn(b, q, in_features // b, generator=gen, **kw) * math.sqrt(b / in_features)
        L = torch.randn(q, b, b, generator=gen, **kw) / math.sqrt(3 * b)
        bias_t = _uniform_bias(out_features, in_features, gen, kw) if bias else None
        return cls(Monarch(L, R), bias_t)


def _generator(seed, device) -> torch.Generator | None:
    device = torch.device(device or "cpu")
    if device.type == "meta":  # shapes only: no random numbers are drawn there
        return None
    return make_generator(seed, device)


def _uniform_bias(out_features, in_features, gen, kw) -> torch.Tensor:
    bound = 1 / math.sqrt(in_features)  # nn.Linear's default bias init
    return (torch.rand(out_features, generator=gen, **kw) * 2 - 1) * bound
