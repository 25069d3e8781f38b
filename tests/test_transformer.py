"""The Transformer encoder and decoder (issue 32 item 1): causal masking, z injection, the
plain language model without z, padding, and the sentence VAE built on them."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformer_support import BOS, EOS, PAD, D, V, decoder, random_rows, tiny

from cyclevae.cli import main
from cyclevae.data.batching import TextBatch
from cyclevae.errors import UserError
from cyclevae.models.base import init_uniform_
from cyclevae.models.generation import DecodingConfig, decode
from cyclevae.models.savae import SemiAmortizedVAE
from cyclevae.models.transformer import (
    INJECTIONS,
    TransformerDecoder,
    TransformerEncoder,
    sinusoidal_positions,
)
from cyclevae.models.vae import TextVAE, VAEConfig, build_sentence_decoder, build_sentence_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


def test_config_validation_names_the_field():
    tiny().validate()
    with pytest.raises(UserError, match=r"model\.transformer\.d_model must be a multiple of "
                                        r"n_heads \(3\), got 16"):
        tiny(n_heads=3).validate()
    with pytest.raises(UserError, match=r"model\.transformer\.z_injection must be 'memory' or "
                                        r"'embedding' or 'both', got 'prefix'"):
        tiny(z_injection="prefix").validate()
    with pytest.raises(UserError, match=r"model\.transformer\.positions"):
        tiny(positions="rotary").validate()
    with pytest.raises(UserError, match=r"model\.transformer\.dropout must be in \[0, 1\)"):
        tiny(dropout=1.0).validate()


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_causal_masking_no_earlier_logit_sees_a_later_token(injection, positions):
    dec = decoder(injection, positions)
    z = torch.randn(3, D)
    inputs = random_rows(3, 9)
    with torch.no_grad():
        base = dec.logits(inputs, z)
        for t in (1, 4, 8):
            changed = inputs.clone()
            changed[:, t] = (changed[:, t] - 4 + 1) % (V - 4) + 4  # another ordinary word
            out = dec.logits(changed, z)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
            assert (out[:, t] - base[:, t]).abs().max() > 1e-4  # position t does read it


@pytest.mark.parametrize("injection", INJECTIONS)
def test_each_injection_makes_every_logit_depend_on_z(injection):
    dec = decoder(injection)
    inputs = random_rows(2, 6)
    with torch.no_grad():
        a = dec.logits(inputs, torch.randn(2, D))
        b = dec.logits(inputs, torch.randn(2, D))
    # every position, the first one included, changes with z
    assert ((a - b).abs().amax(dim=-1) > 1e-4).all()


@pytest.mark.parametrize("injection", INJECTIONS)
def test_without_z_the_decoder_is_a_plain_language_model(injection):
    """z = None: no memory position, no embedding offset; the injection weights play no part
    (changing them changes nothing), while they do change the logits given a z."""
    dec = decoder(injection)
    inputs, z = random_rows(2, 6), torch.randn(2, D)
    with torch.no_grad():
        plain, given = dec.logits(inputs, None), dec.logits(inputs, z)
        for layer in (dec.z_to_memory, dec.z_to_embedding):
            if layer is not None:
                # random, not a constant shift (the LayerNorms would remove that)
                layer.weight.add_(torch.randn_like(layer.weight))
        torch.testing.assert_close(dec.logits(inputs, None), plain, rtol=0, atol=0)
        assert (dec.logits(inputs, z) - given).abs().max() > 1e-3


def test_embedding_injection_with_zero_projection_equals_the_plain_model():
    dec = decoder("embedding")
    inputs = random_rows(2, 6)
    with torch.no_grad():
        nn.init.zeros_(dec.z_to_embedding.weight)
        nn.init.zeros_(dec.z_to_embedding.bias)
        torch.testing.assert_close(dec.logits(inputs, torch.randn(2, D)),
                                   dec.logits(inputs, None), rtol=0, atol=1e-6)


def test_decoder_right_padding_scores_only_the_real_tokens():
    """A right-padded row scores what it scores unpadded (pad targets not counted), and its
    real positions' logits do not change (causal: they never see the pads)."""
    dec = decoder("both")
    z = torch.randn(2, D)
    short = torch.tensor([[BOS, 7, 8, EOS]])
    long = torch.tensor([[BOS, 9, 10, 11, 12, EOS]])
    padded = torch.tensor([[BOS, 7, 8, EOS, PAD, PAD], [BOS, 9, 10, 11, 12, EOS]])
    with torch.no_grad():
        rec = dec.reconstruction_loss(padded, z)
        torch.testing.assert_close(rec[0], dec.reconstruction_loss(short, z[:1])[0],
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(rec[1], dec.reconstruction_loss(long, z[1:])[0],
                                   rtol=0, atol=1e-5)
        torch.testing.assert_close(dec.logits(padded[:, :-1], z)[0, :3],
                                   dec.logits(short[:, :-1], z[:1])[0], rtol=0, atol=1e-5)


def test_reconstruction_loss_is_the_cross_entropy_of_the_logits():
    dec = decoder("both")
    z, tokens = torch.randn(3, D), random_rows(3, 7)
    with torch.no_grad():
        logits = dec.logits(tokens[:, :-1], z)
        expected = nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:],
                                               reduction="none").sum(1)
        torch.testing.assert_close(dec.reconstruction_loss(tokens, z), expected,
                                   rtol=1e-5, atol=1e-5)


def test_encoder_ignores_padding_and_reads_every_position():
    torch.manual_seed(0)
    enc = TransformerEncoder(V, D, tiny(), pad_index=PAD).eval()
    rows = random_rows(2, 6)
    padded = torch.cat([rows, torch.full((2, 3), PAD)], dim=1)
    padded[1, 6:] = torch.tensor([9, PAD, PAD])  # row 1 has one more word, then padding
    with torch.no_grad():
        mu, logvar = enc(padded)
        mu0, logvar0 = enc(rows[:1])
        mu1, _ = enc(torch.cat([rows[1:], torch.tensor([[9]])], dim=1))
        torch.testing.assert_close(mu[0], mu0[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(logvar[0], logvar0[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(mu[1], mu1[0], rtol=0, atol=1e-5)
        # bidirectional: the first position's token matters as much as the last's
        changed = rows.clone()
        changed[:, -1] = (changed[:, -1] - 4 + 1) % (V - 4) + 4
        assert (enc(changed)[0] - enc(rows)[0]).abs().amax(dim=-1).min() > 1e-4
    assert mu.shape == logvar.shape == (2, D)


def test_sinusoidal_positions_follow_vaswani():
    table = sinusoidal_positions(50, 8)
    pos, i = 7, 1  # column 2i: sin(pos / 10000^(2i/d)), column 2i+1: the cosine
    angle = torch.tensor(pos / 10000 ** (2 * i / 8))
    torch.testing.assert_close(table[pos, 2 * i], torch.sin(angle))
    torch.testing.assert_close(table[pos, 2 * i + 1], torch.cos(angle))


def test_rows_longer_than_max_length_are_a_one_line_error():
    dec = decoder("both")
    with pytest.raises(UserError, match=r"row of 41 positions is longer than "
                                        r"model\.transformer\.max_length \(40\)"):
        dec.logits(random_rows(1, 41), torch.randn(1, D))
    state = dec.start_state(torch.randn(1, D))
    with torch.no_grad(), pytest.raises(UserError, match="max_length"):
        decode(dec, state, 1, bos=BOS, eos=-1, config=DecodingConfig(max_length=41))


def test_tied_embeddings_share_one_tensor():
    dec = decoder("both", tie_embeddings=True)
    assert dec.output.weight is dec.embed.word.weight


def vae_config(**changes: object) -> VAEConfig:
    config = VAEConfig(latent_dim=D, encoder="transformer", decoder="transformer",
                       transformer=tiny())
    for key, value in changes.items():
        setattr(config, key, value)
    config.validate()
    return config


def test_text_vae_trains_evaluates_and_generates_with_transformer_parts():
    torch.manual_seed(0)
    model = TextVAE(vae_config(), V)
    assert isinstance(model.encoder, TransformerEncoder)
    assert isinstance(model.decoder, TransformerDecoder)
    # GPT-2's initialisation, not init_range's uniform draws: LayerNorm scales stay 1
    assert torch.equal(model.decoder.ln_final.weight, torch.ones(16))
    batch = TextBatch(random_rows(4, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        out = model(batch, beta=0.5)
        assert out.rec.shape == out.kl.shape == (4,) and out.kl_per_dim.shape == (4, D)
        loss = (out.rec + 0.5 * out.kl).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    z = torch.randn(3, D)
    for config in (DecodingConfig(max_length=20),
                   DecodingConfig(strategy="sample", top_p=0.9, max_length=20),
                   DecodingConfig(strategy="beam", beam_width=2, max_length=20)):
        rows = model.generate(z, decoding=config, generator=torch.Generator().manual_seed(0))
        assert len(rows) == 3 and all(0 <= t < V and t != EOS for r in rows for t in r)


def test_lstm_parts_get_the_same_init_range_draws_as_before():
    """TextVAE initialises its LSTM/CNN parts one by one now (Transformer parts keep their
    own init): the same numbers as init_uniform_ over the whole model, as before."""
    config = VAEConfig(emb_dim=8, enc_hidden=8, dec_hidden=8, latent_dim=D)
    torch.manual_seed(11)
    model = TextVAE(config, V)
    torch.manual_seed(11)
    parts = nn.ModuleList([build_sentence_encoder(config, V), build_sentence_decoder(config, V)])
    init_uniform_(parts, config.init_range)
    for (name, p), q in zip(model.named_parameters(), parts.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_mixed_parts_lstm_encoder_with_transformer_decoder():
    torch.manual_seed(0)
    model = TextVAE(vae_config(encoder="lstm", emb_dim=8, enc_hidden=8), V)
    out = model(TextBatch(random_rows(2, 5)), beta=1.0)
    out.rec.sum().backward()
    assert model.encoder.lstm.weight_hh_l0.grad is not None


def test_savae_refuses_a_transformer_decoder():
    with pytest.raises(UserError, match=r"model\.decoder must be 'lstm' for model\.kind savae"):
        SemiAmortizedVAE(vae_config(encoder="lstm"), V)


def test_an_unprepared_corpus_trains_with_two_settings(tmp_path, capsys):
    """Acceptance: a corpus no one prepared trains with model.encoder=transformer and
    model.decoder=transformer (tiny sizes and one epoch only to keep the test fast), then
    evaluates, generates and diagnoses from the checkpoint."""
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "park", "home", "late"]
    g = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(len(words), (int(n),), generator=g))
             for n in torch.randint(3, 9, (60,), generator=g)]
    corpus = tmp_path / "mine.txt"
    corpus.write_text("\n".join(lines) + "\n")
    items = ["model.encoder=transformer", "model.decoder=transformer",
             f"data.train={corpus}", "train.epochs=1", "model.latent_dim=4",
             "model.transformer.d_model=16", "model.transformer.n_heads=2",
             "model.transformer.d_ff=32", "model.transformer.n_layers=1",
             "train.iw_samples=2", "train.num_threads=1"]
    args = [x for item in items for x in ("--set", item)]
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *args]) == 0
    ckpt = str(tmp_path / "run" / "checkpoint_last.pt")
    assert main(["evaluate", ckpt, "--data", str(corpus), "--iw-samples", "2"]) == 0
    capsys.readouterr()
    assert main(["generate", ckpt, "--prior", "3", "--decoding", "beam", "--max-length",
                 "6"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    out = tmp_path / "diag"
    assert main(["diagnose", ckpt, "--data", str(corpus), "--out", str(out)]) == 0
    assert "**Verdict:" in (out / "diagnosis.md").read_text()
