"""The dialog CVAE: two-Gaussian KL, BoW loss, shapes, learning, step decoding, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclevae.data.dialog import (
    Conversation,
    DialogBatcher,
    Utterance,
    build_act_vocabulary,
    build_vocabulary,
    encode_dialogs,
)
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError
from cyclevae.losses import beta_vae_loss, gaussian_kl_between, gaussian_kl_per_dim
from cyclevae.metrics.text import WordVectors
from cyclevae.models.cvae import CVAE, CVAEConfig
from cyclevae.models.generation import DecodingConfig, decode

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"emb_dim": 8, "utt_hidden": 6, "ctx_hidden": 10, "latent_dim": 4, "dec_hidden": 12,
        "prior_hidden": 9, "bow_hidden": 7, "act_dim": 5}


def tiny_data(n_convs: int = 3, acts: bool = False):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(15)]
    convs = []
    for c in range(n_convs):
        utts = tuple(Utterance("AB"[k % 2], tuple(rng.choice(words, size=int(rng.integers(1, 7)))),
                               ["sd", "qy", "b"][k % 3] if acts else None)
                     for k in range(int(rng.integers(4, 14))))
        convs.append(Conversation(f"c{c}", utts))
    vocab = build_vocabulary(convs)
    act_labels = build_act_vocabulary(convs)
    corpus = encode_dialogs(convs, vocab, act_labels=act_labels)
    return vocab, corpus, act_labels


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def make_model(vocab, **extra) -> CVAE:
    return CVAE(CVAEConfig(**{**TINY, **extra}), len(vocab))


# ------------------------------------------------------------------------- the KL
floats = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False)
params = st.integers(min_value=1, max_value=3).flatmap(
    lambda d: st.tuples(*[st.lists(floats, min_size=d, max_size=d) for _ in range(4)]))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(params)
def test_two_gaussian_kl_matches_monte_carlo(p) -> None:
    mu_q, lv_q, mu_p, lv_p = (torch.tensor(v, dtype=torch.float64) for v in p)
    n = 40_000
    eps = torch.randn(n, len(mu_q), generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    z = mu_q + (0.5 * lv_q).exp() * eps
    q = torch.distributions.Normal(mu_q, (0.5 * lv_q).exp())
    prior = torch.distributions.Normal(mu_p, (0.5 * lv_p).exp())
    ratio = (q.log_prob(z) - prior.log_prob(z)).sum(-1)
    closed = gaussian_kl_between(mu_q[None], lv_q[None], mu_p[None], lv_p[None])
    assert closed.shape == (1, len(mu_q))
    se = ratio.std().item() / math.sqrt(n)
    assert abs(ratio.mean().item() - closed.sum().item()) < 5 * se + 1e-9
    assert (closed >= 0).all()


def test_two_gaussian_kl_special_cases() -> None:
    mu, lv = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.equal(gaussian_kl_between(mu, lv, mu, lv), torch.zeros(3, 5))
    zeros = torch.zeros(3, 5)
    assert torch.allclose(gaussian_kl_between(mu, lv, zeros, zeros), gaussian_kl_per_dim(mu, lv))


# ------------------------------------------------------------------------- the model
def test_forward_backward_shapes(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab, bow=True)
    batch = corpus.batch(list(range(8)))
    out = model(batch)
    b, d = batch.num_examples, TINY["latent_dim"]
    assert out.rec.shape == out.kl.shape == out.aux["bow"].shape == (b,)
    assert out.kl_per_dim.shape == out.mu.shape == out.logvar.shape == out.z.shape == (b, d)
    assert torch.allclose(out.kl, out.kl_per_dim.sum(-1))
    assert (out.kl >= 0).all() and (out.rec > 0).all()
    beta_vae_loss(out.rec, out.kl, 0.5, aux=out.aux).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []  # every part, BoW head included, is trained
    assert model.embedding.weight.grad[Vocabulary.PAD_INDEX].abs().sum() == 0


def test_pieces_agree_with_forward(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab, bow=True).eval()
    batch = corpus.batch([2, 3, 4, 9, 10])
    out = model(batch, sample=False)
    mu, logvar = model.posterior(batch)
    assert torch.allclose(mu, out.mu) and torch.equal(out.z, out.mu)
    assert torch.allclose(model.kl_to_prior(batch, mu, logvar), out.kl_per_dim)
    assert torch.allclose(model.reconstruction_loss(batch, out.z), out.rec, atol=1e-5)
    p_mu, p_lv = model.prior_params(batch)
    z = torch.randn(3, batch.num_examples, TINY["latent_dim"])  # [K, B, D], as the IW code
    expected = torch.distributions.Normal(p_mu, (0.5 * p_lv).exp()).log_prob(z).sum(-1)
    assert torch.allclose(model.log_prior(batch, z), expected, atol=1e-5)
    assert model.log_prior(batch, z[0]).shape == (batch.num_examples,)


def test_reconstruction_is_the_per_token_cross_entropy(data) -> None:
    """The packed decoder + fused output layer equal a padded, plain computation."""
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([0, 5, 6, 12])
    z = torch.randn(batch.num_examples, TINY["latent_dim"])
    enc = model._encode(batch)
    tokens = batch.response_tokens()
    h0 = model.init_state(torch.cat([enc.condition, z], -1)).unsqueeze(0)
    hidden, _ = model.dec_rnn(model.embedding(tokens[:, :-1]), h0)
    logp = F.log_softmax(model.out(hidden), -1).gather(2, tokens[:, 1:, None]).squeeze(2)
    expected = -(logp * (tokens[:, 1:] != Vocabulary.PAD_INDEX)).sum(1)
    assert torch.allclose(model.reconstruction_loss(batch, z), expected, atol=1e-5)


def test_bow_loss_is_a_direct_sum_over_response_tokens(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab, bow=True)
    batch = corpus.batch([1, 2, 7, 11])
    enc = model._encode(batch)
    z = torch.randn(batch.num_examples, TINY["latent_dim"])
    got = model._bow_loss(batch, enc, z)
    for b in range(batch.num_examples):
        hidden = torch.tanh(model.bow_hidden(torch.cat([enc.condition[b], z[b]])))
        log_p = torch.log_softmax(model.bow_out(hidden), -1)
        words = batch.utterances[batch.response[b], 1: batch.lengths[batch.response[b]]]
        assert words[-1] == Vocabulary.EOS_INDEX  # </s> is scored, <s> is not
        expected = -sum(log_p[int(w)] for w in words)
        assert torch.allclose(got[b], expected, atol=1e-5)


def test_distinct_utterance_batch_equals_slot_by_slot_encoding(data) -> None:
    """Encoding each distinct utterance once changes no number."""
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([3, 4, 5])
    utt = model.encode_utterances(batch)
    for b in range(batch.num_examples):
        for k in range(int(batch.context_lengths[b])):
            row = int(batch.context[b, k])
            tokens = batch.utterances[row, : batch.lengths[row]].unsqueeze(0)
            _, h = model.utt_rnn(model.embedding(tokens))
            assert torch.allclose(utt[row], torch.cat([h[0, 0], h[1, 0]]), atol=1e-6)


def test_a_few_steps_reduce_the_loss(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab, bow=True)
    batch = corpus.batch(list(range(10)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        out = model(batch, sample=False)
        return beta_vae_loss(out.rec, out.kl, 1.0, aux=out.aux)

    first = loss().item()
    for _ in range(40):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.75 * first


def test_step_decoding_equals_teacher_forcing(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([0, 4, 8])
    z = torch.randn(batch.num_examples, TINY["latent_dim"])
    tokens = batch.response_tokens()
    decoder, state = model.step_decoder(), model.decoder_state(batch, z)
    total = torch.zeros(batch.num_examples)
    for t in range(tokens.shape[1] - 1):
        logits, state = decoder.step(tokens[:, t], state)
        logp = torch.log_softmax(logits, -1).gather(1, tokens[:, t + 1, None]).squeeze(1)
        total -= logp * (tokens[:, t + 1] != Vocabulary.PAD_INDEX)
    assert torch.allclose(total, model.reconstruction_loss(batch, z), atol=1e-5)
    # select: rows of the state picked (with repeats) decode like the original rows
    state = model.decoder_state(batch, z)
    picked = decoder.select(state, torch.tensor([2, 0, 2]))
    a, _ = decoder.step(tokens[[2, 0, 2], 0], picked)
    b, _ = decoder.step(tokens[:, 0], state)
    assert torch.allclose(a, b[[2, 0, 2]])


def test_greedy_responses_from_the_prior(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([3, 9])
    g = torch.Generator().manual_seed(1)
    out = model.respond(batch, 3, max_length=6, generator=g)
    assert len(out) == 2 and all(len(r) == 3 for r in out)
    assert all(len(words) <= 6 and Vocabulary.EOS_INDEX not in words
               for r in out for words in r)
    # the same z drawn again gives the same greedy responses (decode is the shared loop)
    z = model.sample_prior(batch, 3, torch.Generator().manual_seed(1))
    words = decode(model.step_decoder(), model.decoder_state(batch, z), 6,
                   bos=Vocabulary.BOS_INDEX, eos=Vocabulary.EOS_INDEX,
                   config=DecodingConfig(max_length=6))
    assert [words[0:3], words[3:6]] == out
    # a hand-written greedy loop agrees with decode's
    decoder, state = model.step_decoder(), model.decoder_state(batch, z)
    tok = torch.full((6,), Vocabulary.BOS_INDEX)
    mine: list[list[int]] = [[] for _ in range(6)]
    done = torch.zeros(6, dtype=torch.bool)
    for _ in range(6):
        logits, state = decoder.step(tok, state)
        tok = logits.argmax(-1)
        for i, w in enumerate(tok.tolist()):
            if not done[i] and w != Vocabulary.EOS_INDEX:
                mine[i].append(w)
        done |= tok == Vocabulary.EOS_INDEX
    assert mine == words


def test_beam_and_sampling_run_through_select(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([3, 9])
    g = torch.Generator().manual_seed(0)
    beam = model.respond(batch, 2, generator=g,
                         decoding=DecodingConfig(strategy="beam", beam_width=3, max_length=5))
    sampled = model.respond(batch, 2, generator=g,
                            decoding=DecodingConfig(strategy="sample", max_length=5))
    for out in (beam, sampled):
        assert len(out) == 2 and all(len(r) == 2 for r in out)
        assert all(0 <= w < len(vocab) for r in out for words in r for w in words)


def test_sample_prior_rows_follow_repeat_each(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab).eval()
    batch = corpus.batch([3, 9])
    z = model.sample_prior(batch, 4, torch.Generator().manual_seed(0))
    assert z.shape == (8, TINY["latent_dim"])
    p_mu, _ = model.prior_params(batch.repeat_each(4))
    p_mu0, _ = model.prior_params(batch)
    assert torch.allclose(p_mu, p_mu0.repeat_interleave(4, 0), atol=1e-6)


def test_dialog_acts_kgcvae_path() -> None:
    vocab, corpus, acts = tiny_data(acts=True)
    model = CVAE(CVAEConfig(**TINY, use_act=True, bow=True), len(vocab), num_acts=len(acts))
    batch = corpus.batch(list(range(6)))
    out = model(batch)
    assert out.aux["act"].shape == (6,) and (out.aux["act"] > 0).all()
    beta_vae_loss(out.rec, out.kl, 1.0, aux=out.aux).backward()
    assert model.act_embedding.weight.grad is not None
    model.eval()
    assert len(model.respond(batch, 2, max_length=4)) == 6
    with pytest.raises(UserError, match="use_act"):
        CVAE(CVAEConfig(**TINY, use_act=True), len(vocab), num_acts=0)


def test_batcher_batches_train(data) -> None:
    vocab, corpus, _ = data
    model = make_model(vocab, bow=True)
    for batch in DialogBatcher(corpus, batch_size=4, run_length=3).batches(0):
        out = model(batch)
        assert torch.isfinite(out.rec).all() and out.rec.shape == (batch.num_examples,)


# ------------------------------------------------------------------------- config, GloVe
@pytest.mark.parametrize(("field", "value"), [("latent_dim", 0), ("init_range", -1.0),
                                              ("word_dropout", 1.5), ("bow", "yes"),
                                              ("glove_init", "")])
def test_config_validation_names_the_field(field: str, value) -> None:
    config = CVAEConfig(**{field: value})
    with pytest.raises(UserError, match=rf"model\.{field} must be"):
        config.validate()


def test_defaults_are_the_papers_sizes() -> None:
    c = CVAEConfig()
    assert (c.emb_dim, c.utt_hidden, c.ctx_hidden, c.latent_dim, c.dec_hidden, c.bow_hidden,
            c.init_range, c.bow, c.use_act) == (200, 300, 600, 200, 400, 400, 0.08, False, False)
    CVAEConfig().validate()


def test_glove_initialisation(data) -> None:
    vocab, _, _ = data
    model = make_model(vocab)
    vec = np.arange(TINY["emb_dim"], dtype=np.float32)
    vectors = WordVectors({"w3": 0, "zzz": 1}, np.stack([vec, vec + 1]), "test")
    before = model.embedding.weight.detach().clone()
    assert model.init_embeddings_(vectors, vocab) == 1
    assert torch.equal(model.embedding.weight[vocab.index("w3")], torch.from_numpy(vec))
    others = torch.ones(len(vocab), dtype=torch.bool)
    others[vocab.index("w3")] = False  # every other word keeps its random init
    assert torch.equal(model.embedding.weight[others], before[others])
    wrong = WordVectors({"w3": 0}, np.zeros((1, 3), dtype=np.float32), "test")
    with pytest.raises(UserError, match="3 dimensions.*8 .model.cvae.emb_dim."):
        model.init_embeddings_(wrong, vocab, source="glove.txt")


def test_the_shared_evaluation_path_runs_on_the_cvae(data) -> None:
    """evaluation.evaluate_model (Rec, KL, IW-NLL with [K, B, D] prior densities) on
    DialogBatches."""
    from cyclevae.evaluation import evaluate_model

    vocab, corpus, _ = data
    model = make_model(vocab, bow=True)
    batches = DialogBatcher(corpus, batch_size=8, run_length=3).batches(0, shuffle=False,
                                                                        drop_last=False)
    out = evaluate_model(model, batches, iw_samples=6, iw_chunk=3, seed=0)
    with torch.no_grad():
        model.eval()
        kl = sum(float(model(b, sample=False).kl.sum()) for b in batches) / len(corpus)
    assert out["kl"] == pytest.approx(kl, rel=1e-4)
    assert out["tokens"] == corpus.num_tokens
    assert math.isfinite(out["iw_nll"]) and out["ppl"] > 1
