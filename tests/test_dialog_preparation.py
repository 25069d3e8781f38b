"""``data.dialog.preparation: zhao``: SwDA text prepared closer to Zhao et al.'s (the rules
measured on the aligned leakage pairs by benchmarks/dialog_preparation.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cyclevae.config import load_config
from cyclevae.data.dialog import (
    collapse_repeats,
    merge_unfinished,
    read_conversations,
)
from cyclevae.errors import UserError


def test_unfinished_utterances_join_the_speakers_next_one() -> None:
    """From swda/train conversation 2227, whose text swda-zhao also has: Zhao's first units are
    'okay so you watch david letterman' and 'well see our favorite tv show i live in a dorm
    ...'; a finished unit ('.', '?', '!', before an annotator comment) ends the run, and the
    other speaker's utterance ends it too."""
    utts = [("A", "Okay,", "fo"), ("A", "so you watch DAVID LETTERMAN?", "qy"),
            ("B", "Yeah.", "ny"), ("A", "Well, see our favorite T V show,", "sd"),
            ("A", "I, I, I live in a dorm", "sd"), ("B", "Uh-huh.", "b"),
            ("A", "and our favorite T V show is CHEERS.", "sd"),
            ("A", "Right. *listen", "aa"), ("A", "yes", "aa")]
    merged, joined = merge_unfinished(utts)
    assert joined == 2
    assert merged == [("A", "Okay so you watch DAVID LETTERMAN", "fo"), ("B", "Yeah", "ny"),
                      ("A", "Well see our favorite TV show I I I live in a dorm", "sd"),
                      ("B", "Uh-huh", "b"), ("A", "and our favorite TV show is CHEERS", "sd"),
                      ("A", "Right", "aa"), ("A", "yes", "aa")]


def test_repeated_words_are_kept_once() -> None:
    assert collapse_repeats("and and and it keeps me going".split()) == \
        "and it keeps me going".split()
    # word pieces of the tokeniser and repeated phrases stay ("i used i used to" in Zhao's)
    for text in ("uh - huh", "it ' s it ' s", "i used i used to", "- - the"):
        assert collapse_repeats(text.split()) == text.split()


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_read_conversations_with_either_preparation(tmp_path: Path) -> None:
    swda = write(tmp_path / "swda.jsonl", [{"conversation": "1", "utts": [
        {"speaker": "A", "text": "I, I think,", "act": "sv"},
        {"speaker": "A", "text": "the the rain is good.", "act": "sv"},
        {"speaker": "B", "text": "Uh-huh.", "act": "b"}]}])
    old, stats = read_conversations(swda)
    assert [" ".join(u.tokens) for u in old[0].utterances] == [
        "i i think", "the the rain is good", "uh - huh"]
    assert (stats.joined, stats.collapsed) == (0, 0)
    new, stats = read_conversations(swda, "zhao")
    assert [" ".join(u.tokens) for u in new[0].utterances] == [
        "i think the rain is good", "uh - huh"]
    assert (stats.joined, stats.collapsed, stats.utterances) == (1, 1, 2)
    # Zhao's own files are read as they are, whatever the preparation
    zhao = write(tmp_path / "zhao.jsonl", [{"utts": [["A", "i i think", ["sv", [0, 0, 0, 0]]],
                                                      ["A", "so so", ["sv", [0, 0, 0, 0]]]]}])
    assert read_conversations(zhao, "zhao")[0] == read_conversations(zhao)[0]
    with pytest.raises(ValueError, match="preparation"):
        read_conversations(swda, "other")


def test_preparation_is_a_checked_config_value() -> None:
    assert load_config(None, []).data.dialog.preparation == "swda"  # the 3-pass rows' text
    assert load_config(None, ["data.dialog.preparation=zhao"]).data.dialog.preparation == "zhao"
    with pytest.raises(UserError, match="data.dialog.preparation must be 'swda' or 'zhao'"):
        load_config(None, ["model.kind=cvae", "data.dialog.preparation=raw"])


def test_an_aligned_pair_comes_closer_to_zhaos_text(shared_data: Path, tmp_path: Path) -> None:
    """swda/train's conversation 2227 is one of swda-zhao's: more of Zhao's utterances are
    exactly ours with the zhao preparation than with the swda one."""
    line = next(x for x in (shared_data / "swda" / "train.jsonl").read_text().splitlines()
                if json.loads(x)["conversation"] == "2227")
    ours = write(tmp_path / "one.jsonl", [json.loads(line)])
    theirs = [c for split in ("valid", "test")
              for c in read_conversations(shared_data / "swda-zhao" / f"{split}.jsonl")[0]
              if c.utterances[0].tokens == tuple("okay so you watch david letterman".split())]
    assert len(theirs) == 1

    def exact(preparation: str) -> int:
        have = Counter(u.tokens for u in read_conversations(ours, preparation)[0][0].utterances)
        return sum(have[u.tokens] > 0 for u in theirs[0].utterances)

    before, after = exact("swda"), exact("zhao")
    assert after > before + 10, (before, after)


def test_the_measurement_script_on_a_small_copy(shared_data: Path, tmp_path: Path) -> None:
    """benchmarks/dialog_preparation.py on swda/train's first conversations plus 2227 (one
    aligned pair) and the real swda-zhao files: the three JSON lines and the table."""
    import subprocess
    import sys

    lines = (shared_data / "swda" / "train.jsonl").read_text().splitlines()
    picked = lines[:3] + [x for x in lines if json.loads(x)["conversation"] == "2227"]
    (tmp_path / "swda").mkdir()
    (tmp_path / "swda" / "train.jsonl").write_text("\n".join(picked) + "\n")
    (tmp_path / "swda-zhao").symlink_to(shared_data / "swda-zhao")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dialog_preparation.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path), "--markdown"],
                          capture_output=True, text=True, check=True)
    records = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert [r["preparation"] for r in records] == ["zhao-text", "swda", "zhao"]
    before, after = records[1], records[2]
    assert before["aligned"]["pairs"] == after["aligned"]["pairs"] == 1
    assert after["aligned"]["exact_share"] > before["aligned"]["exact_share"]
    assert after["response_tokens"]["mean"] > before["response_tokens"]["mean"]
    assert after["rules"]["joined"] > 0 and before["rules"]["joined"] == 0
    assert "| share of Zhao's utterances exactly ours, 1 aligned conversations |" in done.stdout


def test_the_text_gap_script_pairs_each_zhao_line_with_its_swda_line(shared_data: Path,
                                                                      tmp_path: Path) -> None:
    """benchmarks/dialog_text_gap.py's aligned files: conversation 2227 of swda/train is one of
    Zhao's (its lines are written side by side, in the same order); the others are not."""
    import importlib.util

    from cyclevae.data.dialog import find_leaked, read_conversations

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dialog_text_gap.py"
    spec = importlib.util.spec_from_file_location("dialog_text_gap", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = (shared_data / "swda" / "train.jsonl").read_text().splitlines()
    ours_line = next(x for x in lines if json.loads(x)["conversation"] == "2227")
    (tmp_path / "swda").mkdir()
    (tmp_path / "swda" / "train.jsonl").write_text("\n".join(lines[:3] + [ours_line]) + "\n")
    (tmp_path / "swda-zhao").symlink_to(shared_data / "swda-zhao")
    found = {}
    for split in ("valid", "test"):
        out = tmp_path / split
        out.mkdir()
        zhao_file, ours_file, pairs = module.aligned_files(tmp_path, split, out)
        found[split] = pairs
        if pairs:
            assert ours_file.read_text() == ours_line + "\n"
            theirs, _ = read_conversations(zhao_file)
            ours, _ = read_conversations(ours_file)
            assert [(0, 0)] == [(i, j) for i, j, _ in find_leaked(ours, theirs)]
            assert zhao_file.read_text().strip() in (
                shared_data / "swda-zhao" / f"{split}.jsonl").read_text().splitlines()
    assert sorted(found.values()) == [0, 1]
