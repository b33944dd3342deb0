"""LinformerSelfAttention: exact at k = n with E = F = I, its sharing options, shorter inputs,
agreement with the ``linformer`` package on copied weights, and its refusals.

Tolerances. Each output entry comes out of a chain of at most 5 products (the linear maps,
E X, the scores, the weighted sum of values, the output map), each an inner product of at
most L = max(dim, n) terms; with the probabilistic rounding bound sqrt(L) eps per product
(Higham & Mary 2019) and a softmax whose relative condition is about max|score| (below 1
here: weights drawn at nn.Linear's scale, unit inputs), one float computation is within
about 5 sqrt(L) eps of the exact result, relative, and two computations in different orders
within 10 sqrt(L) eps of each other. Backward runs the chain again, transposed: 20 sqrt(L) eps.
"""

import math

import pytest
import torch
from torch import nn
from torch.nn.functional import scaled_dot_product_attention as sdpa

from lrkit.nn import LinformerSelfAttention, jl_projection, svd_projection

from conftest import RTOL

DTYPES = [torch.float32, torch.float64]


def rel(a, b) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def tol(dtype, L, stages=10) -> float:
    return stages * math.sqrt(L) * torch.finfo(dtype).eps


def make(dim=32, seq_len=24, *, k=8, heads=4, device="cpu", dtype=torch.float32, **kw):
    return LinformerSelfAttention(
        dim, seq_len, k=k, heads=heads, device=device, dtype=dtype, seed=0, **kw
    )


def inputs(B, n, dim, device, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, dim, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def reference_full_attention(layer, x):
    """Softmax attention over all n keys with the layer's weights, written out with SDPA."""
    B, n, _ = x.shape
    h, dh = layer.heads, layer.dim_head

    def split(W):
        return (x @ W.T).view(B, n, h, dh).transpose(1, 2)  # (B, h, n, d_h)

    q, k, v = (split(m.weight) for m in (layer.to_q, layer.to_k, layer.to_v))
    out = sdpa(q, k, v).transpose(1, 2).reshape(B, n, h * dh)  # (B, n, h d_h)
    return out @ layer.to_out.weight.T + layer.to_out.bias


# -- exact where theory says so ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("share", ["layerwise", "headwise", "none"])
def test_identity_projections_at_k_equal_n_are_full_attention(share, dtype, device):
    n, dim = 16, 32
    eye = torch.eye(n, device=device, dtype=dtype)
    if share == "layerwise":  # a fixed E = F = I
        layer = make(dim, n, k=n, share=share, projection=eye, device=device, dtype=dtype)
    else:
        layer = make(dim, n, k=n, share=share, device=device, dtype=dtype)
        with torch.no_grad():
            layer.E.copy_(eye.expand_as(layer.E))
            layer.F.copy_(eye.expand_as(layer.F))
    x = inputs(2, n, dim, device, dtype).requires_grad_()
    y, ref, full = layer(x), reference_full_attention(layer, x), layer.full_attention(x)
    L = max(dim, n)
    assert rel(y, ref) <= tol(dtype, L) and rel(full, ref) <= tol(dtype, L)
    # gradients of the input and of the four linear maps, against the written-out reference
    G = inputs(2, n, dim, device, dtype, seed=2)
    weights = [m.weight for m in (layer.to_q, layer.to_k, layer.to_v, layer.to_out)]
    got = torch.autograd.grad((y * G).sum(), [x, *weights])
    want = torch.autograd.grad((ref * G).sum(), [x, *weights])
    for a, b in zip(got, want, strict=True):
        assert rel(a, b) <= tol(dtype, L, stages=20)


def test_full_attention_is_not_reached_with_fewer_rows():
    """The knob matters: k < n with learned-at-init projections is not full attention."""
    layer = make(32, 16, k=4)
    x = inputs(2, 16, 32, "cpu", torch.float32)
    assert rel(layer(x), layer.full_attention(x)) > 0.01


# -- sharing -------------------------------------------------------------------------------------
def test_parameter_counts_follow_the_documented_formula():
    dim, seq_len, k, h = 32, 24, 8, 4
    linear = 4 * dim * dim + dim  # q, k, v without bias, the output map with one
    counts = {"none": 2 * h * k * seq_len, "headwise": 2 * k * seq_len, "kv": k * seq_len}
    for share, extra in counts.items():
        layer = make(dim, seq_len, k=k, heads=h, share=share)
        assert layer.num_params == linear + extra
        assert layer.num_params == sum(p.numel() for p in layer.parameters())
    fixed = make(dim, seq_len, k=k, heads=h, share="layerwise", projection=torch.ones(k, seq_len))
    assert fixed.num_params == linear  # a fixed projection is a buffer
    assert [name for name, _ in fixed.named_buffers()] == ["E"]
    shared = nn.Parameter(torch.ones(k, seq_len))
    model = nn.Sequential(
        *(make(dim, seq_len, k=k, share="layerwise", projection=shared) for _ in range(3))
    )
    assert sum(p.numel() for p in model.parameters()) == 3 * linear + k * seq_len


def copy_linear_maps(src, dst):
    for name in ("to_q", "to_k", "to_v", "to_out"):
        getattr(dst, name).load_state_dict(getattr(src, name).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
def test_sharing_options_agree_when_their_projections_do(dtype, device):
    kw = dict(device=device, dtype=dtype)
    head = make(**kw)
    x = inputs(2, 24, 32, device, dtype)
    ref = head(x)
    none, kv = make(share="none", **kw), make(share="kv", **kw)
    E_param = nn.Parameter(head.E.detach().clone())
    layerwise = make(share="layerwise", projection=E_param, **kw)
    for other in (none, kv, layerwise):
        copy_linear_maps(head, other)
    with torch.no_grad():
        none.E.copy_(head.E.expand_as(none.E))  # every head's E_i = E
        none.F.copy_(head.F.expand_as(none.F))
        kv.E.copy_(head.E)
    # "none" projects each head after its key map, "headwise" before: another order
    assert rel(none(x), ref) <= tol(dtype, 32)
    with torch.no_grad():
        head.F.copy_(head.E)  # F = E: what "kv" and "layerwise" hold
    ref = head(x)
    assert rel(kv(x), ref) <= tol(dtype, 32) and rel(layerwise(x), ref) <= tol(dtype, 32)


def test_a_layerwise_projection_is_one_parameter_trained_by_every_layer():
    E = nn.Parameter(jl_projection(24, 8, seed=0))
    before = E.detach().clone()
    a, b = (make(share="layerwise", projection=E) for _ in range(2))
    assert a.E is E and b.E is E
    x = inputs(2, 24, 32, "cpu", torch.float32)
    b(a(x)).square().sum().backward()
    grad_both = E.grad.clone()
    E.grad = None
    b(a(x).detach()).square().sum().backward()  # b's share alone
    assert rel(grad_both, E.grad) > 1e-3  # a's share is there too
    torch.optim.SGD([E], lr=0.1).step()
    assert not torch.equal(a.E, before) and a.E is b.E


def test_a_fixed_projection_is_a_copy_and_never_trained():
    P = jl_projection(24, 8, seed=0)
    before = P.clone()
    layer = make(share="layerwise", projection=P)
    assert layer.E is not P and torch.equal(layer.E, P)
    x = inputs(2, 24, 32, "cpu", torch.float32)
    layer(x).sum().backward()
    assert layer.E.grad is None and torch.equal(P, before)
    assert torch.equal(make(share="layerwise", projection=P).E.to(torch.float64), P.double())


# -- shorter inputs ------------------------------------------------------------------------------
@pytest.mark.parametrize("share", ["none", "headwise", "kv"])
def test_a_shorter_input_uses_the_first_columns_of_the_projections(share, device):
    long = make(seq_len=24, share=share, device=device)
    short = make(seq_len=10, share=share, device=device)
    copy_linear_maps(long, short)
    with torch.no_grad():
        short.E.copy_(long.E[..., :10])
        if share != "kv":
            short.F.copy_(long.F[..., :10])
    x = inputs(3, 10, 32, device, torch.float32)
    assert torch.equal(long(x), short(x))  # the same numbers through the same operations
    E, F = long.projections(10)
    assert E.shape[-2:] == (8, 10) and F.shape[-2:] == (8, 10)


def test_the_layer_runs_at_every_length_and_k_above_n():
    layer = make(seq_len=24, k=8)
    for n in (1, 5, 8, 24):  # n < k too: 8 mixtures of 5 positions, still defined
        assert layer(inputs(1, n, 32, "cpu", torch.float32)).shape == (1, n, 32)


# -- the peer: lucidrains' linformer package, same weights copied in -----------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("share", ["headwise", "kv"])
@pytest.mark.parametrize("n", [24, 13])
def test_the_linformer_package_gives_the_same_outputs_and_gradients(n, share, dtype, device):
    linformer = pytest.importorskip("linformer")
    dim, seq_len, k, h = 32, 24, 8, 4
    ours = make(dim, seq_len, k=k, heads=h, share=share, device=device, dtype=dtype)
    theirs = linformer.LinformerSelfAttention(
        dim, seq_len, k=k, heads=h, share_kv=share == "kv"
    ).to(device=device, dtype=dtype)
    # theirs: proj_k, proj_v of shape (seq_len, k), applied as x^T proj: our E, F transposed.
    # Its share_kv also uses the key map for the values (values = keys): our to_v = to_k.
    with torch.no_grad():
        theirs.to_q.weight.copy_(ours.to_q.weight)
        theirs.to_k.weight.copy_(ours.to_k.weight)
        theirs.to_out.load_state_dict(ours.to_out.state_dict())
        theirs.proj_k.copy_(ours.E.T)
        if share == "kv":
            ours.to_v.weight.copy_(ours.to_k.weight)
        else:
            theirs.to_v.weight.copy_(ours.to_v.weight)
            theirs.proj_v.copy_(ours.F.T)
    x = inputs(2, n, dim, device, dtype).requires_grad_()
    y, y_peer = ours(x), theirs(x)
    assert rel(y, y_peer) <= tol(dtype, max(dim, n))
    G = inputs(2, n, dim, device, dtype, seed=2)
    (gx,) = torch.autograd.grad((y * G).sum(), [x])
    (gx_peer,) = torch.autograd.grad((y_peer * G).sum(), [x])
    assert rel(gx, gx_peer) <= tol(dtype, max(dim, n), stages=20)


# -- no causal Linformer -------------------------------------------------------------------------
def test_linformer_leaks_the_future_so_a_causal_mask_is_refused():
    layer = make()
    x = inputs(1, 24, 32, "cpu", torch.float32)
    later = x.clone()
    later[:, 20:] += 1.0  # change positions 20..23 only
    # every earlier output moves: each projected key and value mixes all positions
    moved = (layer(later)[0, :20] - layer(x)[0, :20]).abs().amax(dim=-1)
    assert bool((moved > 1e-4).all())
    with pytest.raises(ValueError, match=r"is_causal \(=True\): Linformer cannot be causal"):
        layer(x, is_causal=True)
    with pytest.raises(TypeError, match=r"is_causal must be a bool; got 1"):
        layer(x, is_causal=1)


# -- dropout, state, the caller's tensors --------------------------------------------------------
def test_dropout_acts_in_training_only():
    layer = make(dropout=0.5)
    x = inputs(2, 24, 32, "cpu", torch.float32)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    torch.manual_seed(0)
    assert not torch.equal(layer(x), layer.eval()(x))
    plain = make()  # dropout off by default: training mode changes nothing
    assert torch.equal(plain.train()(x), plain.eval()(x))


def test_same_seed_same_layer_and_a_state_dict_round_trip():
    a, b = make(share="none"), make(share="none")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    c = LinformerSelfAttention(32, 24, k=8, heads=4, share="none", seed=1)
    assert not torch.equal(a.E, c.E)
    c.load_state_dict(a.state_dict())
    x = inputs(2, 24, 32, "cpu", torch.float32)
    assert torch.equal(a(x), c(x))


def test_inputs_are_not_changed(device):
    x = inputs(2, 24, 32, device, torch.float32).requires_grad_()
    P = jl_projection(24, 8, seed=0, device=device)
    x0, P0 = x.detach().clone(), P.clone()
    layer = make(share="layerwise", projection=P, device=device)
    layer(x).sum().backward()
    layer.full_attention(x)
    assert torch.equal(x.detach(), x0) and torch.equal(P, P0)


# -- fixed projections ---------------------------------------------------------------------------
def test_jl_projection_is_seeded_and_keeps_norms_on_average(device):
    E = jl_projection(512, 256, seed=0, device=device)
    assert E.shape == (256, 512) and E.device.type == device.type
    assert torch.equal(E, jl_projection(512, 256, seed=0, device=device))
    # ||E v||^2 / ||v||^2 is chi-square(k) / k: mean 1, std sqrt(2 / k) = 0.088; eight
    # standard deviations each side at this fixed seed
    V = torch.randn(512, 20, generator=torch.Generator().manual_seed(3)).to(device)
    ratio = E.double().matmul(V.double()).square().sum(0) / V.double().square().sum(0)
    assert bool(((ratio - 1).abs() < 8 * math.sqrt(2 / 256)).all())
    assert jl_projection(8, 3, dtype=torch.float64, seed=0).dtype == torch.float64


def test_svd_projection_keeps_a_rank_k_input_exactly(device):
    # keys of exact rank 5 along the sequence: (batch 2, heads 3, n 40, d_h 8)
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(40, 5, generator=g, dtype=torch.float64)
    K = torch.einsum("nr,bhrd->bhnd", basis, torch.randn(2, 3, 5, 8, generator=g).double())
    K = K.to(device)
    K0 = K.clone()
    E = svd_projection(K, 5)  # (5, 40)
    assert E.shape == (5, 40) and E.dtype == torch.float64
    eye = torch.eye(5, dtype=torch.float64, device=device)
    assert rel(E @ E.T, eye) <= 100 * torch.finfo(torch.float64).eps * math.sqrt(40)
    # E^T E K = K: the rank-5 SVD of a rank-5 matrix recovers it (conftest's RTOL)
    assert rel(E.T @ (E @ K), K) <= RTOL[torch.float64]
    assert torch.equal(K, K0)


# -- bad input -----------------------------------------------------------------------------------
def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"k \(=30\) must be <= seq_len = 24"):
        LinformerSelfAttention(32, 24, k=30, heads=4)
    with pytest.raises(ValueError, match=r"heads \(=5\) must divide dim \(=32\)"):
        LinformerSelfAttention(32, 24, k=8, heads=5)
    assert LinformerSelfAttention(32, 24, k=8, heads=5, dim_head=6).to_q.out_features == 30
    with pytest.raises(ValueError, match=r"k \(=0\) must be >= 1"):
        LinformerSelfAttention(32, 24, k=0, heads=4)
    with pytest.raises(ValueError, match=r"share='layerwise' takes its E = F from projection="):
        LinformerSelfAttention(32, 24, k=8, heads=4, share="layerwise")
    with pytest.raises(ValueError, match=r"got share='kv' and projection=a tensor"):
        LinformerSelfAttention(32, 24, k=8, heads=4, share="kv", projection=torch.ones(8, 24))
    with pytest.raises(ValueError, match=r"projection must have shape \(k, seq_len\) = \(8, 24\)"):
        LinformerSelfAttention(32, 24, k=8, heads=4, share="layerwise", projection=torch.ones(8, 9))
    with pytest.raises(ValueError, match=r"projection contains NaN"):
        LinformerSelfAttention(
            32, 24, k=8, heads=4, share="layerwise", projection=torch.full((8, 24), math.nan)
        )
    with pytest.raises(TypeError, match=r"projection must be a torch.Tensor; got list"):
        LinformerSelfAttention(32, 24, k=8, heads=4, share="layerwise", projection=[[1.0]])
    with pytest.raises(ValueError, match=r"a shared projection must live where the layer does"):
        LinformerSelfAttention(
            32, 24, k=8, heads=4, share="layerwise",
            projection=nn.Parameter(torch.ones(8, 24, dtype=torch.float64)),
        )  # fmt: skip
    layer = make()
    with pytest.raises(ValueError, match=r"n \(=25\), the length of x, must be <= seq_len = 24"):
        layer(torch.randn(1, 25, 32))
    with pytest.raises(
        ValueError, match=r"x must have shape \(batch, n, dim = 32\); got \(1, 5, 16\)"
    ):
        layer(torch.randn(1, 5, 16))
    with pytest.raises(ValueError, match=r"x must have shape .* got \(5, 32\)"):
        layer(torch.randn(5, 32))
    with pytest.raises(ValueError, match=r"x is empty"):
        layer(torch.randn(1, 0, 32))
    x = torch.randn(1, 5, 32)
    x[0, 3, 7] = math.nan
    with pytest.raises(ValueError, match=r"x contains NaN or Inf"):
        layer(x)
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor; got ndarray"):
        layer(x.numpy())
    with pytest.raises(ValueError, match=r"k \(=9\) must be <= seq_len = 8"):
        jl_projection(8, 9)
    with pytest.raises(ValueError, match=r"k \(=9\) must be <= min\(n, columns\) = 8"):
        svd_projection(torch.randn(40, 8), 9)
    with pytest.raises(ValueError, match=r"X contains 1 NaN"):
        svd_projection(torch.tensor([[1.0, math.nan], [0.0, 1.0]]), 1)
