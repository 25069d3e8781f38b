"""Compare two run.sh outputs: python compare.py OLD_DIR NEW_DIR. Prints one line per run and
block: 'bit-identical' or the differing keys; exits 1 if anything differs."""
import json
import sys
from pathlib import Path

RUNS = ("vae", "savae", "svi", "yelp-vae", "yelp-ae", "cvae", "kgcvae")
old_root, new_root = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
failed = False


def report(what: str, old: object, new: object) -> None:
    global failed
    if old == new:
        print(what, "bit-identical")
        return
    failed = True
    if isinstance(old, dict) and isinstance(new, dict):
        diffs = {k: (old.get(k), new.get(k)) for k in old.keys() | new.keys()
                 if old.get(k) != new.get(k)}
        print(what, "differs:", diffs)
    else:
        print(what, "differs")


def read_json(root: Path, run: str, name: str) -> dict:
    """A JSON output with the output directory (it appears in data paths) replaced."""
    return json.loads((root / run / name).read_text().replace(str(root), "OUT"))


for run in RUNS:
    old, new = read_json(old_root, run, "metrics.json"), read_json(new_root, run, "metrics.json")
    for block in ("test", "test_amortized", "valid", "valid_amortized", "train", "best", "data",
                  "early_stopping", "vocab_size"):
        if block in old or block in new:
            report(f"{run} metrics.json {block}", old.get(block), new.get(block))
    for name in ("evaluate.json", "evaluate-other.json"):
        if (old_root / run / name).exists():
            ev_old, ev_new = read_json(old_root, run, name), read_json(new_root, run, name)
            ev_old.pop("checkpoint"), ev_new.pop("checkpoint")
            report(f"{run} {name}", ev_old, ev_new)
    for name in ("generate.txt", "evaluate-other.err"):
        if (old_root / run / name).exists():
            report(f"{run} {name}", (old_root / run / name).read_text().replace(str(old_root), "OUT"),
                   (new_root / run / name).read_text().replace(str(new_root), "OUT"))
    # the log's records but for timings (seconds, tokens per second)
    def records(root: Path) -> list:
        out = []
        for line in (root / run / "log.jsonl").read_text().splitlines():
            r = json.loads(line.replace(str(root), "OUT"))
            for key in ("seconds", "tokens_per_s", "time", "wall"):
                r.pop(key, None)
            out.append(r)
        return out
    report(f"{run} log.jsonl (no timings)", records(old_root), records(new_root))
sys.exit(1 if failed else 0)
