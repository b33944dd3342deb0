"""ByteEncoder and its masked-byte training: masks, bidirectionality, a falling loss, resuming."""

import pytest
import torch

from lrkit.nn import (
    ByteEncoder,
    LinformerSelfAttention,
    evaluate_encoder,
    mask_bytes,
    masked_byte_loss,
    train_encoder,
)
from lrkit.nn.encoder import IGNORE, MASK

# bytes with structure to learn: a repeated text, as the corpus of lrkit.llm would give
TEXT = b"def f(x):\n    return x * x + 1\n\nclass A:\n    pass\n" * 60
DATA = torch.frombuffer(bytearray(TEXT), dtype=torch.uint8)
SMALL = dict(dim=32, layers=1, heads=2, seq_len=32, k=8)


def ids(B=3, n=32, seed=0):
    return torch.randint(0, 256, (B, n), generator=torch.Generator().manual_seed(seed))


def test_mask_bytes_masks_the_rate_in_every_row_and_keeps_the_input():
    x = ids()
    x0 = x.clone()
    inputs, targets = mask_bytes(x, rate=0.15, seed=0)
    masked = inputs == MASK
    assert masked.sum(dim=1).tolist() == [round(0.15 * 32)] * 3  # 5 in each row
    assert torch.equal(masked, targets != IGNORE)
    assert torch.equal(targets[masked], x[masked]) and torch.equal(inputs[~masked], x[~masked])
    assert torch.equal(x, x0)  # the caller's ids are not changed
    again = mask_bytes(x, rate=0.15, seed=0)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], targets)
    assert (mask_bytes(x[:, :2], rate=0.01, seed=0)[0] == MASK).sum(dim=1).tolist() == [1] * 3


@pytest.mark.parametrize("attention", ["full", "linformer"])
def test_the_encoder_is_bidirectional_and_seeded(attention, device):
    model = ByteEncoder(**SMALL, attention=attention, seed=0).to(device)
    x = ids().to(device)
    later = x.clone()
    later[:, 20:] = (later[:, 20:] + 1) % 256
    moved = (model(later)[:, :20] - model(x)[:, :20]).abs().amax(dim=-1)
    assert bool((moved > 0).all())  # earlier outputs see later bytes: not causal
    twin = ByteEncoder(**SMALL, attention=attention, seed=0).to(device)
    assert torch.equal(model(x), twin(x))
    kinds = {type(b.attn).__name__ for b in model.blocks}
    assert (kinds == {"LinformerSelfAttention"}) == (attention == "linformer")


def test_the_global_random_state_is_left_alone():
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    ByteEncoder(**SMALL, attention="linformer", seed=0)
    assert torch.equal(torch.rand(3), want)


@pytest.mark.parametrize("attention", ["full", "linformer"])
def test_the_held_out_loss_falls_in_a_few_steps(attention):
    model = ByteEncoder(**SMALL, attention=attention, seed=0)
    before = evaluate_encoder(model, DATA, batches=2, batch_size=8)
    # at init every byte is about equally likely (logits ~ 0.02 sqrt(dim) = 0.1): ln 256 = 5.55
    assert abs(before - 5.55) < 0.5
    history = train_encoder(
        model, DATA, steps=30, batch_size=8, lr=3e-3, warmup=3, heldout=DATA, eval_every=15,
        progress=False,
    )  # fmt: skip
    assert history["step"] == 30 and len(history["train_loss"]) == 30
    assert [s for s, _ in history["heldout"]] == [15, 30]
    assert history["heldout"][-1][1] < before - 1.0  # 30 steps learn the byte frequencies
    assert history["seconds_per_step"] > 0


def test_a_resumed_run_equals_one_that_never_stopped(tmp_path):
    kw = dict(steps=8, batch_size=4, lr=3e-3, warmup=2, eval_every=4, progress=False)
    straight = ByteEncoder(**SMALL, attention="linformer", seed=0)
    h1 = train_encoder(straight, DATA, **kw)
    first = ByteEncoder(**SMALL, attention="linformer", seed=0)
    train_encoder(first, DATA, out=tmp_path, stop_after=4, **kw)
    resumed = ByteEncoder(**SMALL, attention="linformer", seed=1)  # other weights: replaced
    h2 = train_encoder(resumed, DATA, out=tmp_path, **kw)
    assert h2["step"] == 8 and h2["train_loss"] == h1["train_loss"]
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    other = ByteEncoder(**{**SMALL, "dim": 16}, attention="linformer", seed=0)
    with pytest.raises(ValueError, match=r"the checkpoint in .* is of another run"):
        train_encoder(other, DATA, out=tmp_path, **kw)


def test_masked_byte_loss_is_differentiable_and_bad_input_is_refused():
    model = ByteEncoder(**SMALL, seed=0)
    masked_byte_loss(model, ids(), seed=0).backward()
    assert model.embed.weight.grad is not None
    with pytest.raises(ValueError, match=r"attention \(='sparse'\) must be one of"):
        ByteEncoder(attention="sparse")
    with pytest.raises(ValueError, match=r"heads \(=3\) must divide dim \(=32\)"):
        ByteEncoder(dim=32, heads=3)
    with pytest.raises(ValueError, match=r"ids must be bytes, in \[0, 255\]; got \[0, 300\]"):
        mask_bytes(torch.tensor([[0, 300]]))
    with pytest.raises(TypeError, match=r"ids must be an integer torch.Tensor"):
        mask_bytes(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"n \(=33\), the length of ids, must be in \[1, 32\]"):
        model(ids(n=33))
    with pytest.raises(ValueError, match=r"data has 20 bytes; it needs more than seq_len = 32"):
        train_encoder(model, DATA[:20], steps=2, warmup=1, progress=False)
    with pytest.raises(ValueError, match=r"warmup \(=10\) must be <= steps = 2"):
        train_encoder(model, DATA, steps=2, progress=False)
    assert isinstance(
        ByteEncoder(**SMALL, attention="linformer").blocks[0].attn, LinformerSelfAttention
    )
