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


def test_plot_spread_draws_mean_and_range():
    x = np.array([1.0, 2.0, 4.0])
    samples = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 6.0]])  # (len(x), trials)
    ax = plot.plot_spread(x, samples, label="trials")
    (line,) = ax.lines
    np.testing.assert_allclose(line.get_ydata(), [2.0, 2.0, 3.0])  # the mean over trials
    assert line.get_label() == "trials"
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 0.0 and band.max() == 6.0  # min to max over trials
    assert plot.plot_spread(x, samples, ax=ax) is ax
    with pytest.raises(ValueError, match=r"samples must have shape \(len\(x\), trials\)"):
        plot.plot_spread(x, samples.T)


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
    # wider than the ~110 px default, so that a drag can land on one rank of hundreds
    assert (slider.layout.width, slider.layout.max_width) == ("100%", "720px")
    slider.value = 5  # triggers a redraw; must not raise


def test_lplr_view_titles_report_error_and_honest_bits():
    img = _image(32, 28, rank=4).astype(np.float64)
    axes = plot.lplr_view(img, 4, bits_left=4, bits_right=8, scales="vector")
    assert len(axes) == 3 and all(ax.images for ax in axes)
    titles = [ax.get_title() for ax in axes]
    assert titles[1].startswith("LPLR (seed 0): rel. error") and "bits/entry" in titles[1]
    assert titles[2].startswith("direct SVD: rel. error") and "vector" in titles[2]
    # the three panels share the original's gray scale
    assert {ax.images[0].get_clim() for ax in axes} == {(img.min(), img.max())}
    _, given = plt.subplots(1, 3)
    assert list(plot.lplr_view(img, 2, bits_left=2, bits_right=2, axes=given)) == list(given)
    with pytest.raises(ValueError, match="axes must hold 3 axes"):
        plot.lplr_view(img, 2, bits_left=2, bits_right=2, axes=given[:2])


def test_lplr_slider_is_a_widget_that_redraws():
    widgets = pytest.importorskip("ipywidgets")
    box = plot.lplr_slider(_image(32, 28).astype(np.float64), max_rank=6, rank=3)
    assert isinstance(box, widgets.Widget)
    rank, bits_left, bits_right, scales = box.children[:4]
    assert (rank.min, rank.max, rank.value) == (1, 6, 3)
    assert rank.layout.width == "100%"
    assert (bits_left.value, bits_right.value, scales.value) == (4, 8, "tensor")
    rank.value = 6  # each control triggers a redraw; none may raise
    scales.value = "vector"
    bits_right.value = 2


@pytest.mark.parametrize("bit_reversal", [True, False])
def test_plot_butterfly_factors_one_panel_per_factor(bit_reversal):
    from lrkit.structured import Butterfly

    B = Butterfly.fft(8) if bit_reversal else Butterfly.hadamard(8)
    fig = plot.plot_butterfly_factors(B)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 + 1 + bit_reversal  # F_0, F_1, F_2, the product (and P)
    assert titles[-1].startswith("product B") and "64 nonzeros" in titles[-1]
    assert all("16 nonzeros" in t for t in titles[bit_reversal:-1])  # 2 per row
    assert fig.get_suptitle()
