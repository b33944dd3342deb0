"""Sequential (block by block) calibration and compression, and the allocations that measure:
Fisher-weighted spectra and sensitivity."""

import math

import pytest
import torch
from torch import nn

from lrkit.llm import Llama, LlamaConfig
from lrkit.nn import (
    FactorizedLinear,
    RankAllocation,
    allocate_ranks,
    calibrate,
    calibrate_blocks,
    compress_model,
    next_token_loss,
    whiten,
)

EPS32 = torch.finfo(torch.float32).eps


def llama(layers=3, seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=32, bos_token_id=0, eos_token_id=1)  # fmt: skip
    ids = torch.randint(0, 40, (12, 32), generator=torch.Generator().manual_seed(seed))
    return Llama(cfg).eval(), ids


def assert_same_stats(a, b, what):
    """The same float32 operations on the same inputs; a relative float32 rounding or so per
    entry if a kernel took another path, summed over tokens in float64."""
    assert a.n_tokens == b.n_tokens, what
    scale = float(b.xtx.diagonal().max())
    torch.testing.assert_close(a.xtx, b.xtx, rtol=0, atol=64 * EPS32 * scale, msg=what)
    torch.testing.assert_close(a.abs_mean, b.abs_mean, rtol=64 * EPS32, atol=0, msg=what)


def test_sequential_statistics_equal_one_pass_when_nothing_is_compressed():
    model, ids = llama()
    one = calibrate(model, ids, batch_size=5, progress=False)
    seen = []
    for block, stats in calibrate_blocks(model, ids, batch_size=5, progress=False):
        seen.append(block)
        for name, st in stats.items():
            assert name.startswith(block + ".")
            assert_same_stats(st, one[name], name)
    assert seen == ["model.layers.0", "model.layers.1", "model.layers.2"]
    assert sum(1 for _ in calibrate_blocks(model, ids, progress=False)) == 3
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_each_block_sees_the_blocks_compressed_before_it():
    model, ids = llama()
    work = llama()[0]  # the same weights (same seed), compressed as the blocks go
    reference = llama()[0]
    for block, stats in calibrate_blocks(work, ids, progress=False):
        if block != "model.layers.0":
            # the statistics of this block on a model whose earlier blocks are compressed
            expect = calibrate(reference, ids, target_modules=list(stats), progress=False)
            for name in stats:
                assert_same_stats(stats[name], expect[name], name)
        for name, st in stats.items():  # compress this block, in both models
            W = work.get_submodule(name).weight.detach()
            new = FactorizedLinear(whiten(W, 4, xtx=st.xtx, name=name))
            for m in (work, reference):
                parent, _, child = name.rpartition(".")
                setattr(m.get_submodule(parent), child, new)
    assert not torch.equal(work(ids), model(ids))  # compressed: the function changed


def test_compress_model_sequential():
    model, ids = llama()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seq, report = compress_model(model, "whiten", rank=4, calibration=ids, sequential=True,
                                 progress=False)  # fmt: skip
    one, _ = compress_model(model, "whiten", rank=4, calibration=ids, progress=False)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert [m.method for m in report.modules] == ["whiten"] * 21
    # block 0 sees the same inputs either way; later blocks see the errors before them
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"):
        a = seq.get_submodule(name).factorization.to_dense()
        b = one.get_submodule(name).factorization.to_dense()
        torch.testing.assert_close(
            a.detach(), b.detach(), rtol=0, atol=1e3 * EPS32 * float(b.detach().abs().max())
        )
    a = seq.get_submodule("model.layers.2.mlp.down_proj").factorization.to_dense()
    b = one.get_submodule("model.layers.2.mlp.down_proj").factorization.to_dense()
    assert not torch.allclose(a, b)
    # in place, as it goes: the caller's model is the compressed one
    same, _ = compress_model(model, "asvd", rank=4, calibration=ids, sequential="model.layers",
                             inplace=True, progress=False)  # fmt: skip
    assert same is model and isinstance(model.model.layers[2].mlp.up_proj, FactorizedLinear)


def test_sequential_refuses_what_it_cannot_do():
    model, ids = llama()
    for method, match in (("fwsvd", "needs gradients through the whole model"),
                          ("svd", "uses none")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            compress_model(model, method, rank=4, calibration=ids, sequential=True,
                           progress=False)  # fmt: skip
    stats = calibrate(model, ids, progress=False)
    with pytest.raises(ValueError, match="computes its own statistics"):
        compress_model(model, "whiten", rank=4, calibration=stats, sequential=True)
    with pytest.raises(ValueError, match="lie outside it"):
        list(calibrate_blocks(model, ids, blocks="model.layers", target_modules=r".*proj|lm_head",
                              progress=False))  # fmt: skip
    with pytest.raises(TypeError, match="must name an nn.ModuleList"):
        calibrate_blocks(model, ids, blocks="model.layers.0", progress=False)
    mlp = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="has none holding the selected Linears"):
        calibrate_blocks(mlp, torch.randn(3, 4), progress=False)
    with pytest.raises(ValueError, match="'fisher' needs gradients"):
        calibrate_blocks(model, ids, stats=("fisher",), progress=False)


def test_precomputed_statistics_are_accepted_and_checked():
    model, ids = llama(layers=1)
    stats = calibrate(model, ids, progress=False)
    a, _ = compress_model(model, "whiten", rank=4, calibration=stats, progress=False)
    b, _ = compress_model(model, "whiten", rank=4, calibration=ids, progress=False)
    torch.testing.assert_close(a(ids), b(ids), rtol=0, atol=0)  # the same statistics
    with pytest.raises(ValueError, match="lacks 'fisher'"):
        compress_model(model, "fwsvd", rank=4, calibration=stats, progress=False)


def test_calibration_with_non_finite_activations_names_the_block():
    model, ids = llama()
    with torch.no_grad():
        model.model.embed_tokens.weight[ids[0, 0]] = float("inf")
    with pytest.raises(ValueError, match=r"inputs of model\.layers\.0 hold NaN or Inf"):
        list(calibrate_blocks(model, ids, progress=False))


# -- allocations that measure -----------------------------------------------------------------
def meets_budget(alloc, model, ratio):
    """Within the budget, and no layer's next rank fits (or it is at its largest saving
    rank): within one rank step per layer of the budget."""
    budget = ratio * alloc.params_dense
    assert alloc.params_kept <= budget
    for name, (m, n) in alloc.shapes.items():
        cap = (m * n - 1) // (m + n + 1)
        assert alloc[name] == cap or alloc.params_kept + m + n + 1 > budget, name


@pytest.mark.parametrize("strategy", ["uniform", "whiten", "fisher", "sensitivity"])
def test_every_allocation_meets_the_budget(strategy):
    model, ids = llama(layers=2)
    stats = calibrate(model, ids, stats=("xtx", "abs_mean", "fisher"), progress=False)
    names = list(stats)
    for ratio in (0.3, 0.6):
        alloc = allocate_ranks(model, names, param_ratio=ratio, strategy=strategy, stats=stats,
                               data=ids.split(6), ratios=(0.2, 0.5, 0.8))  # fmt: skip
        assert isinstance(alloc, RankAllocation) and set(alloc) == set(names)
        if strategy != "uniform":
            meets_budget(alloc, model, ratio)
        assert alloc.kept <= ratio and strategy in alloc.summary()


def test_sensitivity_is_the_loss_of_the_truly_compressed_layer():
    model, ids = llama(layers=1)
    stats = calibrate(model, ids, progress=False)
    name, ratios = "model.layers.0.mlp.up_proj", (0.25, 0.75)
    alloc = allocate_ranks(model, [name, "model.layers.0.self_attn.q_proj"], param_ratio=0.5,
                           strategy="sensitivity", method="whiten", stats=stats,
                           data=[ids], ratios=ratios)  # fmt: skip
    with torch.no_grad():
        base = float(next_token_loss(model, ids))
    m, n = model.get_submodule(name).weight.shape
    for p, rise in zip(ratios, alloc.details[name], strict=True):
        rank = math.floor(p * m * n / (m + n + 1))
        small, _ = compress_model(model, "whiten", rank=rank, calibration=stats,
                                  target_modules=[name], progress=False)  # fmt: skip
        with torch.no_grad():
            expect = float(next_token_loss(small, ids)) - base
        # the same product computed densely (the hook) or factored: float32 rounding of
        # logits ~ eps32 times their size, through a mean cross-entropy
        assert rise == pytest.approx(expect, abs=1e3 * EPS32 * max(base, 1.0))
    # the threshold: every layer's interpolated rise at its fraction is at most tau
    assert alloc.threshold is not None


def test_compress_model_takes_each_allocation_and_reports_it():
    model, ids = llama(layers=1)
    for strategy in ("fisher", "sensitivity"):
        method = "whiten" if strategy == "sensitivity" else "fwsvd"
        small, report = compress_model(model, method, param_ratio=0.4, calibration=ids,
                                       allocation=strategy, progress=False)  # fmt: skip
        assert isinstance(report.allocation, RankAllocation)
        assert report.allocation.strategy == strategy
        assert {m.name: m.rank for m in report.modules} == dict(report.allocation)
    with pytest.raises(ValueError, match="smallest achievable is"):
        compress_model(model, "whiten", param_ratio=0.02, calibration=ids, allocation="fisher",
                       progress=False)  # fmt: skip


def test_an_architecture_without_linears_is_named_by_its_module_types():
    model = nn.Sequential(nn.Conv1d(2, 2, 3), nn.GRU(4, 4))
    with pytest.raises(ValueError, match="has none, only Conv1d, GRU"):
        compress_model(model, "svd", rank=1, progress=False)


def test_an_allocation_dict_is_a_size_on_its_own():
    model, ids = llama(layers=1)
    stats = calibrate(model, ids, progress=False)
    alloc = allocate_ranks(model, list(stats), param_ratio=0.5, strategy="whiten", stats=stats)
    small, report = compress_model(model, "whiten", calibration=stats, allocation=alloc,
                                   progress=False)  # fmt: skip
    assert {m.name: m.rank for m in report.modules} == dict(alloc)
    assert report.allocation is alloc


@pytest.mark.parametrize("method", ["asvd", "whiten", "fwsvd"])
def test_same_model_and_data_give_the_same_compressed_model(method):
    model, ids = llama(layers=1)
    a, ra = compress_model(model, method, param_ratio=0.5, calibration=ids, progress=False)
    b, rb = compress_model(model, method, param_ratio=0.5, calibration=ids, progress=False)
    assert [m.rank for m in ra.modules] == [m.rank for m in rb.modules]
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
