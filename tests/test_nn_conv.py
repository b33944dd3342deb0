"""FactorizedConv2d: Tucker-2 and CP convolutions against the dense conv of their weight."""

import pytest
import torch
from torch import nn

import lrkit
from lrkit.nn import FactorizedConv2d

from conftest import DEVICES

CONV_ARGS = [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(kernel_size=3, padding=2, dilation=2, padding_mode="reflect"),
    dict(kernel_size=(1, 3), stride=2, padding=(0, 1), padding_mode="circular", bias=False),
]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


def conv(args, device="cpu", dtype=torch.float64, cin=6, cout=8, seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(cin, cout, **args).to(device=device, dtype=dtype)


@pytest.mark.parametrize("method,rank", [("tucker", (4, 3)), ("cp", 5)])
@pytest.mark.parametrize("args", CONV_ARGS)
def test_output_and_gradients_equal_the_dense_conv_of_the_factorization(args, method, rank, device):
    c = conv(args, device)
    f = FactorizedConv2d.from_conv(c, method, rank=rank, seed=0)
    dense = f.to_conv()
    # the reference: a plain Conv2d with the rebuilt weight and the original arguments
    assert (dense.stride, dense.padding, dense.dilation, dense.padding_mode) == (
        c.stride, c.padding, c.dilation, c.padding_mode,
    )  # fmt: skip
    torch.testing.assert_close(dense.weight, f.factorization.to_dense())
    x = torch.randn(2, 6, 11, 13, device=device, dtype=torch.float64, requires_grad=True)
    y = f(x)
    assert y.shape == c(x).shape
    torch.testing.assert_close(y, dense(x), rtol=1e-12, atol=1e-12)  # float64 rounding
    G = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * G).sum(), x)
    (gx2,) = torch.autograd.grad((dense(x) * G).sum(), x)
    torch.testing.assert_close(gx, gx2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("args", CONV_ARGS)
def test_full_rank_tucker_is_exact(args):
    c = conv(args)
    f = FactorizedConv2d.from_conv(c, "tucker", rank=(8, 6))  # all channels: no truncation
    x = torch.randn(1, 6, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(f(x), c(x), rtol=1e-12, atol=1e-12)


def test_exact_cp_weight_is_recovered():
    # a weight of exact CP rank 3: ALS from the SVD start recovers it (run every sweep)
    c = conv(dict(kernel_size=3, padding=1))
    g = torch.Generator().manual_seed(0)
    factors = [torch.randn(n, 3, generator=g, dtype=torch.float64) for n in (8, 6, 3, 3)]
    W = lrkit.CPTensor(None, factors).to_dense()
    with torch.no_grad():
        c.weight.copy_(W)
    f = FactorizedConv2d.from_conv(c, "cp", rank=3, n_iter_max=500, tol=0)
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    # ALS converges linearly here; 500 sweeps reach float64 rounding with a wide margin
    torch.testing.assert_close(f(x), c(x), rtol=1e-9, atol=1e-9)


def test_sizes_and_the_given_conv_unchanged():
    c = conv(dict(kernel_size=3, padding=1), dtype=torch.float32)
    before = c.weight.detach().clone()
    t = FactorizedConv2d.from_conv(c, "tucker", rank=(4, 3))
    assert t.num_params == 3 * 6 + 4 * 3 * 9 + 8 * 4 + 8
    assert t.nbits == 32 * t.num_params and t.rank == (4, 3)
    p = FactorizedConv2d.from_conv(c, "cp", rank=5)
    assert p.num_params == 5 * 6 + 5 * 3 + 5 * 3 + 8 * 5 + 8 and p.rank == 5
    assert torch.equal(c.weight, before)
    assert "method='tucker'" in repr(t)


def test_bad_input_is_refused_clearly():
    c = conv(dict(kernel_size=3))
    with pytest.raises(
        ValueError, match=r"rank \(output channels\) \(=9\) must be <= out_channels"
    ):
        FactorizedConv2d.from_conv(c, "tucker", rank=(9, 2))
    with pytest.raises(ValueError, match=r"method \(='svd'\) must be one of"):
        FactorizedConv2d.from_conv(c, "svd", rank=2)
    with pytest.raises(ValueError, match=r"conv.groups \(=2\) must be 1"):
        FactorizedConv2d.from_conv(nn.Conv2d(4, 4, 3, groups=2), rank=2)
    with pytest.raises(TypeError, match="must be a torch.nn.Conv2d"):
        FactorizedConv2d.from_conv(nn.Linear(3, 3), rank=2)
