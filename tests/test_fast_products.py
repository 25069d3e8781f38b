"""The oneDNN products of cyclevae.ops (linear_product, linear) and the CNN encoder's
convolutions as matrix products agree with PyTorch's own to float32 rounding, with the same
gradients, and a short training run's numbers do not depend on which product ran."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cyclevae import ops
from cyclevae.data.batching import TextBatch
from cyclevae.losses import beta_vae_loss
from cyclevae.models.encoders import CNNConfig, CNNEncoder, conv1d_channels_last
from cyclevae.models.vae import TextVAE, VAEConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def float32_bound(x64: torch.Tensor, w64: torch.Tensor) -> torch.Tensor:
    """A float32 rounding bound of ``x @ w.T`` per entry: K * eps * sum_k |x_k w_k|."""
    k = x64.shape[1]
    return 2 * k * torch.finfo(torch.float32).eps * (x64.abs() @ w64.abs().t()) + 1e-30


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 90),
       bias=st.booleans(), transposed=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_values_and_gradients_match_float64(m, k, n, bias, transposed, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    w = torch.randn(k, n, generator=g).t() if transposed else torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    x.requires_grad_(True)
    w.requires_grad_(True)
    if b is not None:
        b.requires_grad_(True)
    out = ops.linear(x, w, b)
    grad = torch.randn(m, n, generator=g)
    out.backward(grad)
    x64, w64, g64 = x.detach().double(), w.detach().double(), grad.double()
    exact = x64 @ w64.t() + (b.detach().double() if b is not None else 0)
    assert out.dtype == torch.float32 and out.shape == (m, n)
    assert bool(((out.double() - exact).abs() <= float32_bound(x64, w64) + 1e-6).all())
    assert bool(((x.grad.double() - g64 @ w64).abs()
                 <= float32_bound(g64, w64.t()) + 1e-6).all())
    assert bool(((w.grad.double() - g64.t() @ x64).abs()
                 <= float32_bound(g64.t(), x64.t()) + 1e-6).all())
    if b is not None:
        torch.testing.assert_close(b.grad, grad.sum(0))


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # mkldnn.flags() sets every flag
def test_linear_takes_pytorch_paths_where_onednn_does_not_apply():
    x, w, b = torch.randn(5, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64), None
    assert not ops._use_onednn(x, w)
    assert torch.equal(ops.linear(x, w, b), F.linear(x, w, b))  # float64: F.linear itself
    x32, w32 = x.float(), w.float()
    with torch.backends.mkldnn.flags(enabled=False):
        assert not ops._use_onednn(x32, w32)
        assert torch.equal(ops.linear_product(x32, w32), x32 @ w32.t())
    assert not ops._use_onednn(torch.randn(0, 7), w32)  # empty: no oneDNN call
    assert ops.linear_product(torch.randn(0, 7), w32).shape == (0, 3)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 60), hdim=st.integers(1, 40), vocab=st.integers(2, 300),
       chunk=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_float32_inference_nll_through_onednn_matches_float64(n, hdim, vocab, chunk, seed):
    """Evaluation's vocabulary-major NLL (no gradient) takes the oneDNN product in float32 and
    stays within float32 rounding of the float64 cross-entropy: the logits within K eps sum|h w|
    (plus the bias's own rounding) shift the NLL by at most twice the largest logit error."""
    g = torch.Generator().manual_seed(seed)
    h, w = torch.randn(n, hdim, generator=g), torch.randn(vocab, hdim, generator=g)
    b, t = torch.randn(vocab, generator=g), torch.randint(0, vocab, (n,), generator=g)
    if not ops._use_onednn(w, h):
        pytest.skip("oneDNN product not available here")
    calls = []
    real = ops.linear_product

    def spy(x, weight, bias=None):
        calls.append(x.shape)
        return real(x, weight, bias)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ops, "linear_product", spy)
        with torch.no_grad():
            ours = ops.linear_cross_entropy(h, w, b, t, chunk_rows=chunk)
    assert calls and all(shape == (vocab, hdim) for shape in calls)  # [V, chunk] logits
    h64, w64, b64 = h.double(), w.double(), b.double()
    exact = F.cross_entropy(h64 @ w64.t() + b64, t, reduction="none")
    logit_error = float32_bound(h64, w64).amax(1) + 4 * torch.finfo(torch.float32).eps * (
        (h64 @ w64.t()).abs().amax(1) + b64.abs().max())
    assert ours.dtype == torch.float32
    assert bool(((ours.double() - exact).abs() <= 2 * logit_error + 1e-5).all())


def test_linear_backward_refuses_double_differentiation():
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(3, 6, requires_grad=True)
    if not ops._use_onednn(x, w):
        pytest.skip("oneDNN product not available here")
    (gx,) = torch.autograd.grad(ops.linear(x, w).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        gx.sum().backward()


@pytest.mark.parametrize("width,stride,length", [(5, 2, 20), (5, 2, 13), (3, 1, 9), (2, 1, 2)])
def test_conv_as_matrix_product_matches_conv1d(width, stride, length):
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 11, width, stride=stride)
    x = torch.randn(4, length, 6, requires_grad=True)
    ours = conv1d_channels_last(x, conv)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    ours_grads = [x.grad.clone(), conv.weight.grad.clone(), conv.bias.grad.clone()]
    x.grad = conv.weight.grad = conv.bias.grad = None
    theirs = conv(x.transpose(1, 2)).transpose(1, 2)
    theirs.backward(grad)
    assert ours.shape == theirs.shape == (4, (length - width) // stride + 1, 11)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for a, b in zip(ours_grads, [x.grad, conv.weight.grad, conv.bias.grad]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cnn_encoder_features_equal_its_conv_modules():
    torch.manual_seed(0)
    enc = CNNEncoder(50, 8, 4, CNNConfig(conv1=6, conv2=7, conv3=9, input_length=20))
    emb = torch.randn(3, 20, 8)
    torch.testing.assert_close(enc.features(emb), enc.convs(emb.transpose(1, 2)).squeeze(-1),
                               rtol=1e-5, atol=1e-6)


def short_run(steps: int = 6) -> list[float]:
    """Losses of a CNN-encoder VAE with the Yelp model's layer sizes (a 1,000-word tied output
    layer), ``steps`` Adam steps on random sentences. (Much smaller layers give bit-identical
    numbers with either product, which would test nothing.)"""
    torch.manual_seed(0)
    config = VAEConfig(emb_dim=256, dec_hidden=256, latent_dim=32, encoder="cnn",
                       tie_embeddings=True, dropout=0.0,
                       cnn=CNNConfig(conv1=300, conv2=600, conv3=900, input_length=13))
    model = TextVAE(config, 1000)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        words = torch.randint(4, 1000, (32, 9), generator=g)
        tokens = torch.cat([torch.ones(32, 1, dtype=torch.long), words,
                            torch.full((32, 1), 2, dtype=torch.long)], 1)
        out = model(TextBatch(tokens), beta=0.5)
        loss = beta_vae_loss(out.rec, out.kl, 0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_short_run_is_the_same_with_either_product(monkeypatch):
    fast = short_run()
    monkeypatch.setattr(ops, "_use_onednn", lambda x, w: False)
    plain = short_run()
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(plain), rtol=1e-5, atol=0)
    assert fast[-1] < fast[0]  # it trained
