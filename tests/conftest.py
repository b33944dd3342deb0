"""Shared fixtures: devices (cpu, plus cuda when available), dtypes and their tolerances."""

import os

import pytest
import torch

import lrkit

# The browser check (tests/browser: Chromium, playwright, about a minute) is collected only
# when asked for: `make browser-check` sets LRKIT_BROWSER_CHECK=1. (Not a conftest.py of its
# own: test modules import this one as `conftest`, and a second one would shadow it.)
collect_ignore = [] if os.environ.get("LRKIT_BROWSER_CHECK") else ["browser"]

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


# Power-of-two scales at the magnitudes where squaring entries leaves the dtype's range:
# float32 entries ~1e18 and ~1e19 (squares overflow), ~1e-40 (subnormal: squares are zero),
# float64 entries ~1e-170 (squares underflow).
EXTREME_SCALES = [
    (torch.float32, 60),
    (torch.float32, 64),
    (torch.float32, -133),
    (torch.float64, -565),
]
SCALE_IDS = ["f32-1e18", "f32-1e19", "f32-1e-40", "f64-1e-170"]


def at_scale(X, dtype, k):
    """``(X * 2**k, X1)`` in ``dtype``: the scaled input, and the unit-scale input it holds.

    Multiplying by a power of two is exact except where the result is subnormal (it then
    keeps fewer bits); ``X1 = (X * 2**k) * 2**-k`` undoes it exactly, so a method that is
    scale-invariant must give on ``X * 2**k`` exactly ``2**k`` times what it gives on ``X1``,
    up to its own rounding (a LAPACK routine may scale by other factors internally).
    """
    Xs = (torch.as_tensor(X).double() * 2.0**k).to(dtype)
    return Xs, (Xs.double() * 2.0**-k).to(dtype)


def scaled_eps(dtype, k):
    """Relative precision of ``dtype`` entries of size ``~2**k``: eps, or coarser where they are
    subnormal (spaced 2**-149 apart in float32, so entries ~2**-133 keep 16 bits: 2**-16).
    Products of subnormal entries round to that spacing too."""
    fi = torch.finfo(dtype)
    return max(fi.eps, fi.tiny * fi.eps * 2.0**-k)


def assert_scaled(got, ref, k, dtype, factor=1000):
    """``got * 2**-k`` equals ``ref`` to ``factor`` times the precision at scale ``2**k``.

    The factor 1000 covers the rounding of a small well-conditioned problem (tens of
    entries per inner product, subspace condition numbers of a few): a scale bug is off by
    far more (NaN, inf, zero, or a wrong rank).
    """
    got = torch.as_tensor(got).double() * 2.0**-k
    ref = torch.as_tensor(ref).double()
    assert bool(torch.isfinite(got).all())
    err = float(torch.linalg.vector_norm(got - ref) / torch.linalg.vector_norm(ref))
    rtol = factor * scaled_eps(dtype, k)
    assert err <= rtol, f"relative difference {err:.3g} > {rtol:.3g}"


def tiny_llama(*, heads=4, kv_heads=2, tie=True, seed=0, context=64, std=0.1):
    """A random 2-layer Llama of width 64 (vocab 258, bytes), its weights drawn with standard
    deviation ``std``: larger than the training init, so differences between paths show."""
    from lrkit.llm import Llama, LlamaConfig

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        tie_word_embeddings=tie,
    )
    model = Llama(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


def byte_ids(B=2, T=40, seed=1):
    """(B, T) random byte token ids, seeded."""
    return torch.randint(0, 258, (B, T), generator=torch.Generator().manual_seed(seed))
