"""docs/robustness.md names, for every promise, the test that holds it: each named test must
exist (a renamed or deleted test leaves a promise without a guard)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_named_in_robustness_md_exists():
    text = (REPO / "docs" / "robustness.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(?:tests/)?(test_\w+\.py)::(test_\w+)", text))
    assert len(named) > 30  # the regex still finds them
    missing = []
    for file, test in sorted(named):
        candidates = [REPO / "tests" / "robustness" / file, REPO / "tests" / file]
        found = [p for p in candidates if p.is_file()]
        if not found or test not in set().union(*(_tests_in(p) for p in found)):
            missing.append(f"{file}::{test}")
    assert missing == []
