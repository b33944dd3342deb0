"""Views of a compressed image and their ipywidgets sliders (rank, bits).

Each ``*_view`` draws one static figure; each ``*_slider`` wraps it in sliders that redraw it.
ipywidgets is imported only inside the sliders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from ..core.lowrank import LowRank
from ..core.metrics import psnr, rel_error
from ..matrix.lplr import dsvd_quant, lplr
from ..matrix.svd import truncated_svd
from .figures import _numpy

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["rank_view", "rank_slider", "lplr_view", "lplr_slider"]


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


# ipywidgets' default slider track is about 125 px: 256 ranks would get half a pixel
# each, too coarse to drag to a rank. As wide as the notebook allows, up to 720 px (a track
# of about 545 px, 2 px per rank at 256); arrow keys step by one and the readout takes a
# typed value.
_SLIDER_WIDTH = {"width": "100%", "max_width": "720px"}


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
        layout=widgets.Layout(**_SLIDER_WIDTH),
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
            value=value,
            min=lo,
            max=hi,
            description=name,
            continuous_update=False,
            layout=widgets.Layout(**_SLIDER_WIDTH),
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
