"""Fine-tuning a compressed language model: the losses it computes, what it trains, and that
it leaves the caller's models alone."""

import pytest
import torch

from lrkit.llm import Llama, LlamaConfig
from lrkit.nn import FactorizedLinear, compress_model, finetune, next_token_loss


def setup(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      bos_token_id=0, eos_token_id=1)  # fmt: skip
    dense = Llama(cfg).eval()
    ids = torch.randint(0, 40, (16, 24), generator=torch.Generator().manual_seed(seed))
    small, _ = compress_model(dense, "svd", rank=4, progress=False)
    return dense, small, ids


def test_first_losses_are_the_cross_entropy_and_the_kl():
    dense, small, ids = setup()
    seen = []
    _, ce = finetune(small, lambda s: ids[:4], steps=1, lr=1e-9, kd_weight=0.0, progress=False)
    with torch.no_grad():
        expect = float(next_token_loss(small, ids[:4]))
    assert float(ce[0]) == pytest.approx(expect, rel=1e-5)  # float32 logits, mean over tokens
    # the model as its own teacher: KL(p || p) = 0 up to float32 rounding of log-softmax
    _, kl = finetune(small, lambda s: ids[:4], steps=1, lr=1e-9, teacher=small,
                     callback=lambda *a: seen.append(a[0]), progress=False)  # fmt: skip
    assert abs(float(kl[0])) < 1e-5 and seen == [0]


def test_training_lowers_the_loss_and_leaves_the_callers_models_alone():
    dense, small, ids = setup()
    before = {k: v.clone() for k, v in small.state_dict().items()}
    teacher_before = {k: v.clone() for k, v in dense.state_dict().items()}
    trained, losses = finetune(small, ids, steps=40, lr=1e-2, batch_size=16, teacher=dense,
                               progress=False)  # fmt: skip
    # the same batch (all 16 windows) every step: distillation must fit it better
    assert float(losses[-5:].mean()) < 0.5 * float(losses[:5].mean())
    assert all(torch.equal(v, before[k]) for k, v in small.state_dict().items())
    assert all(torch.equal(v, teacher_before[k]) for k, v in dense.state_dict().items())
    assert not trained.training and all(p.grad is None for p in trained.parameters())
    # only the factors moved; the embeddings and norms are as they were
    after = trained.state_dict()
    for k, v in before.items():
        moved = not torch.equal(after[k], v)
        inside = any(k.startswith(n + ".") for n, m in trained.named_modules()
                     if isinstance(m, FactorizedLinear))  # fmt: skip
        assert moved == inside or (inside and not v.is_floating_point()), k
    again, losses2 = finetune(small, ids, steps=40, lr=1e-2, batch_size=16, teacher=dense,
                              progress=False)  # fmt: skip
    torch.testing.assert_close(losses2, losses, rtol=0, atol=0)  # same seed, same run


def test_bad_arguments():
    dense, small, ids = setup()
    with pytest.raises(ValueError, match="found no factorized layer"):
        finetune(dense, ids, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"batch_size \(=32\) must be <= the 16 windows"):
        finetune(small, ids, steps=1, batch_size=32, progress=False)
    with pytest.raises(TypeError, match="data must be a tensor of token windows"):
        finetune(small, ids[0], steps=1, progress=False)
    with pytest.raises(ValueError, match="mixes in a teacher"):
        finetune(small, ids, steps=1, kd_weight=0.5, progress=False)
