"""lrkit.plot.compare: honest bits, the largest size that fits, JPEG by its file size."""

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

import lrkit
from lrkit import plot
from lrkit.plot.compare import _jpeg_bytes, _tiles

BUDGETS = [0.5, 1, 2, 4]


@pytest.fixture(autouse=True)
def _agg():
    plt.switch_backend("Agg")  # no display needed
    yield
    plt.close("all")


def _photo(m=48, n=64, seed=0):
    """A uint8 'photo': a smooth gradient, a few rank-one products and some texture."""
    g = np.random.default_rng(seed)
    x = np.add.outer(np.linspace(0, 1, m), np.linspace(0, 1, n))
    x += g.random((m, 3)) @ g.random((3, n)) + 0.2 * g.random((m, n))
    return np.round(255 * x / x.max()).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(plot.METHODS))
def test_bits_are_the_results_nbits_and_the_size_is_the_largest_that_fits(name):
    img = _photo()
    A = torch.from_numpy(img).float()
    spec = plot.METHODS[name](A)
    c = plot.compare(img, [name], BUDGETS, jpeg=False)
    for e in c.entries:
        limit = e.budget * img.size
        sizes = list(spec.sizes)
        if e.size is None:  # nothing fits: not even the smallest size
            assert spec.make(A, sizes[0]).nbits > limit
            continue
        f = spec.make(A, e.size)
        assert e.nbits == f.nbits <= limit  # the protocol's count, within the budget
        assert e.bits_per_entry == f.nbits / img.size
        assert e.rel_error == pytest.approx(
            lrkit.rel_error(A, f if spec.decode is None else spec.decode(f.to_dense())), rel=1e-6
        )
        i = sizes.index(e.size)
        if i + 1 < len(sizes):  # the next size up does not fit
            assert spec.make(A, sizes[i + 1]).nbits > limit


def test_jpeg_bits_are_the_file_size_and_the_quality_is_the_highest_that_fits():
    img = _photo()
    c = plot.compare(img, [], BUDGETS)
    for e in c.entries:
        assert e.method == "JPEG"
        limit = e.budget * img.size
        if e.size is None:
            assert 8 * len(_jpeg_bytes(img, 1)) > limit
            continue
        file = _jpeg_bytes(img, e.size)
        assert e.nbits == 8 * len(file) <= limit
        assert all(8 * len(_jpeg_bytes(img, q)) > limit for q in range(e.size + 1, 101))
        decoded = np.asarray(Image.open(io.BytesIO(file))).astype(np.float64)
        assert e.rel_error == pytest.approx(lrkit.rel_error(img.astype(np.float64), decoded))
        assert e.psnr == pytest.approx(lrkit.psnr(img, decoded))


def test_a_generous_budget_fits_the_exact_methods_with_zero_error():
    img = _photo(16, 16)
    img[0, 0] = 0  # pixels span 0..255: a min/max range then has a step of one gray level
    # 8-bit min/max quantization of 8-bit pixels is exact: 8 bits per pixel plus a range of
    # two float32 numbers fit 9 bits per pixel, 9-bit codes do not.
    naive = plot.compare(img, ["naive quantization"], [9], jpeg=False).get("naive quantization", 9)
    assert naive.size == 8 and naive.rel_error == 0 and naive.psnr == np.inf
    # Full rank, 16 (16 + 16 + 1) float32 numbers, fits 128 bits per pixel; it is exact up to
    # float32 rounding: a few eps times sqrt(rank) in relative Frobenius norm.
    full = plot.compare(img, ["SVD"], [128], jpeg=False).get("SVD", 128)
    assert full.size == 16
    assert full.rel_error < 10 * torch.finfo(torch.float32).eps * 16**0.5


def test_a_callable_method_picks_its_own_size():
    img = _photo()

    def svd_at(A, bits):
        k = lrkit.rank_for_budget(A.shape, bits_per_entry=bits, width=32)
        return lrkit.truncated_svd(A, k)

    c = plot.compare(img, {"mine": svd_at, "SVD": "SVD"}, [2, 4], jpeg=False)
    for b in (2, 4):
        assert c.get("mine", b).size == c.get("SVD", b).size
        assert c.get("mine", b).rel_error == pytest.approx(c.get("SVD", b).rel_error, rel=1e-5)


def test_tiles_are_a_rearrangement():
    A = torch.arange(16 * 24, dtype=torch.float64).reshape(16, 24)
    T, decode = _tiles(A)
    assert T.shape == (2, 3, 64)
    assert torch.equal(T[1, 2].reshape(8, 8), A[8:16, 16:24])  # one tile per (row, column)
    assert torch.equal(decode(T), A)


def test_table_and_figure():
    img = _photo()
    c = plot.compare(img, ["SVD", "Monarch"], BUDGETS)
    text = c.table()
    assert "does not fit" in text and "JPEG" in text and "PSNR" in text
    assert len(text.splitlines()) == 1 + 3 * len(BUDGETS)
    ax = c.plot()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SVD", "Monarch", "JPEG"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_title()
    assert "bits per entry" in ax.get_xlabel()
    assert c.plot(metric="psnr").get_yscale() == "linear"
    missing = [c.get("Monarch", b).size is None for b in BUDGETS]
    np.testing.assert_array_equal(np.isnan(c.errors("Monarch")), missing)


def test_data_is_not_modified():
    img = _photo()
    before = img.copy()
    plot.compare(img, ["SVD", "Tucker of 8x8 tiles"], [1])
    np.testing.assert_array_equal(img, before)


def test_bad_input():
    img = _photo()
    with pytest.raises(ValueError, match="data must be a 2-D matrix"):
        plot.compare(img[0], ["SVD"], [1], jpeg=False)
    with pytest.raises(ValueError, match="budgets must not be empty"):
        plot.compare(img, ["SVD"], [])
    with pytest.raises(ValueError, match=r"budgets\[i\] \(=0\) must be"):
        plot.compare(img, ["SVD"], [1, 0])
    with pytest.raises(TypeError, match="budgets must be a sequence"):
        plot.compare(img, ["SVD"], 1)
    with pytest.raises(TypeError, match="budgets.* must be a real number"):
        plot.compare(img, ["SVD"], [True])
    with pytest.raises(ValueError, match="method 'SVDD' is not one of"):
        plot.compare(img, ["SVDD"], [1])
    with pytest.raises(TypeError, match="methods must be a sequence of names or a mapping"):
        plot.compare(img, "SVD", [1])
    with pytest.raises(TypeError, match="JPEG needs an 8-bit image"):
        plot.compare(img.astype(np.float32), ["SVD"], [1])
    with pytest.raises(ValueError, match="data .* must be a finite|NaN"):
        bad = img.astype(np.float64)
        bad[0, 0] = np.nan
        plot.compare(bad, ["SVD"], [1], jpeg=False)
    over = {"too big": lambda A, b: lrkit.truncated_svd(A, min(A.shape))}
    with pytest.raises(ValueError, match="stores .* bits, more than budget"):
        plot.compare(img, over, [1], jpeg=False)
    with pytest.raises(TypeError, match="not a factorization"):
        plot.compare(img, {"dense": lambda A, b: A}, [1], jpeg=False)
    with pytest.raises(ValueError, match="sizes must not be empty"):
        plot.compare(img, {"none": plot.Method(lambda A, k: None, [])}, [1], jpeg=False)
    with pytest.raises(ValueError, match="tiles of 8 x 8 need m and n divisible by 8"):
        plot.compare(_photo(20, 16), ["Tucker of 8x8 tiles"], [1], jpeg=False)
    with pytest.raises(ValueError, match="metric"):
        plot.compare(img, ["SVD"], [1]).plot(metric="ssim")
    with pytest.raises(TypeError, match="jpeg must be"):
        plot.compare(img, ["SVD"], [1], jpeg=1)
    with pytest.raises(ValueError, match="bits_per_entry"):
        plot.jpeg_at_budget(img, -1)
