"""Every public function's parameters and what each may be: one table, read by one decorator.

The model is scikit-learn's ``validate_params``: a constraint per parameter, declared once,
so that every error reads the same way (a ``TypeError`` for a wrong type, a ``ValueError``
for a wrong value, the message naming the parameter, the value and the bound) and one test
(``tests/test_params.py``) can try a bad value for every parameter of every function.

``PARAMS`` maps a function's ``__qualname__`` to its parameters; ``@checked`` looks the
function up, refuses at import time a signature that the table does not cover exactly, and
checks each argument before the body runs (passing on the normalized value: a numpy integer
becomes an ``int``). Data arguments (matrices, tensors, models) are ``DATA``: the body checks
them with ``as_tensor``/``as_matrix``, and checks bounds that depend on the data (a rank at
most ``min(m, n)``) with the helpers of :mod:`._checks`.

Upper bounds on work: power iterations are at most ``MAX_POWER_ITER`` (after q of them the
tail factor is ``(s_{k+1}/s_k)^(2q+1)``, so more can change nothing a float shows), ALS and
HOOI sweeps at most ``MAX_SWEEPS``, gradient steps at most ``MAX_STEPS``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

from . import _checks as c
from .lowrank import LowRank

__all__ = ["PARAMS", "checked", "MAX_POWER_ITER", "MAX_SWEEPS", "MAX_STEPS"]

MAX_POWER_ITER = 1000
MAX_SWEEPS = 100_000
MAX_STEPS = 100_000


@dataclass(frozen=True)
class Constraint:
    """What a parameter may be; ``none=True`` also allows ``None``."""

    none: bool = field(default=False, kw_only=True)

    def __call__(self, value, name: str):
        if value is None and self.none:
            return None
        return self.check(value, name)

    def check(self, value, name: str):
        raise NotImplementedError


@dataclass(frozen=True)
class Data(Constraint):
    """A data argument: checked by the function body, which knows what it needs."""

    def __call__(self, value, name: str):
        return value


@dataclass(frozen=True)
class Int(Constraint):
    """An integer (numpy's too, never a bool) in ``[low, high]``; None means unbounded."""

    low: int | None = None
    high: int | None = None

    def check(self, value, name):
        return c.check_int(value, name, self.low, self.high)


@dataclass(frozen=True)
class Real(Constraint):
    """A finite real number (not a bool) between ``low`` and ``high``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, value, name):
        return c.check_real(
            value, name, self.low, self.high, low_open=self.low_open, high_open=self.high_open
        )


@dataclass(frozen=True)
class Options(Constraint):
    """One of ``values`` (strings or ints), or an instance of one of ``types``."""

    values: tuple = ()
    types: tuple = ()

    def check(self, value, name):
        if self.types and isinstance(value, self.types):
            return value
        try:
            return c.check_choice(value, name, self.values)
        except TypeError:
            if not self.types:
                raise
            listed = ", ".join(map(repr, self.values))
            also = "".join(f" or a {t.__name__}" for t in self.types)
            raise TypeError(
                f"{name} must be one of {listed}{also}; got {value!r} ({type(value).__name__})"
            ) from None


@dataclass(frozen=True)
class Bool(Constraint):
    def check(self, value, name):
        return c.check_bool(value, name)


@dataclass(frozen=True)
class IntOrTuple(Constraint):
    """An integer, or a tuple of integers, each ``>= low`` (the ranks of a tensor format)."""

    low: int = 1

    def check(self, value, name):
        if c.is_int(value):
            return c.check_int(value, name, self.low)
        return c.check_int_tuple(value, name, low=self.low)


@dataclass(frozen=True)
class Shape(Constraint):
    """A tuple of positive integers: at least two, or exactly ``length``."""

    length: int | None = None

    def check(self, value, name):
        return c.check_shape(value, name, self.length)


@dataclass(frozen=True)
class DType(Constraint):
    """A ``torch.dtype`` of one of ``kinds``: "float", "complex"."""

    kinds: tuple = ("float",)

    def check(self, value, name):
        return c.check_dtype(value, name, self.kinds)


@dataclass(frozen=True)
class Device(Constraint):
    def check(self, value, name):
        return c.check_device(value, name)


@dataclass(frozen=True)
class Seed(Constraint):
    """``None``, an integer >= 0 or a ``torch.Generator``."""

    def __call__(self, value, name):
        return c.check_seed(value, name)


# Shared constraints, so one idea has one rule everywhere.
DATA = Data()
RANK = Int(1)  # the upper bound min(m, n) depends on the data: checked in the body
RANK_OR_NONE = Int(1, none=True)
TENSOR_RANK = IntOrTuple(1)
BITS = Int(1, 16)
SCALES = Options(("tensor", "vector", "group"))
GROUP_SIZE = Int(1, none=True)
OVERSAMPLE = Int(0)  # rank + oversample is clipped to min(m, n), with a warning
POWER_ITER = Int(0, MAX_POWER_ITER)
SWEEPS = Int(1, MAX_SWEEPS)
TOL = Real(0)
SEED = Seed()
FLAG = Bool()
FLOAT_DTYPE = DType()
DEVICE = Device(none=True)
ORD = Options(("fro", 2))
INIT = Options(("svd", "random"))
NORMALIZER = Options(("qr", "lu", "none"))
PLANNED_SHAPE = Shape()
REF_BITS = Int(1, 64)
WIDTH = Int(1, 64)
MODE = Int(0)  # < T.ndim: checked in the body
POW2 = Int(2)  # a power of two: checked in the body

_QUANT_LOWRANK = dict(
    A=DATA,
    rank=RANK,
    bits_left=BITS,
    bits_right=BITS,
    scales=SCALES,
    group_size=GROUP_SIZE,
    symmetric=FLAG,
    scale_dtype=FLOAT_DTYPE,
)
_RANGE = dict(
    A=DATA, rank=RANK, oversample=OVERSAMPLE, n_iter=POWER_ITER, normalizer=NORMALIZER, seed=SEED
)

PARAMS: dict[str, dict[str, Constraint]] = {
    # core
    "quantize": dict(
        A=DATA,
        bits=BITS,
        scales=SCALES,
        axis=Options((1, 0)),
        group_size=GROUP_SIZE,
        symmetric=FLAG,
        rounding=Options(("nearest", "stochastic")),
        scale_dtype=FLOAT_DTYPE,
        seed=SEED,
    ),
    "rel_error": dict(A=DATA, approx=DATA, ord=ORD),
    "psnr": dict(image=DATA, approx=DATA, data_range=Real(0, low_open=True, none=True)),
    "rank_for_energy": dict(S_or_A=DATA, keep=Real(0, 1, low_open=True)),
    "rank_for_error": dict(S_or_A=DATA, tol=Real(0, 1, high_open=True), ord=ORD),
    "rank_for_budget": dict(
        shape=PLANNED_SHAPE,
        bits_per_entry=Real(0, low_open=True, none=True),
        param_ratio=Real(0, low_open=True, none=True),
        width=WIDTH,
    ),
    "matrix_with_spectrum": dict(
        m=Int(1), n=Int(1), S=DATA, seed=SEED, dtype=FLOAT_DTYPE, device=DEVICE
    ),
    "svd_flip": dict(U=DATA, Vh=DATA),
    # matrix methods
    "truncated_svd": dict(A=DATA, rank=RANK),
    "range_finder": _RANGE,
    "rsvd": _RANGE,
    "lowrank_from_basis": dict(A=DATA, Q=DATA, rank=RANK_OR_NONE),
    "adaptive_range_finder": dict(
        A=DATA,
        tol=Real(0, 1, low_open=True, high_open=True),
        block=Int(1),
        n_iter=POWER_ITER,
        max_rank=RANK_OR_NONE,
        fro_norm=Real(0, low_open=True, none=True),
        seed=SEED,
    ),
    "estimate_error": dict(
        A=DATA, approx=DATA, n_iter=Int(1, MAX_POWER_ITER), block=Int(1), seed=SEED
    ),
    "StreamingSketch.__init__": dict(
        shape=Shape(2),
        rank=RANK,
        range_size=RANK_OR_NONE,
        corange_size=RANK_OR_NONE,
        dtype=FLOAT_DTYPE,
        device=DEVICE,
        seed=SEED,
    ),
    "lplr": dict(**_QUANT_LOWRANK, sketch=Options(("gaussian",)), n_iter=POWER_ITER, seed=SEED),
    "dsvd_quant": _QUANT_LOWRANK,
    "lplr_max_rank": dict(
        shape=PLANNED_SHAPE,
        compression_ratio=Real(0, low_open=True),
        bits_left=BITS,
        bits_right=BITS,
        ref_bits=REF_BITS,
    ),
    "rank_for_bits": dict(
        shape=PLANNED_SHAPE,
        bits_per_entry=Real(0, low_open=True),
        bits_left=BITS,
        bits_right=BITS,
        scales=SCALES,
        group_size=GROUP_SIZE,
        scale_dtype=FLOAT_DTYPE,
    ),
    "cur": dict(
        A=DATA,
        rank=RANK,
        method=Options(("leverage", "deim", "qr", "uniform")),
        n_cols=RANK_OR_NONE,
        n_rows=RANK_OR_NONE,
        u=Options(("pinv", "intersection")),
        sampling=Options(("without", "with", "topk"), none=True),
        svd=Options(("auto", "exact", "randomized"), types=(LowRank,)),
        seed=SEED,
    ),
    "interp_decomp": dict(
        A=DATA, rank=RANK, axis=Options((1, 0)), oversample=Int(0, none=True), seed=SEED
    ),
    # tensors
    "unfold": dict(T=DATA, mode=MODE),
    "fold": dict(M=DATA, mode=MODE, shape=Shape()),
    "mode_dot": dict(T=DATA, M=DATA, mode=MODE),
    "multi_mode_dot": dict(T=DATA, matrices=DATA, skip=Int(0, none=True)),
    "khatri_rao": dict(matrices=DATA),
    "cp_als": dict(T=DATA, rank=RANK, init=INIT, n_iter_max=SWEEPS, tol=TOL, seed=SEED),
    "hosvd": dict(T=DATA, rank=TENSOR_RANK, seed=SEED),
    "hooi": dict(T=DATA, rank=TENSOR_RANK, init=INIT, n_iter_max=SWEEPS, tol=TOL, seed=SEED),
    "tt_svd": dict(T=DATA, rank=TENSOR_RANK, seed=SEED),
    "CPTensor.from_tensorly": dict(cp=DATA),
    "TuckerTensor.from_tensorly": dict(tucker=DATA),
    "TTTensor.from_tensorly": dict(tt=DATA),
    # structured
    "kron_approx": dict(A=DATA, left_shape=Shape(2), rank=RANK),
    "kron_rearrange": dict(A=DATA, left_shape=Shape(2)),
    "kron_dense": dict(B=DATA, C=DATA),
    "kron_matmul": dict(B=DATA, C=DATA, X=DATA),
    "monarch_project": dict(A=DATA, nblocks=Int(1)),
    "monarch_dense": dict(L=DATA, R=DATA),
    "monarch_matmul": dict(L=DATA, R=DATA, X=DATA),
    "monarch_rmatmul": dict(L=DATA, R=DATA, X=DATA),
    "bit_reversal_permutation": dict(n=POW2, device=DEVICE),
    "butterfly_factors": dict(twiddle=DATA, bit_reversal=FLAG),
    "butterfly_dense": dict(twiddle=DATA, bit_reversal=FLAG),
    "butterfly_matmul": dict(twiddle=DATA, X=DATA, bit_reversal=FLAG, transpose=FLAG),
    "butterfly_fit": dict(
        A=DATA,
        n_steps=Int(1, MAX_STEPS),
        lr=Real(0, low_open=True),
        seed=SEED,
        bit_reversal=FLAG,
    ),
    "butterfly_project": dict(A=DATA, bit_reversal=FLAG),
    "Butterfly.fft": dict(n=POW2, dtype=DType(("complex",)), device=DEVICE),
    "Butterfly.hadamard": dict(n=POW2, dtype=DType(("float", "complex")), device=DEVICE),
    # the course's Llama (lrkit.llm); bounds that depend on the model (max_new_tokens below
    # the context, context at most max_position_embeddings) are checked in the body
    "generate": dict(
        model=DATA,
        prompt=DATA,
        max_new_tokens=Int(1),
        temperature=Real(0),
        top_k=Int(1, none=True),
        seed=SEED,
        use_cache=FLAG,
    ),
    "perplexity": dict(
        model=DATA,
        text_or_ids=DATA,
        context=Int(2, none=True),
        stride=Int(1, none=True),
        batch_size=Int(1),
        progress=FLAG,
    ),
    "load_tiny": dict(device=DEVICE, dtype=DType(none=True)),
    "Llama.from_pretrained": dict(path=DATA, dtype=FLOAT_DTYPE, device=DEVICE),
    "LlamaConfig.from_hf_dict": dict(d=DATA),
    # layers and whole models (lrkit.nn); the model, the method (a name or a callable) and
    # the selection patterns are checked in the bodies, which know the model
    "FactorizedLinear.from_linear": dict(linear=DATA, method=DATA, method_kwargs=DATA),
    "FactorizedLinear.low_rank": dict(
        in_features=Int(1),
        out_features=Int(1),
        rank=RANK,
        bias=FLAG,
        device=DEVICE,
        dtype=DType(none=True),
        seed=SEED,
    ),
    "FactorizedLinear.monarch": dict(
        in_features=Int(1),
        out_features=Int(1),
        nblocks=Int(1),
        bias=FLAG,
        device=DEVICE,
        dtype=DType(none=True),
        seed=SEED,
    ),
    "FactorizedConv2d.from_conv": dict(
        conv=DATA, method=Options(("tucker", "cp")), rank=TENSOR_RANK, method_kwargs=DATA
    ),
    "compress_model": dict(
        model=DATA,
        method=DATA,
        rank=RANK_OR_NONE,
        param_ratio=Real(0, 1, low_open=True, none=True),
        conv_method=Options(("tucker", "cp")),
        conv_kwargs=DATA,
        target_modules=DATA,
        exclude_modules=DATA,
        filter_fn=DATA,
        rank_pattern=DATA,
        calibration=DATA,
        loss_fn=DATA,
        allocation=Options(
            ("uniform", "whiten", "fisher", "sensitivity"), types=(dict,), none=True
        ),
        sequential=DATA,
        inplace=FLAG,
        progress=FLAG,
        method_kwargs=DATA,
    ),
    "decompress": dict(model=DATA, inplace=FLAG),
    "asvd": dict(W=DATA, rank=RANK, abs_mean=DATA, alpha=Real(0, 2)),
    "whiten": dict(W=DATA, rank=RANK, xtx=DATA, name=DATA),
    "fwsvd": dict(W=DATA, rank=RANK, fisher=DATA, side=Options(("output", "input"))),
    "calibrate": dict(
        model=DATA,
        data=DATA,
        target_modules=DATA,
        exclude_modules=DATA,
        filter_fn=DATA,
        stats=DATA,
        loss_fn=DATA,
        batch_size=Int(1),
        progress=FLAG,
    ),
    "calibrate_blocks": dict(
        model=DATA,
        data=DATA,
        blocks=DATA,
        target_modules=DATA,
        exclude_modules=DATA,
        filter_fn=DATA,
        stats=DATA,
        batch_size=Int(1),
        progress=FLAG,
    ),
    "next_token_loss": dict(model=DATA, batch=DATA),
    "allocate_ranks": dict(
        model=DATA,
        names=DATA,
        param_ratio=Real(0, 1, low_open=True),
        strategy=Options(("uniform", "whiten", "fisher", "sensitivity")),
        stats=DATA,
        method=Options(("svd", "asvd", "whiten", "fwsvd")),
        data=DATA,
        loss_fn=DATA,
        ratios=DATA,
        progress=FLAG,
    ),
    "finetune": dict(
        model=DATA,
        data=DATA,
        steps=Int(1),
        lr=Real(0, 1, low_open=True),
        batch_size=Int(1),
        teacher=DATA,
        kd_weight=Real(0, 1),
        temperature=Real(0, 100, low_open=True),
        trainable=Options(("factors", "all")),
        weight_decay=Real(0, 1),
        seed=Int(0),
        callback=DATA,
        inplace=FLAG,
        progress=FLAG,
    ),
    "save_compressed": dict(model=DATA, path=DATA, report=DATA),
    "load_compressed": dict(model=DATA, path=DATA, inplace=FLAG),
    # Linformer attention; k <= seq_len, heads dividing dim and the projection's shape are
    # checked in the body
    "LinformerSelfAttention.__init__": dict(
        dim=Int(1),
        seq_len=Int(1),
        k=Int(1),
        heads=Int(1),
        dim_head=Int(1, none=True),
        share=Options(("none", "headwise", "kv", "layerwise")),
        projection=DATA,
        dropout=Real(0, 1, high_open=True),
        device=DEVICE,
        dtype=DType(none=True),
        seed=SEED,
    ),
    "jl_projection": dict(
        seq_len=Int(1), k=Int(1), seed=SEED, device=DEVICE, dtype=DType(none=True)
    ),
    "svd_projection": dict(X=DATA, k=RANK),
    # latent KV attention (Palu); rank <= the K/V width, group_size dividing the KV heads
    # and rank and ratio given one at a time are checked in the body, which knows the model
    "compress_kv": dict(
        model=DATA,
        rank=RANK_OR_NONE,
        ratio=Real(0, 1, low_open=True, none=True),
        group_size=Int(1, none=True),
        method=Options(("whiten", "svd", "identity")),
        calibration=DATA,
        bits=Int(2, 16, none=True),
        quant_group_size=Int(1),
        symmetric=FLAG,
        scale_dtype=FLOAT_DTYPE,
        hadamard=FLAG,
        allocation=Options(("uniform", "fisher")),
        rank_step=Int(1),
        fold_v=FLAG,
        inplace=FLAG,
        progress=FLAG,
    ),
    "proportional_ranks": dict(weights=DATA, total=Int(1), step=Int(1), high=Int(1)),
    # the masked-byte encoder; warmup <= steps and the data's length are checked in the body
    "mask_bytes": dict(ids=DATA, rate=Real(0, 1, low_open=True), seed=SEED),
    "masked_byte_loss": dict(model=DATA, ids=DATA, rate=Real(0, 1, low_open=True), seed=SEED),
    "evaluate_encoder": dict(
        model=DATA,
        data=DATA,
        batches=Int(1),
        batch_size=Int(1),
        rate=Real(0, 1, low_open=True),
        seed=Int(0),
    ),
    "train_encoder": dict(
        model=DATA,
        data=DATA,
        steps=Int(1, MAX_STEPS),
        batch_size=Int(1),
        lr=Real(0, low_open=True),
        warmup=Int(0),
        rate=Real(0, 1, low_open=True),
        seed=Int(0),
        heldout=DATA,
        eval_every=Int(1),
        out=DATA,
        stop_after=Int(1, none=True),
        progress=FLAG,
    ),
}


def checked(func):
    """Check ``func``'s arguments against its row of :data:`PARAMS` before it runs.

    Raises at import time if a parameter of ``func`` has no constraint in the table (or the
    table names one ``func`` does not have), so a new parameter cannot be forgotten.
    """
    table = PARAMS.get(func.__qualname__)
    if table is None:
        raise KeyError(f"{func.__qualname__} has no row in lrkit.core._params.PARAMS")
    sig = inspect.signature(func)
    names = [p for p in sig.parameters if p not in ("self", "cls")]
    if set(names) != set(table):
        raise KeyError(f"{func.__qualname__}: parameters {names} differ from PARAMS {list(table)}")
    checks = [(p, table[p]) for p in names if not isinstance(table[p], Data)]
    func.__lrkit_params__ = table
    if not checks:  # data only: the body checks it; no wrapper on fast paths
        return func

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        arguments = bound.arguments
        for name, constraint in checks:
            if name in arguments:
                arguments[name] = constraint(arguments[name], name)
        return func(*bound.args, **bound.kwargs)

    wrapper.__lrkit_params__ = table
    return wrapper
