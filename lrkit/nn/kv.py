"""``compress_kv``: turn a model's attention into :class:`~lrkit.nn.LatentKVAttention`.

Chang et al., "Palu: KV-Cache Compression with Low-Rank Projection" (2024, arXiv:2407.21118).
The construction and what the cache stores are described in :mod:`lrkit.nn.latent_kv`;
this module chooses the factors (plain SVD, SVD-LLM whitening, or none) per group of KV
heads, the ranks (uniform, or Palu's Fisher allocation via
:func:`lrkit.nn.proportional_ranks`), an optional Hadamard rotation, and swaps the modules.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..core._params import checked
from ..matrix.svd import truncated_svd
from .allocate import proportional_ranks
from .aware import cholesky_shifted, whiten
from .latent_kv import LatentKVAttention

__all__ = ["compress_kv"]


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
    fold_v : attend over V's latents and apply its up-projection to the attention's outputs
        only (see :class:`LatentKVAttention`); False rebuilds V at every cached position.
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
