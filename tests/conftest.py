"""Shared fixtures: devices (cpu, plus cuda when available), dtypes and their tolerances."""

import pytest
import torch

import lrkit

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float32, torch.float64]

# Relative tolerances scaled to the dtype: float32 ~1e-5, float64 ~1e-10 (STYLE.md).
RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}


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
