"""kgCVAE conversation features (issue 14, item 2): the topic and the callers' metadata of a
swda-zhao line, parsed, carried per example in DialogBatch, conditioning c when
``model.cvae.use_topic`` / ``use_caller`` are on; the topic labels in the checkpoint; the
default-off model unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from cyclevae.checkpoint import load_checkpoint
from cyclevae.cli import main
from cyclevae.config import load_config
from cyclevae.data.dialog import (
    CALLER_DIM,
    TOPIC_UNK,
    Conversation,
    Utterance,
    build_topic_vocabulary,
    build_vocabulary,
    encode_dialogs,
    parse_caller,
    prepare_dialog_data,
    read_conversations,
)
from cyclevae.errors import UserError
from cyclevae.experiments import shipped_config
from cyclevae.inference import load_model
from cyclevae.losses import beta_vae_loss
from cyclevae.models.cvae import CVAE, CVAEConfig
from cyclevae.training import LAST

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"emb_dim": 8, "utt_hidden": 6, "ctx_hidden": 10, "latent_dim": 4, "dec_hidden": 12,
        "prior_hidden": 9, "bow_hidden": 7, "topic_dim": 5}

#: a swda-zhao line as the shared data spell it (quotes and stray spaces in the metadata)
ZHAO_LINE = {
    "A": {"dialect": " \"SOUTH MIDLAND\"", "age": 46, "education": " 2", "sex": " \"FEMALE\""},
    "topic": "\"AIR POLLUTION\"",
    "B": {"dialect": " \"NORTHERN\"", "age": " 48", "education": 3, "sex": "male"},
    "prompt": " \"PLEASE DISCUSS AIR POLLUTION.\"",
    "utts": [["A", "alright what do you think", ["open-question", [0.0, 0.6, 0.3, 0.2]]],
             ["B", "well i think it's bad", ["statement-opinion", [0.2, 0.6, 0.1, -0.5]]],
             ["B", "cars mostly", ["statement-opinion", [0.0, 1.0, 0.0, 0.0]]],
             ["A", "right", ["acknowledge_(backchannel)", [0.0, 1.0, 0.0, 0.0]]]],
}
FEMALE_46 = (0.46, 2 / 3, 0.0, 1.0)
MALE_48 = (0.48, 1.0, 1.0, 0.0)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def zhao_line(topic: str | None = "\"AIR POLLUTION\"", **changes: object) -> dict:
    record = json.loads(json.dumps(ZHAO_LINE))
    record["topic"] = topic
    record.update(changes)
    return record


# ------------------------------------------------------------------------- parsing
def test_topic_and_callers_parsed_from_a_zhao_line_my_and_other_by_speaker(tmp_path) -> None:
    path = write_jsonl(tmp_path / "zhao.jsonl", [ZHAO_LINE])
    (conv,), _ = read_conversations(path)
    assert conv.topic == "AIR POLLUTION"
    assert conv.callers is not None
    assert conv.callers["A"] == pytest.approx(FEMALE_46)  # " \"FEMALE\"", " 2"
    assert conv.callers["B"] == pytest.approx(MALE_48)  # "male", " 48", 3
    vocab = build_vocabulary([conv])
    corpus = encode_dialogs([conv], vocab, topic_labels=build_topic_vocabulary([conv]),
                            callers=True)
    batch = corpus.batch(range(len(corpus)))  # responses by A, B, B, A
    assert batch.callers is not None and batch.callers.dtype == torch.float32
    assert batch.callers.shape == (4, 2, CALLER_DIM)
    a, b = torch.tensor(FEMALE_46), torch.tensor(MALE_48)
    for row, speaker in enumerate("ABBA"):
        my, other = (a, b) if speaker == "A" else (b, a)
        assert torch.allclose(batch.callers[row, 0], my), row
        assert torch.allclose(batch.callers[row, 1], other), row
    assert batch.topics.tolist() == [1, 1, 1, 1]


def test_same_keys_accepted_on_a_swda_layout_line(tmp_path) -> None:
    path = write_jsonl(tmp_path / "swda.jsonl", [
        {"conversation": "7", "topic": " MUSIC ", "A": ZHAO_LINE["B"], "B": ZHAO_LINE["A"],
         "utts": [{"speaker": "A", "text": "Uh, do you like jazz?"},
                  {"speaker": "B", "text": "Yes."}]},
        {"conversation": "8", "utts": [{"speaker": "A", "text": "Hello."}]}])
    (with_meta, plain), stats = read_conversations(path)
    assert stats.layout == "swda"
    assert with_meta.topic == "MUSIC" and with_meta.callers["A"] == pytest.approx(MALE_48)
    assert plain.topic is None and plain.callers is None


def test_parse_caller_sex_both_ways_and_case() -> None:
    assert parse_caller({"age": 20, "education": 1, "sex": "\"MALE\""}, "x") == \
        pytest.approx((0.2, 1 / 3, 1.0, 0.0))
    assert parse_caller({"age": "20", "education": "0", "sex": " female"}, "x") == \
        pytest.approx((0.2, 0.0, 0.0, 1.0))


@pytest.mark.parametrize(("change", "message"), [
    ({"A": {"age": "forty", "education": 2, "sex": "MALE"}}, "field 'A.age': expected a number"),
    ({"B": {"age": 40, "education": 2, "sex": " \"UNKNOWN\""}},
     "field 'B.sex': expected MALE or FEMALE"),
    ({"A": {"age": 40, "sex": "MALE"}}, "field 'A.education' missing"),
    ({"A": {"age": True, "education": 2, "sex": "MALE"}}, "field 'A.age': expected a number"),
    ({"B": "somebody"}, "field 'B': expected an object"),
    ({"B": None}, "caller metadata 'A' without 'B'"),
    ({"topic": ["AIR"]}, "field 'topic': expected a string"),
    ({"utts": [["C", "hello", []]]}, "speaker 'C' has no caller metadata"),
])
def test_a_field_that_does_not_parse_names_file_line_and_field(tmp_path, change, message):
    path = tmp_path / "bad.jsonl"
    record = zhao_line(**{"topic": ZHAO_LINE["topic"], **change})
    path.write_text(json.dumps(ZHAO_LINE) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(UserError) as info:
        read_conversations(path)
    text = str(info.value)
    assert text.startswith(f"{path}, line 2:") and message in text, text
    assert "\n" not in text


def test_unknown_or_missing_topic_is_the_unk_id() -> None:
    def conv(topic: str | None) -> Conversation:
        return Conversation(f"c{topic}", (Utterance("A", ("hi",)), Utterance("B", ("yo",))),
                            topic)

    train = [conv("SPORTS"), conv("MUSIC"), conv("MUSIC")]
    labels = build_topic_vocabulary(train)
    assert labels == [TOPIC_UNK, "MUSIC", "SPORTS"]  # <unk> is id 0, then sorted
    vocab = build_vocabulary(train)
    corpus = encode_dialogs([conv("SPORTS"), conv("PETS"), conv(None)], vocab,
                            topic_labels=labels)
    assert corpus.topics.tolist() == [2, 2, 0, 0, 0, 0]  # two examples per conversation
    assert corpus.callers is None  # that feature off
    plain = encode_dialogs(train, vocab).batch([0, 1])
    assert plain.topics is None and plain.callers is None  # features off: None


def test_batch_operations_carry_the_features() -> None:
    (conv,) = [Conversation("c", tuple(Utterance("AB"[k % 2], (f"w{k}",)) for k in range(5)),
                            "X", {"A": FEMALE_46, "B": MALE_48})]
    corpus = encode_dialogs([conv], build_vocabulary([conv]),
                            topic_labels=build_topic_vocabulary([conv]), callers=True)
    batch = corpus.batch([0, 1, 2])
    assert batch.repeat_each(2).callers[1].tolist() == batch.callers[0].tolist()
    assert batch.repeat_each(2).topics.tolist() == [1] * 6
    assert batch.repeat(2).callers.shape == (6, 2, CALLER_DIM)
    picked = batch.select(torch.tensor([2, 0]))
    assert torch.equal(picked.callers, batch.callers[[2, 0]])
    moved = batch.to("cpu")
    assert torch.equal(moved.callers, batch.callers) and torch.equal(moved.topics, batch.topics)


# ------------------------------------------------------------------------- missing features
def test_training_data_without_a_feature_is_a_one_line_error(tmp_path) -> None:
    swda = write_jsonl(tmp_path / "swda.jsonl", [
        {"conversation": "1", "utts": [{"speaker": "A", "text": "Hi."},
                                       {"speaker": "B", "text": "Hello."}]}])
    zhao = write_jsonl(tmp_path / "zhao.jsonl", [ZHAO_LINE])
    with pytest.raises(UserError) as info:
        prepare_dialog_data(swda, {}, use_topic=True)
    assert str(info.value) == ("model.cvae.use_topic needs a 'topic' on every training "
                               f"conversation; {swda} has none")
    with pytest.raises(UserError, match=r"use_caller needs caller metadata 'A' and 'B'"):
        prepare_dialog_data(swda, {}, use_caller=True)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [ZHAO_LINE, zhao_line(topic=None)])
    with pytest.raises(UserError, match=r"mixed\.jsonl: conversation line 2 has none "
                                        r"\(1 of 2 lack it\)"):
        prepare_dialog_data(mixed, {}, use_topic=True)
    # at evaluation a missing topic is the <unk> topic, missing callers are an error
    data = prepare_dialog_data(zhao, {"test": mixed}, use_topic=True, drop_leakage=False)
    assert data.topic_labels == [TOPIC_UNK, "AIR POLLUTION"]
    assert data.evaluations["test"].topics.tolist() == [1] * 4 + [0] * 4
    with pytest.raises(UserError, match=r"every evaluated conversation; .*swda\.jsonl has none"):
        prepare_dialog_data(zhao, {"test": swda}, use_caller=True, drop_leakage=False)


def test_train_with_a_feature_the_data_lacks_exits_2_and_writes_nothing(tmp_path, capsys):
    swda = write_jsonl(tmp_path / "swda.jsonl", [
        {"conversation": str(i), "utts": [{"speaker": "AB"[k % 2], "text": f"word{k} yes"}
                                          for k in range(6)]} for i in range(3)])
    out = tmp_path / "run"
    args = ["train", "--config", "dialog/cvae-bow-cyclical", "--out", str(out), "--no-progress"]
    for item in (f"data.train={swda}", f"data.valid={swda}", f"data.test={swda}",
                 "model.cvae.use_topic=true"):
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("cyclevae: error: model.cvae.use_topic needs a 'topic' on every training "
                   f"conversation; {swda} has none")
    assert not out.exists()


def test_feature_switches_are_validated_booleans() -> None:
    for key, value in (("use_topic", "maybe"), ("use_caller", "1"), ("topic_dim", "0")):
        with pytest.raises(UserError, match=f"model.cvae.{key}"):
            load_config(shipped_config("dialog/cvae-cyclical"), [f"model.cvae.{key}={value}"])
    config = load_config(shipped_config("dialog/cvae-cyclical"))
    assert (config.model.cvae.use_topic, config.model.cvae.use_caller) == (False, False)
    assert config.model.cvae.topic_dim == 30  # Zhao's topic_embed_size


# ------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def featured():
    convs = []
    for c, topic in enumerate(["MUSIC", "PETS", "MUSIC", "CARS"]):
        utts = tuple(Utterance("AB"[(k + c) % 2], (f"w{(k * 3 + c) % 11}", f"w{k % 5}"))
                     for k in range(6 + c))
        convs.append(Conversation(f"c{c}", utts, topic,
                                  {"A": (0.2 + 0.1 * c, 1 / 3, 1.0, 0.0), "B": MALE_48}))
    vocab = build_vocabulary(convs)
    labels = build_topic_vocabulary(convs)
    return vocab, labels, encode_dialogs(convs, vocab, topic_labels=labels, callers=True)


@pytest.mark.parametrize(("use_topic", "use_caller"), [(True, False), (False, True),
                                                       (True, True)])
def test_features_widen_c_and_train(featured, use_topic, use_caller) -> None:
    vocab, labels, corpus = featured
    config = CVAEConfig(**TINY, bow=True, use_topic=use_topic, use_caller=use_caller)
    model = CVAE(config, len(vocab), num_topics=len(labels))
    width = TINY["ctx_hidden"] + TINY["topic_dim"] * use_topic + 2 * CALLER_DIM * use_caller
    assert model.condition_dim == width
    latent, utt = TINY["latent_dim"], 2 * TINY["utt_hidden"]
    assert model.prior[0].in_features == width
    assert model.recognition.in_features == width + utt
    assert model.init_state.in_features == width + latent
    assert model.bow_hidden.in_features == width + latent
    batch = corpus.batch(range(len(corpus)))
    out = model(batch)
    beta_vae_loss(out.rec, out.kl, 1.0, aux=out.aux).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    if use_topic:
        grad = model.topic_embedding.weight.grad
        assert torch.isfinite(grad).all()
        used = sorted(set(batch.topics.tolist()))
        assert all(grad[t].abs().sum() > 0 for t in used)
        assert grad[0].abs().sum() == 0 and model.topic_embedding.weight[0].abs().sum() == 0
    # the prior p(z|c) depends on the features: change them and c changes
    model.eval()
    mu, _ = model.prior_params(batch)
    if use_topic:
        other = torch.where(batch.topics == 1, 2, 1)
        changed = dataclasses.replace(batch, topics=other)
    else:
        changed = dataclasses.replace(batch, callers=batch.callers.flip(1))
    assert not torch.allclose(model.prior_params(changed)[0], mu)
    # and so do the sampled responses' decoder states (c repeated per sample)
    z = model.sample_prior(batch.select(torch.tensor([0, 1])), 3)
    state = model.decoder_state(batch.select(torch.tensor([0, 1])), z)
    assert state.hidden.shape == (1, 6, TINY["dec_hidden"])


def test_a_featured_model_refuses_a_batch_without_the_features(featured) -> None:
    vocab, labels, corpus = featured
    plain = dataclasses.replace(corpus.batch([0, 1]), topics=None)
    model = CVAE(CVAEConfig(**TINY, use_topic=True), len(vocab), num_topics=len(labels))
    with pytest.raises(UserError, match="use_topic: the batch carries no topic ids"):
        model(plain)
    with pytest.raises(UserError, match="use_topic needs topic labels"):
        CVAE(CVAEConfig(**TINY, use_topic=True), len(vocab), num_topics=1)


def test_default_cvae_is_the_same_model_as_before() -> None:
    """Features off (the default): the parameters of the model before this change, by name
    and count at the paper's sizes (V = 10,002), so default runs give the same numbers."""
    names = ["embedding.weight", *[f"utt_rnn.{w}_l0{r}" for r in ("", "_reverse")
                                   for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
             *[f"ctx_rnn.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
             "recognition.weight", "recognition.bias", "prior.0.weight", "prior.0.bias",
             "prior.2.weight", "prior.2.bias", "init_state.weight", "init_state.bias",
             *[f"dec_rnn.{w}_l0" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
             "out.weight", "out.bias"]
    bow = ["bow_hidden.weight", "bow_hidden.bias", "bow_out.weight", "bow_out.bias"]
    for extra, params, count in (({}, names, 11_006_002),
                                 ({"bow": True}, names + bow, 15_337_204)):
        model = CVAE(CVAEConfig(**extra), 10_002)
        assert [n for n, _ in model.named_parameters()] == params
        assert sum(p.numel() for p in model.parameters()) == count
        assert model.condition_dim == 600


# ------------------------------------------------------------------------- end to end
SMALL = {"data.batch_size": 32, "data.max_vocab": 300, "model.cvae.emb_dim": 8,
         "model.cvae.utt_hidden": 8, "model.cvae.ctx_hidden": 8, "model.cvae.latent_dim": 4,
         "model.cvae.dec_hidden": 8, "model.cvae.prior_hidden": 8, "model.cvae.bow_hidden": 8,
         "model.cvae.topic_dim": 5, "train.epochs": 1, "train.response_contexts": 4,
         "train.response_samples": 2, "train.log_every": 20}


@pytest.fixture(scope="module")
def zhao_slice(tmp_path_factory, shared_data) -> Path:
    """The first 12 swda-zhao valid and 8 test conversations, cut to 40 utterances each (the
    whole files' ~5,400 utterances each cost 20 s of a tiny model's per-batch time): 5 of the 8
    test conversations have a topic the 12 lack."""
    root = tmp_path_factory.mktemp("zhao_slice")
    for split, n in (("valid", 12), ("test", 8)):
        lines = (shared_data / "swda-zhao" / f"{split}.jsonl").read_text().splitlines()[:n]
        records = [json.loads(line) for line in lines]
        for record in records:
            record["utts"] = record["utts"][:40]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_train_on_zhao_valid_evaluate_on_zhao_test_with_both_features(zhao_slice, tmp_path,
                                                                      capsys):
    run = tmp_path / "run"
    values = {**SMALL, "data.train": zhao_slice / "valid.jsonl", "data.valid": "null",
              "data.test": zhao_slice / "test.jsonl",
              "model.cvae.use_topic": "true", "model.cvae.use_caller": "true"}
    args = ["train", "--config", "dialog/cvae-bow-cyclical", "--out", str(run), "--no-progress"]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    capsys.readouterr()
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(math.isfinite(metrics["test"][k]) for k in ("rec_ppl", "kl", "bleu1_precision"))
    # the topic labels travel in the checkpoint: those of the training file, <unk> first
    train_convs, _ = read_conversations(zhao_slice / "valid.jsonl")
    test_convs, _ = read_conversations(zhao_slice / "test.jsonl")
    labels = build_topic_vocabulary(train_convs)
    ckpt = load_checkpoint(run / LAST)
    assert ckpt["topic_labels"] == labels
    model, _, config, _ = load_model(run / LAST)
    assert model.topic_embedding.num_embeddings == len(labels)
    assert model.condition_dim == 8 + 5 + 2 * CALLER_DIM
    assert config.model.cvae.use_caller is True
    # evaluate on the test file: its topics the training file lacks are <unk>, counted
    assert main(["evaluate", str(run / LAST), "--samples", "2", "--contexts", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    unknown = sum(c.topic not in labels for c in test_convs)
    assert 0 < unknown < len(test_convs)
    assert result["data_stats"]["unknown_topic_conversations"] == unknown
    assert math.isfinite(result["test"]["rec_ppl"]) and result["test"]["contexts"] == 3
    assert result["test"]["rec_ppl"] == pytest.approx(metrics["test"]["rec_ppl"], rel=1e-9)
    # diagnose reads the file with the checkpoint's topics and callers too
    assert main(["diagnose", str(run / LAST), "--out", str(tmp_path / "diag"),
                 "--max-sentences", "20"]) == 0
    capsys.readouterr()
    assert (tmp_path / "diag").is_dir()
    # a typed context has no topic or callers: generate --respond refuses, one line, exit 2
    context = tmp_path / "context.txt"
    context.write_text("A: do you have any pets\nB: yes two dogs\n")
    assert main(["generate", str(run / LAST), "--respond", str(context)]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.cvae.use_topic" in err and "\n" not in err
