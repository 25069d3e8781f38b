"""How close our preparation of SwDA text comes to Zhao et al.'s (the text of swda-zhao/, on
which the paper's Table 3 is measured), for each ``data.dialog.preparation``.

    python benchmarks/dialog_preparation.py [--data ../shared/data] [--max-vocab 10000] [--markdown]

Prints one JSON line per preparation (``swda``: each SwDA utterance cleaned on its own, as the
3-pass rows were trained; ``zhao``: unfinished utterances joined with the speaker's next one
and repeated words collapsed), plus one for swda-zhao:test itself (``"preparation":
"zhao-text"``, the target), each with:

- ``response_tokens``: the length distribution of the responses as the model predicts them
  (words cut to 38, plus ``</s>``; every utterance of a conversation is a response): mean,
  deciles p10/p25/p50/p75/p90, the share of one-word responses and of cut ones (> 38 words),
  on swda/train minus the conversations that leak into swda-zhao valid/test (what a row
  trains on), and on swda-zhao:test;
- ``oov_share``: the share of swda-zhao:test's tokens (words of every utterance) outside the
  vocabulary built from those training conversations (``--max-vocab`` most frequent);
- ``aligned``: the 53 conversations of swda-zhao valid/test that also occur in swda/train
  (the leakage pairs, word-set Jaccard > 0.5): the share of Zhao's utterances that are exactly
  one of our prepared utterances of the same conversation (``exact_share``), with each rule of
  the preparation alone (``exact_share_by_rule``) and the utterance counts;
- ``rules``: on swda/train, how many utterances each rule changes (``joined``: utterances
  joined into the one before; ``collapsed``: utterances with repeated words collapsed).

``--markdown`` also prints the before/after table of results/dialog/README.md. Takes about a
minute (swda/train is read and tokenised twice).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from cyclevae.data.dialog import (
    Conversation,
    Utterance,
    build_vocabulary,
    collapse_repeats,
    find_leaked,
    merge_unfinished,
    read_conversations,
    tokenize_utterance,
)

REPO = Path(__file__).resolve().parents[1]
WORDS_KEPT = 38  # utterances are cut to 40 tokens counting <s> and </s> (Zhao's max_utt_len)


def length_stats(conversations: list[Conversation]) -> dict[str, float]:
    """The predicted tokens of every response: min(words, 38) + 1 (``</s>``)."""
    words = np.array([len(u.tokens) for c in conversations for u in c.utterances])
    tokens = np.minimum(words, WORDS_KEPT) + 1
    p = np.percentile(tokens, [10, 25, 50, 75, 90])
    return {"responses": int(len(tokens)), "mean": round(float(tokens.mean()), 3),
            **{f"p{q}": float(v) for q, v in zip((10, 25, 50, 75, 90), p)},
            "one_word_share": round(float((words == 1).mean()), 4),
            "cut_share": round(float((words > WORDS_KEPT).mean()), 4)}


def exact_share(ours: list[Conversation], theirs: list[Conversation]) -> float:
    """Share of their utterances equal (as token tuples) to one of ours in the paired
    conversation (``ours[k]`` pairs with ``theirs[k]``)."""
    hits = total = 0
    for a, b in zip(ours, theirs):
        have = Counter(u.tokens for u in a.utterances)
        for u in b.utterances:
            total += 1
            hits += have[u.tokens] > 0
    return hits / total


def raw_lines(path: Path) -> dict[str, dict]:
    return {str(r["conversation"]): r for r in map(json.loads, path.read_text().splitlines())
            if r}


def merged_only(record: dict) -> Conversation:
    """A swda-layout record with only :func:`merge_unfinished` applied (no collapsing)."""
    fields = [(u["speaker"], u["text"], u.get("act")) for u in record["utts"]]
    merged, _ = merge_unfinished(fields)
    utts = [Utterance(s, tuple(tokenize_utterance(t, clean=False)), a) for s, t, a in merged]
    return Conversation(str(record["conversation"]), tuple(u for u in utts if u.tokens))


def collapsed_only(conv: Conversation) -> Conversation:
    return Conversation(conv.id, tuple(Utterance(u.speaker, tuple(collapse_repeats(u.tokens)),
                                                 u.act) for u in conv.utterances))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("CYCLEVAE_DATA",
                                                         str(REPO.parent / "shared" / "data")))
    parser.add_argument("--max-vocab", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true", help="also print the table")
    args = parser.parse_args()
    lines = []
    root = Path(args.data)
    zhao = {s: read_conversations(root / "swda-zhao" / f"{s}.jsonl")[0] for s in ("valid", "test")}
    zhao_test_tokens = [t for c in zhao["test"] for u in c.utterances for t in u.tokens]
    lines.append({"preparation": "zhao-text", "file": "swda-zhao:test",
                  "response_tokens": length_stats(zhao["test"])})
    print(json.dumps(lines[-1]), flush=True)
    raw = raw_lines(root / "swda" / "train.jsonl")
    pairs: list[tuple[int, Conversation]] = []  # (train index, Zhao's conversation)
    for preparation in ("swda", "zhao"):
        train, stats = read_conversations(root / "swda" / "train.jsonl", preparation)
        if not pairs:  # word sets do not depend on the preparation
            for split in ("valid", "test"):
                pairs += [(i, zhao[split][j]) for i, j, _ in find_leaked(train, zhao[split])]
        leaked = {i for i, _ in pairs}
        kept = [c for i, c in enumerate(train) if i not in leaked]
        vocab = build_vocabulary(kept, max_size=args.max_vocab)
        known = set(vocab.tokens)
        ours = [train[i] for i, _ in pairs]
        theirs = [c for _, c in pairs]
        aligned = {"pairs": len(pairs), "their_utterances": sum(len(c.utterances) for c in theirs),
                   "our_utterances": sum(len(c.utterances) for c in ours),
                   "exact_share": round(exact_share(ours, theirs), 4)}
        if preparation == "swda":
            aligned["exact_share_by_rule"] = {
                "merge_unfinished": round(exact_share([merged_only(raw[c.id]) for c in ours],
                                                      theirs), 4),
                "collapse_repeats": round(exact_share([collapsed_only(c) for c in ours],
                                                      theirs), 4)}
        lines.append({
            "preparation": preparation, "file": "swda:train",
            "training_conversations": len(kept), "vocab": len(vocab),
            "response_tokens": length_stats(kept),
            "oov_share": round(sum(t not in known for t in zhao_test_tokens)
                               / len(zhao_test_tokens), 4),
            "aligned": aligned,
            "rules": {"utterances_before_joining": stats.utterances + stats.joined,
                      "joined": stats.joined, "collapsed": stats.collapsed}})
        print(json.dumps(lines[-1]), flush=True)
    if args.markdown:
        print(markdown(lines))


def markdown(lines: list[dict]) -> str:
    """The before (``swda``) / after (``zhao``) table beside Zhao's test text."""
    target, before, after = lines
    rows = [("responses", "responses")] + [(k, k) for k in ("mean", "p10", "p25", "p50", "p75",
                                                            "p90")]
    rows += [("one_word_share", "one-word share"), ("cut_share", "share cut (> 38 words)")]
    out = ["| tokens per response (words + `</s>`) | before: `swda` | after: `zhao` | "
           "swda-zhao:test (Zhao's text) |", "|:---|---:|---:|---:|"]
    for key, label in rows:
        out.append(f"| {label} | " + " | ".join(str(x["response_tokens"][key])
                                              for x in (before, after, target)) + " |")
    out.append(f"| share of swda-zhao:test tokens out of our vocabulary | {before['oov_share']} "
               f"| {after['oov_share']} | |")
    out.append(f"| share of Zhao's utterances exactly ours, {before['aligned']['pairs']} "
               f"aligned conversations | {before['aligned']['exact_share']} | "
               f"{after['aligned']['exact_share']} | |")
    out.append(f"| utterances in those conversations | {before['aligned']['our_utterances']} | "
               f"{after['aligned']['our_utterances']} | "
               f"{before['aligned']['their_utterances']} |")
    by_rule = before["aligned"]["exact_share_by_rule"]
    rules = after["rules"]
    out += ["", "| rule (`zhao`) | utterances of swda/train it changes | exact share with it "
            "alone |", "|:---|---:|---:|",
            f"| unfinished utterance joined with the speaker's next | {rules['joined']} of "
            f"{rules['utterances_before_joining']} | {by_rule['merge_unfinished']} |",
            f"| repeated words kept once | {rules['collapsed']} | "
            f"{by_rule['collapse_repeats']} |"]
    return "\n".join(out)


if __name__ == "__main__":
    main()
