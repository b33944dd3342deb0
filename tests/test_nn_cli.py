"""python -m lrkit.nn.compress: a checkpoint directory in, a compressed model and its report
out, on a tiny lrkit Llama and a tiny Hugging Face model written to a temporary folder."""

import json
import math
import re
import subprocess
import sys

import pytest
import torch

from lrkit.llm import Llama, LlamaConfig, perplexity
from lrkit.nn import compress_model, load_compressed
from lrkit.nn.compress.__main__ import main

CONTEXT = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny lrkit Llama checkpoint and two small text files."""
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=CONTEXT,
    )  # fmt: skip
    Llama(cfg).save_pretrained(root / "ckpt")
    lines = [f"def f{i}(x):\n    return x * {i} + {i * i % 7}\n" for i in range(200)]
    (root / "cal.txt").write_text("".join(lines[:100]))
    (root / "eval.txt").write_text("".join(lines[100:130]))
    return root


def numbers(text: str, label: str) -> list[float]:
    return [float(v) for v in re.findall(rf"^{label}\s+([-+\d.]+) bits/byte", text, re.M)]


def test_compresses_an_lrkit_checkpoint_saves_it_and_prints_the_numbers(files, capsys):
    out = files / "out"
    code = main([
        str(files / "ckpt"), "--method", "whiten", "--param-ratio", "0.6",
        "--calibration", str(files / "cal.txt"), "--calibration-tokens", "512",
        "--context", str(CONTEXT), "--eval", str(files / "eval.txt"), "--out", str(out),
        "--no-progress",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "calibration: " in printed and "8 windows of 64 tokens" in printed
    report = json.loads((out / "report.json").read_text())
    assert len(report["modules"]) == 2 * 7 and {m["method"] for m in report["modules"]} == {
        "whiten"
    }
    kept = report["params_after"] / report["params_before"]
    assert f"parameters kept: {kept:.3f}" in printed

    # The saved model is what compress_model gives on the same windows, bit for bit.
    dense = Llama.from_pretrained(files / "ckpt")
    back = load_compressed(dense, out)
    data = (files / "cal.txt").read_bytes()
    cal = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()[:512].reshape(8, CONTEXT)
    with pytest.warns(UserWarning, match="not positive definite"):  # 512 tokens, width 32
        same, _ = compress_model(dense, "whiten", param_ratio=0.6, calibration=cal.split(8),
                                 allocation="uniform", progress=False)  # fmt: skip
    x = cal[:2]
    with torch.no_grad():
        assert torch.equal(back(x), same(x))

    # The printed bits per byte are perplexity's, to the 4 decimals printed.
    text = (files / "eval.txt").read_text()
    ppl = {m: perplexity(m, text, context=CONTEXT, stride=CONTEXT // 2) for m in (dense, back)}
    [d], [c] = numbers(printed, "dense"), numbers(printed, "compressed")
    assert abs(d - ppl[dense].bits_per_byte) <= 5e-5 and abs(c - ppl[back].bits_per_byte) <= 5e-5
    assert f"{ppl[back].tokens:,} tokens scored" in printed
    [diff] = re.findall(r"^difference\s+([-+\d.]+) bits/byte", printed, re.M)
    assert abs(float(diff) - (c - d)) <= 1e-4  # each printed value rounds by 5e-5


def test_sequential_is_compress_models_sequential_mode(files, capsys):
    out = files / "seq"
    code = main([
        str(files / "ckpt"), "--method", "asvd", "--param-ratio", "0.5", "--sequential",
        "--calibration", str(files / "cal.txt"), "--calibration-tokens", "512",
        "--context", str(CONTEXT), "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    dense = Llama.from_pretrained(files / "ckpt")
    data = (files / "cal.txt").read_bytes()
    cal = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()[:512].reshape(8, CONTEXT)
    same, _ = compress_model(dense, "asvd", param_ratio=0.5, calibration=cal.split(8),
                             sequential=True, progress=False)  # fmt: skip
    with torch.no_grad():
        assert torch.equal(load_compressed(dense, out)(cal[:2]), same(cal[:2]))


def test_rank_without_calibration_and_a_randomized_method(files, capsys):
    for method in ("svd", "rsvd"):
        out = files / f"out-{method}"
        assert main([str(files / "ckpt"), "--method", method, "--rank", "4", "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
        report = json.loads((out / "report.json").read_text())
        assert {m["rank"] for m in report["modules"]} == {4}
    assert "evaluation" not in capsys.readouterr().out


def test_bad_arguments_are_refused_with_a_clear_message(files, capsys):
    ckpt, cal, out = str(files / "ckpt"), str(files / "cal.txt"), str(files / "bad")
    cases = [
        ([str(files / "nowhere"), "--rank", "4"], "is not a directory with a config.json"),
        ([ckpt, "--param-ratio", "1.5"], r"--param-ratio: must be in \(0, 1\]; got 1.5"),
        ([ckpt, "--param-ratio", "nan"], "--param-ratio: must be in"),
        ([ckpt, "--rank", "0"], "--rank: must be an integer >= 1; got 0"),
        ([ckpt, "--rank", "4", "--param-ratio", "0.5"], "not allowed with argument"),
        ([ckpt, "--method", "whiten", "--rank", "4"], "needs --calibration TEXT_FILE"),
        ([ckpt, "--method", "kron", "--rank", "4"], "invalid choice: 'kron'"),
        ([ckpt, "--rank", "4", "--calibration", "missing.txt"], "--calibration 'missing.txt'"),
        ([ckpt, "--rank", "40"], r"rank \(=40\) for module 'model.layers.0.self_attn.q_proj'"),
        ([ckpt, "--method", "cur", "--param-ratio", "0.5"], "param_ratio sizes the low-rank"),
        ([ckpt, "--param-ratio", "0.5", "--allocation", "bogus", "--calibration", cal],
         r"--allocation \(='bogus'\) must be one of 'uniform', 'whiten'"),
        ([ckpt, "--rank", "4", "--calibration", cal, "--context", str(2 * CONTEXT)],
         r"--context \(=128\) must be in 2..64"),
        ([ckpt, "--rank", "4", "--calibration", cal, "--calibration-tokens", "10"],
         "a window needs 64"),
    ]  # fmt: skip
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--out", out, "--no-progress"])
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert re.search(message, err), (argv, err)
    assert not (files / "bad").exists()  # nothing written


def hf_checkpoint(path, text):
    """A tiny Hugging Face Llama with a byte-level BPE tokenizer trained here, offline."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator([text], trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(path)
    cfg = transformers.LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
        bos_token_id=0, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    return transformers, fast


def test_compresses_a_hugging_face_checkpoint(files, capsys):
    ckpt, out = files / "hf", files / "hf-out"
    transformers, fast = hf_checkpoint(ckpt, (files / "cal.txt").read_text())
    code = main([
        str(ckpt), "--method", "fwsvd", "--param-ratio", "0.5",
        "--calibration", str(files / "cal.txt"), "--calibration-tokens", "256",
        "--eval", str(files / "eval.txt"), "--out", str(out), "--no-progress",
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "(LlamaForCausalLM, " in printed
    dense = transformers.AutoModelForCausalLM.from_pretrained(ckpt, local_files_only=True)
    back = load_compressed(dense, out)
    assert sum(type(m).__name__ == "FactorizedLinear" for m in back.modules()) == 2 * 7

    # bits per token from perplexity on the tokenizer's ids; bits per byte: the same total
    # over the UTF-8 bytes the scored tokens cover (the text less its first token, BOS here)
    text = (files / "eval.txt").read_text()
    ids = torch.tensor(fast(text)["input_ids"])
    assert int(ids[0]) == 0  # BOS: every byte of the text is scored
    ppl = perplexity(back, ids, context=CONTEXT, stride=CONTEXT // 2)
    per_token = ppl.nll / math.log(2)
    per_byte = per_token * ppl.tokens / len(text.encode())
    [line] = re.findall(r"^compressed .*$", printed, re.M)
    b, t = map(float, re.findall(r"([\d.]+) bits/(?:byte|token)", line))
    assert abs(b - per_byte) <= 5e-5 and abs(t - per_token) <= 5e-5
    assert 1 < per_token / per_byte  # BPE tokens hold more than a byte each


def test_help_runs_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "lrkit.nn.compress", "--help"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for flag in ("CHECKPOINT_DIR", "--param-ratio", "--calibration", "--eval", "--allocation"):
        assert flag in out.stdout
