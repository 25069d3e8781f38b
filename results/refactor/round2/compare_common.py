"""Compare run.sh outputs on the keys the old one has (new keys added by this round dropped)."""
import json, sys
from pathlib import Path
old_root, new_root = Path(sys.argv[1]), Path(sys.argv[2])
ADDED = {"rec_ppl_batch_mean", "rec_se", "joined_utterances", "collapsed_utterances"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in ADDED}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
bad = 0; n = 0
for run in ("vae", "savae", "svi", "yelp-vae", "yelp-ae", "cvae"):
    for f in ("metrics.json", "evaluate.json"):
        o = json.loads((old_root / run / f).read_text()); w = json.loads((new_root / run / f).read_text())
        for block in ("test", "test_amortized", "valid", "valid_amortized", "train", "best"):
            if block in o or block in w:
                n += 1
                same = strip(o.get(block)) == strip(w.get(block))
                bad += not same
                print(run, f, block, "identical" if same else "DIFFERS")
    g = old_root / run / "generate.txt"
    if g.exists():
        n += 1; same = g.read_text() == (new_root / run / "generate.txt").read_text(); bad += not same
        print(run, "generate", "identical" if same else "DIFFERS")
o = json.loads((old_root / "synthetic" / "metrics.json").read_text()); w = json.loads((new_root / "synthetic" / "metrics.json").read_text())
for sched in ("constant", "monotonic", "cyclical"):
    for key in ("final", "curve", "snapshots"):
        n += 1
        same = strip(o[sched][key]) == strip(w[sched][key]) if sched in o else strip(o["runs"][sched][key]) == strip(w["runs"][sched][key])
        bad += not same
        print("synthetic", sched, key, "identical" if same else "DIFFERS")
print(f"{n - bad} of {n} identical on the old keys")
