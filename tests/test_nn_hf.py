"""compress_model on a Hugging Face LlamaForCausalLM (grouped-query attention), built offline
from a config: every data-aware method, the caller's model untouched, save and reload, the
same compressed model as lrkit's Llama with the same weights, perplexity and generation."""

import pytest
import torch

from lrkit.llm import Llama, LlamaConfig, generate, perplexity
from lrkit.nn import (
    FactorizedLinear,
    calibrate,
    compress_model,
    load_compressed,
    save_compressed,
)

transformers = pytest.importorskip("transformers", reason="transformers is not installed")

METHODS = ("svd", "asvd", "whiten", "fwsvd")
EPS32 = torch.finfo(torch.float32).eps
SIZES = dict(
    vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
)  # fmt: skip
N_LINEARS = 2 * 7  # q, k, v, o, gate, up, down per layer; lm_head is the output layer


def hf_llama(seed=0, tie=False):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(**SIZES, tie_word_embeddings=tie)
    return transformers.LlamaForCausalLM(cfg).eval()


def lrkit_and_hf(tmp_path):
    """lrkit's Llama with weights larger than the training init (so differences show), and
    the Hugging Face model transformers loads from its checkpoint: the same weights."""
    torch.manual_seed(0)
    cfg = LlamaConfig(**SIZES, tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
    ours = Llama(cfg).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.1)
    ours.save_pretrained(tmp_path)
    return ours, transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()


def ids(B=16, T=32, seed=1):
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_compresses_a_hugging_face_llama_and_leaves_it_alone(method):
    hf, cal = hf_llama(), ids()
    before = state(hf)
    kw = dict(calibration=cal) if method != "svd" else {}  # fwsvd: the default next-token loss
    small, report = compress_model(hf, method, param_ratio=0.5, progress=False, **kw)
    assert same_state(state(hf), before) and not hf.training
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in hf.modules())
    assert not any(isinstance(m, FactorizedLinear) for m in hf.modules())
    names = [m.name for m in report.modules]
    assert len(names) == N_LINEARS and all(m.method == method for m in report.modules)
    assert names[0] == "model.layers.0.self_attn.q_proj"
    assert type(small.lm_head) is torch.nn.Linear  # the output layer stays dense
    # half of each projection's parameters, so a bit over half of the model's (embeddings)
    assert 0.5 < report.param_ratio < 1
    with torch.no_grad():
        logits = small(cal[:2]).logits
    assert logits.shape == (2, 32, 256) and bool(torch.isfinite(logits).all())


@pytest.mark.parametrize("tie", [False, True])
def test_a_compressed_hugging_face_model_saves_and_reloads_bit_exact(tmp_path, tie):
    hf, cal = hf_llama(tie=tie), ids()
    small, report = compress_model(hf, "whiten", param_ratio=0.6, calibration=cal, progress=False)
    save_compressed(small, tmp_path, report)
    back = load_compressed(hf_llama(seed=5, tie=tie), tmp_path)  # other weights, replaced
    assert sum(isinstance(m, FactorizedLinear) for m in back.modules()) == N_LINEARS
    with torch.no_grad():
        assert torch.equal(back(cal[:2]).logits, small(cal[:2]).logits)


def truncation_amplification(model, cal, ratio):
    """1 + 2 sigma_1 / (sigma_r - sigma_{r+1}), the largest over the layers and the four
    methods, of the matrix each method truncates (W, W diag(s), W L, diag(d) W) at the rank
    ``param_ratio=ratio`` gives: by Wedin's theorem a relative change delta of that matrix
    moves its rank-r truncation by at most about delta times this."""
    stats = calibrate(model, cal, stats=("xtx", "abs_mean", "fisher"), progress=False)
    amp = 1.0
    for name, st in stats.items():
        W = model.get_submodule(name).weight.detach().double()
        m, n = W.shape
        r = max(1, int(ratio * m * n / (m + n + 1)))
        for M in (
            W,
            W * st.abs_mean.sqrt(),
            W @ torch.linalg.cholesky(st.xtx),
            st.fisher.sum(1).sqrt()[:, None] * W,
        ):
            s = torch.linalg.svdvals(M)
            amp = max(amp, 1 + 2 * float(s[0] / (s[r - 1] - s[r])))
    return amp


@pytest.mark.parametrize("ratio", [0.8, 0.5])
def test_hugging_face_and_lrkit_llamas_with_the_same_weights_compress_alike(tmp_path, ratio):
    ours, hf = lrkit_and_hf(tmp_path)
    cal, x = ids(), ids(B=4, seed=2)
    # The two float32 implementations sum in other orders: their activations and gradients
    # agree to a few eps32 per layer (tests/test_llm.py), so the statistics each collects
    # agree to about 16 eps32 relative (2 layers, a few eps32 each); Wedin's theorem turns
    # that into at most `amp` times as much relative change of each truncated weight (amp
    # ~1e3 here: the gaps of random spectra are narrow), and the logits move at most in
    # proportion to their size. That gives atol <= 8e-4; a rank one off in a single layer
    # moves the logits 4e-3 (measured), so a mismatch in the sizes or statistics shows.
    amp = truncation_amplification(ours, cal, ratio)
    with torch.no_grad():
        scale = float(ours(x).abs().max())
    atol = 16 * EPS32 * amp * scale
    for method in METHODS:
        kw = dict(calibration=cal) if method != "svd" else {}
        small, rep = compress_model(ours, method, param_ratio=ratio, progress=False, **kw)
        small_hf, rep_hf = compress_model(hf, method, param_ratio=ratio, progress=False, **kw)
        rows = [(m.name, m.rank, m.params_after) for m in rep.modules]
        assert rows == [(m.name, m.rank, m.params_after) for m in rep_hf.modules]
        assert len(rows) == N_LINEARS
        with torch.no_grad():
            torch.testing.assert_close(small(x), small_hf(x).logits, rtol=0, atol=atol)
        # perplexity reads a Hugging Face output's .logits: the same bits per token
        text = x.flatten()
        a, b = perplexity(small, text, context=32), perplexity(small_hf, text, context=32)
        assert a.tokens == b.tokens == text.numel() - 1
        # nll is a mean of log-softmax terms, each within 2 atol of the other model's
        assert abs(a.nll - b.nll) <= 2 * atol


def test_generation_on_compressed_models(tmp_path):
    ours, hf = lrkit_and_hf(tmp_path)
    cal = ids()
    small, _ = compress_model(ours, "whiten", param_ratio=0.6, calibration=cal, progress=False)
    small_hf, _ = compress_model(hf, "whiten", param_ratio=0.6, calibration=cal, progress=False)
    text = generate(small, "def f(x):", max_new_tokens=12, temperature=0.8, seed=0)
    assert isinstance(text, str) and text.startswith("def f(x):")
    out = generate(small, cal[0, :8], max_new_tokens=12, temperature=0)
    assert out.shape == (20,) and torch.equal(out[:8], cal[0, :8])
    # lrkit.llm.generate drives lrkit's KVCache; a Hugging Face model generates with its own
    # .generate (its cache, its sampling), which runs on the factorized layers unchanged
    with torch.no_grad():
        hf_out = small_hf.generate(cal[:1, :8], max_new_tokens=12, do_sample=False)
    assert hf_out.shape == (1, 20) and torch.equal(hf_out[0, :8], cal[0, :8])


def test_fisher_weighting_works_on_a_frozen_model():
    hf = hf_llama().requires_grad_(False)
    small, _ = compress_model(hf, "fwsvd", param_ratio=0.5, calibration=ids(), progress=False)
    assert not any(p.requires_grad for p in hf.parameters())  # the flags given back
