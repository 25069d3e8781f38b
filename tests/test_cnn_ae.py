"""The Yelp models: the CNN encoder, tied embeddings and the deterministic autoencoder."""

from __future__ import annotations

import math

import pytest
import torch

from cyclevae.config import ModelConfig, load_config
from cyclevae.data.batching import TextBatch
from cyclevae.data.splits import EncoderLimit, read_split
from cyclevae.errors import UserError
from cyclevae.evaluation import evaluate
from cyclevae.models.autoencoder import TextAutoencoder
from cyclevae.models.encoders import CNNConfig, CNNEncoder, cnn_min_input_length
from cyclevae.families import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

V = 30


def small_cnn(**overrides) -> ModelConfig:
    config = ModelConfig(emb_dim=8, enc_hidden=8, dec_hidden=8, latent_dim=4, dropout=0.0,
                         encoder="cnn", tie_embeddings=True,
                         cnn=CNNConfig(conv1=6, conv2=7, conv3=9, input_length=13))
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    return config


def batch(length: int, rows: int = 3, seed: int = 0) -> TextBatch:
    """``rows`` sentences of ``length`` words: <s> w.. </s>."""
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(4, V, (rows, length), generator=g)
    return TextBatch(torch.cat([torch.ones(rows, 1, dtype=torch.long), words,
                                torch.full((rows, 1), 2, dtype=torch.long)], dim=1))


@pytest.mark.parametrize("length", [1, 12, 13, 30])  # short, exact (12 words + </s>), over-long
def test_cnn_encoder_shapes(length: int) -> None:
    torch.manual_seed(0)
    enc = CNNEncoder(V, 8, 4, CNNConfig(conv1=6, conv2=7, conv3=9, input_length=13))
    tokens = batch(length).tokens
    fixed = enc.fixed_input(tokens)
    assert fixed.shape == (3, 13)
    n = min(length + 1, 13)  # words and </s> the encoder reads
    assert torch.equal(fixed[:, :n], tokens[:, 1:n + 1])
    assert bool((fixed[:, n:] == 0).all())  # right-padded with <pad>
    mu, logvar = enc(tokens)
    assert mu.shape == logvar.shape == (3, 4)


def test_cnn_reads_a_prefix_and_ignores_the_rest() -> None:
    torch.manual_seed(0)
    enc = CNNEncoder(V, 8, 4, CNNConfig(conv1=6, conv2=7, conv3=9, input_length=13))
    long = batch(30).tokens
    changed = long.clone()
    changed[:, 20:] = 5  # beyond the 13 positions read
    assert torch.equal(enc(long)[0], enc(changed)[0])
    changed[:, 3] = 6  # inside them
    assert not torch.equal(enc(long)[0], enc(changed)[0])


def test_cnn_third_layer_spans_the_remaining_positions() -> None:
    for length in (13, 20, 37):
        enc = CNNEncoder(V, 8, 4, CNNConfig(conv1=6, conv2=7, conv3=9, input_length=length))
        emb = torch.zeros(2, 8, length)
        assert enc.convs(emb).shape == (2, 9, 1)
    assert cnn_min_input_length(5, 2) == 13


def test_cnn_config_errors() -> None:
    with pytest.raises(UserError, match=r"model\.cnn\.input_length must be >= 13"):
        load_config(None, ["data.train=x", "model.encoder=cnn", "model.cnn.input_length=12"])
    with pytest.raises(UserError, match=r"model\.cnn\.long_inputs must be 'cut' or 'drop'"):
        load_config(None, ["data.train=x", "model.encoder=cnn", "model.cnn.long_inputs=keep"])
    with pytest.raises(UserError, match=r"model\.encoder must be 'lstm' or 'cnn'"):
        load_config(None, ["data.train=x", "model.encoder=gru"])
    with pytest.raises(UserError, match=r"model\.tie_embeddings must be false unless emb_dim"):
        load_config(None, ["data.train=x", "model.tie_embeddings=true", "model.emb_dim=8"])


def test_tied_embeddings_share_storage_and_train_together() -> None:
    torch.manual_seed(0)
    model = build_model(small_cnn(), V)
    dec = model.decoder
    assert dec.output.weight is dec.embedding.weight
    assert dec.output.weight.data_ptr() == dec.embedding.weight.data_ptr()
    names = [n for n, _ in model.named_parameters()]
    assert "decoder.output.weight" not in names  # one parameter, counted once
    out = model(batch(5))
    (out.rec.mean() + out.kl.mean()).backward()
    grad = dec.embedding.weight.grad
    assert grad is not None and bool(grad[2].abs().sum() > 0)  # </s>: predicted, never input
    untied = build_model(small_cnn(tie_embeddings=False), V)
    assert untied.decoder.output.weight is not untied.decoder.embedding.weight
    assert sum(p.numel() for p in untied.parameters()) == (
        sum(p.numel() for p in model.parameters()) + V * 8)


def test_autoencoder_has_no_sampling_and_no_kl() -> None:
    torch.manual_seed(0)
    config = small_cnn()
    config.kind = "ae"
    model = build_model(config, V)
    assert isinstance(model, TextAutoencoder) and model.stochastic is False
    b = batch(6)
    model.train()
    first, second = model(b, beta=1.0, sample=True), model(b, beta=0.3, sample=True)
    assert torch.equal(first.z, first.mu) and torch.equal(first.rec, second.rec)
    assert bool((first.kl == 0).all()) and bool((first.kl_per_dim == 0).all())
    assert torch.equal(first.rec, model.reconstruction_loss(b, first.mu))
    mu, logvar = model.posterior(b)
    assert torch.equal(mu, first.mu) and bool(torch.isinf(logvar).all())


def test_autoencoder_metrics_say_kl_and_mi_are_not_defined() -> None:
    torch.manual_seed(0)
    config = small_cnn()
    config.kind = "ae"
    model = build_model(config, V)
    batches = [batch(4, seed=1), batch(7, seed=2)]
    metrics = evaluate(model, batches, iw_samples=5)
    for key in ("kl", "elbo", "nll_bound", "ppl", "mi", "marginal_kl"):
        assert metrics[key] is None and key in metrics["not_defined"]
    assert "iw_nll" not in metrics
    rec = sum(model.reconstruction_loss(b, model.posterior(b)[0]).double().sum().item()
              for b in batches)
    assert metrics["rec"] == pytest.approx(rec / 6)
    assert metrics["rec_ppl"] == pytest.approx(math.exp(rec / (3 * 5 + 3 * 8)))


def test_vae_reports_rec_ppl_below_its_elbo_ppl() -> None:
    torch.manual_seed(0)
    model = build_model(small_cnn(), V)
    metrics = evaluate(model, [batch(4), batch(9)])
    assert metrics["kl"] > 0 and metrics["rec_ppl"] < metrics["ppl"]


def test_long_inputs_drop_or_cut_are_counted(tmp_path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("pos\ta b c\nneg\ta b c d e f\nneg\ta\n")
    config = load_config(None, [f"data.train={path}"])
    sentences, labels, stats = read_split(str(path), tmp_path, config.data,
                                          EncoderLimit(4, "drop"))
    assert sentences == [["a", "b", "c"], ["a"]] and labels == ["pos", "neg"]
    assert stats["encoder_dropped"] == 1 and stats["sentences"] == 2 and stats["tokens"] == 4
    sentences, labels, stats = read_split(str(path), tmp_path, config.data,
                                          EncoderLimit(4, "cut"))
    assert len(sentences) == 3 and stats["encoder_cut"] == 1
