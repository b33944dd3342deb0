"""lrkit.plot: figures come back labelled, images are clipped, the slider redraws."""

import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from lrkit import plot


@pytest.fixture(autouse=True)
def _agg():
    plt.switch_backend("Agg")  # no display needed
    yield
    plt.close("all")


def _image(m=24, n=20, rank=3, seed=0):
    """A uint8 'photo' of known rank structure (a smooth gradient plus a few products)."""
    g = np.random.default_rng(seed)
    x = g.random((m, rank)) @ g.random((rank, n))
    return np.round(255 * x / x.max()).astype(np.uint8)


def test_import_lrkit_does_not_load_matplotlib():
    code = "import sys, lrkit; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("S", [2.0 ** -np.arange(30), torch.logspace(0, -3, 30)])
def test_plot_spectrum_is_labelled(S):
    ax = plot.plot_spectrum(S, title="spectrum", unit="gray levels")
    assert ax.get_title() == "spectrum"
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() and "gray levels" in ax.get_ylabel()
    energy_ax = ax.figure.axes[-1]
    assert energy_ax is not ax and "energy" in energy_ax.get_ylabel()
    assert energy_ax.get_yscale() == "logit"
    assert energy_ax.lines[0].get_ydata()[-1] == pytest.approx(1.0)  # all energy at full rank
    assert len(energy_ax.texts) == 3  # one mark per level of keep


def test_plot_spectrum_draws_on_given_axes():
    fig, ax = plt.subplots()
    assert plot.plot_spectrum(np.ones(5), ax=ax, keep=()) is ax


def test_show_images_clips_to_a_common_range():
    gray = np.full((8, 8), 300.0)  # overshoots 255, as reconstructions do
    color = np.full((8, 8, 3), -5.0)
    fig = plot.show_images([gray, color, torch.zeros(8, 8)], ["a", "b", "c"], ncols=2)
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert axes[0].images[0].get_array().max() == 255.0
    assert axes[0].images[0].get_clim() == (0.0, 255.0)
    assert axes[1].images[0].get_array().min() == 0.0


def test_rank_view_reports_error_psnr_and_ratio():
    img = _image()
    ax = plot.rank_view(img, 2)
    title = ax.get_title()
    assert "rank 2" in title and "PSNR" in title and "smaller than 8-bit" in title


def test_rank_view_color_and_bad_rank():
    img = np.stack([_image(seed=s) for s in range(3)], axis=-1)  # (H, W, 3)
    svd = plot._image_svd(img, 4)
    assert tuple(svd.shape) == (3, 24, 20)
    plot.rank_view(img, 4, svd=svd)
    with pytest.raises(ValueError, match="rank \\(=5\\) must be <="):
        plot.rank_view(img, 5, svd=svd)


def test_rank_slider_is_a_widget_that_redraws():
    widgets = pytest.importorskip("ipywidgets")
    box = plot.rank_slider(_image(), max_rank=5, rank=3)
    assert isinstance(box, widgets.Widget)
    slider = box.children[0]
    assert (slider.min, slider.max, slider.value) == (1, 5, 3)
    slider.value = 5  # triggers a redraw; must not raise
