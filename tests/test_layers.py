"""The layers point one way: no module imports one of a higher layer (not even for a type).

ops, losses, schedules -> data -> models -> config -> metrics, evaluation -> families ->
checkpoint -> rundir -> training -> inference, diagnose, probe -> experiments -> cli.
"""

from __future__ import annotations

import ast

from conftest import REPO

PACKAGE = REPO / "src" / "cyclevae"

#: each top-level module or package of cyclevae and its layer (lower imports nothing higher)
LAYERS = {
    **dict.fromkeys(["cyclevae", "errors", "atomic", "ops", "losses", "schedules", "runtime",
                     "provenance", "report", "distributed", "reporter", "memory", "runlock",
                     "stopping", "config_docs"], 0),
    "data": 1,
    "models": 2,
    "config": 3,
    "metrics": 4, "evaluation": 4,
    "families": 5,
    "checkpoint": 6,
    "rundir": 7,
    "training": 8,
    **dict.fromkeys(["inference", "diagnose", "embedding", "probe", "probe_authors",
                     "runs_table"], 9),
    **dict.fromkeys(["experiments", "integrations"], 10),
    **dict.fromkeys(["cli", "__main__"], 11),
}


def _unit(module: str) -> str:
    """``cyclevae.data.dialog`` -> ``data``; ``cyclevae`` -> ``cyclevae``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported cyclevae module) for every import in the package."""
    edges = []
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        package = module if is_package else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                edges.append((module, ".".join(base + ([node.module] if node.module else []))))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cyclevae"):
                edges.append((module, node.module))
            elif isinstance(node, ast.Import):
                edges += [(module, a.name) for a in node.names if a.name.startswith("cyclevae")]
    return edges


def test_every_module_has_a_layer():
    units = {_unit(m) for edge in _imports() for m in edge}
    assert units <= set(LAYERS), units - set(LAYERS)


def test_no_import_points_up():
    """(On the code before issue 27 this lists models.registry -> config, models.registry ->
    metrics.text and data.splits -> config.)"""
    upward = [(a, b) for a, b in _imports() if LAYERS[_unit(b)] > LAYERS[_unit(a)]]
    assert upward == []



#: the modules of the data.dialog package in the order of its pipeline: each imports only
#: modules of a lower rank (text cleaning -> reading -> leakage, vocabularies -> examples ->
#: batcher, preparation)
DIALOG_STEPS = {"batch": 0, "text": 0, "reading": 1, "settings": 1, "leakage": 2,
                "vocabularies": 2, "examples": 3, "batcher": 4, "prepare": 4}


def test_dialog_data_modules_point_one_way():
    prefix = "cyclevae.data.dialog."
    edges = [(a[len(prefix):], b[len(prefix):]) for a, b in _imports()
             if a.startswith(prefix) and b.startswith(prefix)]
    assert {a for a, _ in edges} <= set(DIALOG_STEPS)
    assert {b for _, b in edges} <= set(DIALOG_STEPS)
    upward = [(a, b) for a, b in edges if DIALOG_STEPS[b] >= DIALOG_STEPS[a]]
    assert upward == []
    # the package's modules are all ranked (a new one needs its place here)
    modules = {p.stem for p in (PACKAGE / "data" / "dialog").glob("*.py")} - {"__init__"}
    assert modules == set(DIALOG_STEPS)
