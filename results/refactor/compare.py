"""Compare the metrics.json blocks of two run.sh outputs: python compare.py OLD_DIR NEW_DIR."""
import json
import sys
from pathlib import Path

old_root, new_root = Path(sys.argv[1]), Path(sys.argv[2])
for kind in ("vae", "savae", "svi"):
    old = json.loads((old_root / kind / "metrics.json").read_text())
    new = json.loads((new_root / kind / "metrics.json").read_text())
    for block in ("test", "test_amortized", "valid"):
        if block not in old:
            continue
        diffs = {k: (v, new[block].get(k)) for k, v in old[block].items() if new[block].get(k) != v}
        print(kind, block, "bit-identical" if not diffs else f"differs: {diffs}")
