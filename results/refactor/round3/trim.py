"""Keep what compare.py compares from a run.sh output: python trim.py OUT_DIR DEST_DIR.
Per run: metrics.json without timings (its blocks, data statistics, config, commit),
evaluate*.json, generate.txt, evaluate-other.err, log.jsonl."""
import json
import sys
from pathlib import Path

src, dest = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
KEEP = ("test", "test_amortized", "valid", "valid_amortized", "train", "best", "data",
        "early_stopping", "vocab_size", "config", "git_commit", "torch", "cpu", "device")
for run in ("vae", "savae", "svi", "yelp-vae", "yelp-ae", "cvae", "kgcvae"):
    (dest / run).mkdir(parents=True, exist_ok=True)
    metrics = json.loads((src / run / "metrics.json").read_text())
    kept = {k: metrics[k] for k in KEEP if k in metrics}
    text = json.dumps(kept, indent=1).replace(str(src), "OUT")
    (dest / run / "metrics.json").write_text(text + "\n")
    for name in ("evaluate.json", "evaluate-other.json", "generate.txt", "evaluate-other.err",
                 "log.jsonl"):
        if (src / run / name).exists():
            (dest / run / name).write_text((src / run / name).read_text().replace(str(src), "OUT"))
