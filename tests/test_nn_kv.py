"""Latent KV attention (Palu) and compress_kv: exactness of the latent cache, folding, bytes.

Tolerances: the latent path computes ``(x A^T) B^T`` where its reference computes
``x (B A)^T``, and reads cached latents where the reference recomputes them. Re-associating
a float32 product over n inner terms moves it by at most ~n eps32 of its size (Higham's
gamma_n), and each of the model's layers adds its own such error; so logits agree to
``n * layers * eps32 * max|logits|`` with n the widest inner dimension (the hidden size).
Measured agreement is a few eps32 of max|logits|, far inside that bound.
"""

import copy

import pytest
import torch

from lrkit.llm import KVCache, generate, load_tiny, perplexity
from lrkit.llm.data import load_ids, load_text
from lrkit.nn import LatentKVAttention, calibrate, compress_kv

from conftest import byte_ids, tiny_llama

EPS32 = torch.finfo(torch.float32).eps


def tiny(seed=0, context=64, kv_heads=4):
    """8 query heads, 4 KV heads of 8 dims (K, V 32 wide), hidden 64, 2 layers."""
    return tiny_llama(heads=8, kv_heads=kv_heads, seed=seed, context=context)


def ids(B=2, T=40, seed=1):
    return byte_ids(B, T, seed)


def tol(model, logits):
    """The bound of the module docstring: hidden * layers * eps32 * max|logits|."""
    cfg = model.config
    return cfg.hidden_size * cfg.num_hidden_layers * EPS32 * float(logits.abs().max())


def dense_reference(latent_model, original):
    """``original`` with each k_proj, v_proj replaced by the dense product of the latent
    model's factors: what caching the latent must reproduce exactly."""
    ref = copy.deepcopy(original)
    with torch.no_grad():
        for blk, ref_blk in zip(latent_model.model.layers, ref.model.layers, strict=True):
            Wk, Wv = blk.self_attn.dense_weights()
            ref_blk.self_attn.k_proj.weight.copy_(Wk)
            ref_blk.self_attn.v_proj.weight.copy_(Wv)
    return ref


def run_cached(model, x, first=10):
    """Logits of x fed as a prompt of ``first`` tokens then one token at a time, and the cache."""
    cache = model.new_cache()
    parts = [model(x[:, :first], cache)]
    parts += [model(x[:, t : t + 1], cache) for t in range(first, x.shape[1])]
    return torch.cat(parts, dim=1), cache


@pytest.mark.parametrize("group_size", [1, 2, 4])
@pytest.mark.parametrize("method", ["svd", "whiten"])
def test_latent_path_equals_dense_product_with_and_without_cache(device, group_size, method):
    model = tiny().to(device)
    x = ids().to(device)
    small = compress_kv(
        model, rank=12, group_size=group_size, method=method, calibration=ids(B=8, T=64, seed=2)
    )  # 12 of 32: 3 per group with 4 groups, 6 with 2, 12 joint
    attn = small.model.layers[0].self_attn
    assert isinstance(attn, LatentKVAttention)
    assert sum(attn.k_ranks) == sum(attn.v_ranks) == 12 and len(attn.k_ranks) == 4 // group_size
    ref = dense_reference(small, model)
    with torch.no_grad():
        want = ref(x)
        got = small(x)
        cached, cache = run_cached(small, x)
        dense = model(x)
    torch.testing.assert_close(got, want, rtol=0, atol=tol(model, want))
    torch.testing.assert_close(cached, want, rtol=0, atol=tol(model, want))
    assert len(cache) == x.shape[1] and cache.layers[0][0].shape == (2, x.shape[1], 12)
    # the factors are a real approximation: at rank 12 of 32 the model has changed
    assert float((got - dense).abs().max()) > 100 * tol(model, want)


@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_folded_v_equals_unfolded(group_size):
    model = tiny()
    x = ids()
    small = compress_kv(model, rank=10, group_size=group_size, method="svd")  # uneven 3,3,2,2
    with torch.no_grad():
        folded = small(x)
        folded_cached, _ = run_cached(small, x)
        for blk in small.model.layers:
            blk.self_attn.fold_v = False
        unfolded = small(x)
        unfolded_cached, _ = run_cached(small, x)
    torch.testing.assert_close(folded, unfolded, rtol=0, atol=tol(model, unfolded))
    torch.testing.assert_close(folded_cached, unfolded_cached, rtol=0, atol=tol(model, unfolded))


@pytest.mark.parametrize("method", ["svd", "whiten"])
@pytest.mark.parametrize("group_size", [1, 4])
def test_full_rank_gives_the_dense_model(method, group_size):
    model = tiny()
    x = ids()
    small = compress_kv(
        model, rank=32, group_size=group_size, method=method, calibration=ids(B=8, T=64, seed=2)
    )
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(small(x), want, rtol=0, atol=tol(model, want))
        torch.testing.assert_close(run_cached(small, x)[0], want, rtol=0, atol=tol(model, want))


def test_greedy_generation_with_latent_cache_equals_recompute():
    small = compress_kv(tiny(), ratio=0.5, method="svd")
    prompt = ids(B=1, T=8)[0]
    a = generate(small, prompt, max_new_tokens=24, temperature=0)
    b = generate(small, prompt, max_new_tokens=24, temperature=0, use_cache=False)
    assert torch.equal(a, b) and a.shape == (32,)


@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_cache_bits_equal_the_formula(group_size):
    model = tiny()
    B, T = 3, 20
    dense_cache = model.new_cache()
    small = compress_kv(model, rank=10, group_size=group_size, method="svd")
    latent_cache = small.new_cache()
    with torch.no_grad():
        model(ids(B=B, T=T), dense_cache)
        small(ids(B=B, T=T), latent_cache)
    cfg, layers = model.config, model.config.num_hidden_layers
    # dense: K and V, every KV head, head_dim float32 numbers per token and layer
    assert dense_cache.nbits == B * T * layers * 2 * cfg.num_key_value_heads * cfg.head_dim * 32
    # latent: r_k + r_v float32 numbers per token and layer, whatever the grouping
    assert latent_cache.nbits == B * T * layers * (10 + 10) * 32
    per_token = sum(b.self_attn.cache_bits_per_token for b in small.model.layers)
    assert latent_cache.nbits == B * T * per_token
    half = compress_kv(model, ratio=0.5, method="svd").new_cache()
    with torch.no_grad():
        small_half = compress_kv(model, ratio=0.5, method="svd")
        small_half(ids(B=B, T=T), half)
    assert 2 * half.nbits == dense_cache.nbits


def test_the_callers_model_is_untouched_unless_inplace():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = compress_kv(model, rank=8, method="whiten", calibration=ids(B=8, T=64, seed=2))
    assert small is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, LatentKVAttention) for m in model.modules())
    assert small.lm_head.weight is small.model.embed_tokens.weight  # still tied in the copy
    same = compress_kv(model, rank=8, method="svd", inplace=True)
    assert same is model and isinstance(model.model.layers[1].self_attn, LatentKVAttention)


def test_the_seam_mixes_attentions_per_layer_and_the_cache_owns_its_length():
    model = tiny()
    x = ids(T=30)
    small = compress_kv(model, rank=16, method="svd")
    mixed = copy.deepcopy(model)
    mixed.model.layers[1].self_attn = small.model.layers[1].self_attn  # one layer latent
    with torch.no_grad():
        want = mixed(x)
        got, cache = run_cached(mixed, x)
    torch.testing.assert_close(got, want, rtol=0, atol=tol(model, want))
    assert cache.length(0) == cache.length(1) == len(cache) == 30
    assert cache.layers[0][0].shape == (2, 4, 30, 8)  # keys after RoPE, per KV head
    assert cache.layers[1][0].shape == (2, 30, 16)  # the latent of K, before RoPE
    fresh = KVCache()
    with pytest.raises(ValueError, match=r"layer \(=2\) must be <= 0"):
        fresh.update(2, torch.zeros(1, 1, 1))
    fresh.update(0, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1))
    with pytest.raises(ValueError, match="layer 0 caches 2 tensors; update gave 1"):
        fresh.update(0, torch.zeros(1, 1, 1))


def test_bad_input_is_refused_clearly():
    model = tiny()
    with pytest.raises(ValueError, match=r"rank \(=33\) must be <= the K/V width .* = 32"):
        compress_kv(model, rank=33, method="svd")
    with pytest.raises(ValueError, match=r"rank \(=0\) must be >= 1"):
        compress_kv(model, rank=0, method="svd")
    with pytest.raises(
        ValueError, match=r"group_size \(=3\) must divide the number of KV heads \(=4\)"
    ):
        compress_kv(model, rank=8, group_size=3, method="svd")
    with pytest.raises(ValueError, match=r"rank \(=3\) must be >= the number of head groups"):
        compress_kv(model, rank=3, group_size=1, method="svd")
    for bits in (1, 17):
        with pytest.raises(ValueError, match=rf"bits \(={bits}\) must be in \[2, 16\]"):
            compress_kv(model, rank=8, method="svd", bits=bits)
    with pytest.raises(ValueError, match="give exactly one of rank= and ratio="):
        compress_kv(model, method="svd")
    with pytest.raises(ValueError, match="give exactly one of rank= and ratio="):
        compress_kv(model, rank=8, ratio=0.5, method="svd")
    with pytest.raises(ValueError, match=r"ratio \(=1.5\) must be in \(0, 1\]"):
        compress_kv(model, ratio=1.5, method="svd")
    with pytest.raises(
        ValueError, match="method='whiten' with allocation='uniform' needs calibration="
    ):
        compress_kv(model, rank=8)
    with pytest.raises(ValueError, match="no X\\^T X for model.layers.0.self_attn"):
        compress_kv(model, rank=8, calibration={})
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        compress_kv("model", rank=8, method="svd")
    with pytest.raises(TypeError, match="rank must be an int; got True"):
        compress_kv(model, rank=True, method="svd")
    small = compress_kv(model, rank=8, method="svd")
    with pytest.raises(ValueError, match="found no attention module"):
        compress_kv(small, rank=8, method="svd")  # compressed already: no k_proj left
    with pytest.raises(ValueError, match=r"sequence length 70 exceeds max_position_embeddings"):
        small(ids(B=1, T=70))  # a prompt longer than the context
    # calibration too short for the width: warned with the numbers, and whitening still works
    with pytest.warns(UserWarning) as record:  # and whitening's shift of the singular X^T X
        compress_kv(model, rank=8, calibration=ids(B=1, T=10))
    assert any("10 calibration tokens for 64 input channels" in str(w.message) for w in record)


def test_calibration_statistics_can_be_given_instead_of_data():
    model = tiny()
    data = ids(B=8, T=64, seed=2)
    stats = calibrate(model, data, stats=("xtx",), progress=False)
    a = compress_kv(model, rank=8, calibration=stats)
    b = compress_kv(model, rank=8, calibration=data)
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


# The first layer reads embeddings of the few distinct bytes of the calibration text, so its
# X^T X is singular and whitening shifts it (with this warning): expected here.
@pytest.mark.filterwarnings("ignore:.*X\\^T X is not positive definite:UserWarning")
def test_group_size_matters_on_the_shipped_model():
    """At 25% of the K/V width, a joint latent keeps the model, one per head does not
    (the issue's measurement on a longer text: 1.18 against 1.81 bits per byte, dense 1.13)."""
    model, _ = load_tiny()
    text = load_text("heldout")[:3000]
    calib = load_ids("calibration")[: 4 * 256].long().view(4, 256)
    dense = perplexity(model, text, context=256).bits_per_byte
    joint = compress_kv(model, ratio=0.25, calibration=calib)
    per_head = compress_kv(model, ratio=0.25, group_size=1, calibration=calib)
    bpb_joint = perplexity(joint, text, context=256).bits_per_byte
    bpb_head = perplexity(per_head, text, context=256).bits_per_byte
    print(f"bits per byte: dense {dense:.4f}, joint {bpb_joint:.4f}, per head {bpb_head:.4f}")
    assert dense < bpb_joint < bpb_head
    assert bpb_joint - dense < 0.25 < bpb_head - dense  # measured: 0.10 and 0.89 on this text


# -- latent quantization -----------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("symmetric", [True, False])
def test_packed_codes_round_trip(bits, symmetric):
    from lrkit.nn.latent_kv import _pack, _unpack

    codes = torch.randint(0, 2**bits, (3, 5, 21), generator=torch.Generator().manual_seed(bits))
    packed = _pack(codes, bits)
    assert packed.dtype == torch.uint8 and packed.shape == (3, 5, -(-21 * bits // 8))
    assert torch.equal(_unpack(packed, bits, 21).long(), codes)
    # the layout, bit by bit: bit j of code i is bit (i b + j) mod 8 of byte (i b + j) // 8
    # (the fast path for 2, 4 and 8 bits must store exactly what the general one does)
    want = torch.zeros(3, 5, -(-21 * bits // 8), dtype=torch.long)
    for i in range(21):
        for j in range(bits):
            pos = i * bits + j
            want[..., pos // 8] |= ((codes[..., i] >> j) & 1) << (pos % 8)
    assert torch.equal(packed.long(), want)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantized_cache_bits_equal_the_formula(bits, symmetric):
    from lrkit.core.quant import quant_nbits

    model = tiny()
    B, T, r, g = 2, 12, 10, 4
    small = compress_kv(
        model, rank=r, method="svd", bits=bits, quant_group_size=g, symmetric=symmetric
    )
    cache = small.new_cache()
    with torch.no_grad():
        small(ids(B=B, T=T), cache)
    # per token and layer, for K and for V: the codes packed into whole bytes, and one
    # float16 range number per group of 4 (symmetric: R) or two (lo and step)
    codes = 8 * -(-r * bits // 8)
    ranges = -(-r // g) * (1 if symmetric else 2) * 16
    per_token = 2 * (codes + ranges)
    assert cache.nbits == B * T * model.config.num_hidden_layers * per_token
    assert small.model.layers[0].self_attn.cache_bits_per_token == per_token
    # lrkit's quantizer counts the same ranges, and the codes before padding to bytes
    lrkit_bits = quant_nbits(
        (1, r), bits, scales="group", group_size=g, symmetric=symmetric, scale_bits=16
    )
    assert codes + ranges - lrkit_bits == codes - r * bits < 8


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_cache_stores_what_lrkit_quantize_gives(bits, symmetric):
    # the cache runs quantize's own steps without its per-call checks: the stored codes and
    # ranges must rebuild exactly what quantize(...).to_dense() gives (same arithmetic)
    from lrkit.core.quant import quantize

    model = tiny()
    q = compress_kv(model, rank=10, method="svd", bits=bits, symmetric=symmetric,
                    quant_group_size=4)  # fmt: skip
    attn = q.model.layers[0].self_attn
    h = torch.randn(2, 7, 10, generator=torch.Generator().manual_seed(bits)) * 3
    got = attn._decode(attn._encode(h), 10, h.dtype)
    want = quantize(h.reshape(14, 10), bits, scales="group", axis=1, group_size=4,
                    symmetric=symmetric, scale_dtype=torch.float16).to_dense()  # fmt: skip
    # equal here bit for bit; allowed: one rounding of lo + step * code (|.| <= 2 max|h|),
    # should another CPU's vector kernels fuse the multiply-add in one path and not the other
    atol = 4 * EPS32 * float(h.abs().max())
    torch.testing.assert_close(got.reshape(14, 10), want, rtol=0, atol=atol)
    # a latent beyond float16's range is refused with quantize's own message
    with pytest.raises(ValueError, match="does not fit scale_dtype=torch.float16"):
        attn._encode(h * 1e5)


def test_quantized_latents_cached_equal_uncached_and_converge_with_bits():
    # float64: a latent that moves by rounding (cached runs compute it with other shapes)
    # could cross a boundary between two levels and flip a code; the chance is about
    # eps / step per entry: ~1e-6 in float32 (a few percent over this test's ~2e4 latent
    # entries), ~1e-15 in float64
    model = tiny().double()
    x = ids()
    eps64 = torch.finfo(torch.float64).eps
    errors = []
    with torch.no_grad():
        plain = compress_kv(model, rank=16, method="svd")
        want = plain(x)
        for bits in (2, 4, 8, 16):
            q = compress_kv(  # float32 ranges: float16's would floor the error near 2^-11
                model, rank=16, method="svd", bits=bits, symmetric=False, scale_dtype=torch.float32
            )
            got = q(x)
            cached, _ = run_cached(q, x)
            # the same quantizer on the same latents, cached or not: only rounding differs
            bound = tol(model, got) / EPS32 * eps64
            torch.testing.assert_close(cached, got, rtol=0, atol=bound)
            errors.append(float((got - want).abs().max()))
    # each 2 more bits shrink the step 4x: errors fall, and 16 bits is close to float
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 1e-3 * errors[0]
    prompt = ids(B=1, T=8)[0]
    q4 = compress_kv(model, rank=16, method="svd", bits=4)
    a = generate(q4, prompt, max_new_tokens=16, temperature=0)
    b = generate(q4, prompt, max_new_tokens=16, temperature=0, use_cache=False)
    assert torch.equal(a, b)


# -- rank allocation across layers -------------------------------------------------------------
def test_proportional_ranks_meet_the_budget_in_steps():
    from lrkit.nn import proportional_ranks

    ranks = proportional_ranks([1, 2, 3, 4], 40, step=4, high=32)
    assert sum(ranks) == 40 and all(r % 4 == 0 for r in ranks) and ranks == sorted(ranks)
    # a share above the group's width is capped and the rest shared again among the others
    ranks = proportional_ranks([100, 1, 1, 1], 64, step=4, high=32)
    assert ranks[0] == 32 and sum(ranks) == 64 and min(ranks) >= 4
    # a negligible share still gets the minimum, one step
    ranks = proportional_ranks([0, 5, 5], 30, step=2, high=32)
    assert ranks[0] == 2 and sum(ranks) == 30
    # a budget that is not a multiple of the step is met to within one step
    ranks = proportional_ranks([3, 1, 1], 31, step=4, high=32)
    assert 31 - 4 < sum(ranks) <= 31
    # more than the groups can hold: everyone at the width
    assert proportional_ranks([1, 2], 100, step=4, high=32) == [32, 32]
    with pytest.raises(ValueError, match="a budget of 7 ranks cannot give each of the 4 groups"):
        proportional_ranks([1, 1, 1, 1], 7, step=2, high=32)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        proportional_ranks([1, -1], 8, step=1, high=32)
    with pytest.raises(ValueError, match="weights is empty"):
        proportional_ranks([], 8, step=1, high=32)


@pytest.mark.parametrize(("group_size", "step"), [(1, 2), (4, 4)])
def test_fisher_allocation_meets_the_cache_budget(group_size, step):
    model = tiny()
    data = ids(B=8, T=64, seed=2)
    rank = 16  # per head (8 wide): 4 each uniformly, so steps of 2 leave room to move
    small = compress_kv(
        model, rank=rank, group_size=group_size, allocation="fisher", rank_step=step,
        calibration=data,
    )  # fmt: skip
    attns = [b.self_attn for b in small.model.layers]
    k_and_v = [r for a in attns for r in a.k_ranks + a.v_ranks]
    budget = rank * 2 * len(attns)  # the uniform model's cache, per token
    assert budget - step < sum(k_and_v) <= budget and all(r % step == 0 for r in k_and_v)
    assert len(set(k_and_v)) > 1  # not uniform: the Fisher information differs
    cache = small.new_cache()
    with torch.no_grad():
        small(ids(B=1, T=10), cache)
    assert cache.nbits == 10 * sum(k_and_v) * 32
    with pytest.raises(ValueError, match="no Fisher information for model.layers.0"):
        compress_kv(model, rank=16, method="svd", allocation="fisher", calibration={})
    with pytest.raises(ValueError, match="allocation='fisher' needs calibration="):
        compress_kv(model, rank=16, method="svd", allocation="fisher")


def test_identity_keeps_k_and_v_and_is_the_plain_cache_to_quantize():
    model = tiny()
    x = ids()
    plain = compress_kv(model, method="identity")
    dense_cache, cache = model.new_cache(), plain.new_cache()
    with torch.no_grad():
        want = model(x, dense_cache)
        got = plain(x, cache)
    torch.testing.assert_close(got, want, rtol=0, atol=tol(model, want))
    assert cache.nbits == dense_cache.nbits  # K and V before RoPE: the same numbers
    q4 = compress_kv(model, method="identity", bits=4, quant_group_size=8)  # one range a head
    cache4 = q4.new_cache()
    with torch.no_grad():
        q4(x, cache4)
    # 4-bit codes and a float16 range per head and token, against float32 K and V
    assert cache4.nbits * 32 == dense_cache.nbits * (4 + 16 / 8)
    with pytest.raises(ValueError, match="method='identity' keeps K and V whole"):
        compress_kv(model, method="identity", rank=16)


@pytest.mark.filterwarnings("ignore:.*X\\^T X is not positive definite:UserWarning")
def test_low_rank_and_quantization_beat_quantization_alone_at_fewer_bytes():
    """Palu's claim, on the shipped model: a latent of half the width at 4 bits (80 bytes per
    token and layer) predicts better than the plain cache at 3 bits (128 bytes), both by the
    same asymmetric quantizer, groups of 32, float16 ranges (measured on 16 kB of held-out
    text: 1.090 against 1.131 bits per byte, dense 1.073; plain 2-bit: 2.13)."""
    model, _ = load_tiny()
    text = load_text("heldout")[:6000]
    calib = load_ids("calibration")[: 8 * 256].long().view(8, 256)
    q = dict(symmetric=False, quant_group_size=32)
    plain3 = compress_kv(model, method="identity", bits=3, **q)
    latent4 = compress_kv(model, ratio=0.5, calibration=calib, bits=4, **q)
    sizes = []
    for m in (plain3, latent4):
        cache = m.new_cache()
        with torch.no_grad():
            m(calib[:1, :1], cache)
        sizes.append(cache.nbits // 8 // len(m.model.layers))
    assert sizes == [128, 80]  # 256 codes of 3 bits + 8 ranges of 2 x 2 bytes; 128 x 4 + 4 x 4
    bpb = [perplexity(m, text, context=512).bits_per_byte for m in (plain3, latent4)]
    print(f"bits per byte: plain 3-bit {bpb[0]:.4f}, latent 50% 4-bit {bpb[1]:.4f}")
    assert bpb[1] < bpb[0]


@pytest.mark.parametrize("method", ["svd", "identity"])
def test_hadamard_rotation_is_folded_exactly(method):
    model = tiny()
    x = ids()
    rank = 16 if method == "svd" else None  # 2 groups: 8 each, a power of two
    plain = compress_kv(model, rank=rank, group_size=2, method=method)
    rotated = compress_kv(model, rank=rank, group_size=2, method=method, hadamard=True)
    with torch.no_grad():
        want = plain(x)
        torch.testing.assert_close(rotated(x), want, rtol=0, atol=tol(model, want))
        # the latents differ (rotated), the keys they rebuild do not
        a, b = plain.model.layers[0].self_attn, rotated.model.layers[0].self_attn
        assert not torch.allclose(a.k_down, b.k_down)
        for wa, wb in zip(a.dense_weights(), b.dense_weights(), strict=True):
            # B H H^T A against B A: two products over r = 8 terms, within ~2 r eps32
            torch.testing.assert_close(wb, wa, rtol=0, atol=64 * EPS32 * float(wa.abs().max()))
    with pytest.raises(ValueError, match=r"rank\(s\) \[3\]"):
        compress_kv(model, rank=12, group_size=1, method="svd", hadamard=True)


def test_gradients_agree_with_the_dense_reference():
    """The fast path and its reference agree on gradients too: the same gradient for the
    weights they share, and for the factors the chain rule through W = B A:
    dL/dA = B^T dL/dW, dL/dB = dL/dW A^T (one group: joint, rank 12)."""
    model = tiny()
    x = ids()
    small = compress_kv(model, rank=12, method="svd")
    ref = dense_reference(small, model)

    def loss(m):
        logits = m(x[:, :-1])
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())

    loss(small).backward()
    loss(ref).backward()
    a, r = small.model.layers[0].self_attn, ref.model.layers[0].self_attn
    gq = r.q_proj.weight.grad
    torch.testing.assert_close(a.q_proj.weight.grad, gq, rtol=0, atol=tol(model, gq))
    for kind in ("k", "v"):  # V through the folded path (fold_v=True)
        G = getattr(r, f"{kind}_proj").weight.grad  # dL/dW of the reference, (32, 64)
        down, up = getattr(a, f"{kind}_down"), getattr(a, f"{kind}_up")[0]
        A, B = down.detach(), up.detach()  # (12, 64), (32, 12)
        gA, gB = B.T @ G, G @ A.T
        torch.testing.assert_close(down.grad, gA, rtol=0, atol=tol(model, gA))
        torch.testing.assert_close(up.grad, gB, rtol=0, atol=tol(model, gB))
