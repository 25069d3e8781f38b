"""Decoding with the Transformer decoder's key/value cache (issue 32 item 2): cached steps
give the full causal forward's logits, and every strategy of `decode` (greedy, sampling with
temperature / top-k / top-p, beam search with a length penalty) returns token for token what
it returns without a cache; beam width 1 is greedy decoding."""

from __future__ import annotations

import pytest
import torch
from transformer_support import BOS, EOS, D, Uncached, decoder, random_rows

from cyclevae.models.generation import DecodingConfig, decode
from cyclevae.models.transformer import INJECTIONS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_cached_steps_give_the_full_forward_logits(injection, positions):
    dec = decoder(injection, positions)
    z, inputs = torch.randn(3, D), random_rows(3, 12)
    with torch.no_grad():
        full = dec.logits(inputs, z)
        state, steps = dec.start_state(z), []
        for t in range(inputs.shape[1]):
            logits, state = dec.step(inputs[:, t], state)
            steps.append(logits)
        # and a prefix read at once, then steps after it (the cache grown by a block)
        _, mixed = dec.extend(inputs[:, :5], dec.start_state(z))
        later = []
        for t in range(5, inputs.shape[1]):
            logits, mixed = dec.step(inputs[:, t], mixed)
            later.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.stack(later, 1), full[:, 5:], rtol=0, atol=1e-5)
    memory = 1 if injection != "embedding" else 0
    assert state.position == 12 and state.cache[0][0].shape == (3, 2, 12 + memory, 8)


def test_select_reorders_and_repeats_cached_rows():
    dec = decoder("both")
    z, inputs = torch.randn(3, D), random_rows(3, 4)
    with torch.no_grad():
        _, state = dec.extend(inputs, dec.start_state(z))
        index = torch.tensor([2, 0, 0])
        picked, _ = dec.step(torch.tensor([5, 6, 7]), dec.select(state, index))
        _, direct = dec.extend(inputs[index], dec.start_state(z[index]))
        expected, _ = dec.step(torch.tensor([5, 6, 7]), direct)
    torch.testing.assert_close(picked, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("config", [
    DecodingConfig(strategy="greedy", max_length=12),
    DecodingConfig(strategy="sample", temperature=0.7, max_length=12),
    DecodingConfig(strategy="sample", top_k=4, max_length=12),
    DecodingConfig(strategy="sample", top_p=0.6, temperature=1.3, max_length=12),
    DecodingConfig(strategy="beam", beam_width=3, length_penalty=0.0, max_length=12),
    DecodingConfig(strategy="beam", beam_width=4, length_penalty=1.5, max_length=12),
], ids=["greedy", "temperature", "top-k", "top-p", "beam-lp0", "beam-lp1.5"])
def test_cached_decoding_equals_uncached_token_for_token(injection, config):
    dec = decoder(injection, spread=0.4, seed=3)
    z = torch.randn(4, D)
    cached = decode(dec, dec.start_state(z), 4, bos=BOS, eos=EOS, config=config,
                    generator=torch.Generator().manual_seed(7))
    uncached = decode(Uncached(dec), (z, torch.zeros(4, 0, dtype=torch.long)), 4, bos=BOS,
                      eos=EOS, config=config, generator=torch.Generator().manual_seed(7))
    assert cached == uncached
    assert any(cached) and all(len(row) <= 12 for row in cached)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_beam_one_equals_greedy(injection):
    dec = decoder(injection, spread=0.4, seed=5)
    z = torch.randn(5, D)
    greedy = decode(dec, dec.start_state(z), 5, bos=BOS, eos=EOS,
                    config=DecodingConfig(strategy="greedy", max_length=15))
    for penalty in (0.0, 1.0, 2.0):
        beam = decode(dec, dec.start_state(z), 5, bos=BOS, eos=EOS,
                      config=DecodingConfig(strategy="beam", beam_width=1,
                                            length_penalty=penalty, max_length=15))
        assert beam == greedy
