"""The dialog CVAE's fast training step computes the same numbers as the straightforward one.

:class:`~cyclevae.models.packed_gru.PackedGRU` (the recurrence's backward written out, products
through oneDNN) must give ``nn.GRU``'s outputs and gradients up to float32 rounding: compared
here with PyTorch's own GRU in float64 (which takes ``nn.GRU.forward``), for the GRU alone and
for the whole CVAE + BoW loss, and as a short training run against the plain path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from cyclevae import ops
from cyclevae.data.dialog import Conversation, Utterance, build_vocabulary, encode_dialogs
from cyclevae.losses import beta_vae_loss
from cyclevae.models.cvae import CVAE, CVAEConfig
from cyclevae.models.packed_gru import PackedGRU

pytestmark = pytest.mark.usefixtures("one_thread")


def packed_gru_pair(bidirectional: bool, emb: int, hidden: int, seed: int
                    ) -> tuple[nn.GRU, PackedGRU]:
    torch.manual_seed(seed)
    ref = nn.GRU(emb, hidden, batch_first=True, bidirectional=bidirectional).double()
    fast = PackedGRU(emb, hidden, batch_first=True, bidirectional=bidirectional)
    fast.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
    return ref, fast


def run_gru(module: nn.GRU, x: torch.Tensor, h0: torch.Tensor | None, lengths: torch.Tensor,
            weights: torch.Tensor, sorted_input: bool):
    """Output and final state of ``module`` and the gradients of a loss that weighs every
    output element differently and adds the squared final states."""
    x = x.detach().requires_grad_()
    h = None if h0 is None else h0.detach().requires_grad_()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=sorted_input)
    out, h_n = module(packed, h)
    loss = (out.data.double() * weights).sum() + (h_n.double() ** 2).sum()
    loss.backward()
    grads = [x.grad] + ([] if h is None else [h.grad]) + [p.grad for p in module.parameters()]
    return [out.data, h_n, *grads]


@pytest.mark.parametrize("bidirectional,with_h0,sorted_input", [
    (True, False, False), (False, True, True), (True, True, False), (False, False, False)])
def test_packed_gru_matches_float64_nn_gru(bidirectional, with_h0, sorted_input):
    emb, hidden, batch, longest = 24, 32, 9, 11
    ref, fast = packed_gru_pair(bidirectional, emb, hidden, seed=3)
    g = torch.Generator().manual_seed(4)
    # ties, a length-1 row and the longest row; sorted or not
    lengths = torch.tensor([11, 1, 5, 5, 11, 3, 8, 2, 7])
    if sorted_input:
        lengths = lengths.sort(descending=True).values
    x = torch.randn(batch, longest, emb, generator=g, dtype=torch.float64)
    dirs = 2 if bidirectional else 1
    h0 = torch.randn(dirs, batch, hidden, generator=g, dtype=torch.float64) if with_h0 else None
    weights = torch.randn(int(lengths.sum()), dirs * hidden, generator=g, dtype=torch.float64)
    expected = run_gru(ref, x, h0, lengths, weights, sorted_input)
    got = run_gru(fast, x.float(), None if h0 is None else h0.float(), lengths, weights,
                  sorted_input)
    assert got[0].dtype == torch.float32
    for e, o in zip(expected, got):
        assert o.shape == e.shape
        # float32 rounding of O(1) values through ~11 steps: ~1e-6; a wrong gate, order or
        # sign is O(0.1)
        o, e = o.detach().double(), e.detach()
        torch.testing.assert_close(o, e, rtol=0, atol=2e-5 * (1 + float(e.abs().max())))


def test_packed_gru_takes_nn_gru_where_the_fast_path_does_not_apply(monkeypatch):
    calls = []
    monkeypatch.setattr("cyclevae.models.packed_gru.gru_recurrence",
                        lambda *a, **k: calls.append(1))
    gru = PackedGRU(4, 5, batch_first=True)
    gru(torch.randn(2, 3, 4))  # unpacked (the step decoder's call)
    gru.double()(pack_padded_sequence(torch.randn(2, 3, 4, dtype=torch.float64),
                                      torch.tensor([3, 2]), batch_first=True))
    assert calls == []


def dialog_batch(vocab_words: int = 40, n_convs: int = 4):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(vocab_words)]
    convs = [Conversation(f"c{c}", tuple(
        Utterance("AB"[k % 2], tuple(rng.choice(words, size=int(rng.integers(1, 12)))), None)
        for k in range(int(rng.integers(5, 12))))) for c in range(n_convs)]
    vocab = build_vocabulary(convs)
    corpus = encode_dialogs(convs, vocab)
    return vocab, corpus, corpus.batch(np.arange(len(corpus)))


SIZES = {"emb_dim": 24, "utt_hidden": 20, "ctx_hidden": 28, "latent_dim": 8, "dec_hidden": 26,
         "prior_hidden": 16, "bow_hidden": 18, "bow": True}


def loss_and_grads(model: CVAE, batch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(batch, beta=0.5, sample=False)
    loss = beta_vae_loss(out.rec, out.kl, 0.5, aux=out.aux)
    loss.backward()
    return ([loss.detach(), out.rec.detach(), out.kl.detach(), out.aux["bow"].detach()],
            [p.grad for p in model.parameters()])


def test_cvae_step_losses_and_gradients_match_float64():
    vocab, _, batch = dialog_batch()
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(**SIZES), len(vocab))
    ref = CVAE(CVAEConfig(**SIZES), len(vocab)).double()
    ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    values, grads = loss_and_grads(model, batch)
    ref_values, ref_grads = loss_and_grads(ref, batch)
    for v, r in zip(values, ref_values):
        torch.testing.assert_close(v.double(), r.double(), rtol=1e-5, atol=1e-5)
    names = [n for n, _ in model.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads):
        assert g is not None, name
        torch.testing.assert_close(g.double(), r, rtol=0, atol=1e-5 * (1 + float(r.abs().max())),
                                   msg=lambda m, name=name: f"{name}: {m}")


def short_cvae_run(steps: int = 5) -> list[float]:
    vocab, corpus, _ = dialog_batch(vocab_words=300, n_convs=12)
    torch.manual_seed(0)
    sizes = {**SIZES, "emb_dim": 64, "utt_hidden": 96, "ctx_hidden": 128, "dec_hidden": 96}
    model = CVAE(CVAEConfig(**sizes), len(vocab))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = corpus.batch(np.arange(min(24, len(corpus))))  # one batch, so the loss falls
    losses = []
    for step in range(steps):
        torch.manual_seed(step)
        out = model(batch, beta=0.5)
        loss = beta_vae_loss(out.rec, out.kl, 0.5, aux=out.aux)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_short_cvae_run_is_the_same_on_the_plain_path(monkeypatch):
    fast = short_cvae_run()
    monkeypatch.setattr(PackedGRU, "_fast", lambda self, input: False)
    monkeypatch.setattr(ops, "_use_onednn", lambda x, w: False)
    plain = short_cvae_run()
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(plain), rtol=1e-5, atol=0)
    assert fast[-1] < fast[0]  # it trained
