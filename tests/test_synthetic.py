import pytest
import torch

import lrkit


def test_singular_values_are_exact_and_seeded(device, dtype):
    S = torch.tensor([5.0, 2.0, 0.5], dtype=torch.float64)
    A = lrkit.matrix_with_spectrum(20, 10, S, seed=3, dtype=dtype, device=device)
    assert A.shape == (20, 10) and A.dtype == dtype and A.device.type == device.type
    s = torch.linalg.svdvals(A.double().cpu())
    # A is built in float64 and rounded to dtype, a change of at most eps/2 |A|_F; by Weyl's
    # inequality no singular value moves further. The float64 products and svdvals, backward
    # stable on a 20 x 10 matrix, add a few float64 eps |A| at most (measured 0.5): 100 covers them.
    eps, eps64 = torch.finfo(dtype).eps, torch.finfo(torch.float64).eps
    tol = float((eps + 100 * eps64) * torch.linalg.vector_norm(S))
    torch.testing.assert_close(s[:3], S, rtol=0, atol=tol)
    assert float(s[3:].abs().max()) < tol
    same = lrkit.matrix_with_spectrum(20, 10, S, seed=3, dtype=dtype, device=device)
    other = lrkit.matrix_with_spectrum(20, 10, S, seed=4, dtype=dtype, device=device)
    assert torch.equal(A, same) and not torch.equal(A, other)


def test_bad_input():
    with pytest.raises(ValueError, match=r"len\(S\) \(=6\) must be <= min\(m, n\) = 5"):
        lrkit.matrix_with_spectrum(5, 8, torch.ones(6))
    with pytest.raises(ValueError, match="must be >= 0"):
        lrkit.matrix_with_spectrum(5, 8, torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"m \(=0\) must be >= 1"):
        lrkit.matrix_with_spectrum(0, 8, torch.ones(1))
