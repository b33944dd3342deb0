"""Static figures: a spectrum, a spread over trials, a grid of images, butterfly factors."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..core.rank import rank_for_energy

__all__ = ["plot_spectrum", "plot_spread", "show_images", "plot_butterfly_factors"]


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
