"""Dialog data: normalisation, reading both layouts, examples, batches, leakage filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclevae.data.dialog import (
    DIALOG_START,
    Conversation,
    DialogBatcher,
    Utterance,
    build_act_vocabulary,
    build_vocabulary,
    clean_swda_text,
    drop_leaked,
    encode_dialogs,
    find_leaked,
    normalization_examples,
    prepare_dialog_data,
    read_conversations,
    tokenize_utterance,
)
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError
from cyclevae.inference import batch_from_context, parse_context

pytestmark = pytest.mark.usefixtures("one_thread")


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def conversation(n: int, prefix: str = "w", speakers: str = "AB", length: int = 3
                 ) -> Conversation:
    """n utterances alternating speakers; utterance k is ``prefix{k}_0 .. prefix{k}_{len-1}``."""
    return Conversation(f"c{prefix}", tuple(
        Utterance(speakers[k % len(speakers)],
                  tuple(f"{prefix}{k}_{j}" for j in range(length)), "sd")
        for k in range(n)))


# ------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize(("raw", "expected"), [
    ("Uh, first, um, I need to know, uh, how?", "first I need to know how"),
    ("Uh-huh.", "Uh-huh"),  # a backchannel, not a filler
    ("No. Huh-uh. *two utts", "No Huh-uh"),  # annotator comment
    ("the T V and C N N, I I think", "the TV and CNN I I think"),  # spelled letters
    ("at age eighty-three, part-time", "at age eighty three part-time"),
    ("{F Uh, } {D well, } [ we, + we ] pay <laughter> / -- # it.", "well we pay it"),
    ("[ [ I, + I ] + I ] think", "I think"),  # nested repairs
    ("and ...", "and"),
    ("Uh.", ""),
])
def test_clean_swda_text(raw: str, expected: str) -> None:
    assert clean_swda_text(raw) == expected


def test_swda_text_normalises_to_zhao_tokens() -> None:
    # a real utterance pair of conversation 3855 (swda/train) and its swda-zhao test copy
    swda = tokenize_utterance("So, how do you use your credit cards?", clean=True)
    zhao = tokenize_utterance("so how do you use your credit cards", clean=False)
    assert swda == zhao
    # WordPunct tokens as in Zhao's code; zhao-layout text is not cleaned (uh stays)
    assert tokenize_utterance("it's uh-huh", clean=False) == ["it", "'", "s", "uh", "-", "huh"]
    assert tokenize_utterance("well uh yes", clean=False) == ["well", "uh", "yes"]


# ------------------------------------------------------------------------- reading
def test_read_both_layouts(tmp_path: Path) -> None:
    swda = write_jsonl(tmp_path / "swda.jsonl", [
        {"conversation": "2005", "utts": [
            {"speaker": "A", "text": "Okay.", "act": "fo"},
            {"speaker": "B", "text": "Uh.", "act": "%"},  # empty after cleaning: dropped
            {"speaker": "B", "text": "So, T V?", "act": "qy"}]},
        {"conversation": "2006", "utts": []},  # no utterances: skipped
    ])
    convs, stats = read_conversations(swda)
    assert [c.id for c in convs] == ["2005"]
    assert [u.tokens for u in convs[0].utterances] == [("okay",), ("so", "tv")]
    assert [u.act for u in convs[0].utterances] == ["fo", "qy"]
    assert (stats.layout, stats.skipped_conversations, stats.empty_utterances) == \
        ("swda", 1, 1)
    zhao = write_jsonl(tmp_path / "zhao.jsonl", [
        {"topic": "\"AIR POLLUTION\"", "A": {}, "B": {}, "prompt": "x", "utts": [
            ["A", "alright what do you think", ["open-question", [0.0, 0.6, 0.3, 0.2]]],
            ["B", "well i think it's bad", ["statement-opinion", [0.2, 0.6, 0.1, -0.5]]]]}])
    convs, stats = read_conversations(zhao)
    assert stats.layout == "zhao"
    assert convs[0].topic == "AIR POLLUTION"
    assert convs[0].utterances[1] == Utterance(
        "B", ("well", "i", "think", "it", "'", "s", "bad"), "statement-opinion")


@pytest.mark.parametrize(("line", "message"), [
    ('{"utts": [', "line 2: not valid JSON"),
    ('["not", "an object"]', "line 2: expected a JSON object"),
    ('{"conversation": "x"}', "line 2: missing key 'utts'"),
    ('{"utts": [{"speaker": "A"}]}', "line 2, utterance 1: missing key 'text'"),
    ('{"utts": [{"text": "hi"}]}', "line 2, utterance 1: missing key 'speaker'"),
    ('{"utts": [["A"]]}', "line 2, utterance 1: expected [speaker, text, ...]"),
    ('{"utts": [{"speaker": "A", "text": 3}]}', "speaker and text must be strings"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"utts": [{"speaker": "A", "text": "hi"}]}\n' + line + "\n")
    with pytest.raises(UserError) as info:
        read_conversations(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_file_without_any_utterance_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "empty.jsonl", [{"utts": []}, {"utts": []}])
    with pytest.raises(UserError, match="no conversation with utterances"):
        read_conversations(path)


# ------------------------------------------------------------------------- examples
def test_examples_window_truncation_and_floors() -> None:
    convs = [conversation(12, "a"), conversation(3, "b", speakers="ABA", length=50)]
    vocab = build_vocabulary(convs, max_size=None)
    corpus = encode_dialogs(convs, vocab)
    assert len(corpus) == 12 + 3  # every utterance is a response (the first after <d>)
    # the first response's context is the <d> utterance alone
    first = corpus.context_tokens(0)
    assert first == [(0, [Vocabulary.BOS_INDEX, vocab.index(DIALOG_START),
                          Vocabulary.EOS_INDEX])]
    # response 11 of conversation a: the 9 utterances before it, <d> no longer in the window
    ctx = corpus.context_tokens(11)
    assert [vocab.decode(ids)[0] for _, ids in ctx] == [f"a{k}_0" for k in range(2, 11)]
    # floors: 1 for the response's speaker (A at even k; response 11 is B)
    assert [f for f, _ in ctx] == [int(k % 2 == 1) for k in range(2, 11)]
    # truncation: 40 ids counting <s> and </s> (38 words and </s>, Zhao's pad_to)
    long_response = corpus.response_ids(13)
    assert len(long_response) == 40 and long_response[-1] == Vocabulary.EOS_INDEX
    assert vocab.decode(long_response)[-1] == "b1_37"
    # without <d> the first utterance is never a response
    plain = encode_dialogs(convs, vocab, dialog_start=False, max_context=2)
    assert len(plain) == 11 + 2
    assert [vocab.decode(ids)[0] for _, ids in plain.context_tokens(0)] == ["a0_0"]
    assert len(plain.context_tokens(5)) == 2


def test_batch_reuses_each_utterance_and_maps_slots() -> None:
    convs = [conversation(15, "a"), conversation(8, "b")]
    vocab = build_vocabulary(convs, max_size=None)
    corpus = encode_dialogs(convs, vocab)
    ids = [3, 4, 5, 6, 17, 18]
    batch = corpus.batch(ids)
    assert batch.num_examples == 6
    # every context slot and every response reads the right utterance
    for b, example in enumerate(ids):
        ctx = corpus.context_tokens(example)
        assert int(batch.context_lengths[b]) == len(ctx)
        for k, (floor, tokens) in enumerate(ctx):
            row = int(batch.context[b, k])
            assert batch.utterances[row, : batch.lengths[row]].tolist() == tokens
            assert int(batch.floors[b, k]) == floor
        resp = corpus.response_ids(example)
        assert batch.response_tokens()[b, : len(resp)].tolist() == resp
    # distinct utterances: examples 3..6 of a need <d> + its utterances 0..6, examples 17-18
    # (responses 2 and 3 of b) need <d> + b's utterances 0..3: 8 + 5 rows for 6 x 10 slots
    assert batch.utterances.shape[0] == 8 + 5
    assert batch.num_tokens == sum(len(corpus.response_ids(i)) - 1 for i in ids)
    # repeat / repeat_each repeat the index maps, never the utterances
    rep, each = batch.repeat(3), batch.repeat_each(3)
    assert rep.utterances is batch.utterances and rep.num_examples == 18
    assert torch.equal(rep.response[6:12], batch.response)
    assert torch.equal(each.response[3:6], batch.response[1].repeat(3))
    assert torch.equal(each.context[3], batch.context[1])
    assert rep.num_tokens == 3 * batch.num_tokens
    assert each.num_tokens == 3 * batch.num_tokens
    assert batch.select(torch.tensor([0, 0])).num_tokens == 2 * (len(corpus.response_ids(3)) - 1)
    assert batch.to("cpu").num_tokens == batch.num_tokens
    # the count is known without reading a tensor: the Trainer counts the tokens of batches
    # on an accelerator with no device-to-host copy (a meta tensor cannot be read at all)
    assert batch.to("meta").num_tokens == batch.num_tokens
    assert batch.to("meta").repeat(2).num_tokens == 2 * batch.num_tokens


def test_batch_from_context() -> None:
    convs = [conversation(4, "a")]
    vocab = build_vocabulary(convs, max_size=None)
    batch = batch_from_context([("A", ["a0_0"]), ("B", ["a1_0", "zzz"]), ("A", ["a2_1"])],
                               vocab)
    assert batch.num_examples == 1
    assert int(batch.context_lengths[0]) == 4  # <d> + 3
    assert batch.floors[0].tolist() == [0, 0, 1, 0]  # the responder: B, not the last speaker
    as_a = batch_from_context([("A", ["a0_0"]), ("B", ["a1_0"]), ("A", ["a2_1"])], vocab,
                              responder="A")
    assert as_a.floors[0].tolist() == [0, 1, 0, 1]
    rows = batch.context[0].tolist()
    assert vocab.decode(batch.utterances[rows[2]]) == ["a1_0", "<unk>"]
    assert batch.num_tokens == 1  # the placeholder response <s> </s>
    with pytest.raises(UserError, match="context is empty"):
        batch_from_context([], vocab)


def test_parse_context() -> None:
    text = "A: Uh, do you have kids?\n\nB: Yes, two. Um, T V a lot.\n"
    assert parse_context(text) == [("A", ["do", "you", "have", "kids"]),
                                   ("B", ["yes", "two", "tv", "a", "lot"])]
    with pytest.raises(UserError, match=r"ctx.txt, line 2: expected 'SPEAKER: utterance'"):
        parse_context("A: hi\nno colon here\n", "ctx.txt")
    with pytest.raises(UserError, match="context is empty"):
        parse_context("\n\n", "ctx.txt")


def test_example_ids_skip_single_utterance_contexts() -> None:
    convs = [conversation(4, "a"), conversation(2, "b")]
    corpus = encode_dialogs(convs, build_vocabulary(convs))
    assert corpus.example_ids().tolist() == list(range(6))
    # the first response of each conversation has <d> alone as its context
    assert corpus.example_ids(min_context=2).tolist() == [1, 2, 3, 5]


# ------------------------------------------------------------------------- batcher
def test_batcher_is_deterministic_and_covers_every_example_once() -> None:
    convs = [conversation(n, f"c{n}", length=1 + n % 5) for n in range(3, 40, 3)]
    corpus = encode_dialogs(convs, build_vocabulary(convs, max_size=None))
    one = DialogBatcher(corpus, batch_size=7, seed=3, run_length=4, pool_batches=3)
    two = DialogBatcher(corpus, batch_size=7, seed=3, run_length=4, pool_batches=3)
    other = DialogBatcher(corpus, batch_size=7, seed=4, run_length=4, pool_batches=3)
    groups = one.batch_indices(0, shuffle=False)
    assert [g.tolist() for g in groups] == [g.tolist() for g in two.batch_indices(0,
                                                                                  shuffle=False)]
    assert [g.tolist() for g in groups] != [g.tolist() for g in other.batch_indices(
        0, shuffle=False)]
    every = np.concatenate(groups)
    assert sorted(every.tolist()) == list(range(len(corpus)))
    # pools are whole numbers of batches: only the last batch is short
    assert sorted(len(g) for g in groups)[1:] == [7] * (len(groups) - 1)
    assert len(one) == -(-len(corpus) // 7)
    # epochs reorder the same batches; ranks split them
    e1 = [g.tolist() for g in one.batch_indices(1)]
    assert sorted(e1) == sorted(g.tolist() for g in groups)
    assert e1 != [g.tolist() for g in one.batch_indices(2)]
    r0 = one.batch_indices(1, rank=0, world_size=2)
    r1 = one.batch_indices(1, rank=1, world_size=2)
    assert len(r0) == len(r1) == len(one) // 2
    built = one.batches(0, shuffle=False)
    assert len(built) == len(one) and built[0].num_examples == len(groups[0])


def test_runs_share_utterances() -> None:
    convs = [conversation(30, f"c{i}") for i in range(6)]
    corpus = encode_dialogs(convs, build_vocabulary(convs, max_size=None))
    distinct = {}
    for run in (1, 10):
        batcher = DialogBatcher(corpus, batch_size=10, seed=0, run_length=run)
        sizes = [b.utterances.shape[0] for b in batcher.batches(0, shuffle=False)]
        distinct[run] = sum(sizes) / len(sizes)
    assert distinct[1] > 2.5 * distinct[10]


def test_act_vocabulary() -> None:
    convs = [conversation(3, "a")]
    acts = build_act_vocabulary(convs)
    assert acts == ["sd"]
    corpus = encode_dialogs(convs, build_vocabulary(convs), act_labels=acts)
    assert corpus.batch([0, 1]).acts.tolist() == [0, 0]
    assert encode_dialogs(convs, build_vocabulary(convs)).batch([0]).acts.tolist() == [-1]


# ------------------------------------------------------------------------- leakage
def test_leakage_filter_on_a_constructed_overlap() -> None:
    train = [conversation(20, "x"), conversation(20, "y"), conversation(20, "z")]
    # evaluation: y with a few utterances changed (Jaccard well above 0.5), and a new one
    y = train[1]
    changed = Conversation("y2", y.utterances[:16] + tuple(
        Utterance("A", ("brand", "new", f"w{k}")) for k in range(4)))
    evaluation = [changed, conversation(20, "q")]
    found = find_leaked(train, evaluation)
    assert [(i, j) for i, j, _ in found] == [(1, 0)]
    assert 0.5 < found[0][2] < 1.0
    kept, matched = drop_leaked(train, [evaluation, [train[2]]])
    assert matched == [1, 1] and [c.id for c in kept] == ["cx"]
    assert drop_leaked(train, [[conversation(5, "q")]]) == (train, [0])
    # a training conversation matching two evaluations is counted in each, dropped once
    kept, matched = drop_leaked(train, [[train[2]], [train[2]]])
    assert matched == [1, 1] and len(kept) == 2


def test_prepare_dialog_data_drops_leaked_training_conversations(tmp_path: Path) -> None:
    def record(conv: Conversation) -> dict:
        return {"conversation": conv.id, "utts": [
            {"speaker": u.speaker, "text": " ".join(u.tokens), "act": u.act}
            for u in conv.utterances]}

    train = [conversation(12, "x"), conversation(12, "y"), conversation(6, "z")]
    write_jsonl(tmp_path / "train.jsonl", [record(c) for c in train])
    write_jsonl(tmp_path / "test.jsonl", [record(train[1])])
    write_jsonl(tmp_path / "valid.jsonl", [record(conversation(5, "v"))])
    data = prepare_dialog_data(tmp_path / "train.jsonl", {"valid": tmp_path / "valid.jsonl",
                                                          "test": tmp_path / "test.jsonl"})
    assert data.leaked == 1 and data.leaked_by == {"valid": 0, "test": 1}
    assert len(data.train) == 12 + 6  # x and z remain
    assert "y0_0" not in data.vocab and "x0_0" in data.vocab
    assert len(data.evaluations["test"]) == 12 and data.act_labels == ["sd"]
    assert data.stats["train"].conversations == 3
    kept = prepare_dialog_data(tmp_path / "train.jsonl", {"test": tmp_path / "test.jsonl"},
                               drop_leakage=False, vocab=data.vocab)
    assert kept.leaked == 0 and len(kept.train) == 30 and kept.vocab is data.vocab
    write_jsonl(tmp_path / "all.jsonl", [record(train[1])])
    with pytest.raises(UserError, match="every training conversation"):
        prepare_dialog_data(tmp_path / "all.jsonl", {"test": tmp_path / "test.jsonl"})


# ------------------------------------------------------------------------- the real data
@pytest.fixture(scope="module")
def swda_train(shared_data: Path) -> list[Conversation]:
    return read_conversations(shared_data / "swda" / "train.jsonl")[0]


def test_real_leakage_26_of_62(shared_data: Path, swda_train: list[Conversation]) -> None:
    test, stats = read_conversations(shared_data / "swda-zhao" / "test.jsonl")
    assert stats.conversations == 62
    found = find_leaked(swda_train, test)
    assert len({j for _, j, _ in found}) == 26
    kept, matched = drop_leaked(swda_train, [test])
    assert matched == [26] and len(kept) == len(swda_train) - 26
    assert min(score for _, _, score in found) > 0.55  # well separated from 0.5


def test_real_data_counts_and_examples(shared_data: Path,
                                       swda_train: list[Conversation]) -> None:
    assert len(swda_train) == 1115
    vocab = build_vocabulary(swda_train)
    assert len(vocab) == 10_004  # 10,000 tokens (<d> among them) + 4 specials
    corpus = encode_dialogs(swda_train, vocab)
    assert len(corpus) == sum(len(c.utterances) for c in swda_train)
    flat = {t for c in swda_train for u in c.utterances for t in u.tokens}
    assert not flat & {",", ".", "?", "!", "*", "{", "<", "/", "#"}  # no punctuation, marks
    pairs = normalization_examples(shared_data / "swda" / "train.jsonl")
    assert 4 <= len(pairs) <= 8
    assert all(after == " ".join(tokenize_utterance(before, clean=True))
               for before, after in pairs)
