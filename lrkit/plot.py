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

from .factorization import LowRank
from .metrics import psnr, rel_error
from .rank import rank_for_energy
from .svd import truncated_svd

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["plot_spectrum", "show_images", "rank_view", "rank_slider"]


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
