"""Figures and widgets for the notebooks: the one place where lrkit draws.

Import it explicitly (``from lrkit import plot``): ``import lrkit`` alone never loads
matplotlib. Widgets need ipywidgets (the ``course`` extra), imported only when used.

Images are arrays of shape (H, W) for gray or (H, W, 3) for color, with pixel values in
``[0, data_range]`` (255 for 8-bit photos). Low-rank reconstructions overshoot that range a
little; every function here clips before drawing, so what you see is what a saved 8-bit
file would show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch

from .core.factorization import LowRank
from .core.metrics import psnr, rel_error
from .core.rank import rank_for_energy
from .matrix.lplr import dsvd_quant, lplr
from .matrix.svd import truncated_svd

if TYPE_CHECKING:
    import ipywidgets

__all__ = [
    "plot_spectrum",
    "plot_spread",
    "show_images",
    "rank_view",
    "rank_slider",
    "lplr_view",
    "lplr_slider",
]


def _numpy(x) -> np.ndarray:
    """A float numpy copy of an array, a tensor (any device) or a factorization."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
    return np.asarray(x, dtype=np.float64)


def plot_spectrum(
    S,
    *,
    ax: plt.Axes | None = None,
    title: str = "Singular value spectrum",
    unit: str | None = None,
    keep: Sequence[float] = (0.9, 0.99, 0.999),
) -> plt.Axes:
    """Singular values (left axis) and the energy the best rank-k approximation keeps (right).

    ``S`` holds the singular values in decreasing order. Energy is ``sum(s_i**2)``, the
    squared Frobenius norm; by Eckart-Young, keeping a fraction e of it means a relative
    error of ``sqrt(1 - e)``. The energy axis is a logit scale, so 0.9, 0.99 and 0.999 are
    evenly spaced; the rank :func:`lrkit.rank_for_energy` picks for each level in ``keep``
    is marked. The rank axis is logarithmic. ``unit`` is that of the matrix entries (e.g.
    "gray levels"). Returns the left axes (the energy curve is on its twin,
    ``ax.figure.axes[-1]``).
    """
    s = _numpy(S)
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    k = np.arange(1, s.size + 1)
    ax.loglog(k, s, color="C0")
    ax.set_xlabel("index i of the singular value = rank k (log scale)")
    ax.set_ylabel("singular value $s_i$" + (f" ({unit})" if unit else ""), color="C0")
    ax.set_title(title)

    energy = np.cumsum(s**2) / np.sum(s**2)
    ax2 = ax.twinx()
    ax2.plot(k, energy, color="C1")  # the last values (== 1) fall off the logit axis
    ax2.set_yscale("logit")
    low = min(0.5, energy[0])
    ax2.set_ylim(low, 0.9999)
    ax2.set_yticks([t for t in (0.5, 0.9, 0.99, 0.999, 0.9999) if t >= low], minor=False)
    ax2.yaxis.set_major_formatter("{x:g}")
    ax2.yaxis.set_minor_formatter("")
    ax2.set_ylabel("energy kept by rank k (fraction)", color="C1")
    for level in keep:
        r = rank_for_energy(s, level)
        xy = (r, energy[r - 1])
        ax2.plot(*xy, "o", color="C1", ms=4)
        ax2.annotate(f"{level:g} at k={r}", xy, xytext=(6, -10), textcoords="offset points")
    return ax


def plot_spread(
    x,
    samples,
    *,
    ax: plt.Axes | None = None,
    label: str | None = None,
    color: str | None = None,
    marker: str = "o",
    alpha: float = 0.2,
) -> plt.Axes:
    """The mean of repeated random trials as a line, their range (min to max) as a band.

    ``samples`` has one row per value of ``x`` and one column per trial (e.g. per seed).
    A randomized method gives a different answer for every seed; the mean is what error
    bounds in expectation speak about, the band shows how far single runs stray from it.
    Returns the axes; labels, scales and titles are left to the caller.
    """
    x, y = _numpy(x), _numpy(samples)
    if y.ndim != 2 or y.shape[0] != x.size:
        raise ValueError(
            f"samples must have shape (len(x), trials) = ({x.size}, trials); got {y.shape}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    (line,) = ax.plot(x, y.mean(axis=1), marker=marker, ms=3, color=color, label=label)
    ax.fill_between(x, y.min(axis=1), y.max(axis=1), color=line.get_color(), alpha=alpha, lw=0)
    return ax


def show_images(
    images: Sequence,
    titles: Sequence[str] | None = None,
    *,
    ncols: int = 4,
    cmap: str = "gray",
    data_range: float = 255.0,
    suptitle: str | None = None,
    size: float = 3.0,
) -> plt.Figure:
    """Draw images in a grid, on one common scale ``[0, data_range]``, clipped to it.

    A common scale matters: left to itself, ``imshow`` stretches every gray panel to its
    own min and max, which hides exactly the contrast errors we want to see. Accepts numpy
    arrays, tensors and factorizations (rebuilt with ``np.asarray``).
    """
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(size * ncols, size * nrows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    for j, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if j >= n:
            continue
        img = np.clip(_numpy(images[j]), 0.0, data_range)
        if img.ndim == 3:  # color: imshow wants floats in [0, 1]
            ax.imshow(img / data_range)
        else:
            ax.imshow(img, cmap=cmap, vmin=0.0, vmax=data_range)
        if titles is not None:
            ax.set_title(titles[j], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def _image_svd(image, rank: int) -> LowRank:
    """Truncated SVD of a gray image, or of each channel of a color one (batch (3, H, W))."""
    x = np.asarray(image)
    return truncated_svd(np.moveaxis(x, -1, 0) if x.ndim == 3 else x, rank)


def rank_view(
    image,
    rank: int,
    *,
    svd: LowRank | None = None,
    ref_bits: int = 8,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Draw the rank-``rank`` reconstruction of ``image`` with its error and size in the title.

    The title gives the relative (Frobenius) error, the PSNR and the compression ratio
    against ``ref_bits``-bit pixels, counting U, S and Vh at their dtype (float32 for an
    8-bit image, whose SVD lrkit computes in float32). Color images are compressed channel
    by channel. To slice an SVD you already have instead of computing one, pass ``svd``:
    ``truncated_svd`` of the gray image, or of the color channels as a batch ``(3, H, W)``,
    at a rank >= ``rank``.
    """
    x = np.asarray(image)
    svd = _image_svd(x, rank) if svd is None else svd
    if rank > svd.rank:
        raise ValueError(f"rank (={rank}) must be <= the rank of svd (={svd.rank})")
    fact = svd.truncate(rank)  # truncated SVDs are nested: slice, do not recompute
    approx = fact.to_dense().cpu().numpy()
    if x.ndim == 3:
        approx = np.moveaxis(approx, 0, -1)  # (3, H, W) -> (H, W, 3)
    data_range = 255.0 if x.dtype == np.uint8 else float(x.max() - x.min())
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.8), layout="constrained")
    clipped = np.clip(approx, 0.0, data_range) / data_range
    ax.imshow(clipped, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    ratio = fact.compression_ratio(ref_bits=ref_bits)
    size = f"{ratio:.2f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x BIGGER"
    ax.set_title(
        f"rank {rank}: rel. error {rel_error(x, approx):.3f}, PSNR {psnr(x, approx):.1f} dB\n"
        f"{size} than {ref_bits}-bit pixels ({str(fact.dtype).removeprefix('torch.')} factors)",
        fontsize=9,
    )
    return ax


def rank_slider(image, *, max_rank: int, rank: int = 10, ref_bits: int = 8) -> ipywidgets.VBox:
    """An interactive :func:`rank_view`: drag the slider to change the rank.

    Computes the truncated SVD once, up to ``max_rank``, and slices it on every move, so
    redrawing costs a matrix product, not an SVD. Returns an ipywidgets ``VBox``: display
    it, or leave it as the last line of a cell. It responds only with a running kernel.
    """
    import ipywidgets as widgets
    from IPython.display import display

    svd = _image_svd(image, max_rank)
    slider = widgets.IntSlider(
        value=min(rank, max_rank),
        min=1,
        max=max_rank,
        description="rank",
        continuous_update=False,
    )
    out = widgets.Output()

    def draw(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(4.5, 4.8), layout="constrained")
            rank_view(image, slider.value, svd=svd, ref_bits=ref_bits, ax=ax)
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()
    return widgets.VBox([slider, out])


def lplr_view(
    A,
    rank: int,
    *,
    bits_left: int,
    bits_right: int,
    scales: str = "tensor",
    seed: int = 0,
    axes: Sequence[plt.Axes] | None = None,
) -> np.ndarray:
    """Draw a gray image beside its LPLR and direct-SVD compressions, with honest sizes.

    Both factorizations get the same ``rank``, bits and ``scales`` (see
    :func:`lrkit.lplr.lplr` and :func:`lrkit.lplr.dsvd_quant`); each title gives the
    relative (Frobenius) error and the bits per entry that ``.nbits`` counts, ranges
    included. All three panels share the gray scale of ``A`` (its min to max), clipped to
    it. Pass three ``axes`` to draw into them. Returns the array of the three axes.
    """
    x = _numpy(A)
    kw = dict(bits_left=bits_left, bits_right=bits_right, scales=scales)
    fits = {
        f"LPLR (seed {seed})": lplr(x, rank, seed=seed, **kw),
        "direct SVD": dsvd_quant(x, rank, **kw),
    }
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(11, 4.1), layout="constrained")
    axes = np.asarray(axes).ravel()
    if axes.size != 3:
        raise ValueError(f"axes must hold 3 axes (original, LPLR, direct SVD); got {axes.size}")
    lo, hi = float(x.min()), float(x.max())
    panels = [("original (float64)", x)]
    for name, fact in fits.items():
        title = (
            f"{name}: rel. error {rel_error(x, fact):.3f}\n"
            f"{fact.bits_per_entry:.3f} bits/entry (rank {rank}, {bits_left}+{bits_right} bits, "
            f"{scales})"
        )
        panels.append((title, np.clip(_numpy(fact), lo, hi)))
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)
    return axes


def lplr_slider(
    A,
    *,
    max_rank: int,
    rank: int = 20,
    bits_left: int = 4,
    bits_right: int = 8,
    scales: str = "tensor",
    seed: int = 0,
) -> ipywidgets.VBox:
    """An interactive :func:`lplr_view`: sliders for the rank and the two bit widths, and a
    toggle for the scale granularity ("tensor" or "vector").

    Every move recomputes both factorizations (an SVD and a least-squares solve), so keep
    ``A`` a few hundred pixels on a side. Returns an ipywidgets ``VBox``; it responds only
    with a running kernel.
    """
    import ipywidgets as widgets
    from IPython.display import display

    def slider(value, lo, hi, name):
        return widgets.IntSlider(
            value=value, min=lo, max=hi, description=name, continuous_update=False
        )

    controls = {
        "rank": slider(min(rank, max_rank), 1, max_rank, "rank"),
        "bits_left": slider(bits_left, 1, 8, "bits of L"),
        "bits_right": slider(bits_right, 1, 12, "bits of R"),
        "scales": widgets.ToggleButtons(
            options=["tensor", "vector"], value=scales, description="scales"
        ),
    }
    out = widgets.Output()

    def draw(change=None) -> None:
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 3, figsize=(11, 4.1), layout="constrained")
            lplr_view(
                A,
                controls["rank"].value,
                bits_left=controls["bits_left"].value,
                bits_right=controls["bits_right"].value,
                scales=controls["scales"].value,
                seed=seed,
                axes=axes,
            )
            display(fig)
            plt.close(fig)

    for c in controls.values():
        c.observe(draw, names="value")
    draw()
    return widgets.VBox([*controls.values(), out])


def plot_butterfly_factors(butterfly, *, title: str | None = None, size: float = 2.2) -> plt.Figure:
    """The sparse factors of a :class:`lrkit.structured.Butterfly`, in the order they act,
    then their product: ``P`` (if it has the bit reversal), ``F_0``, ..., ``F_{L-1}``, ``B``.

    Each panel shows the magnitude of the entries of an n x n matrix (white = zero), so the
    two nonzeros per row of every factor and the dense product are seen at a glance; the
    panel title counts the nonzeros. Keep n small (8 to 32). Returns the figure.
    """
    mats = [*butterfly.factors, butterfly.to_dense()]
    names = (["P (bit reversal)"] if butterfly.bit_reversal else []) + [
        f"F_{t}" for t in range(butterfly.twiddle.shape[0])
    ]
    names.append("product B")
    fig, axes = plt.subplots(
        1, len(mats), figsize=(size * len(mats), size + 0.6), squeeze=False, layout="constrained"
    )
    for ax, M, name in zip(axes[0], mats, names, strict=True):
        mag = M.detach().abs().cpu().double().numpy()
        ax.imshow(mag, cmap="Greys", vmin=0.0, vmax=max(float(mag.max()), 1e-30))
        ax.set_title(f"{name}\n{int((mag > 0).sum())} nonzeros", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("row")
    axes[0, 0].set_xlabel("column")
    n = mats[0].shape[0]
    fig.suptitle(title or f"Butterfly factors, n = {n} (|entries|, white = 0), in order of action")
    return fig


__all__.append("plot_butterfly_factors")
