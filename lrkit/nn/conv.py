"""Factorized convolutions: a Conv2d weight (out, in, kh, kw) as a Tucker-2 or CP tensor.

- Tucker-2 (Kim et al., "Compression of deep convolutional neural networks for fast and
  low power mobile applications", ICLR 2016): ``W = core x_0 U_out x_1 U_in`` with core
  (r_out, r_in, kh, kw). As layers: a 1x1 conv in -> r_in (``U_in^T``), the kh x kw conv
  r_in -> r_out (the core, with the original stride, padding and dilation), and a 1x1 conv
  r_out -> out (``U_out``, with the bias).
- CP (Lebedev et al., "Speeding-up convolutional neural networks using fine-tuned
  CP-decomposition", ICLR 2015): ``W = sum_r a_out[:, r] o a_in[:, r] o a_h[:, r] o a_w[:, r]``.
  As layers: 1x1 in -> R, a depthwise kh x 1 conv, a depthwise 1 x kw conv (each carrying
  its direction's stride, padding and dilation), and 1x1 R -> out with the bias.

Splitting the spatial conv keeps every padding mode exact: channel mixing and a conv along
one axis both commute with padding along the other. Only ``groups=1`` convolutions are
factorized. The reference is always the dense conv with the rebuilt weight
(``to_conv()``); the tests compare outputs and gradients.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core._checks import check_positive_int
from ..core._params import checked
from ..core.factorization import dtype_bits
from ..tensor import CPTensor, TuckerTensor, cp_als, hooi

__all__ = ["FactorizedConv2d"]


def _conv(cin, cout, kernel, *, stride=1, padding=0, dilation=1, groups=1, bias=False, like):
    return nn.Conv2d(
        cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=bias, padding_mode=like.padding_mode, device=like.weight.device,
        dtype=like.weight.dtype,
    )  # fmt: skip


class FactorizedConv2d(nn.Module):
    """A ``groups=1`` Conv2d as a chain of small convs from a Tucker-2 or CP factorization.

    Build with :meth:`from_conv`. ``factorization`` rebuilds the TuckerTensor (spatial
    factors the identity: they are not stored) or CPTensor from the current weights;
    ``num_params`` and ``nbits`` count exactly the stored weights and bias.
    """

    def __init__(self, method: str, layers: nn.Sequential, conv: nn.Conv2d):
        super().__init__()
        self.method = method
        self.layers = layers
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size = conv.kernel_size
        self._conv_args = dict(
            stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
            padding_mode=conv.padding_mode,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def nbits(self) -> int:
        return sum(p.numel() * dtype_bits(p.dtype) for p in self.parameters())

    @property
    def rank(self):
        """``(r_out, r_in)`` for Tucker-2, R for CP: read from the layers' shapes."""
        if self.method == "tucker":
            return (self.layers[2].in_channels, self.layers[0].out_channels)
        return self.layers[0].out_channels

    @property
    def bias(self) -> torch.Tensor | None:
        return self.layers[-1].bias

    @property
    def factorization(self) -> TuckerTensor | CPTensor:
        """The weight (out, in, kh, kw) as a factorization of the current parameters, built
        without checks and without detaching (autograd flows to the parameters, and a net
        whose weights diverged can still be inspected)."""
        if self.method == "tucker":
            first, core, last = self.layers
            U_in, U_out = first.weight[:, :, 0, 0].T, last.weight[:, :, 0, 0]  # (in, r), (out, r)
            kh, kw = self.kernel_size
            eye = [
                torch.eye(k, dtype=core.weight.dtype, device=core.weight.device) for k in (kh, kw)
            ]
            return _unchecked(TuckerTensor, core=core.weight, factors=[U_out, U_in, *eye])
        first, vertical, horizontal, last = self.layers
        factors = [
            last.weight[:, :, 0, 0],  # (out, R): the weights are folded into a_out
            first.weight[:, :, 0, 0].T,  # (in, R)
            vertical.weight[:, 0, :, 0].T,  # (kh, R)
            horizontal.weight[:, 0, 0, :].T,  # (kw, R)
        ]
        ones = torch.ones(factors[0].shape[1], dtype=factors[0].dtype, device=factors[0].device)
        return _unchecked(CPTensor, weights=ones, factors=factors)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, rank={self.rank}, params={self.num_params}"

    def to_conv(self) -> nn.Conv2d:
        """The dense Conv2d with the rebuilt weight, the same bias and arguments."""
        bias = self.bias
        with torch.no_grad():
            W = self.factorization.to_dense()
            conv = nn.Conv2d(
                self.in_channels, self.out_channels, self.kernel_size, bias=bias is not None,
                device=W.device, dtype=W.dtype, **self._conv_args,
            )  # fmt: skip
            conv.weight.copy_(W)
            if bias is not None:
                conv.bias.copy_(bias)
        return conv

    @classmethod
    @checked
    def from_conv(
        cls, conv: nn.Conv2d, method: str = "tucker", *, rank, **method_kwargs
    ) -> FactorizedConv2d:
        """Factorize ``conv.weight``: ``method="tucker"`` (``rank``: r for both channel modes
        or ``(r_out, r_in)``; HOOI, :func:`lrkit.tensor.hooi`) or ``"cp"`` (``rank``: R;
        :func:`lrkit.tensor.cp_als`). ``method_kwargs`` go to that function (``seed``,
        ``n_iter_max``, ``tol``). Stride, padding, dilation, padding mode, bias, device and
        dtype are kept; half-precision weights are factorized in float32. The given conv
        is not changed.
        """
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be a torch.nn.Conv2d; got {type(conv).__name__}")
        if conv.groups != 1:
            raise ValueError(f"conv.groups (={conv.groups}) must be 1 to be factorized")
        if isinstance(conv.padding, str):
            raise ValueError(
                f"conv.padding (={conv.padding!r}) must be numbers to be split by axis"
            )
        W = conv.weight.detach()
        out, cin, kh, kw = W.shape
        if method == "tucker":
            r_out, r_in = (rank, rank) if not isinstance(rank, tuple | list) else rank
            r_out, r_in = _channel_rank(r_out, out, "out"), _channel_rank(r_in, cin, "in")
            tk = hooi(W.float() if W.dtype not in (torch.float32, torch.float64) else W,
                      (r_out, r_in, kh, kw), **method_kwargs)  # fmt: skip
            core, (U_out, U_in, U_h, U_w) = tk
            core = torch.einsum("abij,hi,wj->abhw", core, U_h, U_w)  # absorb the spatial factors
            rank = (r_out, r_in)
            weights = [U_in.T[:, :, None, None], core, U_out[:, :, None, None]]
        else:
            # an int >= 1 (the parameter table); cp_als checks its upper bound
            cp = cp_als(W.float() if W.dtype not in (torch.float32, torch.float64) else W,
                        rank, **method_kwargs)  # fmt: skip
            lam, (A_out, A_in, A_h, A_w) = cp
            weights = [
                A_in.T[:, :, None, None],  # (R, in, 1, 1)
                A_h.T[:, None, :, None],  # (R, 1, kh, 1)
                A_w.T[:, None, None, :],  # (R, 1, 1, kw)
                (A_out * lam)[:, :, None, None],  # (out, R, 1, 1)
            ]
        layers = _layers(method, rank, conv)
        with torch.no_grad():
            for layer, w in zip(layers, weights, strict=True):
                layer.weight.copy_(w)
            if conv.bias is not None:
                layers[-1].bias.copy_(conv.bias)
        return cls(method, layers, conv)

    @classmethod
    def _empty(cls, method: str, rank, conv: nn.Conv2d) -> FactorizedConv2d:
        """The layer structure for ``method`` and ``rank`` with uninitialised weights (to be
        filled from a saved state)."""
        return cls(method, _layers(method, tuple(rank) if method == "tucker" else rank, conv), conv)


def _layers(method: str, rank, conv: nn.Conv2d) -> nn.Sequential:
    """The chain of convs for a Tucker-2 (rank (r_out, r_in)) or CP (rank R) factorization."""
    out, cin, kh, kw = conv.weight.shape
    bias = conv.bias is not None
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    if method == "tucker":
        r_out, r_in = rank
        return nn.Sequential(
            _conv(cin, r_in, 1, like=conv),
            _conv(r_in, r_out, (kh, kw), stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, like=conv),
            _conv(r_out, out, 1, bias=bias, like=conv),
        )  # fmt: skip
    return nn.Sequential(
        _conv(cin, rank, 1, like=conv),
        _conv(rank, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1),
              groups=rank, like=conv),
        _conv(rank, rank, (1, kw), stride=(1, sw), padding=(0, pw), dilation=(1, dw),
              groups=rank, like=conv),
        _conv(rank, out, 1, bias=bias, like=conv),
    )  # fmt: skip


def _channel_rank(r, channels: int, side: str) -> int:
    r = check_positive_int(r, f"rank ({side}put channels)")
    if r > channels:
        raise ValueError(
            f"rank ({side}put channels) (={r}) must be <= {side}_channels = {channels}"
        )
    return r


def _unchecked(cls, **fields):
    """A result holding ``fields`` as they are (no checks, no copies), with no fit history."""
    new = object.__new__(cls)
    new.__dict__.update(fields, history=torch.empty(0, dtype=torch.float64), converged=False)
    return new
