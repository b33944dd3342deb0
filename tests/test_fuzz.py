"""Property-based fuzz of the public functions over dtypes, byte orders, magnitudes, shapes and
parameter values.

Every call must end in one of two ways: a ``TypeError``/``ValueError`` raised by lrkit itself
(its message names what was wrong), or a finite result of the input's shape, in the compute
dtype (float32 and float64 kept, everything else float32), on the input's device, with the
input unchanged and an error within a bound that follows from the method:

- truncated SVD: the Eckart-Young tail ``sqrt(sum_{i>k} s_i^2) / ||A||``, to within the
  rounding of a backward-stable SVD and of the rebuild, ``c * max(m, n) * eps`` relative;
- randomized SVD, CUR, interpolative decomposition: never below that optimum (less the same
  rounding);
- quantization: every entry within half a step of its value, plus the rounding of the stored
  ranges at ``scale_dtype``;
- relative error: 0 for the input itself, 1 against zero, ``|c - 1|`` against ``c * A``.

Deterministic (``derandomize=True``) and small, so that the suite stays quick on one thread.
"""

import os
import traceback
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lrkit

LRKIT_DIR = os.path.dirname(os.path.abspath(lrkit.__file__))
FUZZ = settings(
    derandomize=not os.environ.get("LRKIT_FUZZ_EXAMPLES"),
    max_examples=int(os.environ.get("LRKIT_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = ["float16", "bfloat16", "float32", "float64", "int32", "int64", "uint8", "bool"]
# Rounding slack, in units of eps * max(m, n): an SVD is backward stable with a modest
# constant, and the error is measured after one more rebuild and two norms.
C = 20


@st.composite
def arrays(draw, *, ndim=2, max_side=9, batched=False, square_pow2=False):
    """An input as a user might pass it: numpy (either byte order) or torch, any dtype."""
    with warnings.catch_warnings():
        return _array(draw, ndim, max_side, batched, square_pow2)


def _array(draw, ndim, max_side, batched, square_pow2):
    if batched and draw(st.booleans()):
        ndim += 1
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(ndim))
    if draw(st.booleans()):  # thin shapes are where index arithmetic slips
        axis = draw(st.integers(0, ndim - 1))
        shape = shape[:axis] + (1,) + shape[axis + 1 :]
    if square_pow2 and draw(st.booleans()):  # what the butterfly needs
        shape = (2 ** draw(st.integers(0, 3)),) * 2
    dtype = draw(st.sampled_from(DTYPES))
    # 1e-30..1e30; float16 holds 6e-8..65504, so beyond that it is mostly refused (inf)
    # or zero: draw it mostly within its range.
    exp = draw(
        st.integers(-30, 30) if dtype != "float16" or draw(st.booleans()) else st.integers(-6, 4)
    )
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(shape) * 10.0**exp
    if dtype == "bool":
        x = x > 0
    elif dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        x = np.clip(np.round(np.abs(x) if dtype == "uint8" else x), info.min, info.max)
    container = "torch" if dtype == "bfloat16" else draw(st.sampled_from(["<", ">", "torch"]))
    warnings.simplefilter("ignore", RuntimeWarning)  # float16 overflow to inf is part of it
    if container == "torch":
        return torch.from_numpy(
            np.asarray(x, dtype="float64" if dtype == "bfloat16" else dtype)
        ).to(getattr(torch, dtype))
    return np.asarray(x).astype(np.dtype(dtype).newbyteorder(container))


def ranks(data, A, *, low=1):
    """Mostly a valid rank for A (1..min(m, n)); one draw in five is out of range."""
    m, n = A.shape[-2:]
    if data.draw(st.integers(0, 4)) == 0:
        return data.draw(st.sampled_from([0, -1, min(m, n) + 1, True, 2.0]))
    return data.draw(st.integers(low, min(m, n)))


def divisor(data, k):
    """Mostly a divisor of k; sometimes any of 1..4."""
    if data.draw(st.integers(0, 4)) == 0:
        return data.draw(st.integers(0, 4))
    return data.draw(st.sampled_from([d for d in range(1, k + 1) if k % d == 0]))


def compute_dtype(A):
    name = str(A.dtype).removeprefix("torch.")
    return {"float32": torch.float32, "float64": torch.float64}.get(
        np.dtype(A.dtype).name if isinstance(A, np.ndarray) else name, torch.float32
    )


def reference(A):
    """A as lrkit computes with it (float64 copy of the compute-dtype values), or None if it
    holds NaN or Inf (then lrkit must refuse it)."""
    t = torch.from_numpy(A.astype(A.dtype.newbyteorder("="))) if isinstance(A, np.ndarray) else A
    t = t.to(compute_dtype(A)).double()
    return t if bool(torch.isfinite(t).all()) else None


def snapshot(A):
    return A.copy() if isinstance(A, np.ndarray) else A.clone()


def unchanged(A, before):
    if isinstance(A, np.ndarray):
        return np.array_equal(A, before) and A.dtype == before.dtype
    return torch.equal(A, before)


def call(f, *args, **kwargs):
    """f(*args, **kwargs), or None when lrkit refuses with its own TypeError/ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # adjusted ranks, clipped sizes
            return f(*args, **kwargs)
    except (TypeError, ValueError) as err:
        origin = traceback.extract_tb(err.__traceback__)[-1].filename
        assert os.path.abspath(origin).startswith(LRKIT_DIR), (
            f"{type(err).__name__} raised outside lrkit ({origin}): {err}"
        )
        assert str(err)
        return None


def check_result(res, A, ref):
    """A finite result of A's shape, compute dtype and device."""
    assert ref is not None, "lrkit accepted NaN or Inf input"
    D = res.to_dense()
    assert tuple(D.shape) == tuple(ref.shape)
    assert D.dtype == compute_dtype(A)
    assert D.device.type == "cpu"
    assert bool(torch.isfinite(D).all())
    return D.double()


def rel(ref, D) -> float:
    return lrkit.rel_error(ref, D)


def eckart_young(ref, rank) -> float:
    S = torch.linalg.svdvals(ref)
    S = S / S[0] if float(S[0]) > 0 else S  # scale-free: squares stay in range
    total = float(torch.sum(S * S))
    return float(torch.sum(S[rank:] ** 2) / total) ** 0.5 if total > 0 else 0.0


def slack(A, ref) -> float:
    return C * max(ref.shape[-2:]) * torch.finfo(compute_dtype(A)).eps


@FUZZ
@given(A=arrays(batched=True), data=st.data())
def test_truncated_svd(A, data):
    rank = ranks(data, A)
    before, ref = snapshot(A), reference(A)
    res = call(lrkit.truncated_svd, A, rank)
    assert unchanged(A, before)
    if res is None:
        return
    check_result(res, A, ref)
    if ref.ndim == 2:
        assert abs(rel(ref, res) - eckart_young(ref, rank)) <= slack(A, ref)


@FUZZ
@given(
    A=arrays(batched=True),
    data=st.data(),
    oversample=st.integers(-1, 4),
    n_iter=st.integers(0, 2),
    normalizer=st.sampled_from(["lu", "qr", "none", "QR"]),
)
def test_rsvd(A, data, oversample, n_iter, normalizer):
    rank = ranks(data, A)
    before, ref = snapshot(A), reference(A)
    kw = dict(oversample=oversample, n_iter=n_iter, normalizer=normalizer, seed=0)
    res = call(lrkit.rsvd, A, rank, **kw)
    assert unchanged(A, before)
    if res is None:
        return
    check_result(res, A, ref)
    if ref.ndim == 2:
        assert rel(ref, res) >= eckart_young(ref, rank) - slack(A, ref)
    assert torch.equal(res.to_dense(), call(lrkit.rsvd, A, rank, **kw).to_dense())  # same seed


@FUZZ
@given(A=arrays(), tol=st.sampled_from([0.0, 0.01, 0.3, 0.99, 1.0]), block=st.integers(0, 3))
def test_adaptive_range_finder(A, tol, block):
    before, ref = snapshot(A), reference(A)
    Q = call(lrkit.adaptive_range_finder, A, tol, block=block, seed=0)
    assert unchanged(A, before)
    if Q is None:
        return
    assert ref is not None and Q.dtype == compute_dtype(A) and Q.shape[0] == ref.shape[0]
    k = Q.shape[1]
    eps = torch.finfo(Q.dtype).eps
    eye = torch.eye(k, dtype=Q.dtype)
    assert float((Q.T @ Q - eye).abs().max()) <= 10 * ref.shape[0] * eps  # orthonormal
    res = lrkit.lowrank_from_basis(A, Q)
    check_result(res, A, ref)
    # The error is tracked as a difference of squares: accurate to about sqrt(eps).
    if k < min(ref.shape):
        assert rel(ref, res) <= tol + C * eps**0.5


@FUZZ
@given(
    A=arrays(),
    data=st.data(),
    method=st.sampled_from(["leverage", "uniform", "deim", "qr"]),
    axis=st.sampled_from([0, 1]),
)
def test_cur_and_interp_decomp(A, data, method, axis):
    rank = ranks(data, A)
    before, ref = snapshot(A), reference(A)
    for f, kw in (
        (lrkit.cur, dict(method=method, seed=0)),
        (lrkit.interp_decomp, dict(axis=axis, seed=0)),
    ):
        res = call(f, A, rank, **kw)
        assert unchanged(A, before)
        if res is None:
            continue
        check_result(res, A, ref)
        # CUR with more columns or rows than the rank may beat the rank-k optimum; the ID not.
        if f is lrkit.interp_decomp:
            assert rel(ref, res) >= eckart_young(ref, rank) - slack(A, ref)


@FUZZ
@given(
    A=arrays(),
    bits=st.sampled_from([0, 1, 2, 3, 4, 8, 16, 17]),
    layout=st.sampled_from(["tensor", "vector", "group", "Vector"]),
    group_size=st.integers(1, 4),
    axis=st.sampled_from([0, 1]),
    symmetric=st.booleans(),
    scale_dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_quantize(A, bits, layout, group_size, axis, symmetric, scale_dtype):
    before, ref = snapshot(A), reference(A)
    kw = dict(scales=layout, axis=axis, symmetric=symmetric, scale_dtype=scale_dtype)
    if layout == "group":
        kw["group_size"] = group_size
    res = call(lrkit.quantize, A, bits, **kw)
    assert unchanged(A, before)
    if res is None:
        return
    D = check_result(res, A, ref)
    # Codes are rounded against the stored ranges, so an entry is within half a (stored)
    # step, except where the stored range falls short of it and the code clamps: then by the
    # rounding of the stored numbers at scale_dtype (relative eps, or its subnormal spacing
    # tiny * eps where a number underflows), a stored step's rounding counted 2**bits - 1
    # times over; plus the rebuild's rounding in the compute dtype.
    big = float(ref.abs().max())
    fs, fc = torch.finfo(scale_dtype), torch.finfo(compute_dtype(A))
    levels = 2**bits - 1
    stored = fs.eps * (big + fs.tiny)
    if not symmetric:  # the step itself is stored
        stored += levels * fs.eps * (2 * big / levels + fs.tiny)
    bound = 0.5 * float(res.step.double().max()) + 2 * stored + 4 * fc.eps * big
    assert float((D - ref).abs().max()) <= bound


@FUZZ
@given(
    A=arrays(max_side=8),
    data=st.data(),
    bits=st.tuples(st.integers(1, 16), st.integers(1, 16)),
    scale_dtype=st.sampled_from([torch.float16, torch.float32]),
)
def test_lplr(A, data, bits, scale_dtype):
    rank = ranks(data, A)
    before, ref = snapshot(A), reference(A)
    kw = dict(bits_left=bits[0], bits_right=bits[1], scale_dtype=scale_dtype)
    for f, extra in ((lrkit.lplr, dict(seed=0)), (lrkit.dsvd_quant, {})):
        res = call(f, A, rank, **kw, **extra)
        assert unchanged(A, before)
        if res is not None:
            check_result(res, A, ref)


@FUZZ
@given(A=arrays(batched=True), c=st.sampled_from([0.0, 0.5, 2.0, -1.0]))
def test_rel_error(A, c):
    before, ref = snapshot(A), reference(A)
    same = call(lrkit.rel_error, A, A)
    assert unchanged(A, before)
    if same is None:
        assert ref is None
        return
    assert same == 0.0
    if float(ref.abs().max()) == 0.0:
        return
    got = lrkit.rel_error(ref, c * ref)  # float64: c * ref is exact for these c
    assert got == pytest.approx(abs(c - 1), rel=1e-12)
    assert lrkit.rel_error(A, c * ref) == pytest.approx(abs(c - 1), rel=C * slack(A, ref))


@FUZZ
@given(T=arrays(ndim=3, max_side=5), rank=st.integers(0, 4), full=st.booleans())
def test_tensor_methods(T, rank, full):
    before, ref = snapshot(T), reference(T)
    eps = torch.finfo(compute_dtype(T)).eps
    ranks = tuple(ref.shape) if (full and ref is not None) else rank
    for f, kw in (
        (lrkit.hosvd, {}),
        (lrkit.hooi, dict(n_iter_max=3)),
        (lrkit.tt_svd, {}),
        (lrkit.cp_als, dict(n_iter_max=3, seed=0)),
    ):
        r = rank if f in (lrkit.tt_svd, lrkit.cp_als) else ranks
        res = call(f, T, r, **kw)
        assert unchanged(T, before)
        if res is None:
            continue
        D = check_result(res, T, ref)
        if f is lrkit.hosvd and r == tuple(ref.shape):  # full ranks: exact up to rounding
            assert rel(ref, D) <= C * max(ref.shape) * eps * 10


@FUZZ
@given(
    A=arrays(max_side=8, square_pow2=True),
    data=st.data(),
    rank=st.integers(0, 3),
)
def test_structured(A, data, rank):
    before, ref = snapshot(A), reference(A)
    m, n = A.shape
    left = (divisor(data, m), divisor(data, n))
    nblocks = divisor(data, min(m, n))
    for f, args, kw in (
        (lrkit.kron_approx, (left,), dict(rank=rank)),
        (lrkit.monarch_project, (nblocks,), {}),
        (lrkit.butterfly_project, (), {}),
        (lrkit.butterfly_fit, (), dict(n_steps=2, seed=0)),
    ):
        res = call(f, A, *args, **kw)
        assert unchanged(A, before)
        if res is None:
            continue
        check_result(res, A, ref)
        assert rel(ref, res) <= 1.0 + slack(A, ref) or f is lrkit.butterfly_fit


@FUZZ
@given(text=st.text(), raw=st.binary())
def test_byte_tokenizer_never_fails_and_round_trips_bytes(text, raw):
    from lrkit.llm import ByteTokenizer

    tok = ByteTokenizer()
    ids = tok.encode(text)  # any str, lone surrogates included
    assert all(0 <= i < 256 for i in ids)
    assert tok.encode(tok.decode(tok.encode(raw))) == list(raw)  # bytes survive decode


@pytest.fixture(scope="module")
def tiny_llama():
    from test_llm import tiny

    return tiny(context=16)


def mostly(valid):
    """Mostly ``valid``; one draw in four a bad value (None, out of range, wrong type)."""
    bad = st.one_of(st.none(), st.integers(-2, 300), st.sampled_from([True, 1.5, float("nan")]))
    return st.one_of(valid, valid, valid, bad)


@FUZZ
@given(
    ids=st.one_of(
        st.lists(st.integers(0, 257), max_size=20),
        st.lists(st.integers(0, 257), max_size=20),
        st.lists(st.integers(-1, 260), max_size=5),
        st.lists(st.floats(0, 10), min_size=1, max_size=5),
        st.text(max_size=20),
    ),
    top_k=mostly(st.one_of(st.none(), st.integers(1, 258))),
    temperature=st.sampled_from([0, 0.5, 1.0, -1.0, float("inf")]),
    max_new=mostly(st.integers(1, 15)),
    context=mostly(st.one_of(st.none(), st.integers(2, 16))),
    stride=mostly(st.one_of(st.none(), st.integers(1, 2))),
    batch_size=mostly(st.integers(1, 4)),
)
def test_llm_generate_and_perplexity(
    tiny_llama, ids, top_k, temperature, max_new, context, stride, batch_size
):
    from lrkit.llm import generate, perplexity

    # A result or lrkit's own TypeError/ValueError, never an IndexError or RuntimeError.
    out = call(
        generate, tiny_llama, ids, max_new_tokens=max_new, top_k=top_k, temperature=temperature
    )
    if out is not None and not isinstance(ids, str):
        assert out.dtype == torch.long and bool(((out >= 0) & (out < 258)).all())
    res = call(perplexity, tiny_llama, ids, context=context, stride=stride, batch_size=batch_size)
    if res is not None:
        assert np.isfinite(res.nll) and res.nll >= 0 and res.tokens >= 1
