"""One table of parameter constraints (``lrkit.core._params.PARAMS``), probed as a whole.

``test_every_bad_value_is_refused_clearly`` tries, for every checked parameter of every
public function, a wrong type, a bool for an int, a float for an int, values below and
above the bounds and an unknown option, and asserts the rule: ``TypeError`` for a wrong
type, ``ValueError`` for a wrong value, a message naming the parameter, the value and the
bound. ``test_every_parameter_is_in_the_table`` makes sure a new parameter cannot be left
out. The findings of issue 15's hostile tester follow, each as it was reported.
"""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import torch

import lrkit
import lrkit.llm
import lrkit.nn
import lrkit.structured
import lrkit.tensor
from lrkit.core import _params as P

NOT_YET_CHECKED: set[str] = set()  # every row is wired to its function


def public_callables() -> dict[str, object]:
    """Every public function and classmethod constructor, by ``__qualname__``; classes'
    constructors only where the table covers them (StreamingSketch, LinformerSelfAttention)."""
    out = {}
    for mod in (lrkit, lrkit.tensor, lrkit.structured, lrkit.llm, lrkit.nn):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                out[obj.__qualname__] = obj
            elif inspect.isclass(obj):
                for key, member in vars(obj).items():
                    if isinstance(member, classmethod) and not key.startswith("_"):
                        out[member.__func__.__qualname__] = getattr(obj, key)
    out["StreamingSketch.__init__"] = lrkit.StreamingSketch
    out["LinformerSelfAttention.__init__"] = lrkit.nn.LinformerSelfAttention
    return out


PUBLIC = public_callables()


def signature_params(func) -> list[str]:
    target = func.__init__ if inspect.isclass(func) else func
    return [p for p in inspect.signature(target).parameters if p not in ("self", "cls")]


def test_every_parameter_is_in_the_table():
    assert set(PUBLIC) == set(P.PARAMS), "a public function without a row, or a stale row"
    for qualname, func in PUBLIC.items():
        assert set(signature_params(func)) == set(P.PARAMS[qualname]), qualname
        target = func.__init__ if inspect.isclass(func) else func
        if qualname not in NOT_YET_CHECKED:
            assert getattr(target, "__lrkit_params__", None) is P.PARAMS[qualname], qualname


def test_checked_refuses_a_function_the_table_does_not_cover():
    def rsvd(A, rank, *, oversample=10, n_iter=2, normalizer="lu", seed=None, extra=1):
        pass

    rsvd.__qualname__ = "rsvd"  # a new parameter, extra, that the table's row lacks
    with pytest.raises(KeyError, match="differ from PARAMS"):
        P.checked(rsvd)

    def not_in_the_table(A):
        pass

    with pytest.raises(KeyError, match="has no row"):
        P.checked(not_in_the_table)


def test_defaults_satisfy_their_constraints():
    for qualname, func in PUBLIC.items():
        target = func.__init__ if inspect.isclass(func) else func
        for name, p in inspect.signature(target).parameters.items():
            if name in ("self", "cls") or p.default is inspect.Parameter.empty:
                continue
            P.PARAMS[qualname][name](p.default, name)  # raises if the table refuses it


# -- valid and bad values, derived from each constraint -------------------------------------
def valid(c: P.Constraint):
    if isinstance(c, P.Int | P.IntOrTuple):
        return max(c.low, 2) if c.low is not None else 2  # 2: also a power of two
    if isinstance(c, P.Real):
        return (c.low if c.low is not None else 0) + (0.5 if c.high is None else 0.0) or 0.5
    if isinstance(c, P.Options):
        return c.values[0]
    if isinstance(c, P.Bool):
        return False
    if isinstance(c, P.Shape):
        return (4,) * (c.length or 2)
    if isinstance(c, P.DType):
        return torch.float32 if "float" in c.kinds else torch.complex64
    if isinstance(c, P.Device):
        return "cpu"
    if isinstance(c, P.Seed):
        return 0
    return object()  # data: never reached, the bad parameter is refused first


def interval(low, high, low_open=False, high_open=False) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def type_error(name, value, what):
    return TypeError, rf"{re.escape(name)} must be {what}; got {re.escape(repr(value))}"


def value_error(name, value, bound):
    return ValueError, rf"{re.escape(name)} \(={re.escape(str(value))}\) must be {re.escape(bound)}"


def bad_values(name: str, c: P.Constraint):
    """(value, exception, regex) triples that ``c`` must refuse."""
    if isinstance(c, P.Int):
        out = [("3", *type_error(name, "3", "an int"))]
        out += [(True, *type_error(name, True, "an int")), (2.0, *type_error(name, 2.0, "an int"))]
        bound = interval(c.low, c.high) if c.low is not None else f"<= {c.high}"
        if c.low is not None:
            out.append((c.low - 1, *value_error(name, c.low - 1, bound)))
        if c.high is not None:
            out.append((c.high + 1, *value_error(name, c.high + 1, bound)))
        return out
    if isinstance(c, P.Real):
        bound = interval(c.low, c.high, c.low_open, c.high_open)
        out = [("0.5", *type_error(name, "0.5", "a real number"))]
        out += [(True, *type_error(name, True, "a real number"))]
        out += [(math.nan, *value_error(name, math.nan, "a finite number"))]
        out += [(math.inf, *value_error(name, math.inf, "a finite number"))]
        if c.low is not None:
            low = c.low if c.low_open else c.low - 1
            out.append((low, *value_error(name, low, bound)))
        if c.high is not None:
            high = c.high if c.high_open else c.high + 1
            out.append((high, *value_error(name, high, bound)))
        return out
    if isinstance(c, P.Options):
        listed = ", ".join(map(repr, c.values))
        choices = rf"must be one of {re.escape(listed)}"
        also = "".join(rf" or an? {t.__name__}" for t in c.types)
        wrong_type = [3.5, b"x"] + ([] if c.none else [None])
        first = c.values[0]
        unknown = [first.upper(), "nope"] if isinstance(first, str) else []
        if any(isinstance(v, int) for v in c.values):
            wrong_type, unknown = [*wrong_type, True], [*unknown, 7]
        if all(isinstance(v, int) for v in c.values):
            wrong_type = [*wrong_type, "1"]
        out = [
            (v, TypeError, rf"{re.escape(name)} {choices}{also}; got {re.escape(repr(v))}")
            for v in wrong_type
        ]
        out += [
            (v, ValueError, rf"{re.escape(name)} \(={re.escape(repr(v))}\) {choices}")
            for v in unknown
        ]
        return out
    if isinstance(c, P.Bool):
        return [(v, *type_error(name, v, "a bool")) for v in ("yes", 1, None)]
    if isinstance(c, P.IntOrTuple):
        what = "an int or a tuple of ints"
        return [
            ("2", *type_error(name, "2", what)),
            (1.5, *type_error(name, 1.5, what)),
            (True, *type_error(name, True, what)),
            (c.low - 1, *value_error(name, c.low - 1, f">= {c.low}")),
            ((2, True), *type_error(f"{name}[1]", True, "an int")),
            ((2, 0), *value_error(f"{name}[1]", 0, f">= {c.low}")),
        ]
    if isinstance(c, P.Shape):
        what = "a tuple of ints"
        out = [(5, *type_error(name, 5, what)), ("ab", *type_error(name, "ab", what))]
        out += [((-10, 10), *value_error(f"{name}[0]", -10, ">= 1"))]
        out += [((5, True), *type_error(f"{name}[1]", True, "an int"))]
        out += [((5, 2.0), *type_error(f"{name}[1]", 2.0, "an int"))]
        short = (5,) if c.length is None else (5,) * (c.length + 1)
        need = "at least 2" if c.length is None else str(c.length)
        pattern = rf"{name} \(={re.escape(repr(short))}\) must have {need} entries"
        return [*out, (short, ValueError, pattern)]
    if isinstance(c, P.DType):
        want = f"a {' or '.join(c.kinds)} torch.dtype"
        wrong = torch.complex64 if "complex" not in c.kinds else torch.int32
        out = [("float32", *type_error(name, "float32", re.escape(want)))]
        out += [(torch.int32, *value_error(name, torch.int32, want))]
        if c.kinds == ("complex",):
            wrong = torch.float32
        return [*out, (wrong, *value_error(name, wrong, want))]
    if isinstance(c, P.Device):
        return [
            (3.5, TypeError, rf"{name} must be a torch.device or a str; got 3.5"),
            ("nodevice", ValueError, rf"{name} \(='nodevice'\) is not a device"),
        ]
    if isinstance(c, P.Seed):
        what = "an int, a torch.Generator or None"
        out = [(v, *type_error(name, v, re.escape(what))) for v in ("0", True, 1.5)]
        return [*out, (-1, *value_error(name, -1, ">= 0"))]
    raise AssertionError(f"no bad values for {type(c).__name__}")


def cases():
    for qualname, table in P.PARAMS.items():
        if qualname in NOT_YET_CHECKED:
            continue
        for name, c in table.items():
            if isinstance(c, P.Data):
                continue
            for value, exc, pattern in bad_values(name, c):
                yield pytest.param(
                    qualname, name, value, exc, pattern, id=f"{qualname}-{name}-{value!r}"
                )


@pytest.mark.parametrize("qualname, name, value, exc, pattern", list(cases()))
def test_every_bad_value_is_refused_clearly(qualname, name, value, exc, pattern):
    func = PUBLIC[qualname]
    target = func.__init__ if inspect.isclass(func) else func
    kwargs = {}
    for p, param in inspect.signature(target).parameters.items():
        if p in ("self", "cls"):
            continue
        if param.default is inspect.Parameter.empty or p == name:
            kwargs[p] = valid(P.PARAMS[qualname][p])
    kwargs[name] = value
    with pytest.raises(exc, match=pattern):
        func(**kwargs)


def test_numpy_integers_are_ints_and_numpy_bools_are_flags():
    for table in P.PARAMS.values():
        for name, c in table.items():
            if isinstance(c, P.Int | P.IntOrTuple):
                v = valid(c)
                out = c(np.int64(v), name)
                assert out == v and type(out) is int
    assert P.Bool()(np.bool_(True), "flag") is True


# -- issue 15, section 10: what a hostile tester found, one test each ------------------------
def R(*shape):
    return np.random.default_rng(0).standard_normal(shape)


def test_numpy_integer_ranks_accepted_by_every_tensor_method():
    T = R(5, 4, 3)
    k = np.int64(2)
    assert lrkit.hosvd(T, k).rank == (2, 2, 2)
    assert lrkit.hooi(T, (k, k, np.int32(2)), n_iter_max=np.int64(2)).rank == (2, 2, 2)
    assert lrkit.tt_svd(T, k).rank == (1, 2, 2, 1)
    assert lrkit.cp_als(T, k, n_iter_max=np.int16(3)).rank == 2
    assert lrkit.rsvd(R(10, 8), k, oversample=np.int64(2), n_iter=np.int64(1)).rank == 2


def test_oversample_and_n_iter_follow_one_rule():
    A = R(20, 16)
    for call in (
        lambda: lrkit.rsvd(A, 3, oversample=1.5),
        lambda: lrkit.interp_decomp(A, 3, oversample=1.5),
        lambda: lrkit.range_finder(A, 3, oversample=1.5),
    ):
        with pytest.raises(TypeError, match=r"oversample must be an int; got 1.5 \(float\)"):
            call()
    with pytest.raises(TypeError, match=r"n_iter must be an int; got True \(bool\)"):
        lrkit.lplr(A, 3, bits_left=4, bits_right=4, n_iter=True)


def test_unbounded_work_is_refused_before_it_starts():
    A = R(20, 16)
    for call in (
        lambda: lrkit.rsvd(A, 3, n_iter=10**9),
        lambda: lrkit.lplr(A, 3, bits_left=4, bits_right=4, n_iter=10**9),
        lambda: lrkit.estimate_error(A, lrkit.truncated_svd(A, 3), n_iter=10**9),
    ):
        with pytest.raises(ValueError, match=r"n_iter \(=1000000000\) must be in \[\d, 1000\]"):
            call()
    with pytest.raises(ValueError, match=r"n_steps \(=1000000000\) must be in \[1, 100000\]"):
        lrkit.butterfly_fit(np.eye(8), n_steps=10**9)
    with pytest.raises(ValueError, match=r"n_iter_max \(=1000000000\) must be in \[1, 100000\]"):
        lrkit.cp_als(R(4, 4, 4), 2, n_iter_max=10**9)


def test_rank_for_bits_layout_errors_are_clear():
    kw = dict(bits_left=4, bits_right=4)
    with pytest.raises(ValueError, match=r"group_size \(=0\) must be >= 1"):
        lrkit.rank_for_bits((64, 64), 2, scales="group", group_size=0, **kw)
    with pytest.raises(ValueError, match=r"scales \(='Vector'\) must be one of 'tensor', 'vector'"):
        lrkit.rank_for_bits((64, 64), 2, scales="Vector", **kw)
    with pytest.raises(ValueError, match=r'scales="group" needs group_size='):
        lrkit.rank_for_bits((64, 64), 2, scales="group", **kw)
    with pytest.raises(ValueError, match=r"group_size \(=65\) must be <= 64"):
        lrkit.rank_for_bits((64, 64), 2, scales="group", group_size=65, **kw)
    k = lrkit.rank_for_bits((64, 64), 2, scales="group", group_size=16, **kw)
    f = lrkit.dsvd_quant(R(64, 64), k, scales="group", group_size=16, **kw)
    assert f.bits_per_entry <= 2


def test_scale_dtype_sets_the_width_rank_for_bits_plans_with():
    kw = dict(bits_left=4, bits_right=4, scales="vector")
    k32 = lrkit.rank_for_bits((256, 256), 3, **kw)
    k16 = lrkit.rank_for_bits((256, 256), 3, scale_dtype=torch.float16, **kw)
    assert k16 > k32  # cheaper ranges leave room for a larger rank
    f = lrkit.dsvd_quant(R(256, 256), k16, scale_dtype=torch.float16, **kw)
    assert f.bits_per_entry <= 3


def test_lplr_max_rank_refuses_a_negative_shape():
    with pytest.raises(ValueError, match=r"shape\[0\] \(=-10\) must be >= 1"):
        lrkit.lplr_max_rank((-10, 10), 1, 4, 8, 1)
    assert lrkit.lplr_max_rank((1000, 1000), 1, 4, 8, ref_bits=2) == 166


def test_streaming_sketch_needs_a_shape():
    with pytest.raises(TypeError, match=r"shape must be a tuple of ints; got 5 \(int\)"):
        lrkit.StreamingSketch(5, 2)
    sk = lrkit.StreamingSketch((np.int64(30), 20), np.int64(2), seed=0)
    assert sk.shape == (30, 20)
    assert sk.nbits == 32 * sum(t.numel() for t in (sk.Omega, sk.Psi, sk.Y, sk.W))


def test_matrix_with_spectrum_takes_any_seed():
    S = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    for seed in (None, 0, torch.Generator().manual_seed(1)):
        A = lrkit.matrix_with_spectrum(6, 5, S, seed=seed)
        torch.testing.assert_close(torch.linalg.svdvals(A)[:3], S)
    # seed=0 gives what the former default gave: the callers that relied on it pass seed=0
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(6, 3, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(5, 3, generator=g, dtype=torch.float64))
    torch.testing.assert_close(lrkit.matrix_with_spectrum(6, 5, S, seed=0), (U * S) @ V.T)


def test_fft_needs_a_complex_dtype():
    with pytest.raises(ValueError, match=r"dtype \(=torch.float32\) must be a complex torch"):
        lrkit.Butterfly.fft(8, dtype=torch.float32)
    F = lrkit.Butterfly.fft(np.int64(8), dtype=torch.complex128)
    x = torch.randn(8, dtype=torch.complex128)
    torch.testing.assert_close(F @ x, torch.fft.fft(x))


def test_kron_approx_takes_rank_positionally():
    B, C = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    A = torch.kron(B, C) + torch.kron(C[:3, :2].repeat(1, 2), B[:, :2].repeat(2, 1)[:5])
    assert lrkit.kron_approx(A, (3, 4), 2).rank == 2
    assert lrkit.kron_approx(A, (3, 4)).rank == 1  # the nearest Kronecker product
