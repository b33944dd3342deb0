"""Latent KV attention: cache a low-rank latent of each token instead of its keys and values.

Chang et al., "Palu: KV-Cache Compression with Low-Rank Projection" (2024, arXiv:2407.21118).
The key projection ``K = x W_k^T`` (W_k: (kv_heads * d, hidden)) is factored per group of
KV heads, ``W_k,g ~ B_g A_g`` with ``A_g`` (r_g, hidden) and ``B_g`` (group_size * d, r_g):

    latent  h_g = x A_g^T               (r_g numbers per token: what the cache stores)
    keys    K_g = h_g B_g^T             (rebuilt on the fly, then rotated by RoPE)

and the same for values, with a latent of their own. RoPE turns with the position, so it
cannot be folded into B_g: the cache holds the latent *before* RoPE and the rebuilt keys
are rotated at their positions (the model hands every position's rotary table to its
attention, see ``lrkit.llm``). Values need no rotation, and attention weights are linear
in them: ``sum_s p_ts (h_s B^T) = (sum_s p_ts h_s) B^T``. So attention runs over the
value latents themselves, and each head's slice of B_v is applied to that head's T outputs
only, V is never rebuilt at the S cached positions (``fold_v=True``, exact up to rounding).
Palu multiplies that slice into the head's columns of o_proj once (its matrix fusion); we
apply it before o_proj instead, which costs ``T * r * d`` per head rather than a fused
``(r, hidden)`` matrix per head, and is the cheaper order unless r is much below d.

Group-head decomposition (Palu's G-LRD): ``group_size`` KV heads share one factorization,
so ``group_size=1`` is one latent per head (M-LRD), ``group_size=kv_heads`` one latent for
all (J-LRD), in between groups. A joint latent sees what heads have in common and keeps
the most for a given cache size; the price is that rebuilding one head's keys reads the
group's whole latent: ``S * r_g * group_size * d`` multiply-adds per group for S cached
positions, ``group_size`` times the per-head cost at equal total rank.

K and V get separate latents, as in Palu: K is rebuilt (for RoPE) and V is folded, so they
are used differently; their errors act differently (K's through the softmax, V's
linearly), so a shared latent would need a weighting of the two that calibration data does
not give; and each factorization is then the best of its own rank (Eckart-Young, or
SVD-LLM's whitened objective via :func:`lrkit.nn.whiten`).

Initialisation (:func:`compress_kv`): the plain truncated SVD of each group's rows of
k_proj (v_proj), or SVD-LLM whitening by the inputs' ``X^T X`` (k_proj and v_proj read the
same normed hidden states), which minimizes the error of the group's keys (values) on the
calibration tokens. The singular values go into A, so B has orthonormal columns and the
latent holds the coordinates of the (approximated) keys or values in that basis: it is as
large as they are, and an error in it (quantization) is an error of the same size in K or V.
(With the singular values in B, a whitened latent ``x L^{-T} V`` grows as large as the
inverse of the smallest calibration direction on inputs that leave that direction.)
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core.quant import _as_groups, _codes, _from_groups, _stored_range, quantize

__all__ = ["LatentKVAttention"]


def _rope(x, cos, sin):
    """Rotary embedding, "rotate half" layout (Hugging Face's and lrkit.llm's).
    x (B, h, S, d), cos and sin (S, d)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def _causal(q, k, v):
    """Attention of the T new queries (the last T of S positions) over every earlier
    position and themselves. q (B, h, T, d), k (B, h, S, d), v (B, h, S, dv)."""
    T, S = q.shape[2], k.shape[2]
    if S == T:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _causal_any_width(q, k, v):
    """:func:`_causal` for values v of any width dv. PyTorch's fused attention kernels want
    values as wide as the queries; another width takes a slower path (5x at 480 positions
    and dv = 64, d = 32 on a 2-core CPU, see benchmarks/bench_kv.py). So v is cut into
    slices of q's width, the last one zero-padded; the slices share the same attention
    weights, so the result is the same up to rounding."""
    d, dv = q.shape[-1], v.shape[-1]
    if dv == d:
        return _causal(q, k, v)
    v = F.pad(v, (0, (-dv) % d))
    return torch.cat([_causal(q, k, part) for part in v.split(d, dim=-1)], dim=-1)[..., :dv]


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """b-bit codes (..., r) packed into bytes (..., ceil(r b / 8)), uint8, low bit first:
    bit j of code i is bit (i b + j) mod 8 of byte (i b + j) // 8."""
    if 8 % bits == 0:  # 1, 2, 4, 8 bits: whole codes per byte, code i at bit (i b) mod 8
        per = 8 // bits
        c = F.pad(codes.to(torch.uint8), (0, (-codes.shape[-1]) % per))  # (..., per * nbytes)
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=codes.device)
        return (c.unflatten(-1, (-1, per)) << shifts).sum(-1, dtype=torch.uint8)  # no carries
    shifts = torch.arange(bits, device=codes.device)
    planes = (codes.long()[..., None] >> shifts) & 1  # (..., r, b)
    planes = planes.flatten(-2)  # (..., r b)
    planes = F.pad(planes, (0, (-planes.shape[-1]) % 8))  # (..., 8 * nbytes)
    weights = 1 << torch.arange(8, device=codes.device)
    return (planes.unflatten(-1, (-1, 8)) * weights).sum(-1).to(torch.uint8)  # (..., nbytes)


def _unpack(packed: torch.Tensor, bits: int, r: int) -> torch.Tensor:
    """Inverse of :func:`_pack`: (..., nbytes) uint8 -> (..., r) codes (uint8 when ``bits``
    divides 8, else int64)."""
    if 8 % bits == 0:  # the fast path of _pack, undone: one shift and mask per code
        shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
        codes = (packed[..., None] >> shifts) & (2**bits - 1)  # (..., nbytes, 8 / b)
        return codes.flatten(-2)[..., :r]
    planes = (packed.long()[..., None] >> torch.arange(8, device=packed.device)) & 1
    planes = planes.flatten(-2)[..., : r * bits].unflatten(-1, (r, bits))  # (..., r, b)
    return (planes << torch.arange(bits, device=packed.device)).sum(-1)


class LatentKVAttention(nn.Module):
    """Grouped-query attention whose cache holds low-rank latents of K and V (Palu).

    Parameters
    ----------
    q_proj, o_proj : the query and output ``nn.Linear`` (held as given).
    k_down, v_down : per group g, ``A_g`` (r_g, hidden): the down-projections.
    k_up, v_up : per group g, ``B_g`` (group_size * head_dim, r_g): the up-projections.
    heads, kv_heads, group_size : query heads, KV heads, KV heads per group (dividing
        kv_heads); ``head_dim`` follows from the up-projections.
    fold_v : attend over the value latents and apply B_v to the attention's outputs
        (module docstring); False rebuilds V at every cached position first. Both give the
        same output up to rounding.
    bits, quant_group_size, symmetric, scale_dtype : with ``bits`` (2..16), each token's
        latents are quantized as they enter the cache, by :func:`lrkit.quantize` (one range
        per ``quant_group_size`` consecutive entries of a token's latent, symmetric
        ``[-R, R]`` or ``[min, max]``), and stored as packed codes (``ceil(r bits / 8)``
        bytes per token) plus the ranges at ``scale_dtype``; the tokens being processed
        go through the same quantizer, so cached and uncached runs agree. Quantized
        latents pass no gradient to the down-projections (the cache is for inference).

    Called as lrkit's Llama calls its attention, ``forward(x, cos, sin, cache, layer)``,
    it stores per layer ``(latent_k, latent_v)``, shapes (batch, positions, r_k) and
    (batch, positions, r_v), in the model's cache (quantized: ``(codes_k, ranges_k,
    codes_v, ranges_v)``, positions again on dimension -2). :meth:`dense_weights` gives
    the k_proj and v_proj weights it computes with, the reference it must agree with.
    """

    def __init__(
        self, q_proj: nn.Linear, o_proj: nn.Linear, k_down, k_up, v_down, v_up, *,
        heads: int, kv_heads: int, group_size: int, fold_v: bool = True,
        bits: int | None = None, quant_group_size: int = 32, symmetric: bool = True,
        scale_dtype: torch.dtype = torch.float16,
    ):  # fmt: skip
        super().__init__()
        groups = kv_heads // group_size
        if kv_heads % group_size or heads % kv_heads:
            raise ValueError(
                f"group_size (={group_size}) must divide kv_heads (={kv_heads}), which must "
                f"divide heads (={heads})"
            )
        for name, parts in (("k_down", k_down), ("k_up", k_up), ("v_down", v_down), ("v_up", v_up)):
            if len(parts) != groups:
                raise ValueError(
                    f"{name} must hold one matrix per group ({groups}); got {len(parts)}"
                )
        self.h, self.kv, self.group_size, self.groups = heads, kv_heads, group_size, groups
        self.d = k_up[0].shape[0] // group_size
        self.k_ranks = tuple(int(a.shape[0]) for a in k_down)
        self.v_ranks = tuple(int(a.shape[0]) for a in v_down)
        self.fold_v = fold_v
        self.bits, self.quant_group_size = bits, quant_group_size
        self.symmetric, self.scale_dtype = symmetric, scale_dtype
        self.q_proj, self.o_proj = q_proj, o_proj
        w = q_proj.weight
        # one down-projection per kind: the groups' A_g stacked, so one matmul makes all latents
        self.k_down = nn.Parameter(torch.cat(list(k_down)).to(w).detach().clone())  # (r_k, hidden)
        self.v_down = nn.Parameter(torch.cat(list(v_down)).to(w).detach().clone())  # (r_v, hidden)
        self.k_up = nn.ParameterList(nn.Parameter(b.to(w).detach().clone()) for b in k_up)
        self.v_up = nn.ParameterList(nn.Parameter(b.to(w).detach().clone()) for b in v_up)

    # -- what it computes with ------------------------------------------------------------
    def dense_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The k_proj and v_proj weights this layer computes with, (kv_heads * d, hidden)
        each: the groups' ``B_g A_g`` stacked (the slow, obviously correct reference)."""

        def dense(down, ups, ranks):
            parts = down.split(list(ranks))  # A_g (r_g, hidden)
            return torch.cat([b @ a for b, a in zip(ups, parts, strict=True)])

        return (
            dense(self.k_down, self.k_up, self.k_ranks),
            dense(self.v_down, self.v_up, self.v_ranks),
        )

    @property
    def cache_bits_per_token(self) -> int:
        """Bits one token adds to this layer's cache: both latents at the parameters' width,
        or quantized, each latent's packed codes (whole bytes) plus its ranges."""
        bits = 0
        for r in (sum(self.k_ranks), sum(self.v_ranks)):
            if self.bits is None:
                bits += r * self.k_down.element_size() * 8
            else:
                ranges = math.ceil(r / self.quant_group_size) * (1 if self.symmetric else 2)
                bits += 8 * math.ceil(r * self.bits / 8) + ranges * self.scale_dtype.itemsize * 8
        return bits

    # -- the cache's contents ----------------------------------------------------------------
    def _encode(self, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the cache stores of latents h (B, T, r): h itself, or packed codes (B, T,
        nbytes) and ranges (B, T, ranges per token) at scale_dtype."""
        if self.bits is None:
            return (h,)
        B, T, r = h.shape
        g = min(self.quant_group_size, r)
        X = h.detach().reshape(B * T, r)
        # lrkit.quantize's own steps, with its checks folded into one (a host sync per call
        # instead of several): a range that overflows scale_dtype or X's dtype, or a NaN,
        # makes an entry below infinite, and quantize itself then says what went wrong
        G = _as_groups(X, "group", 1, g)  # (B * T * groups, g)
        levels = 2**self.bits - 1
        lo, step = _stored_range(G, levels, self.symmetric, self.scale_dtype)
        if not bool(torch.isfinite((lo + step * levels).to(X.dtype)).all()):
            quantize(
                X, self.bits, scales="group", axis=1, group_size=g, symmetric=self.symmetric,
                scale_dtype=self.scale_dtype,
            )  # fmt: skip
            raise ValueError(f"latents hold NaN or Inf (max |h| = {float(X.abs().max()):.4g})")
        codes, ranges = _codes(G, lo, step, levels, self.symmetric, X.dtype)
        codes = _from_groups(codes, (B * T, r), "group", 1, g)  # (B * T, r)
        ranges = ranges.to(self.scale_dtype).reshape(B, T, -1)  # exact: stored values
        return _pack(codes.reshape(B, T, r), self.bits), ranges

    def _decode(self, stored: tuple[torch.Tensor, ...], r: int, dtype) -> torch.Tensor:
        """Latents (B, S, r) from what :meth:`_encode` stored."""
        if self.bits is None:
            return stored[0]
        packed, ranges = stored
        B, S, _ = packed.shape
        g = min(self.quant_group_size, r)
        n = math.ceil(r / g)  # ranges per token
        codes = _unpack(packed, self.bits, r).to(dtype)  # (B, S, r)
        codes = F.pad(codes, (0, n * g - r)).view(B, S, n, g)
        ranges = ranges.to(dtype).view(B, S, n, -1)  # (B, S, n, 1) R, or (B, S, n, 2) lo, step
        if self.symmetric:
            lo, step = -ranges, 2 * ranges / (2**self.bits - 1)
        else:
            lo, step = ranges[..., :1], ranges[..., 1:]
        return (lo + step * codes).view(B, S, n * g)[..., :r]

    # -- the seam: lrkit.llm's attention signature -------------------------------------------
    def forward(self, x, cos, sin, cache=None, layer: int = 0):
        """x (B, T, hidden); cos, sin (past + T, d) for every position; returns (B, T, hidden)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)  # (B, h, T, d)
        q = _rope(q, cos[-T:], sin[-T:])
        hk, hv = x @ self.k_down.T, x @ self.v_down.T  # (B, T, r_k), (B, T, r_v)
        if self.bits is not None or cache is not None:
            rk, rv = hk.shape[-1], hv.shape[-1]
            ek, ev = self._encode(hk), self._encode(hv)
            if cache is not None:  # (B, S, ...) each, S = past + T
                stored = cache.update(layer, *ek, *ev)
                ek, ev = stored[: len(ek)], stored[len(ek) :]
            hk, hv = self._decode(ek, rk, x.dtype), self._decode(ev, rv, x.dtype)
        S = hk.shape[1]
        rep = self.h // self.kv  # query heads per KV head
        nq = self.group_size * rep  # query heads per group
        ys = []
        for g, (hk_g, hv_g) in enumerate(
            zip(hk.split(list(self.k_ranks), -1), hv.split(list(self.v_ranks), -1), strict=True)
        ):
            # keys of the group's heads, rebuilt from the latent, then rotated at their positions
            k = (hk_g @ self.k_up[g].T).view(B, S, self.group_size, self.d).transpose(1, 2)
            k = _rope(k, cos, sin).repeat_interleave(rep, dim=1)  # (B, nq, S, d)
            q_g = q[:, g * nq : (g + 1) * nq]  # (B, nq, T, d): query heads of this group
            if self.fold_v:
                r = hv_g.shape[-1]
                lat = hv_g[:, None].expand(B, nq, S, r)  # (B, nq, S, r_v,g): shared by the group
                y = _causal_any_width(q_g, k, lat)  # (B, nq, T, r_v,g): weighted latents
                # head j's slice of B_v, applied to its T outputs, not to the S cached latents
                up = self.v_up[g].view(self.group_size, self.d, r).repeat_interleave(rep, 0)
                ys.append(torch.einsum("bjtr,jdr->bjtd", y, up))  # (B, nq, T, d)
            else:
                v = (hv_g @ self.v_up[g].T).view(B, S, self.group_size, self.d).transpose(1, 2)
                ys.append(_causal(q_g, k, v.repeat_interleave(rep, dim=1)))  # (B, nq, T, d)
        y = torch.cat(ys, dim=1)  # (B, h, T, d)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.d))

    def extra_repr(self) -> str:
        return (
            f"heads={self.h}, kv_heads={self.kv}, head_dim={self.d}, "
            f"group_size={self.group_size}, k_ranks={self.k_ranks}, v_ranks={self.v_ranks}, "
            f"fold_v={self.fold_v}"
            + (
                ""
                if self.bits is None
                else f", bits={self.bits}, quant_group_size="
                f"{self.quant_group_size}, symmetric={self.symmetric}"
            )
        )
