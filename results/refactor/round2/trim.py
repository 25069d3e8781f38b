"""Keep what compare.py compares from a run.sh output: python trim.py OUT_DIR DEST_DIR.
Per run: metrics.json without timings (its blocks, config, commit), evaluate.json, generate.txt;
synthetic: metrics.json's final/curve/snapshots per schedule."""
import json
import shutil
import sys
from pathlib import Path

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
KEEP = ("test", "test_amortized", "valid", "valid_amortized", "train", "best", "config",
        "git_commit", "torch", "cpu", "device")
for run in ("vae", "savae", "svi", "yelp-vae", "yelp-ae", "cvae"):
    (dest / run).mkdir(parents=True, exist_ok=True)
    metrics = json.loads((src / run / "metrics.json").read_text())
    kept = {k: metrics[k] for k in KEEP if k in metrics}
    text = json.dumps(kept, indent=1).replace(str(src), "OUT")
    (dest / run / "metrics.json").write_text(text + "\n")
    evaluate = (src / run / "evaluate.json").read_text().replace(str(src), "OUT")
    (dest / run / "evaluate.json").write_text(evaluate)
    if (src / run / "generate.txt").exists():
        shutil.copy(src / run / "generate.txt", dest / run / "generate.txt")
synthetic = json.loads((src / "synthetic" / "metrics.json").read_text())
kept = {name: {k: m[k] for k in ("final", "curve", "snapshots") if k in m}
        for name, m in synthetic.items() if name not in ("settings", "claims")}
(dest / "synthetic").mkdir(parents=True, exist_ok=True)
(dest / "synthetic" / "metrics.json").write_text(json.dumps(kept) + "\n")
