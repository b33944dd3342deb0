import numpy as np
import pytest
import torch

from lrkit.core._linalg import lstsq


def test_matches_numpy_min_norm_solution(device):
    rng = np.random.default_rng(0)
    for A in (
        rng.standard_normal((30, 8)),
        rng.standard_normal((30, 3)) @ rng.standard_normal((3, 8)),
    ):
        B = rng.standard_normal((30, 5))
        ref, *_ = np.linalg.lstsq(A, B, rcond=None)  # SVD-based, minimum norm
        X, rank = lstsq(torch.from_numpy(A).to(device), torch.from_numpy(B).to(device))
        np.testing.assert_allclose(X.cpu().numpy(), ref, atol=1e-10)
        assert rank == np.linalg.matrix_rank(A)


def test_deterministic_run_to_run():
    g = torch.Generator().manual_seed(0)
    A, B = (
        torch.randn(30, 20, generator=g, dtype=torch.float64),
        torch.randn(30, 25, generator=g, dtype=torch.float64),
    )
    first = lstsq(A, B)[0]
    assert all(torch.equal(first, lstsq(A, B)[0]) for _ in range(50))


def test_zero_matrix_gives_zero_solution():
    X, rank = lstsq(torch.zeros(4, 3), torch.ones(4, 2))
    assert rank == 0 and torch.equal(X, torch.zeros(3, 2))
    with pytest.raises(RuntimeError):
        lstsq(torch.ones(4, 3), torch.ones(5, 2))


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (1e19, torch.float32),
        (3e38, torch.float32),
        (1e-40, torch.float32),
        (1e-45, torch.float32),
        (1e-170, torch.float64),
        (1e300, torch.float64),
        (5e-324, torch.float64),
        (1.0, torch.float32),
    ],
)
def test_pow2_scale_is_exact_and_fro_norm_does_not_overflow(value, dtype):
    from lrkit.core._linalg import fro_norm, pow2_scale, pow2_unscale

    x = torch.tensor([value, -value / 3, 0.0], dtype=dtype)
    xs, e = pow2_scale(x)
    assert 0.5 <= float(xs.abs().max()) < 1.0
    assert torch.equal(pow2_unscale(xs, e), x)  # no rounding either way
    # The norm of the stored entries, in float64 after dividing by the largest (exact);
    # fro_norm sums 3 squares in dtype: a few of dtype's eps.
    big = abs(float(x[0]))
    exact = float(np.linalg.norm(x.double().numpy() / big)) * big
    assert fro_norm(x) == pytest.approx(exact, rel=4 * torch.finfo(dtype).eps, abs=0)
    assert fro_norm(torch.zeros(3, dtype=dtype)) == 0.0
    assert fro_norm(torch.full((4,), 1.7e308, dtype=torch.float64)) == float("inf")  # 3.4e308
