"""The small Llama: Hugging Face agreement, checkpoints, KV cache, GQA, tokenizer, training."""

import csv
import json

import pytest
import torch

from lrkit.llm import ByteTokenizer, KVCache, Llama, LlamaConfig, generate, perplexity
from lrkit.llm import train as train_mod
from lrkit.llm.data import DATASETS, load_ids

from conftest import byte_ids, tiny_llama


def tiny(kv_heads=2, tie=True, seed=0, context=64):
    return tiny_llama(heads=4, kv_heads=kv_heads, tie=tie, seed=seed, context=context)


def ids(B=2, T=40, seed=1):
    return byte_ids(B, T, seed)


@pytest.mark.parametrize("tie", [True, False])
def test_logits_agree_with_transformers(tmp_path, tie):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    model = tiny(tie=tie)
    model.save_pretrained(tmp_path)
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    x = ids()
    with torch.no_grad():
        # Same float32 network, other kernels: they differ by summation order, a few eps32 of
        # |logits| (< 0.4 here) per layer; 1e-4 is ~2000 eps32 of that (measured equal).
        torch.testing.assert_close(model(x), hf(x).logits, rtol=0, atol=1e-4)
    # and the other way: a checkpoint written by transformers loads here
    hf.save_pretrained(tmp_path / "hf")
    back = Llama.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=1e-5)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == 2
    loaded = Llama.from_pretrained(tmp_path)
    for (n1, p1), (n2, p2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2)
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight  # still tied
    with torch.no_grad():
        assert torch.equal(loaded(ids()), model(ids()))


def test_kv_cache_matches_full_recompute():
    model = tiny()
    x = ids(T=30)
    with torch.no_grad():
        full = model(x)
        cache = KVCache()
        parts = [model(x[:, :10], cache)] + [model(x[:, t : t + 1], cache) for t in range(10, 30)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    assert len(cache) == 30


def test_generation_with_cache_equals_without():
    model = tiny()
    prompt = ids(B=1, T=8)[0]
    a = generate(model, prompt, max_new_tokens=20, temperature=0)
    b = generate(model, prompt, max_new_tokens=20, temperature=0, use_cache=False)
    assert torch.equal(a, b) and a.shape == (28,)
    s1 = generate(model, "def f(", max_new_tokens=10, temperature=1.0, top_k=20, seed=3)
    s2 = generate(model, "def f(", max_new_tokens=10, temperature=1.0, top_k=20, seed=3)
    assert isinstance(s1, str) and s1 == s2 and s1.startswith("def f(")


def test_grouped_query_attention_shrinks_the_cache():
    caches = {}
    for kv in (4, 2, 1):
        model = tiny(kv_heads=kv)
        cache = KVCache()
        with torch.no_grad():
            model(ids(T=16), cache)
        caches[kv] = cache.nbits
        assert cache.layers[0][0].shape == (2, kv, 16, 16)
    assert caches[4] == 2 * caches[2] == 4 * caches[1]
    with pytest.raises(ValueError, match=r"num_attention_heads \(=4\) must be a multiple"):
        LlamaConfig(num_attention_heads=4, num_key_value_heads=3)


def test_prompt_longer_than_context_is_truncated_with_warning():
    model = tiny(context=32)
    with pytest.warns(UserWarning, match="keeping the last 22 prompt tokens"):
        out = generate(model, ids(B=1, T=40)[0], max_new_tokens=10, temperature=0)
    assert out.shape == (32,)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings"):
        model(ids(T=33))


def test_tokenizer_round_trips_any_bytes():
    tok = ByteTokenizer()
    for text in ("hello", "héllo ✓ 𝄞", ""):
        assert tok.decode(tok.encode(text)) == text
    raw = bytes([0xFF, 0xFE, 0x41, 0x80])  # not UTF-8
    assert tok.decode_bytes(tok.encode(raw)) == raw
    assert tok.encode(tok.decode(list(raw))) == list(raw)
    assert tok.encode("a", bos=True, eos=True) == [256, 97, 257]


def test_perplexity_single_window_equals_direct_loss():
    model = tiny()
    x = ids(B=1, T=50)[0]
    with torch.no_grad():
        logits = model(x[None, :-1])
        direct = torch.nn.functional.cross_entropy(logits[0], x[1:]).item()
    res = perplexity(model, x, context=50)
    assert res.tokens == 49 and res.nll == pytest.approx(direct, rel=1e-5)
    assert res.bits_per_byte == pytest.approx(direct / torch.log(torch.tensor(2.0)).item())
    slid = perplexity(model, x, context=20, stride=7)
    assert slid.tokens == 49  # every token after the first scored exactly once
    with pytest.raises(ValueError, match=r"stride \(=30\) must be in 1..20"):
        perplexity(model, x, context=20, stride=30)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        Llama.from_pretrained(tmp_path)
    model = tiny()
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        Llama.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "hidden_size": 32, "head_dim": 8}))
    with pytest.raises(
        ValueError, match=r"model.embed_tokens.weight: checkpoint shape \(258, 64\)"
    ):
        Llama.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(KeyError, match="lacks tensor.*model.layers.2"):
        Llama.from_pretrained(tmp_path)


def _run(tmp_path, name, *extra):
    out = tmp_path / name
    train_mod.main(["--out", str(out), "--smoke", *extra])
    return out


def test_training_smoke_loss_falls(tmp_path):
    out = _run(tmp_path, "a")
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 12
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) - 0.3
    bpb = [float(r["heldout_bpb"]) for r in rows if r["heldout_bpb"]]
    assert bpb[-1] < bpb[0]
    assert Llama.from_pretrained(out).config.num_hidden_layers == 2


def test_resumed_run_matches_uninterrupted(tmp_path):
    whole = _run(tmp_path, "whole")
    _run(tmp_path, "split", "--stop-after", "6")
    part = _run(tmp_path, "split")  # resumes at step 6
    a, b = Llama.from_pretrained(whole), Llama.from_pretrained(part)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    steps = [int(r["step"]) for r in csv.DictReader(open(part / "log.csv"))]
    assert steps == list(range(1, 13))  # one row per step across the interruption
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        train_mod.main(["--out", str(part), "--smoke", "--seed", "1"])


def test_corpus_parts_are_disjoint_and_documented():
    manifest = json.loads((DATASETS / "pystdlib" / "manifest.json").read_text())
    parts = manifest["parts"]
    files = [set(p["files"]) for p in parts.values()]
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    assert load_ids("heldout").numel() == parts["heldout"]["bytes"]


def test_shipped_model_matches_its_training_log():
    from lrkit.llm import load_tiny

    path = DATASETS / "tiny-llama"
    state = json.loads((path / "trainer_state.json").read_text())
    model, tok = load_tiny()
    assert model.config.vocab_size == tok.vocab_size
    res = perplexity(model, load_ids("heldout")[: state["eval_tokens"]], batch_size=8)
    # Recorded on the training machine; here only float32 summation orders differ, which move
    # the mean of 65536 per-token losses (~1 bit each) by ~1e-6 at most (measured 1.5e-8).
    assert res.bits_per_byte == pytest.approx(state["heldout_bpb"], abs=1e-4)
    rows = [r for r in csv.DictReader(open(path / "log.csv")) if int(r["step"]) == state["step"]]
    assert float(rows[0]["heldout_bpb"]) == pytest.approx(state["heldout_bpb"], abs=1e-4)


def test_generate_and_perplexity_check_their_arguments():
    model = tiny()
    with pytest.raises(ValueError, match=r"top_k \(=0\) must be >= 1"):
        generate(model, "ab", max_new_tokens=2, top_k=0)
    with pytest.raises(TypeError, match="top_k must be an int"):
        generate(model, "ab", max_new_tokens=2, top_k=True)
    top1 = generate(model, [1, 2], max_new_tokens=3, top_k=1, seed=0)  # top_k=1 is greedy
    assert torch.equal(top1, generate(model, [1, 2], max_new_tokens=3, temperature=0))
    assert generate(model, [1, 2], max_new_tokens=3, top_k=258, seed=0).shape == (5,)
    with pytest.raises(ValueError, match=r"top_k \(=259\) must be in 1..258"):  # the body's bound
        generate(model, "ab", max_new_tokens=2, top_k=259)
    with pytest.raises(ValueError, match=r"prompt holds token id 258; ids must be in 0..257"):
        generate(model, [1, 258], max_new_tokens=2)
    with pytest.raises(ValueError, match=r"token id -1"):
        generate(model, torch.tensor([-1, 2]), max_new_tokens=2)
    with pytest.raises(TypeError, match=r"integer token ids; got dtype torch.float64"):
        generate(model, [1.7, 2.0], max_new_tokens=2)
    with pytest.raises(ValueError, match=r"temperature \(=nan\) must be a finite number"):
        generate(model, "ab", max_new_tokens=2, temperature=float("nan"))
    x = ids(1, 40)[0]
    with pytest.raises(ValueError, match=r"batch_size \(=0\) must be >= 1"):
        perplexity(model, x, batch_size=0)
    with pytest.raises(ValueError, match=r"context \(=0\) must be >= 2"):
        perplexity(model, x, context=0)
    with pytest.raises(ValueError, match=r"context \(=65\) must be in 2..64"):  # the body's bound
        perplexity(model, x, context=65)
    with pytest.raises(ValueError, match=r"stride \(=9\) must be in 1..8"):
        perplexity(model, x, context=8, stride=9)
    with pytest.raises(ValueError, match=r"text_or_ids holds token id 300"):
        perplexity(model, [1, 300])
    with pytest.raises(TypeError, match=r"integer token ids"):
        perplexity(model, x.float())
    assert generate(model, [], max_new_tokens=2, temperature=0)[0] == 256  # BOS, then 2 more
    # Big-endian ids (numpy) are fine; context=2 scores each token from the one before it.
    assert perplexity(model, x.numpy().astype(">i8"), context=2).tokens == 39


def test_tokenizer_never_fails_on_lone_surrogates():
    tok = ByteTokenizer()
    assert tok.encode("\ud800") == list("\ud800".encode("utf-8", "surrogatepass"))
    raw = bytes(range(256))
    assert tok.encode(tok.decode(list(raw)) + "\ud800") == list(raw) + [0xED, 0xA0, 0x80]
    with pytest.raises(TypeError, match="text must be a str or bytes"):
        tok.encode(5)


def test_config_checks_keys_and_values(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match=r"config.json lacks key\(s\) vocab_size, hidden_size"):
        Llama.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"rms_norm_eps \(=-1\) must be a finite number > 0"):
        LlamaConfig(rms_norm_eps=-1)
    with pytest.raises(ValueError, match=r"hidden_size \(=0\) must be >= 1"):
        LlamaConfig(hidden_size=0)
    with pytest.raises(TypeError, match="num_hidden_layers must be an int"):
        LlamaConfig(num_hidden_layers=2.0)
    with pytest.raises(ValueError, match=r"bos_token_id \(=300\) must be None or an integer"):
        LlamaConfig(bos_token_id=300)
    # A full config with a bad eps is refused at load, before any tensor is read.
    model = tiny()
    model.save_pretrained(tmp_path / "ok")
    cfg = json.loads((tmp_path / "ok" / "config.json").read_text())
    (tmp_path / "ok" / "config.json").write_text(json.dumps({**cfg, "rms_norm_eps": -1}))
    with pytest.raises(ValueError, match="rms_norm_eps"):
        Llama.from_pretrained(tmp_path / "ok")
