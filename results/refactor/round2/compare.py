"""Compare two run.sh outputs: python compare.py OLD_DIR NEW_DIR. Prints one line per run and
block: 'bit-identical' or the differing keys; exits 1 if anything differs."""
import json
import sys
from pathlib import Path

RUNS = ("vae", "savae", "svi", "yelp-vae", "yelp-ae", "cvae")
old_root, new_root = Path(sys.argv[1]), Path(sys.argv[2])
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


for run in RUNS:
    old = json.loads((old_root / run / "metrics.json").read_text())
    new = json.loads((new_root / run / "metrics.json").read_text())
    for block in ("test", "test_amortized", "valid", "valid_amortized", "train", "best"):
        if block in old or block in new:
            report(f"{run} metrics.json {block}", old.get(block), new.get(block))
    # the output directory appears in file names (data paths): compare with it replaced
    ev_old = json.loads((old_root / run / "evaluate.json").read_text()
                        .replace(str(old_root), "OUT"))
    ev_new = json.loads((new_root / run / "evaluate.json").read_text()
                        .replace(str(new_root), "OUT"))
    ev_old.pop("checkpoint"), ev_new.pop("checkpoint")
    report(f"{run} evaluate", ev_old, ev_new)
    if (old_root / run / "generate.txt").exists():
        report(f"{run} generate", (old_root / run / "generate.txt").read_text(),
               (new_root / run / "generate.txt").read_text())
old = json.loads((old_root / "synthetic" / "metrics.json").read_text())
new = json.loads((new_root / "synthetic" / "metrics.json").read_text())
for name in old:
    if name not in ("settings", "claims"):
        for key in ("final", "curve", "snapshots"):
            report(f"synthetic {name} {key}", old[name].get(key), new[name].get(key))
sys.exit(1 if failed else 0)
