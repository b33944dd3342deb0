"""Shared fixtures: devices (cpu, plus cuda when available), dtypes and their tolerances."""

import pytest
import torch

import lrkit

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]

# The rounding level of one dtype, as a relative tolerance: 1000 units of roundoff. A backward
# stable factorization (QR, SVD, pivoted LU) of an m x n matrix is exact for a matrix within
# ~(m + n) eps of its input, amplified by the condition of what it solves; the test matrices
# here are at most a few hundred wide with conditions ~10, so exact recovery lands at a few
# to a few hundred eps, the same count in float32 and float64 (measured: truncated SVD 4-5,
# rsvd 4-330, CUR ~50). A test multiplies RTOL where its algorithm amplifies rounding.
# (float64 used to get 1e-10 = 4.5e5 eps, 500x looser in eps than float32's 1e-4.)
RTOL = {dt: 1000 * torch.finfo(dt).eps for dt in DTYPES}  # float32 1.2e-4, float64 2.2e-13


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


def low_rank_matrix(m, n, rank, *, dtype=torch.float64, device="cpu", seed=0, decay=None):
    """A seeded m x n matrix of exact rank ``rank`` with known singular values.

    Singular values are ``1, decay, decay**2, ...`` if ``decay`` is given, else ``rank..1``.
    Returns (A, S) with S the true singular values (descending).
    """
    if decay is None:
        S = torch.arange(rank, 0, -1, dtype=torch.float64)
    else:
        S = decay ** torch.arange(rank, dtype=torch.float64)
    A = lrkit.matrix_with_spectrum(m, n, S, seed=seed)
    return A.to(device=device, dtype=dtype), S.to(device=device, dtype=dtype)
