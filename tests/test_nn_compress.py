"""compress_model and decompress on plain nets, a CNN, lrkit's Llama and Hugging Face's."""

import io
from contextlib import nullcontext

import pytest
import torch
from torch import nn

import lrkit
from lrkit.llm import Llama, LlamaConfig
from lrkit.nn import (
    FactorizedConv2d,
    FactorizedLinear,
    compress_model,
    decompress,
    load_compressed,
    save_compressed,
)

from conftest import DEVICES


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10)
    )


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
        nn.Flatten(), nn.Linear(16 * 8 * 8, 10),
    )  # fmt: skip


def tiny_llama(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
        bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return Llama(cfg).eval()


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_replaces_exactly_the_matched_modules_and_leaves_the_caller_alone():
    model = mlp()
    before = state(model)
    small, report = compress_model(model, "svd", rank=4, target_modules=["0", "2"], progress=False)
    assert same_state(state(model), before)  # inplace=False: the caller's model is untouched
    assert isinstance(small[0], FactorizedLinear) and isinstance(small[2], FactorizedLinear)
    assert isinstance(small[4], nn.Linear) and not isinstance(small[4], FactorizedLinear)
    assert torch.equal(small[4].weight, model[4].weight)  # the rest is identical
    assert [m.name for m in report.modules] == ["0", "2"]
    assert report.params_after == sum(p.numel() for p in small.parameters())
    assert report.params_before == sum(p.numel() for p in model.parameters())
    assert report.modules[0].params_after == 4 * (64 + 48 + 1) + 48
    assert "whole model" in repr(report)


def test_regex_suffixes_exclusions_and_filter_fn():
    model = tiny_llama()
    _, r = compress_model(model, "svd", rank=4, target_modules=r".*\.(q|k)_proj", progress=False)
    assert [m.name for m in r.modules] == [
        f"model.layers.{i}.self_attn.{p}_proj" for i in range(2) for p in "qk"
    ]
    _, r = compress_model(
        model, "svd", rank=4, target_modules=["down_proj", "up_proj"],
        exclude_modules=["model.layers.0.mlp.up_proj"], progress=False,
    )  # fmt: skip
    assert [m.name for m in r.modules] == [
        "model.layers.0.mlp.down_proj",
        "model.layers.1.mlp.up_proj",
        "model.layers.1.mlp.down_proj",
    ]
    _, r = compress_model(
        model, "svd", rank=4, filter_fn=lambda m, n: "layers.1." in n, progress=False
    )
    assert all(m.name.startswith("model.layers.1.") for m in r.modules) and len(r.modules) == 7
    _, r = compress_model(model, "svd", rank=4, progress=False)
    assert "lm_head" not in [m.name for m in r.modules]  # output layer left alone by default


def test_rank_pattern_and_param_ratio():
    model = mlp()
    _, r = compress_model(model, "svd", rank=4, rank_pattern={"0": 8, r"[24]": 2}, progress=False)
    assert [m.rank for m in r.modules] == [8, 2]  # the output layer "4" is left alone
    _, r = compress_model(model, "svd", param_ratio=0.25, progress=False)
    # rank = floor(ratio * m n / (m + n + 1)) per layer
    assert [m.rank for m in r.modules] == [int(0.25 * 48 * 64 / 113), int(0.25 * 32 * 48 / 81)]
    _, r = compress_model(model, "svd", rank=2, target_modules=["4"], progress=False)
    assert [m.name for m in r.modules] == ["4"]  # unless named
    assert all(m.params_after < m.params_before for m in r.modules)


def test_a_rank_that_saves_nothing_stays_dense_with_a_warning():
    model = tiny_llama()
    # rank 16 on 32 x 32 projections: 16 (32 + 32 + 1) > 32 * 32, a factorization would cost more
    with pytest.warns(UserWarning, match="stays dense: rank 16 would not save parameters"):
        small, r = compress_model(model, "svd", rank=16, target_modules=r".*\.[qo]_proj",
                                  progress=False)  # fmt: skip
    ids = torch.arange(12).reshape(1, 12)
    assert torch.equal(small(ids), model(ids))
    assert [m.method for m in r.modules] == ["dense"] * 4 and r.params_after == r.params_before


def test_param_ratio_one_is_the_break_even_rank():
    # keeping all parameters is the rank where k (m + n + 1) reaches m n, not full rank
    _, r = compress_model(mlp(), "svd", param_ratio=1.0, progress=False)
    assert [m.rank for m in r.modules] == [48 * 64 // 113, 32 * 48 // 81]
    assert all(m.params_after <= m.params_before for m in r.modules)


def test_llama_low_rank_logits_match_the_dense_model_of_the_factors():
    model = tiny_llama()
    small, _ = compress_model(model, "svd", rank=8, progress=False)
    merged = decompress(small)
    assert not any(isinstance(m, FactorizedLinear) for m in merged.modules())
    ids = torch.arange(10).reshape(1, 10)
    torch.testing.assert_close(small(ids), merged(ids), rtol=1e-5, atol=1e-5)  # float32 sums


def test_hugging_face_and_lrkit_llamas_compress_to_the_same_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
        bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    hf = transformers.LlamaForCausalLM(cfg).eval().double()
    hf.save_pretrained(tmp_path)
    ours = Llama.from_pretrained(tmp_path, dtype=torch.float64)
    small_hf, rep_hf = compress_model(hf, "svd", rank=8, progress=False)
    small, rep = compress_model(ours, "svd", rank=8, progress=False)
    names = [m.name for m in rep.modules]
    assert names == [m.name for m in rep_hf.modules] and len(names) == 2 * 7  # same layers
    ids = torch.arange(12).reshape(1, 12)
    with torch.no_grad():
        logits_hf = small_hf(ids).logits
        # the same weights, the same truncations: equal to float64 rounding of the two
        # implementations' sums (their dense logits agree to about 1e-12 too)
        torch.testing.assert_close(small(ids), logits_hf, rtol=1e-9, atol=1e-9)
        # and the factorized HF model computes what its merged dense weights compute
        torch.testing.assert_close(
            decompress(small_hf)(ids).logits, logits_hf, rtol=1e-9, atol=1e-9
        )


def test_cnn_tucker_and_cp():
    model = cnn()
    x = torch.randn(2, 3, 8, 8)
    for method in ("tucker", "cp"):
        with (
            pytest.warns(UserWarning, match="Tucker ranks clipped")
            if method == "tucker"
            else nullcontext()
        ):
            small, r = compress_model(
                model, "svd", rank=4, conv_method=method, conv_kwargs=dict(seed=0), progress=False
            )
        assert isinstance(small[0], FactorizedConv2d) and isinstance(small[2], FactorizedConv2d)
        assert type(small[4]) is nn.Linear  # the classifier, the output layer, stays dense
        assert small(x).shape == (2, 10)
        assert r.params_after == sum(p.numel() for p in small.parameters())
        torch.testing.assert_close(decompress(small)(x), small(x), rtol=1e-4, atol=1e-4)


def test_inplace_and_training_one_step_changes_only_trainable_parameters():
    model = mlp()
    small, _ = compress_model(model, "lplr", rank=4, bits_left=4, bits_right=8, seed=0,
                              inplace=True, progress=False)  # fmt: skip
    assert small is model and isinstance(model[0], FactorizedLinear)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(8, 64)).square().sum().backward()
    opt.step()
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    assert any(not torch.equal(v, params[k]) for k, v in model.named_parameters())


def test_state_dict_save_load_round_trip_is_bit_exact():
    model = mlp()
    small, _ = compress_model(model, "svd", rank=4, progress=False)
    buf = io.BytesIO()
    torch.save(small.state_dict(), buf)
    buf.seek(0)
    fresh, _ = compress_model(mlp(seed=1), "svd", rank=4, progress=False)
    fresh.load_state_dict(torch.load(buf))
    x = torch.randn(3, 64)
    assert torch.equal(fresh(x), small(x))


def test_bad_input_changes_nothing_and_says_why():
    model = mlp()
    before = state(model)
    with pytest.raises(
        ValueError, match=r"no module matched target_modules='nope'.*modules are: 0, 1, 2"
    ):
        compress_model(model, rank=2, target_modules="nope", progress=False)
    with pytest.raises(
        TypeError, match="module '1' is a ReLU; compress_model replaces Linear, Conv2d"
    ):
        compress_model(model, rank=2, target_modules=["0", "1"], progress=False)
    with pytest.raises(ValueError, match=r"rank \(=40\) for module '2' must be <= 32"):
        compress_model(model, rank=40, target_modules=["2"], inplace=True, progress=False)
    with pytest.raises(ValueError, match=r"param_ratio \(=1.5\) must be in \(0, 1\]"):
        compress_model(model, param_ratio=1.5, progress=False)
    with pytest.raises(ValueError, match="needs rank= or param_ratio="):
        compress_model(model, progress=False)
    with pytest.raises(ValueError, match="rank or param_ratio, not both"):
        compress_model(model, rank=2, param_ratio=0.5, progress=False)
    broken = mlp()
    with torch.no_grad():
        broken[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="module '2' has NaN or Inf weights"):
        compress_model(broken, rank=2, inplace=True, progress=False)
    assert isinstance(broken[0], nn.Linear) and not isinstance(broken[0], FactorizedLinear)
    with torch.device("meta"):
        ghost = mlp()
    with pytest.raises(ValueError, match="module '0' is on the meta device"):
        compress_model(ghost, rank=2, progress=False)
    assert same_state(state(model), before)


@pytest.mark.parametrize("build", [mlp, cnn, tiny_llama])
def test_lrkit_format_round_trip_is_bit_exact_without_recomputing(build, tmp_path, monkeypatch):
    model = build()
    kw = dict(conv_kwargs=dict(seed=0)) if build is cnn else {}
    small, report = compress_model(
        model, "lplr", rank=3, bits_left=4, bits_right=8, seed=0, progress=False, **kw
    )
    save_compressed(small, tmp_path, report)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "model.safetensors",
        "report.json",
    }

    def no_factorizing(*args, **kwargs):
        raise AssertionError("load_compressed must not factorize again")

    for fn in ("hooi", "cp_als"):
        monkeypatch.setattr(f"lrkit.nn.conv.{fn}", no_factorizing)
    monkeypatch.setattr("lrkit.nn.linear.METHODS", {})
    loaded = load_compressed(build(seed=1), tmp_path)
    assert same_state(state(loaded), state(small))
    x = (
        torch.arange(10).reshape(1, 10)
        if build is tiny_llama
        else (torch.randn(2, 3, 8, 8) if build is cnn else torch.randn(2, 64))
    )
    assert torch.equal(loaded(x), small(x))


def test_load_compressed_refuses_a_wrong_directory_or_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_compressed(mlp(), tmp_path)
    small, _ = compress_model(mlp(), "svd", rank=3, progress=False)
    save_compressed(small, tmp_path)
    with pytest.raises(ValueError, match="the model has no module '2'"):
        load_compressed(nn.Sequential(nn.Linear(64, 48)), tmp_path)


def test_param_ratio_sizes_convs_by_their_own_formula_and_reports_what_was_built():
    model = cnn()
    for method, ratio in (("tucker", 0.1), ("tucker", 0.2), ("cp", 0.2)):
        _, r = compress_model(model, param_ratio=ratio, conv_method=method, target_modules=["2"],
                              conv_kwargs=dict(seed=0), progress=False)  # fmt: skip
        (m,) = r.modules

        def size(k, method=method):  # conv "2" (16 -> 16 channels, 3 x 3) weights at rank k
            return k * 32 + k * k * 9 if method == "tucker" else k * (16 + 16 + 3 + 3)

        k = m.rank[0] if method == "tucker" else m.rank
        assert m.params_after - 16 == size(k)  # the bias stays
        # the largest rank within the budget: this one fits, one more does not
        assert size(k) <= ratio * 16 * 16 * 9 < size(k + 1)
    _, r = compress_model(mlp(), "monarch", nblocks=4, target_modules=["0"], progress=False)
    assert r.modules[0].rank == "nblocks=4"
    _, r = compress_model(model, rank_pattern={"2": (4, 6)}, target_modules=["2"], progress=False)
    assert r.modules[0].rank == (4, 6)


def test_each_method_is_sized_its_own_way_and_kept_only_if_it_saves_bits():
    model = tiny_llama()
    q = ["model.layers.0.self_attn.q_proj"]  # 32 x 32
    _, r = compress_model(model, "kron", rank=2, left_shape=(4, 8), target_modules=q,
                          progress=False)  # fmt: skip
    assert r.modules[0].rank == 2  # rank reaches methods that take one
    with pytest.raises(ValueError, match="param_ratio sizes the low-rank methods"):
        compress_model(model, "cur", param_ratio=0.25, target_modules=q, progress=False)
    with pytest.raises(ValueError, match="'monarch' is not sized by rank"):
        compress_model(model, "monarch", rank=2, target_modules=q, progress=False)
    # LPLR at rank 16 stores more numbers than a rank-16 SVD would save, but far fewer bits
    _, r = compress_model(model, "lplr", rank=16, bits_left=4, bits_right=8, seed=0,
                          target_modules=q, progress=False)  # fmt: skip
    assert r.modules[0].method == "lplr" and r.modules[0].nbits_after < r.modules[0].nbits_before
    # CUR with 2 x 15 columns and rows of a 32 x 32 weight stores more than the weight
    with pytest.warns(UserWarning, match="stays dense: cur would store"):
        _, r = compress_model(model, "cur", rank=15, seed=0, target_modules=q, progress=False)
    assert r.modules[0].method == "dense"


def test_rank_pattern_suffixes_unused_keys_and_layers_already_factorized():
    model = tiny_llama()
    _, r = compress_model(model, "svd", rank=4, rank_pattern={"q_proj": 2},
                          target_modules=[r"q_proj", "k_proj"], progress=False)  # fmt: skip
    assert [m.rank for m in r.modules] == [2, 4, 2, 4]  # suffix keys, as target_modules
    with pytest.warns(UserWarning, match="rank_pattern key 'nope' matches no selected module"):
        compress_model(model, "svd", rank=4, rank_pattern={"nope": 3}, progress=False)
    with pytest.raises(ValueError, match="module 'model.layers.0.self_attn.k_proj' has no size"):
        compress_model(model, "svd", rank_pattern={"q_proj": 2}, progress=False)
    small, _ = compress_model(cnn(), "svd", rank=4, conv_method="cp", progress=False)
    with pytest.raises(ValueError, match="no module matched"):  # never inside a factorized layer
        compress_model(small, "svd", rank=2, target_modules=r".*layers.*", progress=False)


def test_a_model_cast_after_compression_loads_back_in_its_dtype(tmp_path):
    small, _ = compress_model(cnn(), "svd", rank=4, conv_kwargs=dict(seed=0),
                              target_modules=["2", "4"], progress=False)  # fmt: skip
    small = small.double()
    save_compressed(small, tmp_path)
    # factorized layers come back in their saved dtype; the dense rest in the given model's
    loaded = load_compressed(cnn(seed=1), tmp_path)
    assert loaded[4].U.dtype == torch.float64 and loaded[2].layers[0].weight.dtype == torch.float64
    loaded = load_compressed(cnn(seed=1).double(), tmp_path)
    assert {t.dtype for t in loaded.state_dict().values()} == {torch.float64}
    assert same_state(state(loaded), state(small))


def test_review_findings_on_layers():
    # a diverged conv can still be printed (its factorization is built without checks)
    c = FactorizedConv2d.from_conv(nn.Conv2d(4, 6, 3), "tucker", rank=2)
    with torch.no_grad():
        c.layers[1].weight[0, 0, 0, 0] = float("nan")
    assert "rank=(2, 2)" in repr(c)
    assert c.factorization.core.requires_grad  # and gradients reach its parameters
    # the bias takes the factorization's dtype
    fact = lrkit.truncated_svd(torch.randn(8, 5, dtype=torch.float64), 2)
    assert FactorizedLinear(fact, torch.randn(8)).bias.dtype == torch.float64
    # an argument the method does not take is named with the method
    with pytest.raises(TypeError, match="method 'truncated_svd': got an unexpected keyword"):
        FactorizedLinear.from_linear(nn.Linear(5, 8), "svd", rank=2, seed=0)
    # shapes only, on the meta device
    assert FactorizedLinear.low_rank(16, 8, 4, device="meta").U.is_meta


@pytest.mark.parametrize("device", DEVICES)
def test_compress_run_save_and_load_on_each_device(device, tmp_path):
    model = mlp().to(device)
    x = torch.randn(3, 64, device=device)
    lplr = dict(rank=4, bits_left=4, bits_right=8, seed=0)
    for method, kw in (("svd", dict(rank=4)), ("lplr", lplr)):
        small, _ = compress_model(model, method, progress=False, **kw)
        assert all(t.device.type == torch.device(device).type for t in small.state_dict().values())
        y = small(x)
        assert y.device == x.device
        save_compressed(small, tmp_path / method)
        loaded = load_compressed(mlp(seed=1).to(device), tmp_path / method)
        assert torch.equal(loaded(x), y)
