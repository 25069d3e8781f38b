"""A Hugging Face causal LM as the decoder (issue 32 item 4), on a tiny randomly initialised
GPT-2 built from a GPT2Config and a word-level tokenizer saved in the test (no pretrained
causal LM can be had offline): causal masking, each z injection, z = None is exactly the
pretrained LM, the key/value cache against the full forward and against no cache for every
decoding strategy, beam 1 = greedy, and a sentence VAE on it that trains, evaluates and
generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hf_support import GPT2_WORDS, save_tiny_gpt2
from transformer_support import Uncached

from cyclevae.data.batching import TextBatch
from cyclevae.errors import UserError
from cyclevae.evaluation import evaluate_model
from cyclevae.models.generation import DecodingConfig, decode
from cyclevae.models.hf_decoder import HFCausalDecoder, HFDecoderConfig, load_hf_decoder
from cyclevae.models.transformer import INJECTIONS
from cyclevae.models.vae import TextVAE, VAEConfig

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = GPT2_WORDS
EOT = 0
D = 4


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def gpt2(gpt2_dir):
    return load_hf_decoder(gpt2_dir)


def decoder(gpt2, injection: str = "both", spread: float = 0.0) -> HFCausalDecoder:
    """A decoder on the tiny GPT-2 in eval mode; ``spread > 0`` redraws the z projections
    and every GPT-2 weight N(0, spread) on a copy, so logits are far apart (no near-ties)."""
    model, tokenizer = gpt2
    if spread > 0:
        model = type(model)(model.config)
    torch.manual_seed(1)
    dec = HFCausalDecoder(model, tokenizer, D, HFDecoderConfig(path="x", z_injection=injection))
    if spread > 0:
        for p in dec.parameters():
            torch.nn.init.normal_(p, std=spread)
    return dec.eval()


def token_rows(n: int, length: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(2, len(WORDS), (n, length), generator=g)
    rows[:, 0] = EOT
    return rows


def test_the_tokenizer_gives_gpt2_style_rows(gpt2):
    dec = decoder(gpt2)
    assert (dec.bos_index, dec.eos_index, dec.pad_index) == (EOT, EOT, None)
    assert gpt2[1]("the cat zebra")["input_ids"] == [2, 3, 1]
    assert dec.kv_shapes == [(2, 8), (2, 8)]


@pytest.mark.parametrize("injection", INJECTIONS)
def test_causal_masking_and_z_dependence(gpt2, injection):
    dec = decoder(gpt2, injection)
    z, inputs = torch.randn(3, D), token_rows(3, 8)
    with torch.no_grad():
        base = dec.logits(inputs, z)
        changed = inputs.clone()
        changed[:, 5] = (changed[:, 5] - 2 + 1) % (len(WORDS) - 2) + 2
        out = dec.logits(changed, z)
        torch.testing.assert_close(out[:, :5], base[:, :5], rtol=0, atol=1e-6)
        assert (out[:, 5] - base[:, 5]).abs().max() > 1e-5
        other = dec.logits(inputs, torch.randn(3, D))
    assert ((other - base).abs().amax(dim=-1) > 1e-6).all()  # every position reads z


def test_without_z_the_decoder_is_the_pretrained_language_model(gpt2):
    dec = decoder(gpt2, "both")
    inputs = token_rows(2, 7)
    with torch.no_grad():
        torch.testing.assert_close(dec.logits(inputs, None),
                                   gpt2[0](input_ids=inputs).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_cached_steps_give_the_full_forward_logits(gpt2, injection):
    dec = decoder(gpt2, injection)
    z, inputs = torch.randn(3, D), token_rows(3, 10)
    with torch.no_grad():
        full = dec.logits(inputs, z)
        state, steps = dec.start_state(z), []
        for t in range(inputs.shape[1]):
            logits, state = dec.step(inputs[:, t], state)
            steps.append(logits)
        start = dec.start_state(z)
        _, after = dec.extend(inputs[:, :4], start)
        again, _ = dec.extend(inputs[:, :4], start)  # the state is not changed by use
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=1e-5)
    torch.testing.assert_close(again, full[:, :4], rtol=0, atol=1e-5)
    assert after.position == 4


@pytest.mark.parametrize("config", [
    DecodingConfig(strategy="greedy", max_length=10),
    DecodingConfig(strategy="sample", temperature=0.8, top_k=5, max_length=10),
    DecodingConfig(strategy="sample", top_p=0.7, max_length=10),
    DecodingConfig(strategy="beam", beam_width=3, length_penalty=1.0, max_length=10),
], ids=["greedy", "top-k", "top-p", "beam"])
def test_cached_decoding_equals_uncached_token_for_token(gpt2, config):
    dec = decoder(gpt2, "both", spread=0.5)
    z = torch.randn(3, D)
    cached = decode(dec, dec.start_state(z), 3, bos=EOT, eos=EOT, config=config,
                    generator=torch.Generator().manual_seed(4))
    uncached = decode(Uncached(dec), (z, torch.zeros(3, 0, dtype=torch.long)), 3, bos=EOT,
                      eos=EOT, config=config, generator=torch.Generator().manual_seed(4))
    assert cached == uncached and any(cached)


def test_beam_one_equals_greedy(gpt2):
    dec = decoder(gpt2, "memory", spread=0.5)
    z = torch.randn(4, D)
    greedy = decode(dec, dec.start_state(z), 4, bos=EOT, eos=EOT,
                    config=DecodingConfig(max_length=12))
    beam = decode(dec, dec.start_state(z), 4, bos=EOT, eos=EOT,
                  config=DecodingConfig(strategy="beam", beam_width=1, max_length=12))
    assert beam == greedy


def test_a_sentence_vae_on_gpt2_trains_evaluates_and_generates(gpt2_dir):
    """An LSTM encoder over the GPT-2 tokens and the GPT-2 decoder, fine-tuned together."""
    model, tokenizer = load_hf_decoder(gpt2_dir)
    pretrained = model.transformer.h[0].attn.c_attn.weight.clone()
    torch.manual_seed(0)
    dec = HFCausalDecoder(model, tokenizer, D, HFDecoderConfig(path=str(gpt2_dir)))
    config = VAEConfig(emb_dim=8, enc_hidden=8, latent_dim=D)
    vae = TextVAE(config, len(tokenizer), decoder=dec)
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, pretrained)  # kept
    ids = [[EOT, *tokenizer(s)["input_ids"], EOT]
           for s in ("the cat sat on the mat", "a dog ran home late today")]
    batch = TextBatch(torch.tensor(ids))
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    out = vae(batch, beta=1.0)
    (out.rec + out.kl).mean().backward()
    assert dec.z_to_memory.weight.grad.abs().sum() > 0
    assert dec.z_to_embedding.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(model.transformer.h[0].attn.c_attn.weight, pretrained)
    with torch.no_grad():
        logits = dec.logits(batch.tokens[:, :-1], out.z)
        expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2),
                                                     batch.tokens[:, 1:], reduction="none")
        torch.testing.assert_close(dec.reconstruction_loss(batch.tokens, out.z),
                                   expected.sum(1), rtol=1e-5, atol=1e-5)
    metrics = evaluate_model(vae, [batch], iw_samples=2, iw_chunk=2)
    assert metrics["rec"] > 0
    vae.eval()
    rows = vae.generate(torch.randn(3, D), decoding=DecodingConfig(max_length=8))
    assert len(rows) == 3 and all(len(r) <= 8 for r in rows)


def test_the_vae_generates_from_the_tokenizers_bos_to_its_eos(gpt2):
    """Not from the corpus vocabulary's <s> (1) to its </s> (2), which name other tokens
    here."""
    dec = decoder(gpt2, "both", spread=0.5)
    vae = TextVAE(VAEConfig(emb_dim=8, enc_hidden=8, latent_dim=D), len(WORDS), decoder=dec)
    z, greedy = torch.randn(6, D), DecodingConfig(max_length=8)
    rows = vae.eval().generate(z, decoding=greedy)
    assert rows == decode(dec, dec.start_state(z), 6, bos=EOT, eos=EOT, config=greedy)
    assert rows != decode(dec, dec.start_state(z), 6, bos=1, eos=2, config=greedy)


def test_a_tokenizer_that_does_not_match_is_a_one_line_error(tmp_path):
    root = save_tiny_gpt2(tmp_path / "small", vocab_size=5)
    with pytest.raises(UserError, match=r"^model\.hf_decoder\.path .*: the tokenizer does not "
                                        r"match the model \(15 tokens, the model embeds 5\)$"):
        load_hf_decoder(root)
    with pytest.raises(UserError, match="no such directory"):
        load_hf_decoder(tmp_path / "nowhere")


def test_config_validation():
    HFDecoderConfig(path="d").validate()
    with pytest.raises(UserError, match=r"model\.hf_decoder\.z_injection must be"):
        HFDecoderConfig(path="d", z_injection="prefix").validate()
