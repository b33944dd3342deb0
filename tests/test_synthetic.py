import pytest
import torch

import lrkit


def test_singular_values_are_exact_and_seeded(device, dtype):
    S = torch.tensor([5.0, 2.0, 0.5], dtype=torch.float64)
    A = lrkit.matrix_with_spectrum(20, 10, S, seed=3, dtype=dtype, device=device)
    assert A.shape == (20, 10) and A.dtype == dtype and A.device.type == device.type
    s = torch.linalg.svdvals(A.double().cpu())
    torch.testing.assert_close(s[:3], S, rtol=1e-5, atol=1e-5)
    assert float(s[3:].abs().max()) < 1e-5
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
