"""How much of a dialog row's Rec-P gap to the paper is the text's preparation: the same
conversations, unseen in training, scored in Zhao's text and in ours.

    python benchmarks/dialog_text_gap.py CHECKPOINT [CHECKPOINT ...] [--data ../shared/data] [--split test]

The conversations of swda-zhao:SPLIT that also occur in swda/train (``find_leaked``, word-set
Jaccard > 0.5: 26 of the 62 test conversations) are the only text we have in both
preparations, and no row has trained on them (``data.dialog.drop_leakage`` drops them). They
are written to two temporary files, Zhao's lines and the matching swda/ lines, and each
checkpoint is evaluated on both as ``cyclevae evaluate --data FILE`` would, with the run's own
``data.dialog.preparation`` for the swda/ lines; reconstruction and KL only (no sampled
responses, no IW-NLL). One JSON line per checkpoint and text: ``rec_ppl`` (over all tokens),
``rec_ppl_batch_mean`` (the authors' way), ``kl`` and ``rec`` (nats per response),
``responses``, ``tokens`` (predicted, with ``</s>``). A few seconds per checkpoint on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from cyclevae.data.dialog import find_leaked, read_conversations
from cyclevae.inference import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]
KEYS = ("rec_ppl", "rec_ppl_batch_mean", "kl", "rec", "sentences", "tokens")


def nonblank_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def aligned_files(root: Path, split: str, out: Path) -> tuple[Path, Path, int]:
    """Write ``zhao.jsonl`` (Zhao's lines of the swda-zhao:SPLIT conversations that occur in
    swda/train) and ``ours.jsonl`` (the matching swda/train lines, in the same order) under
    ``out``; returns both paths and the number of pairs."""
    train_path, zhao_path = root / "swda" / "train.jsonl", root / "swda-zhao" / f"{split}.jsonl"
    train, train_stats = read_conversations(train_path)
    theirs, their_stats = read_conversations(zhao_path)
    train_lines, zhao_lines = nonblank_lines(train_path), nonblank_lines(zhao_path)
    # conversation i is line i only where the reader skipped none
    assert len(train) == len(train_lines) and len(theirs) == len(zhao_lines), (
        train_stats, their_stats)
    pairs = sorted((j, i) for i, j, _ in find_leaked(train, theirs))
    zhao_file, ours_file = out / "zhao.jsonl", out / "ours.jsonl"
    zhao_file.write_text("".join(zhao_lines[j] + "\n" for j, _ in pairs))
    ours_file.write_text("".join(train_lines[i] + "\n" for _, i in pairs))
    return zhao_file, ours_file, len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--data", default=os.environ.get("CYCLEVAE_DATA",
                                                         str(REPO.parent / "shared" / "data")))
    parser.add_argument("--split", default="test", choices=("valid", "test"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        zhao_file, ours_file, pairs = aligned_files(Path(args.data), args.split, Path(tmp))
        for checkpoint in args.checkpoints:
            for text, path in (("zhao", zhao_file), ("ours", ours_file)):
                result = evaluate_checkpoint(checkpoint, data=str(path), samples=0,
                                             iw_samples=0)
                block = result["test"]
                print(json.dumps({"checkpoint": str(checkpoint), "split": args.split,
                                  "conversations": pairs, "text": text,
                                  **{k: block.get(k) for k in KEYS}}), flush=True)


if __name__ == "__main__":
    main()
