import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio

import lrkit

from conftest import EXTREME_SCALES, SCALE_IDS, at_scale


def test_rel_error_matches_numpy_norms():
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((10, 7)), rng.standard_normal((10, 7))
    assert lrkit.rel_error(A, B) == pytest.approx(np.linalg.norm(A - B) / np.linalg.norm(A))
    assert lrkit.rel_error(A, B, ord=2) == pytest.approx(
        np.linalg.norm(A - B, 2) / np.linalg.norm(A, 2)
    )


def test_rel_error_accepts_factorization_and_mixed_inputs():
    A = torch.randn(9, 6, dtype=torch.float64)
    f = lrkit.truncated_svd(A, 2)
    assert lrkit.rel_error(A.numpy(), f) == pytest.approx(lrkit.rel_error(A, f.to_dense()))
    assert isinstance(lrkit.rel_error(A, f), float)


def test_rel_error_fro_over_any_shape_and_ord2_needs_matrix():
    T = torch.randn(3, 4, 5, dtype=torch.float64)
    B = T + 0.1
    assert lrkit.rel_error(T, B) == pytest.approx(float(torch.norm(T - B) / torch.norm(T)))
    with pytest.raises(ValueError, match=r"ord=2 needs a 2-D matrix; got shape \(3, 4, 5\)"):
        lrkit.rel_error(T, B, ord=2)


def test_rel_error_bad_input():
    with pytest.raises(ValueError, match=r"shapes differ: A is \(3, 3\), approx is \(3, 2\)"):
        lrkit.rel_error(np.ones((3, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"ord \(=1\) must be one of 'fro', 2"):
        lrkit.rel_error(np.ones((3, 3)), np.ones((3, 3)), ord=1)
    with pytest.raises(ValueError, match="approx contains 1 NaN or Inf"):
        lrkit.rel_error(np.ones((2, 2)), np.array([[1.0, np.nan], [1.0, 1.0]]))


def test_rel_error_zero_reference():
    Z = np.zeros((3, 3))
    assert lrkit.rel_error(Z, Z) == 0.0
    assert lrkit.rel_error(Z, np.ones((3, 3))) == math.inf


def test_psnr_matches_scikit_image_uint8():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(32, 24), dtype=np.uint8)
    noisy = np.clip(img + rng.normal(0, 5, img.shape), 0, 255)
    ref = peak_signal_noise_ratio(img.astype(np.float64), noisy, data_range=255)
    assert lrkit.psnr(img, noisy) == pytest.approx(ref)  # uint8 => data_range 255 by default
    assert lrkit.psnr(torch.from_numpy(img), noisy) == pytest.approx(ref)


def test_psnr_float_default_range_and_explicit():
    rng = np.random.default_rng(1)
    img = rng.random((16, 16, 3))
    approx = img + 0.01 * rng.standard_normal(img.shape)
    span = img.max() - img.min()
    ref = peak_signal_noise_ratio(img, approx, data_range=span)
    assert lrkit.psnr(img, approx) == pytest.approx(ref)
    assert lrkit.psnr(img, approx, data_range=1.0) == pytest.approx(
        peak_signal_noise_ratio(img, approx, data_range=1.0)
    )


def test_psnr_with_factorization_and_perfect_match():
    A = torch.randn(8, 8, dtype=torch.float64)
    assert lrkit.psnr(A, A.clone()) == math.inf
    f = lrkit.truncated_svd(A, 3)
    assert lrkit.psnr(A, f) == pytest.approx(lrkit.psnr(A, f.to_dense()))
    with pytest.raises(ValueError, match=r"data_range \(=0\) must be > 0"):
        lrkit.psnr(A, f, data_range=0)


@pytest.mark.parametrize(("dtype", "k"), EXTREME_SCALES, ids=SCALE_IDS)
def test_rel_error_and_psnr_at_extreme_scales(dtype, k):
    # torch.linalg.vector_norm sums plain squares (inf at 1e19 in float32, 0 at 1e-40);
    # rel_error is a ratio of norms, so it must not change when both inputs scale by 2**k.
    X = torch.from_numpy(np.random.default_rng(0).standard_normal((20, 16)))
    A, A1 = at_scale(X, dtype, k)
    B, B1 = at_scale(X + 0.1, dtype, k)
    eps = torch.finfo(dtype).eps
    # Two norms of 320 entries: each sum is accurate to ~320 eps relative.
    assert lrkit.rel_error(A, B) == pytest.approx(lrkit.rel_error(A1, B1), rel=1000 * eps)
    assert lrkit.rel_error(A, A) == 0.0
    assert np.isfinite(lrkit.rel_error(A, B, ord=2))
    # PSNR is scale-free too when data_range scales with the data; a relative change d of
    # the RMS moves it by 20 / ln(10) * d dB.
    assert lrkit.psnr(A, B) == pytest.approx(lrkit.psnr(A1, B1), abs=9 * 1000 * eps)
