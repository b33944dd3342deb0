"""Figures and widgets for the notebooks: the one place where lrkit draws.

Import it explicitly (``from lrkit import plot``): ``import lrkit`` alone never loads
matplotlib. Widgets need ipywidgets (the ``course`` extra), imported only when used.

Images are arrays of shape (H, W) for gray or (H, W, 3) for color, with pixel values in
``[0, data_range]`` (255 for 8-bit photos). Low-rank reconstructions overshoot that range a
little; every function here clips before drawing, so what you see is what a saved 8-bit
file would show.
"""

from __future__ import annotations

from .compare import METHODS, Comparison, Entry, Method, compare, jpeg_at_budget
from .figures import plot_butterfly_factors, plot_spectrum, plot_spread, show_images
from .views import _image_svd as _image_svd  # used by the tests
from .views import lplr_slider, lplr_view, rank_slider, rank_view

__all__ = [
    "compare",
    "Comparison",
    "Entry",
    "Method",
    "METHODS",
    "jpeg_at_budget",
    "plot_spectrum",
    "plot_spread",
    "show_images",
    "plot_butterfly_factors",
    "rank_view",
    "rank_slider",
    "lplr_view",
    "lplr_slider",
]
