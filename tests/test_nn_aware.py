"""Data-aware truncations (ASVD, SVD-LLM whitening, Fisher-weighted SVD) and calibration."""

import math

import pytest
import torch
from torch import nn

import lrkit
from lrkit.llm import Llama, LlamaConfig
from lrkit.nn import asvd, calibrate, fwsvd, whiten

EPS = torch.finfo(torch.float64).eps


def data(out=12, inp=20, tokens=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, inp, generator=g, dtype=torch.float64)
    scales = torch.logspace(-1, 1, inp, dtype=torch.float64)  # channels of very different size
    X = torch.randn(tokens, inp, generator=g, dtype=torch.float64) * scales  # (tokens, in)
    return W, X


def out_err(W, Wr, X):
    """The layer's output error on the calibration inputs, ||X (W - W')^T||_F."""
    return float(torch.linalg.matrix_norm(X @ (W - Wr).T))


@pytest.mark.parametrize("rank", [1, 3, 6, 11])
def test_whitening_identity_and_optimality(rank):
    W, X = data()
    xtx = X.T @ X
    Wr = whiten(W, rank, xtx=xtx).to_dense()
    L = torch.linalg.cholesky(xtx)
    s = torch.linalg.svdvals(W @ L)
    tail = float(s[rank:].square().sum().sqrt())
    # ||X (W - W')^T|| = ||(W - W') L|| exactly; what is left is rounding of products with
    # L and its triangular solve: eps times cond(L) (~1e2 here) times the sizes involved
    assert out_err(W, Wr, X) == pytest.approx(tail, rel=1e4 * EPS, abs=1e4 * EPS * float(s[0]))
    # no rank-r matrix does better on the calibration data: not plain SVD, not ASVD
    for other in (lrkit.truncated_svd(W, rank), asvd(W, rank, abs_mean=X.abs().mean(0))):
        assert out_err(W, Wr, X) <= out_err(W, other.to_dense(), X) * (1 + 1e4 * EPS)


def test_exact_low_rank_weights_are_recovered_by_every_method():
    _, X = data()
    W = lrkit.matrix_with_spectrum(12, 20, torch.tensor([3.0, 2.0, 1.0]), seed=0)
    F = torch.rand(12, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for f in (
        whiten(W, 3, xtx=X.T @ X),
        asvd(W, 3, abs_mean=X.abs().mean(0)),
        fwsvd(W, 3, fisher=F),
        fwsvd(W, 3, fisher=F, side="input"),
    ):
        # rank 3 of a rank-3 W: nothing is truncated; rounding of the scalings (cond ~1e2)
        torch.testing.assert_close(f.to_dense(), W, rtol=0, atol=1e4 * EPS)


@pytest.mark.parametrize("side", ["output", "input"])
def test_fisher_weighting_identity_on_each_side(side):
    W, _ = data()
    F = torch.rand(12, 20, generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 4
    for rank in (2, 5):
        Wr = fwsvd(W, rank, fisher=F, side=side).to_dense()
        if side == "output":
            d = F.sum(1).sqrt()[:, None]  # one weight per output row
            err, scaled = ((W - Wr) * d).norm(), W * d
        else:
            d = F.sum(0).sqrt()  # one weight per input column
            err, scaled = ((W - Wr) * d).norm(), W * d
        tail = torch.linalg.svdvals(scaled)[rank:].square().sum().sqrt()
        assert float(err) == pytest.approx(float(tail), rel=1e3 * EPS)
        # better than plain SVD on its own weighted objective
        plain = lrkit.truncated_svd(W, rank).to_dense()
        assert float(err) <= float(((W - plain) * d).norm()) * (1 + 1e3 * EPS)


def test_asvd_with_alpha_zero_is_plain_svd():
    W, X = data()
    torch.testing.assert_close(
        asvd(W, 4, abs_mean=X.abs().mean(0), alpha=0.0).to_dense(),
        lrkit.truncated_svd(W, 4).to_dense(),
        rtol=0,
        atol=100 * EPS * 10,  # the same SVD; rounding of a product, |W| ~ 10
    )


def test_singular_gram_gets_the_smallest_shift_and_a_warning():
    W, X = data(tokens=8)  # 8 tokens for 20 inputs: X^T X has rank 8
    with pytest.warns(UserWarning, match=r"layer\.q: X\^T X is not positive definite"):
        Wr = whiten(W, 4, xtx=X.T @ X, name="layer.q").to_dense()
    assert bool(torch.isfinite(Wr).all())
    # the shift is tiny: the output error on the calibration data still beats plain SVD's
    assert out_err(W, Wr, X) <= out_err(W, lrkit.truncated_svd(W, 4).to_dense(), X)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).double()


def test_calibrate_collects_exact_statistics_and_leaves_no_trace():
    model = mlp()
    X = torch.randn(50, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def loss_fn(m, b):
        return m(b).square().sum()

    stats = calibrate(model, X, target_modules=["0", "2"], stats=("xtx", "abs_mean", "fisher"),
                      loss_fn=loss_fn, batch_size=16, progress=False)  # fmt: skip
    H = torch.relu(model[0](X)).detach()  # the inputs of layer "2"
    for name, inputs in (("0", X), ("2", H)):
        st = stats[name]
        assert st.n_tokens == 50
        torch.testing.assert_close(st.xtx, inputs.T @ inputs, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(st.abs_mean, inputs.abs().mean(0), rtol=1e-12, atol=1e-12)
    # Fisher: squared gradients summed over the four batches of 16, 16, 16 and 2 rows
    expect = torch.zeros_like(model[2].weight)
    for b in X.split(16):
        (g,) = torch.autograd.grad(loss_fn(model, b), [model[2].weight])
        expect += g.square()
    torch.testing.assert_close(stats["2"].fisher, expect, rtol=1e-12, atol=1e-12)
    assert all(p.grad is None for p in model.parameters())  # the caller's grads untouched
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_calibrate_removes_its_hooks_on_error_and_names_the_layer():
    model = mlp()
    X = torch.randn(4, 8, dtype=torch.float64)
    X[1, 2] = float("nan")
    with pytest.raises(ValueError, match="calibration inputs of module '0' hold NaN or Inf"):
        calibrate(model, X, target_modules=["0", "2"], progress=False)
    assert all(not m._forward_pre_hooks for m in model.modules())
    with pytest.warns(UserWarning, match=r"module '0': 2 calibration tokens for 8 input channels"):
        calibrate(model, X[2:], target_modules=["0"], progress=False)


def llama_and_ids():
    """A small random Llama in float64 and 8 sequences of 32 token ids to calibrate it on."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      bos_token_id=0, eos_token_id=1)  # fmt: skip
    ids = torch.randint(0, 40, (8, 32), generator=torch.Generator().manual_seed(0))
    return Llama(cfg).double().eval(), ids


def test_whitening_beats_svd_on_every_layer_of_a_llama():
    model, ids = llama_and_ids()
    stats = calibrate(model, ids, progress=False)
    assert len(stats) == 2 * 7  # every projection; lm_head is the output layer
    for name, st in stats.items():
        W = model.get_submodule(name).weight.detach()
        L = torch.linalg.cholesky(st.xtx)
        for rank in (2, 8):
            w = (W - whiten(W, rank, xtx=st.xtx, name=name).to_dense()) @ L
            s = (W - lrkit.truncated_svd(W, rank).to_dense()) @ L
            assert float(w.norm()) <= float(s.norm()) * (1 + 1e4 * EPS), (name, rank)
    assert math.isfinite(float(next(iter(stats.values())).abs_mean.sum()))


def test_compress_model_with_data_aware_methods():
    from lrkit.nn import FactorizedLinear, compress_model

    model, ids = llama_and_ids()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = calibrate(model, ids, progress=False)
    small = {}
    for method in ("svd", "asvd", "whiten", "fwsvd"):
        kw = dict(calibration=ids) if method != "svd" else {}
        small[method], report = compress_model(model, method, rank=6, progress=False, **kw)
        assert [m.method for m in report.modules] == [method] * 14
        assert sum(isinstance(m, FactorizedLinear) for m in small[method].modules()) == 14
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # whitening's per-layer output error on the calibration data is the smallest
    for name, st in stats.items():
        W = model.get_submodule(name).weight.detach()
        L = torch.linalg.cholesky(st.xtx)
        errs = {
            m: float(
                ((W - small[m].get_submodule(name).factorization.to_dense().detach()) @ L).norm()
            )
            for m in small
        }
        assert errs["whiten"] <= min(errs.values()) * (1 + 1e4 * EPS), (name, errs)
    with pytest.raises(ValueError, match="method 'whiten' needs calibration="):
        compress_model(model, "whiten", rank=6, progress=False)


def test_allocations_meet_the_budget_and_follow_the_spectra():
    from lrkit.nn import allocate_ranks, compress_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 24), nn.Linear(24, 24), nn.Linear(24, 4)).double()
    decay, flat = 0.05 ** torch.arange(24.0), torch.ones(24)
    with torch.no_grad():  # layer "0" with a flat spectrum, layer "1" nearly rank 2
        model[0].weight.copy_(lrkit.matrix_with_spectrum(24, 24, flat, seed=0))
        model[1].weight.copy_(lrkit.matrix_with_spectrum(24, 24, decay, seed=1))
    X = torch.randn(200, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    stats = calibrate(model, X, target_modules=["0", "1"], progress=False)
    names, cost, dense = ["0", "1"], 24 + 24 + 1, 2 * 24 * 24
    for ratio in (0.2, 0.4):
        for strategy in ("uniform", "whiten"):
            ranks = allocate_ranks(model, names, param_ratio=ratio, strategy=strategy, stats=stats)
            spent = sum(ranks.values()) * cost
            # within the budget, and within one rank step per layer of it (a rank costs 49)
            assert ratio * dense - len(names) * cost < spent <= ratio * dense, (strategy, ranks)
        assert ranks["0"] > ranks["1"]  # whitened spectra: the flat layer needs the ranks
    small, report = compress_model(
        model, "whiten", param_ratio=0.4, calibration=X, allocation="whiten",
        target_modules=names, progress=False,
    )  # fmt: skip
    assert {m.name: m.rank for m in report.modules} == allocate_ranks(
        model, names, param_ratio=0.4, strategy="whiten", stats=stats
    )
    with pytest.raises(ValueError, match="below what rank 1 in every layer needs"):
        allocate_ranks(model, names, param_ratio=0.01, strategy="whiten", stats=stats)
    with pytest.raises(ValueError, match="allocation='whiten' needs calibration="):
        compress_model(model, "svd", param_ratio=0.4, allocation="whiten", progress=False)


def test_data_aware_factors_are_balanced_for_training():
    # whitening's V^T L^{-1} alone would be ~1/sqrt(tokens) the size of U: unit-norm
    # columns of U and rows of Vh, the scale in S, so Adam's steps suit every factor
    W, X = data(tokens=2000)
    F = torch.rand(12, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for f in (
        whiten(W, 5, xtx=X.T @ X),
        asvd(W, 5, abs_mean=X.abs().mean(0)),
        fwsvd(W, 5, fisher=F),
        fwsvd(W, 5, fisher=F, side="input"),
    ):
        torch.testing.assert_close(f.U.norm(dim=0), torch.ones(5, dtype=W.dtype))
        torch.testing.assert_close(f.Vh.norm(dim=1), torch.ones(5, dtype=W.dtype))
        assert bool((f.S > 0).all())
