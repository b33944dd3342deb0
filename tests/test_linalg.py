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
