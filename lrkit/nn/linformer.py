"""Linformer self-attention: keys and values projected along the sequence, from n to k rows.

Wang, Li, Khabsa, Fang & Ma, "Linformer: Self-Attention with Linear Complexity" (2020,
arXiv:2006.04768), Eq. 7: each head attends to k compressed keys and values,

    head_i = softmax(Q W_i^Q (E_i X W_i^K)^T / sqrt(d_h)) F_i X W_i^V,    E_i, F_i: (k, n),

so the score matrix is (n, k) instead of (n, n): time O(n k), not O(n^2).
Section 4 of the paper shares the projections to save parameters, each option below the
one before it:

- ``share="none"``: an E_i and an F_i per head (2 h k n numbers);
- ``share="headwise"``: one E and one F for all heads (2 k n; the default here and in the
  ``linformer`` package);
- ``share="kv"``: one E = F for all heads, keys and values (k n);
- ``share="layerwise"``: E = F given from outside (``projection=``): pass one
  ``nn.Parameter`` to several layers and they train it together (k n for the whole model),
  or pass a plain tensor to keep it fixed, a buffer that is never trained. The fixed
  projections :func:`jl_projection` (data-free: a Gaussian, Johnson-Lindenstrauss) and
  :func:`svd_projection` (a truncated SVD of given keys or values) put a Linformer over
  trained weights with no training: experiments on whether attention is low rank.

Shorter inputs (n < seq_len) use the first n columns of E and F, as fairseq and the
``linformer`` package do. Every compressed key mixes every position, later ones
included, so Linformer cannot be causal: ``forward(x, is_causal=True)`` is refused.
:meth:`LinformerSelfAttention.full_attention` runs the same weights with full softmax
attention, the reference that k = n and E = F = I reproduce exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention as sdpa

from ..core._checks import as_matrix
from ..core._params import checked
from ..matrix.svd import truncated_svd
from .linear import _generator

__all__ = ["LinformerSelfAttention", "jl_projection", "svd_projection"]


class LinformerSelfAttention(nn.Module):
    """Multi-head self-attention over k projected keys and values (Linformer, Eq. 7).

    Parameters
    ----------
    dim : model width; ``x`` has shape (batch, n, dim).
    seq_len : the longest sequence, the length of the projections E, F: (k, seq_len).
    k : the projected length, ``1 <= k <= seq_len``.
    heads : number of heads; ``dim_head`` defaults to ``dim // heads`` (then ``heads``
        must divide ``dim``).
    share : ``"none"``, ``"headwise"`` (default), ``"kv"`` or ``"layerwise"`` (module
        docstring). Parameters: the four linear maps hold ``4 dim h d_h + dim`` numbers
        (no bias on queries, keys and values; a bias on the output, as in the ``linformer``
        package), plus 2 h k seq_len, 2 k seq_len, k seq_len or none of the projections.
    projection : with ``share="layerwise"`` only: E = F, shape (k, seq_len). An
        ``nn.Parameter`` is held as is (shared with every layer given it, trained); any other
        tensor is copied into a buffer (fixed). The caller's tensor is never changed.
    dropout : probability of dropping an attention weight in training (off by default).
    device, dtype, seed : where and how the weights are drawn; every linear map as
        ``nn.Linear`` draws its own, each E, F like the weight of ``nn.Linear(seq_len, k)``:
        uniform in +-1/sqrt(seq_len), so a projected key (a sum over n <= seq_len
        positions) stays within a small factor of a key's size.

    :meth:`projections` gives E and F as used for a length n; :meth:`full_attention` runs
    the same linear maps with softmax over all n keys.

    Examples
    --------
    >>> import torch
    >>> from lrkit.nn import LinformerSelfAttention
    >>> layer = LinformerSelfAttention(64, 128, k=32, heads=4, seed=0)
    >>> x = torch.randn(2, 100, 64)  # shorter than seq_len: E, F use their first 100 columns
    >>> layer(x).shape, layer.projections(100)[0].shape
    (torch.Size([2, 100, 64]), torch.Size([32, 100]))
    >>> layer.num_params == 4 * 64 * 64 + 64 + 2 * 32 * 128  # four maps and E, F
    True
    """

    @checked
    def __init__(
        self, dim: int, seq_len: int, *, k: int, heads: int, dim_head: int | None = None,
        share: str = "headwise", projection: torch.Tensor | None = None, dropout: float = 0.0,
        device=None, dtype=None, seed=None,
    ):  # fmt: skip
        super().__init__()
        # types and lower bounds: the parameter table (@checked); bounds between them: here
        if k > seq_len:
            raise ValueError(f"k (={k}) must be <= seq_len = {seq_len}")
        if dim_head is None:
            if dim % heads:
                raise ValueError(f"heads (={heads}) must divide dim (={dim}), or give dim_head")
            dim_head = dim // heads
        if (share == "layerwise") != (projection is not None):
            raise ValueError(
                f"share='layerwise' takes its E = F from projection= (shape (k, seq_len)), and "
                f"only it does; got share={share!r} and projection="
                f"{'None' if projection is None else 'a tensor'}"
            )
        self.dim, self.seq_len, self.k, self.heads, self.dim_head = dim, seq_len, k, heads, dim_head
        self.share, self.dropout = share, dropout
        gen, kw = _generator(seed, device), dict(device=device, dtype=dtype or torch.float32)
        inner = heads * dim_head

        def linear(n_in, n_out, bias=False):
            layer = nn.Linear(n_in, n_out, bias=bias, **kw)
            bound = 1 / math.sqrt(n_in)  # nn.Linear's default init, drawn from our generator
            if gen is not None:
                with torch.no_grad():
                    for p in layer.parameters():
                        p.uniform_(-bound, bound, generator=gen)
            return layer

        def proj(*shape):  # E or F, like nn.Linear(seq_len, k).weight: (..., k, seq_len)
            E = torch.empty(*shape, k, seq_len, **kw)
            if gen is not None:
                E.uniform_(-1 / math.sqrt(seq_len), 1 / math.sqrt(seq_len), generator=gen)
            return nn.Parameter(E)

        self.to_q, self.to_k, self.to_v = (linear(dim, inner) for _ in range(3))
        self.to_out = linear(inner, dim, bias=True)
        if share == "none":
            self.E, self.F = proj(heads), proj(heads)  # (h, k, seq_len) each
        elif share == "headwise":
            self.E, self.F = proj(), proj()  # (k, seq_len) each
        elif share == "kv":
            self.E = proj()  # (k, seq_len), also F
        else:
            self._set_given(projection, kw)

    def _set_given(self, projection, kw) -> None:
        if not isinstance(projection, torch.Tensor):
            raise TypeError(f"projection must be a torch.Tensor; got {type(projection).__name__}")
        want = (self.k, self.seq_len)
        if tuple(projection.shape) != want:
            raise ValueError(
                f"projection must have shape (k, seq_len) = {want}; got {tuple(projection.shape)}"
            )
        if not bool(torch.isfinite(projection).all()):
            raise ValueError("projection contains NaN or Inf values")
        if isinstance(projection, nn.Parameter):  # held as is: the layers share it
            if (
                projection.dtype != kw["dtype"]
                or projection.device.type != torch.device(kw["device"] or "cpu").type
            ):
                raise ValueError(
                    f"a shared projection must live where the layer does ({kw['dtype']} on "
                    f"{kw['device'] or 'cpu'}); got {projection.dtype} on {projection.device}"
                )
            self.E = projection
        else:  # a fixed projection: a copy, kept out of training
            self.register_buffer("E", projection.detach().to(**kw).clone())

    # -- the projections ----------------------------------------------------------------------
    def projections(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """E and F for a sequence of length n (default seq_len): their first n columns,
        shapes (k, n), or (heads, k, n) with ``share="none"``."""
        n = self.seq_len if n is None else n
        E = self.E[..., :n]
        return E, (E if self.share in ("kv", "layerwise") else self.F[..., :n])

    @property
    def num_params(self) -> int:
        """Parameters held by this layer, a shared projection included."""
        return sum(p.numel() for p in self.parameters())

    # -- forward --------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, is_causal: bool) -> int:
        if not isinstance(is_causal, bool):
            raise TypeError(f"is_causal must be a bool; got {is_causal!r}")
        if is_causal:
            raise ValueError(
                f"is_causal (={is_causal!r}): Linformer cannot be causal; each projected key "
                f"and value mixes every position, later ones included, so position t would "
                f"see the future (use full attention in a causal model)"
            )
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(
                f"x must have shape (batch, n, dim = {self.dim}); got {tuple(x.shape)}"
            )
        n = x.shape[1]
        if n > self.seq_len:
            raise ValueError(f"n (={n}), the length of x, must be <= seq_len = {self.seq_len}")
        if n == 0 or x.shape[0] == 0:
            raise ValueError(f"x is empty (shape {tuple(x.shape)}); it needs a token")
        # one reduction (and a host sync): refuse NaN and Inf rather than spread them
        t = x.detach()
        if not t.is_meta and not bool(torch.isfinite(t.sum())) and not bool(t.isfinite().all()):
            raise ValueError("x contains NaN or Inf values; Linformer refuses non-finite input")
        return n

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        B, L, _ = t.shape
        return t.view(B, L, self.heads, self.dim_head).transpose(1, 2)  # (B, h, L, d_h)

    def forward(self, x: torch.Tensor, *, is_causal: bool = False) -> torch.Tensor:
        """Self-attention of ``x`` (batch, n, dim), n <= seq_len, through k projected keys
        and values; returns (batch, n, dim). ``is_causal=True`` is refused (module docstring)."""
        n = self._check(x, is_causal)
        B = x.shape[0]
        E, F = self.projections(n)  # (k, n), or (h, k, n) with share="none"
        q = self._split(self.to_q(x))  # (B, h, n, d_h)
        if self.share == "none":  # E_i differs per head: project each head's keys and values
            keys = E @ self._split(self.to_k(x))  # (h, k, n) @ (B, h, n, d_h) -> (B, h, k, d_h)
            values = F @ self._split(self.to_v(x))  # (B, h, k, d_h)
        else:  # one E for every head: E (X W_K^T) = (E X) W_K^T, and E X has k rows, not n
            xk = E @ x  # (k, n) @ (B, n, dim) -> (B, k, dim)
            xv = xk if F is E else F @ x  # (B, k, dim)
            keys, values = self._split(self.to_k(xk)), self._split(self.to_v(xv))  # (B, h, k, d_h)
        p = self.dropout if self.training else 0.0
        out = sdpa(q, keys, values, dropout_p=p)  # softmax(q keys^T / sqrt(d_h)) values
        # out: (B, h, n, d_h)
        return self.to_out(out.transpose(1, 2).reshape(B, n, -1))  # (B, n, dim)

    def full_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The same weights with full softmax attention over all n keys (no E, F): what the
        layer approximates. Bidirectional, like the layer; (batch, n, dim) -> (batch, n, dim)."""
        n = self._check(x, False)
        q, keys, values = (self._split(f(x)) for f in (self.to_q, self.to_k, self.to_v))
        out = sdpa(q, keys, values, dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(x.shape[0], n, -1))  # (B, n, dim)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, seq_len={self.seq_len}, k={self.k}, heads={self.heads}, "
            f"dim_head={self.dim_head}, share={self.share!r}, dropout={self.dropout}"
        )


# -- fixed, data-free projections -----------------------------------------------------------------
@checked
def jl_projection(seq_len: int, k: int, *, seed=None, device=None, dtype=None) -> torch.Tensor:
    """A Gaussian (k, seq_len) projection with entries N(0, 1/k): Johnson-Lindenstrauss.

    For any fixed v of length seq_len, ``||E v||^2 / ||v||^2`` has mean 1 and variance 2/k
    (a chi-square with k degrees of freedom, over k), and ``E^T E`` has mean I; the paper's
    Theorem 1 builds its low-rank attention from such an E. ``1 <= k <= seq_len``.
    ``seed``: int, torch.Generator or None (drawn on ``device``).
    """
    if k > seq_len:
        raise ValueError(f"k (={k}) must be <= seq_len = {seq_len}")
    gen, kw = _generator(seed, device), dict(device=device, dtype=dtype or torch.float32)
    return torch.randn(k, seq_len, generator=gen, **kw) / math.sqrt(k)  # (k, seq_len)


@checked
def svd_projection(X, k: int) -> torch.Tensor:
    """E = U_k^T, shape (k, n): the top k left singular vectors of keys or values X.

    ``X``: (n, d), or a stack (..., n, d) such as keys of shape (batch, heads, n, d_h), whose
    columns are all taken together (n rows, everything else as columns). The rows of E are
    orthonormal and ``E^T E X`` is the best rank-k approximation of X (Eckart-Young): the k
    mixtures of positions that keep the most of X. Softmax is not linear, so a Linformer
    with this E is not exact even at k = n (it is with E = I); how far it is, is the
    experiment. ``1 <= k <= min(n, columns)``. X is never modified.
    """
    X = as_matrix(X, "X", batched=True)  # float32 or float64, finite
    M = X.movedim(-2, 0).reshape(X.shape[-2], -1)  # (n, everything else)
    if k > min(M.shape):
        raise ValueError(
            f"k (={k}) must be <= min(n, columns) = {min(M.shape)} for X of shape {tuple(X.shape)}"
        )
    return truncated_svd(M, k).U.T.contiguous()  # (k, n)
