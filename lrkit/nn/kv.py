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
in them: ``sum_s p_ts (h_s B^T) = (sum_s p_ts h_s) B^T``, so each head's slice of B_v
folds into that head's slice of o_proj (Palu's matrix fusion): attention runs over the
value latents themselves and V is never rebuilt (``fold_v=True``, exact up to rounding).

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

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from ..core._checks import as_tensor
from ..core._params import checked
from ..core.quant import quantize
from ..matrix.svd import truncated_svd
from .aware import cholesky_shifted, whiten

__all__ = ["LatentKVAttention", "compress_kv", "proportional_ranks"]


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


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """b-bit codes (..., r) packed into bytes (..., ceil(r b / 8)), uint8, low bit first."""
    shifts = torch.arange(bits, device=codes.device)
    planes = (codes.long()[..., None] >> shifts) & 1  # (..., r, b)
    planes = planes.flatten(-2)  # (..., r b)
    planes = F.pad(planes, (0, (-planes.shape[-1]) % 8))  # (..., 8 * nbytes)
    weights = 1 << torch.arange(8, device=codes.device)
    return (planes.unflatten(-1, (-1, 8)) * weights).sum(-1).to(torch.uint8)  # (..., nbytes)


def _unpack(packed: torch.Tensor, bits: int, r: int) -> torch.Tensor:
    """Inverse of :func:`_pack`: (..., nbytes) uint8 -> (..., r) int64 codes."""
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
    fold_v : attend over the value latents and fold B_v into o_proj (module docstring);
        False rebuilds V per head first. Both give the same output up to rounding.
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
        qm = quantize(
            h.detach().reshape(B * T, r), self.bits, scales="group", axis=1, group_size=g,
            symmetric=self.symmetric, scale_dtype=self.scale_dtype,
        )  # fmt: skip
        ranges = qm.ranges.to(self.scale_dtype).reshape(B, T, -1)  # exact: stored values
        return _pack(qm.codes.reshape(B, T, r), self.bits), ranges

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
        out = 0.0
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
                y = _causal(q_g, k, lat)  # (B, nq, T, r_v,g): attention-weighted latents
                # head j's B_v slice times its o_proj columns: (nq, r_v,g, hidden)
                up = self.v_up[g].view(self.group_size, self.d, r).repeat_interleave(rep, 0)
                wo = self.o_proj.weight[:, g * nq * self.d : (g + 1) * nq * self.d]
                fused = torch.einsum("ojd,jdr->jro", wo.view(-1, nq, self.d), up)
                out = out + torch.einsum("bjtr,jro->bto", y, fused)  # (B, T, hidden)
            else:
                v = (hv_g @ self.v_up[g].T).view(B, S, self.group_size, self.d).transpose(1, 2)
                ys.append(_causal(q_g, k, v.repeat_interleave(rep, dim=1)))  # (B, nq, T, d)
        if not self.fold_v:
            y = torch.cat(ys, dim=1)  # (B, h, T, d)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, self.h * self.d))
        if self.o_proj.bias is not None:
            out = out + self.o_proj.bias
        return out

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


# -- one call: compress a model's KV cache ---------------------------------------------------
def _attentions(model) -> list[tuple[str, nn.Module]]:
    """The attention modules of ``model``: those holding q_proj, k_proj, v_proj, o_proj."""
    found = [
        (name, m)
        for name, m in model.named_modules()
        if all(
            isinstance(getattr(m, p, None), nn.Linear)
            for p in ("q_proj", "k_proj", "v_proj", "o_proj")
        )
    ]
    if not found:
        raise ValueError(
            "compress_kv found no attention module holding q_proj, k_proj, v_proj and o_proj "
            "Linears (lrkit's Llama has one per block; a model compressed once has none left)"
        )
    return found


def _split(rank: int, groups: int) -> list[int]:
    """rank spread over groups as evenly as integers allow (the first ones get the rest)."""
    return [rank // groups + (g < rank % groups) for g in range(groups)]


def _hadamard(n: int, like: torch.Tensor) -> torch.Tensor:
    """The orthonormal Sylvester-Hadamard matrix of order n (a power of two)."""
    H = torch.ones(1, 1, dtype=like.dtype, device=like.device)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)])  # [[H, H], [H, -H]]
    return H / n**0.5


def _xtx_for(stats, name: str):
    for proj in ("k_proj", "v_proj"):  # the same inputs: either one's X^T X will do
        st = stats.get(f"{name}.{proj}")
        if st is not None and getattr(st, "xtx", None) is not None:
            return st.xtx
    raise ValueError(
        f"calibration statistics hold no X^T X for {name}.k_proj or {name}.v_proj; collect "
        f"them with lrkit.nn.calibrate(model, data, stats=('xtx',))"
    )


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


@checked
def compress_kv(
    model: nn.Module,
    *,
    rank: int | None = None,
    ratio: float | None = None,
    group_size: int | None = None,
    method: str = "whiten",
    calibration=None,
    bits: int | None = None,
    quant_group_size: int = 32,
    symmetric: bool = True,
    scale_dtype: torch.dtype = torch.float16,
    hadamard: bool = False,
    allocation: str = "uniform",
    rank_step: int = 4,
    fold_v: bool = True,
    inplace: bool = False,
    progress: bool = False,
) -> nn.Module:
    """A copy of ``model`` whose attention caches low-rank latents of K and V (Palu).

    Every attention module holding q_proj, k_proj, v_proj and o_proj (lrkit's Llama) becomes
    a :class:`LatentKVAttention`; the model's own cache (``model.new_cache()``, used by
    ``lrkit.llm.generate``) then holds ``r_k + r_v`` numbers per token and layer instead of
    ``2 * kv_heads * head_dim``, and its ``nbits`` counts them.

    Parameters
    ----------
    rank : latent width of K (and of V) per layer, ``1 <= rank <= kv_heads * head_dim``
        (the K/V width; at the full width and ``method="svd"`` the model is unchanged up to
        rounding), spread over the head groups as evenly as integers allow.
    ratio : instead of rank, the fraction of the K/V width kept: rank = round(ratio *
        width), at least 1. Give exactly one of the two.
    group_size : KV heads per group, dividing ``num_key_value_heads``: 1 is one latent per
        head, None (default) or all heads one joint latent (module docstring).
    method : ``"whiten"`` (SVD-LLM whitening by the inputs' X^T X, needs ``calibration``)
        or ``"svd"`` (plain truncated SVD of the weights; ignores ``calibration``); or
        ``"identity"``: no factorization (A = W, B = I, rank the full width), so the cache
        holds K and V themselves, before RoPE: with ``bits``, the plain cache quantized by
        the same quantizer, the reference a latent cache is compared with at equal bytes.
    calibration : token ids (B, T) or an iterable of batches, run through ``model`` by
        :func:`lrkit.nn.calibrate`; or the dict that function returns, holding ``xtx`` of
        each attention's k_proj (or v_proj).
    bits : None keeps the latents at the model's dtype; 2..16 quantizes each token's
        latents as they enter the cache (see :class:`LatentKVAttention`), with one range
        per ``quant_group_size`` entries, ``symmetric`` or not, ranges stored at
        ``scale_dtype``: every code and every range is counted in the cache's ``nbits``.
        A range beyond float16's 65504 is refused by the quantizer when it is met (give
        ``scale_dtype=torch.float32``).
    hadamard : rotate each group's latent by an orthonormal Hadamard matrix H, folded into
        the projections (A -> H^T A, B -> B H: the same K and V up to rounding), so that an
        outlier coordinate is spread over the group before quantization (QuaRot's idea, as
        Palu uses it). Each group's rank must be a power of two.
    allocation : ``"uniform"``: the same rank in every layer (spread over its groups);
        ``"fisher"`` (Palu): the same total, ``rank`` times layers for K and as much for V,
        shared among every layer's K and V groups in proportion to their Fisher
        information (the summed squared gradients of the group's rows of k_proj or v_proj
        under the next-token loss, from ``calibration``), in multiples of ``rank_step``
        (:func:`proportional_ranks`).
    fold_v : fold V's up-projection into o_proj (see :class:`LatentKVAttention`).
    inplace : change ``model`` itself instead of a copy.
    progress : show the calibration's progress bar.

    Examples
    --------
    >>> import torch
    >>> from lrkit.llm import Llama, LlamaConfig
    >>> from lrkit.nn import compress_kv
    >>> cfg = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    ...                   num_attention_heads=8, num_key_value_heads=4)  # K, V 32 wide
    >>> small = compress_kv(Llama(cfg), ratio=0.25, method="svd")  # latents of 8 for K and V
    >>> cache = small.new_cache()
    >>> _ = small(torch.zeros(1, 10, dtype=torch.long), cache)
    >>> cache.nbits == 10 * 2 * (8 + 8) * 32  # tokens x layers x (r_k + r_v) x float32
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    cfg = getattr(model, "config", None)
    try:
        heads, kv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    except AttributeError:
        raise TypeError(
            "model must have a config with num_attention_heads, num_key_value_heads and "
            "head_dim (lrkit's Llama)"
        ) from None
    attns = _attentions(model)
    width, hidden = kv * d, attns[0][1].k_proj.in_features
    if method == "identity":
        if (rank, ratio) not in ((None, None), (width, None), (None, 1.0)):
            raise ValueError(
                f"method='identity' keeps K and V whole (rank = the K/V width {width}); got "
                f"rank={rank}, ratio={ratio}"
            )
        rank, ratio = width, None
    if (rank is None) == (ratio is None):
        raise ValueError(f"give exactly one of rank= and ratio=; got rank={rank}, ratio={ratio}")
    if ratio is not None:
        rank = max(1, round(ratio * width))
    if rank > width:
        raise ValueError(
            f"rank (={rank}) must be <= the K/V width num_key_value_heads * head_dim = {width}"
        )
    group_size = kv if group_size is None else group_size
    if kv % group_size:
        raise ValueError(f"group_size (={group_size}) must divide the number of KV heads (={kv})")
    groups = kv // group_size
    if rank < groups:
        raise ValueError(
            f"rank (={rank}) must be >= the number of head groups kv_heads / group_size "
            f"= {groups}: each group needs a latent of rank >= 1"
        )
    ranks = _split(rank, groups)
    if max(ranks) > hidden:
        raise ValueError(
            f"rank per group (={max(ranks)}) must be <= hidden_size = {hidden}: a latent of "
            f"x cannot be wider than x"
        )
    need = (("xtx",) if method == "whiten" else ()) + (
        ("fisher",) if allocation == "fisher" else ()
    )
    if need and calibration is None:
        raise ValueError(
            f"method={method!r} with allocation={allocation!r} needs calibration= (token "
            f"ids, or the statistics of lrkit.nn.calibrate); method='svd' with uniform "
            f"allocation needs none"
        )
    if need and isinstance(calibration, dict):
        stats = calibration
    elif need:
        from .calibrate import calibrate

        names = [f"{n}.{p}" for n, _ in attns for p in ("k_proj", "v_proj")]
        stats = calibrate(model, calibration, target_modules=names, stats=need, progress=progress)
    if method == "whiten":
        xtxs = {}
        for n, _ in attns:  # one shift per layer (its K and V groups share the inputs)
            xtx = _xtx_for(stats, n).to(torch.float64)
            _, shift = cholesky_shifted(xtx, f"{n} (k_proj and v_proj inputs)")
            xtxs[n] = xtx + shift * torch.eye(xtx.shape[0], dtype=xtx.dtype, device=xtx.device)
    rows = group_size * d
    plan = {(n, kind): ranks for n, _ in attns for kind in ("k", "v")}
    if allocation == "fisher":
        units = list(plan)
        importance = []
        for n, kind in units:
            st = stats.get(f"{n}.{kind}_proj")
            if st is None or getattr(st, "fisher", None) is None:
                raise ValueError(
                    f"calibration statistics hold no Fisher information for {n}.{kind}_proj; "
                    f"collect it with lrkit.nn.calibrate(model, data, stats=('fisher',))"
                )
            f = st.fisher.sum(1)  # (width,): per output row
            importance += [float(f[g * rows : (g + 1) * rows].sum()) for g in range(groups)]
        flat = proportional_ranks(
            importance, rank * len(units), step=rank_step, high=min(rows, hidden)
        )
        plan = {u: flat[i * groups : (i + 1) * groups] for i, u in enumerate(units)}
    if hadamard:
        bad = sorted({r for rs in plan.values() for r in rs if r & (r - 1)})
        if bad:
            raise ValueError(
                f"hadamard=True needs every group's rank to be a power of two; got rank(s) "
                f"{bad} (choose rank, group_size and rank_step so they are)"
            )
    new = model if inplace else copy.deepcopy(model)
    modules = dict(new.named_modules())
    for name, _ in attns:
        attn = modules[name]
        factors = {}
        for kind in ("k", "v"):
            W = getattr(attn, f"{kind}_proj").weight.detach().double()  # (width, hidden)
            downs, ups = [], []
            for g, r in enumerate(plan[name, kind]):
                W_g = W[g * rows : (g + 1) * rows]  # (group_size * d, hidden): the group's heads
                if method == "identity":  # A = W, B = I: the latent is K (V) before RoPE
                    A, B = W_g, torch.eye(rows, dtype=W_g.dtype, device=W_g.device)
                else:
                    if method == "svd":
                        lr = truncated_svd(W_g, r)
                    else:
                        xtx = xtxs[name].to(W_g.device)
                        lr = whiten(W_g, r, xtx=xtx, name=f"{name}.{kind}_proj group {g}")
                    A, B = lr.S[:, None] * lr.Vh, lr.U  # singular values in A; B orthonormal
                if hadamard:  # h H = x (H^T A)^T, and (h H)(B H)^T = h B^T: K unchanged
                    H = _hadamard(r, A)
                    A, B = H.T @ A, B @ H
                downs.append(A)  # A_g (r, hidden)
                ups.append(B)  # B_g (group_size * d, r), orthonormal columns
            factors[kind] = (downs, ups)
        latent = LatentKVAttention(
            attn.q_proj, attn.o_proj, factors["k"][0], factors["k"][1],
            factors["v"][0], factors["v"][1], heads=heads, kv_heads=kv,
            group_size=group_size, fold_v=fold_v, bits=bits,
            quant_group_size=quant_group_size, symmetric=symmetric, scale_dtype=scale_dtype,
        )  # fmt: skip
        latent.train(attn.training)
        parent, _, child = name.rpartition(".")
        setattr(modules[parent] if parent else new, child, latent)
    return new
