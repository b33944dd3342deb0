"""FactorizedLinear: any matrix result as a layer, checked against its own dense matrix."""

import math

import pytest
import torch
from torch import nn

import lrkit
from lrkit.nn import FactorizedLinear

from conftest import DEVICES

# method name and keyword arguments for a 32 x 32 weight (out = in = 32)
FROM_LINEAR = {
    "svd": dict(rank=6),
    "rsvd": dict(rank=6, seed=0),
    "lplr": dict(rank=6, bits_left=4, bits_right=8, seed=0),
    "cur": dict(rank=6, seed=0),
    "kron": dict(left_shape=(4, 8), rank=2),
    "monarch": dict(nblocks=4),
    "butterfly": dict(),
}


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def linear(device, dtype=torch.float32, out=32, inp=32, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(inp, out, bias=bias).to(device=device, dtype=dtype)


def rel(a, b):
    return float(torch.linalg.vector_norm((a - b).double()) / torch.linalg.vector_norm(b.double()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("method", FROM_LINEAR)
def test_forward_and_gradients_equal_the_dense_layer_of_the_factorization(method, dtype, device):
    lin = linear(device, torch.float32)
    layer = FactorizedLinear.from_linear(lin, method, **FROM_LINEAR[method]).to(dtype=dtype)
    assert layer.factorization.dtype == dtype
    W = layer.factorization.to_dense().detach().double()
    x = torch.randn(3, 5, 32, device=device, dtype=dtype, requires_grad=True)
    y = layer(x)
    assert y.shape == (3, 5, 32) and y.dtype == dtype
    ref = x.detach().double() @ W.T + layer.bias.detach().double()
    # rounding of a product of a few factors of size 32: ~sqrt(32) eps per stage (Higham &
    # Mary's probabilistic bound), relative to ||x|| ||W||_2 + ||b||; 4 stages allowed
    eps = torch.finfo(dtype).eps
    scale = float(
        torch.linalg.vector_norm(x.detach().double()) * torch.linalg.matrix_norm(W, ord=2)
        + torch.linalg.vector_norm(layer.bias.detach().double()) * math.sqrt(15)
    )
    assert (
        float(torch.linalg.vector_norm(y.detach().double() - ref))
        <= 4 * math.sqrt(32) * eps * scale
    )
    # gradients to x and to every parameter, against the dense path through to_dense()
    G = torch.randn_like(y)
    gx, *gp = torch.autograd.grad((y * G).sum(), [x, *layer.parameters()])
    fact = layer.factorization
    x2 = x.detach().clone().requires_grad_()
    y2 = x2 @ fact.to_dense().T + layer.bias
    gx2, *gp2 = torch.autograd.grad((y2 * G).sum(), [x2, *layer.parameters()], allow_unused=True)
    for a, b in zip([gx, *gp], [gx2, *gp2], strict=True):
        assert b is not None
        # the same products summed in another order: a couple of stages of sqrt(L) eps each,
        # L the number of terms behind one gradient entry (B out in / entries, at least 32;
        # a tensor-wide quantization scale sums over all B out in of them)
        L = max(32, 15 * 32 * 32 // a.numel())
        assert rel(a, b) <= 2 * math.sqrt(L) * eps


@pytest.mark.parametrize("method", FROM_LINEAR)
def test_parameters_and_buffers_come_from_the_factorization(method):
    layer = FactorizedLinear.from_linear(linear("cpu"), method, **FROM_LINEAR[method])
    fact = layer.factorization
    floats = sum(p.numel() for n, p in layer.named_parameters() if n != "bias")
    assert floats == sum(t.numel() for t, _, _ in fact._leaves() if t.is_floating_point())
    ints = [b for _, b in layer.named_buffers()]
    assert all(not b.is_floating_point() for b in ints)
    assert layer.num_params == fact.num_params + 32
    assert layer.nbits == fact.nbits + 32 * 32


def test_quantized_layer_trains_its_scales_and_keeps_its_codes():
    layer = FactorizedLinear.from_linear(linear("cpu"), "lplr", **FROM_LINEAR["lplr"])
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"L_ranges", "R_ranges", "bias"}
    codes = {n: b.clone() for n, b in layer.named_buffers()}
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(8, 32)
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    layer(x).square().sum().backward()
    opt.step()
    for n, p in layer.named_parameters():
        assert not torch.equal(p, before[n]), n  # every trainable part moved
    for n, b in layer.named_buffers():
        assert torch.equal(b, codes[n]), n  # codes did not


def test_exact_low_rank_weight_is_reproduced():
    lin = linear("cpu", torch.float64, out=20, inp=30)
    A, _ = lrkit.matrix_with_spectrum(20, 30, torch.arange(4, 0, -1.0), seed=0), None
    with torch.no_grad():
        lin.weight.copy_(A)
    layer = FactorizedLinear.from_linear(lin, "svd", rank=4)
    x = torch.randn(7, 30, dtype=torch.float64)
    # exact rank 4: the truncation drops nothing, only rounding (eps times the size) remains
    torch.testing.assert_close(layer(x), lin(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_to_linear_round_trip(bias, device):
    lin = linear(device, bias=bias)
    layer = FactorizedLinear.from_linear(lin, "svd", rank=32)  # full rank: exact
    dense = layer.to_linear()
    assert isinstance(dense, nn.Linear) and dense.weight.device == lin.weight.device
    assert (dense.bias is None) == (not bias)
    x = torch.randn(4, 32, device=device)
    torch.testing.assert_close(dense(x), layer(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense.weight, lin.weight, rtol=0, atol=1e-5)  # float32 SVD


def test_module_moves_casts_and_saves():
    layer = FactorizedLinear.from_linear(linear("cpu"), "lplr", **FROM_LINEAR["lplr"])
    x = torch.randn(4, 32)
    y = layer(x)
    wide = layer.to(torch.float64)
    assert wide.L_codes.dtype == torch.uint8 and wide.L_ranges.dtype == torch.float64
    torch.testing.assert_close(wide(x.double()).float(), y, rtol=1e-6, atol=1e-6)
    state = layer.state_dict()
    fresh = FactorizedLinear.from_linear(linear("cpu", seed=1), "lplr", **FROM_LINEAR["lplr"])
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), layer(x))


def test_from_linear_does_not_change_the_layer_or_the_result():
    lin = linear("cpu")
    before = lin.weight.detach().clone()
    fact = lrkit.truncated_svd(lin.weight.detach(), 4)
    U = fact.U.clone()
    layer = FactorizedLinear(fact, lin.bias)
    with torch.no_grad():
        layer.U.add_(1.0)
    assert torch.equal(fact.U, U) and torch.equal(lin.weight, before)
    FactorizedLinear.from_linear(lin, "svd", rank=4)
    assert torch.equal(lin.weight, before)


def test_trained_from_scratch_layers_match_nn_linear_scale():
    # the init keeps nn.Linear's output variance, 1/3 of the input's (see the docstrings);
    # over 256 x 4096 outputs the sample variance is within a few percent of its mean
    x = torch.randn(4096, 256, generator=torch.Generator().manual_seed(0))
    for layer in (
        FactorizedLinear.low_rank(256, 256, 32, bias=False, seed=0),
        FactorizedLinear.monarch(256, 256, 16, bias=False, seed=0),
    ):
        with torch.no_grad():
            assert float(layer(x).var()) == pytest.approx(1 / 3, rel=0.15)
    assert FactorizedLinear.low_rank(8, 6, 3, seed=1).factorization.rank == 3


def test_bad_input_is_refused_clearly():
    lin = linear("cpu")
    with pytest.raises(ValueError, match="method \\(='nope'\\) must be one of"):
        FactorizedLinear.from_linear(lin, "nope")
    with pytest.raises(TypeError, match="must be a torch.nn.Linear"):
        FactorizedLinear.from_linear(nn.Conv2d(1, 1, 1), "svd", rank=1)
    with pytest.raises(ValueError, match="a factorization of shape \\(32, 32\\) is needed"):
        FactorizedLinear.from_linear(lin, lambda W: lrkit.truncated_svd(W[:4], 2))
    with pytest.raises(ValueError, match=r"rank \(=9\) must be <= min\(in_features"):
        FactorizedLinear.low_rank(8, 10, 9)
    with pytest.raises(ValueError, match=r"nblocks \(=3\) must divide"):
        FactorizedLinear.monarch(8, 8, 3)
    with pytest.raises(TypeError, match="2-D lrkit factorization"):
        FactorizedLinear(torch.ones(3, 3))


def test_ranges_stored_narrower_than_their_dtype_stay_fixed():
    lin = linear("cpu")
    kw = dict(rank=6, bits_left=4, bits_right=8, seed=0, scale_dtype=torch.float16)
    layer = FactorizedLinear.from_linear(lin, "lplr", **kw)
    # float16 ranges kept in float32 are buffers: training cannot move them off float16
    assert {n for n, _ in layer.named_parameters()} == {"bias"}
    nbits = layer.nbits
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(torch.randn(4, 32)).square().sum().backward()
    opt.step()
    assert layer.nbits == nbits
    assert torch.equal(layer.L_ranges.half().float(), layer.L_ranges)
