"""Penn Treebank language modelling (paper section 5.1, Table 1 VAE and SA-VAE rows, Table 4).

Each row is one config file in ``configs/ptb/``; a row runs through the ordinary Trainer into
``OUT/<row>[-seedS]/`` and the report puts our test-set numbers beside the paper's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..config import load_config
from ..errors import UserError
from ..report import format_number, markdown_table, plot_curves, save_figure_atomic
from . import CONFIGS
from .ptb_claims import best_epoch_row, check_claims, spread
from .runner import assign_threads, available_cores, run_dir_name, train_runs

__all__ = ["ROWS", "TEXAR_ROWS", "TRANSFORMER_ROWS", "assign_threads", "available_cores",
           "run_dir_name", "run_ptb", "train_runs",
           "write_ptb_report"]

CONFIG_DIR = CONFIGS / "ptb"


@dataclass(frozen=True)
class PaperRow:
    """A published row: where it is printed and its test-set numbers (last epoch, or the
    best-on-valid epoch when ``block`` is ``best``: our metrics.json's ``best`` block)."""

    table: str
    label: str
    numbers: dict[str, float]
    block: str = "test"


# row name (= config file stem) -> the published rows it reproduces
ROWS: dict[str, list[PaperRow]] = {
    "vae-monotonic": [
        PaperRow("Table 1", "VAE, M", {"rec": 101.73, "kl": 0.907, "elbo": -102.63, "ppl": 108.09}),
        PaperRow("Table 4", "beta monotonic, lr constant",
                 {"rec": 101.93, "kl": 0.858, "elbo": -102.78}),
    ],
    "vae-cyclical": [
        PaperRow("Table 4", "beta cyclical, lr constant",
                 {"rec": 101.30, "kl": 1.457, "elbo": -102.76}),
    ],
    "vae-cyclical-cyclr": [
        PaperRow("Table 1", "VAE, C", {"rec": 100.51, "kl": 1.955, "elbo": -102.46, "ppl": 107.25}),
        PaperRow("Table 4", "beta cyclical, lr cyclical",
                 {"rec": 100.61, "kl": 1.897, "elbo": -102.51}),
    ],
    "vae-monotonic-cyclr": [
        PaperRow("Table 4", "beta monotonic, lr cyclical",
                 {"rec": 101.74, "kl": 0.748, "elbo": -102.49}),
    ],
    "vae-monotonic-authors": [
        PaperRow("Table 1", "VAE, M (the authors' script's ramp)",
                 {"rec": 101.73, "kl": 0.907, "elbo": -102.63, "ppl": 108.09}),
    ],
    "vae-cyclical-cyclr-authors": [
        PaperRow("Table 1", "VAE, C (the authors' script's ramp and per-epoch lr)",
                 {"rec": 100.51, "kl": 1.955, "elbo": -102.46, "ppl": 107.25}),
    ],
    "vae-beta0.5-monotonic": [
        PaperRow("Table 1", "VAE beta_m=0.5, M",
                 {"rec": 97.36, "kl": 9.605, "elbo": -106.96, "ppl": 132.57}),
    ],
    "vae-beta0.5-cyclical": [
        PaperRow("Table 1", "VAE beta_m=0.5, C",
                 {"rec": 95.22, "kl": 9.484, "elbo": -104.70, "ppl": 118.78}),
    ],
    "savae-monotonic": [
        PaperRow("Table 1", "SA-VAE, M",
                 {"rec": 101.83, "kl": 1.053, "elbo": -102.89, "ppl": 109.33}),
        PaperRow("Table 1", "SA-VAE, M (best epoch)",
                 {"rec": 100.75, "kl": 1.796, "elbo": -102.54, "ppl": 107.64}, block="best"),
    ],
    "savae-cyclical": [
        PaperRow("Table 1", "SA-VAE, C",
                 {"rec": 100.50, "kl": 2.261, "elbo": -102.76, "ppl": 108.71}),
    ],
    # the Transformer VAE (issue 32): no row of the paper; the report sets texar's published
    # numbers (TEXAR_ROWS) and our LSTM rows beside them
    "transformer-monotonic": [],
    "transformer-cyclical": [],
}
#: the Transformer rows and the LSTM rows they are compared with (same beta and lr schedules)
TRANSFORMER_ROWS = {"transformer-monotonic": "vae-monotonic",
                    "transformer-cyclical": "vae-cyclical-cyclr"}
#: texar-pytorch's published PTB test numbers (``examples/vae_text/README.md``, "Language
#: Modeling"): LSTM encoder, LSTM or Transformer decoder, monotonic KL warm-up from 0.1 over 10
#: epochs, lr halved on valid plateaus, up to 100 epochs, the best-on-valid epoch. Its "Test
#: NLL" is Rec + KL per sentence (-ELBO, texar's ``vae_train.py``), its PPL exp of the same
#: per word with the end of sentence counted: our ``elbo`` (negated) and ``ppl``. Not the
#: paper's numbers.
TEXAR_ROWS: dict[str, dict[str, float]] = {
    "texar VAE, LSTM decoder": {"elbo": -102.54, "ppl": 107.64},
    "texar VAE, Transformer decoder": {"elbo": -101.61, "ppl": 103.14},
}
DEFAULT_ROWS = ("vae-monotonic", "vae-cyclical-cyclr")
PAPER_SECONDS_PER_EPOCH = {"vae": 30.0, "savae": 472.0}
PAPER_EPOCHS = 40
METRICS = ("rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "active_units")


def run_ptb(
    *,
    rows: list[str],
    out: Path,
    epochs: int | None = None,
    seeds: list[int] | None = None,
    overrides: list[str] | None = None,
    config_dir: Path = CONFIG_DIR,
    progress: bool | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Train every (row, seed) not finished yet in ``out``, then write the report.

    A run directory holding ``metrics.json`` is done and is not trained again; one holding only
    a checkpoint is resumed. ``epochs`` shortens every row (same M and R, fewer epochs per
    cycle); ``overrides`` are ``key=value`` strings applied to every row. ``jobs``: train up to
    that many runs at once, each in its own process (:func:`train_runs`).
    """
    seeds = seeds or [0]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    todo = []  # every config is read and checked before the first row trains
    for row in rows:
        path = config_dir / f"{row}.yaml"
        if not path.is_file():
            raise UserError(f"{path}: config of row {row!r} not found (pass --configs DIR)")
        if epochs is not None:
            base = load_config(path, list(overrides or []))
            lr = base.lr_schedule
            cycles = max(base.schedule.n_cycles if base.schedule.unit == "epoch" else 1,
                         lr.n_cycles if lr.kind == "cyclical" and lr.unit == "epoch" else 1)
            if epochs < cycles:
                raise UserError(f"--epochs {epochs}: row {row!r} has {cycles} cycles; shortening "
                                f"keeps them, so give at least {cycles} epochs (or cycles "
                                "shorter than an epoch: --set schedule.unit=step --set "
                                "lr_schedule.unit=step)")
        for seed in seeds:
            run = out / run_dir_name(row, seed)
            if (run / "metrics.json").is_file():
                continue
            extra = list(overrides or []) + [f"train.seed={seed}"]
            if epochs is not None:
                extra.append(f"train.epochs={epochs}")
            todo.append((load_config(path, extra), run))
    train_runs(todo, jobs=jobs, progress=progress)
    return write_ptb_report(out, rows=rows, seeds=seeds)


def _load_runs(out: Path, rows: list[str], seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        for seed in seeds:
            run = out / run_dir_name(row, seed)
            if not (run / "metrics.json").is_file():
                continue
            metrics = json.loads((run / "metrics.json").read_text())
            log = ([json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
                   if (run / "log.jsonl").is_file() else [])
            found.setdefault(row, []).append({
                "seed": seed, "metrics": metrics, "dir": run.name,
                "history": [r for r in log if r.get("kind") == "epoch"],
                "train_log": [r for r in log if r.get("kind") == "train"],
            })
    return found


def _source_label(metrics: dict[str, Any]) -> str:
    """``ours``, or ``ours, shortened (E of 40 epochs)`` for a run shorter than the paper's."""
    epochs = metrics.get("epochs", PAPER_EPOCHS)
    if epochs >= PAPER_EPOCHS:
        return "ours"
    return f"ours, shortened ({epochs} of {PAPER_EPOCHS} epochs)"


def _curve_points(history: list[dict[str, Any]], train_log: list[dict[str, Any]]
                  ) -> list[dict[str, float]]:
    """Learning-curve points, x in epochs: the valid/train metrics at the end of each epoch
    (x = epoch) and the beta each logged training step used (x = step / steps per epoch; the
    epoch records of logs written before 2026-12-05 carry the beta of the *next* step)."""
    points: list[dict[str, float]] = []
    for record in history:
        point = {"epoch": float(record["epoch"])}
        for split in ("train", "valid"):
            if split in record:
                for key in ("rec", "kl", "elbo"):
                    point[f"{split}_{key}"] = record[split][key]
        points.append(point)
    if history and history[0]["step"] > 0:
        steps_per_epoch = history[0]["step"] / history[0]["epoch"]
        points += [{"epoch": r["step"] / steps_per_epoch, "beta": r["beta"]} for r in train_log]
    return sorted(points, key=lambda p: p["epoch"])


def write_ptb_report(out: Path, *, rows: list[str], seeds: list[int]) -> dict[str, Any]:
    """``OUT/report.md`` and ``OUT/learning_curves.png`` from the finished runs in ``out``."""
    runs = _load_runs(out, rows, seeds)
    if not runs:
        raise UserError(f"{out}: no finished PTB runs (metrics.json) to report")
    headers = ["row", "seed", "source", "epochs", *METRICS, "s/epoch"]
    table: list[list[Any]] = []
    for row, items in runs.items():
        for item in items:
            m = item["metrics"]
            ours = _source_label(m)
            blocks = [(ours, m.get("test") or {})]
            if m.get("test_amortized"):  # a refining model: q before the SVI steps too
                blocks.append((f"{ours}, amortized q (before SVI)", m["test_amortized"]))
            best = m.get("best") or {}
            if any(p.block == "best" for p in ROWS[row]) and best.get("test"):
                blocks.append((f"{ours} (best epoch {best.get('epoch')})", best["test"]))
            for source, block in blocks:
                table.append([row, item["seed"], source, m["epochs"],
                              *[block.get(k) for k in METRICS],
                              _seconds(m.get("seconds_per_epoch"))])
        kind = items[0]["metrics"].get("config", {}).get("model", {}).get("kind", "vae")
        for paper in ROWS[row]:
            table.append([row, "", f"paper {paper.table}: {paper.label}", PAPER_EPOCHS,
                          *[paper.numbers.get(k) for k in METRICS],
                          _seconds(PAPER_SECONDS_PER_EPOCH.get(
                              kind, PAPER_SECONDS_PER_EPOCH["vae"]))])
        if len(items) > 1:  # mean +- sd over the seeds
            tests = [i["metrics"].get("test") or {} for i in items]
            cells = [_over_seeds(tests, k) for k in METRICS]
            seconds = [i["metrics"].get("seconds_per_epoch") for i in items]
            table.append([row, ",".join(str(i["seed"]) for i in items),
                          f"ours, mean ± sd over {len(items)} seeds", items[0]["metrics"]["epochs"],
                          *cells, _mean_sd([x for x in seconds if x is not None], decimals=0)])
    claims = check_claims(_claim_tests(runs), _paper_numbers())
    full, shortened = {}, {}
    styles = curve_styles(runs)
    for items in runs.values():
        for item in items:
            epochs = item["metrics"].get("epochs", PAPER_EPOCHS)
            points = _curve_points(item["history"], item["train_log"])
            if epochs >= PAPER_EPOCHS:
                full[item["dir"]] = points
            else:
                label = f"{item['dir']} (shortened: {epochs} of {PAPER_EPOCHS} epochs)"
                shortened[label] = points
                styles[label] = styles[item["dir"]]
    figures = []
    for curves, name, title in ((full, "learning_curves.png", None),
                                (shortened, "learning_curves_shortened.png",
                                 "Shortened runs (fewer epochs than the paper's 40; same M and R)")):
        if any(curves.values()):
            fig = plot_curves(curves, ["valid_elbo", "valid_rec", "valid_kl", "beta"],
                              x="epoch", titles=["valid ELBO", "valid Rec", "valid KL", "beta"],
                              xlabel="epoch", ncols=4, suptitle=title, styles=styles,
                              legend="below" if len(curves) > 4 else "first",
                              ylabels=["ELBO (nats per sentence)", "Rec (nats per sentence)",
                                       "KL (nats per sentence)", "beta (KL weight)"])
            save_figure_atomic(fig, out / name)
            figures.append(name)
    figure5 = _figure5_curves(runs)
    if figure5:
        fig = plot_curves(figure5, ["valid_elbo", "valid_rec", "valid_kl"], x="epoch",
                          titles=["(a) ELBO", "(b) Reconstruction error", "(c) KL"],
                          xlabel="epoch", styles=FIGURE5_STYLES, legend="first",
                          suptitle="Figure 5: VAE and SA-VAE on PTB (valid set, seed 0)",
                          ylabels=["ELBO (nats per sentence)", "Rec (nats per sentence)",
                                   "KL (nats per sentence)"])
        save_figure_atomic(fig, out / "figure5.png")
        figures.append("figure5.png")
    lines = [
        "# Penn Treebank language modelling: ours beside the paper",
        "",
        "Test set, per sentence, at the last epoch (Table 1 / Table 4 of Fu et al. 2019). PPL is "
        "the paper's exp((Rec+KL)/tokens); IW-NLL uses K importance samples (see each run's "
        "config, train.iw_samples). MI = I_q(z, x); AU = active units. The paper's time per "
        "epoch is on one GPU.",
        "",
        markdown_table(headers, table, fmt=format_cell),
        "",
    ]
    transformer = transformer_rows(runs)
    if transformer:
        lines += [
            "## The Transformer VAE beside our LSTM rows and texar's published numbers",
            "",
            ("Test set, last epoch, per sentence; ours is the mean ± sample sd over the seeds "
             "run (one value for one seed); each Transformer row sits above the LSTM row with "
             "the same beta and lr schedules. texar's rows are texar-pytorch's published "
             "numbers (examples/vae_text/README.md; not the paper's): its 'Test NLL' is Rec + "
             "KL, shown here as ELBO = -NLL, at the best-on-valid epoch of up to 100 epochs "
             "with a monotonic KL warm-up, an LSTM encoder and a 3-block Transformer decoder "
             "reading z as a one-position cross-attention memory."),
            "",
            markdown_table(["row", "seeds", "source", "epochs", *METRICS], transformer,
                           fmt=format_cell),
            "",
        ]
    table4 = table4_rows(runs)
    if table4:
        lines += [
            "## Table 4 (the ablation) as the paper prints it",
            "",
            ("Test set, last epoch, 40-epoch runs; ours is the mean over the seeds run "
             "(± sample sd where there are several)."),
            "",
            markdown_table(["beta", "lr", "seeds", "ours rec", "ours kl", "ours elbo",
                            "paper rec", "paper kl", "paper elbo"], table4,
                           align=["l", "l", "r", "r", "r", "r", "r", "r", "r"],
                           fmt=format_cell),
            "",
        ]
    if "learning_curves.png" in figures:
        lines += ["Learning curves of the 40-epoch runs:", "",
                  "![learning curves](learning_curves.png)", ""]
    if "figure5.png" in figures:
        missing = [label for row, label in FIGURE5_ROWS.items() if label not in figure5]
        lines += ["Figure 5 (the paper's learning curves of VAE and SA-VAE): valid ELBO, Rec "
                  "and KL after each epoch of the 40-epoch seed-0 runs"
                  + (f"; not yet run: {', '.join(missing)}" if missing else "") + ".", "",
                  "![Figure 5](figure5.png)", ""]
    if "learning_curves_shortened.png" in figures:
        lines += ["Shortened runs, drawn apart (their x axis spans fewer epochs):", "",
                  "![learning curves of the shortened runs]"
                  "(learning_curves_shortened.png)", ""]
    lines += [
        "## The paper's claims against our runs",
        "",
        ("Test set, last epoch, 40-epoch runs only. 'ours' and 'paper' are a - b (nats per "
         "sentence; ELBO higher is better); 'SE' is the standard error of our difference, "
         "from each row's seed-to-seed sd (a row with one seed takes the pooled sd of the rows "
         "with several), 'dof' its Welch-Satterthwaite degrees of freedom and '95%' the "
         "half-width of the two-sided 95% Student-t interval, t(0.975, dof) x SE. A claim "
         "'holds' when our difference has its direction by more than that half-width; 'within "
         "seed noise' when the interval covers zero. With three seeds a row's sd has 2 degrees "
         "of freedom, so t is 2.8-4.3 rather than the normal 2 and only a clear difference "
         "counts."),
        "",
        markdown_table(["claim", "a", "b", "metric", "paper", "ours", "SE", "dof", "95%",
                        "seeds", "verdict"],
                       [[c["claim"], c["a"], c["b"], c["metric"], c["paper"], c["ours"],
                         c["se"], c["dof"], c["t95"], c["seeds"], c["verdict"]]
                        for c in claims],
                       align=["l", "l", "l", "l", "r", "r", "r", "r", "r", "r", "l"]),
    ]
    lines += ["", "## The runs", ""]
    for row, items in runs.items():
        for item in items:
            cfg = item["metrics"]["config"]
            threads, epochs = item["metrics"].get("num_threads"), item["metrics"]["epochs"]
            lines.append(
                f"- `{item['dir']}`: {epochs} epoch{'' if epochs == 1 else 's'}; beta "
                f"{_settings(cfg['schedule'])}; lr {_settings(cfg['lr_schedule'])}; precision "
                f"{cfg['train'].get('precision', 'fp32')}; IW-NLL with K = "
                f"{cfg['train'].get('iw_samples')}; commit "
                f"{item['metrics'].get('git_commit')}, torch {item['metrics'].get('torch')}, "
                f"{threads} thread{'' if threads == 1 else 's'}"
            )
    lines.append(f"\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    return {"rows": {row: [i["metrics"].get("test") for i in items] for row, items in runs.items()},
            "claims": claims}


#: Figure 5's four curves: row -> legend label (the paper's names)
FIGURE5_ROWS = {"vae-monotonic": "VAE M", "vae-cyclical-cyclr": "VAE C",
                "savae-monotonic": "SA-VAE M", "savae-cyclical": "SA-VAE C"}
#: VAE solid, SA-VAE dashed; monotonic blue, cyclical red (as the paper's figure pairs them)
FIGURE5_STYLES = {"VAE M": {"color": "C0", "linestyle": "-"},
                  "VAE C": {"color": "C3", "linestyle": "-"},
                  "SA-VAE M": {"color": "C0", "linestyle": "--"},
                  "SA-VAE C": {"color": "C3", "linestyle": "--"}}


def _figure5_curves(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, float]]]:
    """Figure 5's curves: legend label -> per-epoch valid points of the seed-0, 40-epoch run of
    each row of :data:`FIGURE5_ROWS` that has one ({} when none has)."""
    curves: dict[str, list[dict[str, float]]] = {}
    for row, label in FIGURE5_ROWS.items():
        for item in runs.get(row, []):
            if item["seed"] == 0 and item["metrics"].get("epochs", 0) >= PAPER_EPOCHS:
                curves[label] = [p for p in _curve_points(item["history"], [])
                                 if "valid_elbo" in p]
    return curves


def _claim_tests(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The test blocks the claims compare: row -> one per seed of its 40-epoch runs, and for a
    row whose paper numbers include its best epoch (Table 1's M*), the best-on-valid
    checkpoint's test blocks under :func:`best_epoch_row`."""
    tests: dict[str, list[dict[str, Any]]] = {}
    for row, items in runs.items():
        full = [i["metrics"] for i in items if i["metrics"].get("epochs", 0) >= PAPER_EPOCHS]
        tests[row] = [m.get("test") or {} for m in full]
        if any(p.block == "best" for p in ROWS[row]):
            tests[best_epoch_row(row)] = [(m.get("best") or {}).get("test") or {} for m in full]
    return tests


def _settings(section: Mapping[str, Any]) -> str:
    """A config section as ``key=value, ...`` in its own order, unset (None) keys left out."""
    return ", ".join(f"{k}={v}" for k, v in section.items() if v is not None)


TABLE4_ORDER = ("beta cyclical, lr constant", "beta monotonic, lr constant",
                "beta cyclical, lr cyclical", "beta monotonic, lr cyclical")


def table4_rows(runs: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """Table 4's cells in the paper's order: beta, lr, our seeds, our Rec/KL/ELBO (mean, or
    "mean ± sd" over several seeds; empty for a row not run) and the paper's Rec/KL/ELBO.
    Only full-length runs count; [] when no Table 4 row has one."""
    cells: list[list[Any]] = []
    any_run = False
    for label in TABLE4_ORDER:
        row, paper = next((r, p) for r, ps in ROWS.items() for p in ps
                          if p.table == "Table 4" and p.label == label)
        tests = [i["metrics"].get("test") or {} for i in runs.get(row, [])
                 if i["metrics"].get("epochs", 0) >= PAPER_EPOCHS]
        any_run = any_run or bool(tests)
        ours = [_over_seeds(tests, k) for k in ("rec", "kl", "elbo")]
        beta, lr = label.removeprefix("beta ").split(", lr ")
        cells.append([beta, lr, len(tests) or "", *ours,
                      *(paper.numbers[k] for k in ("rec", "kl", "elbo"))])
    return cells if any_run else []


def transformer_rows(runs: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """The Transformer block of the report: each Transformer row that has runs (any length),
    then its LSTM counterpart (:data:`TRANSFORMER_ROWS`, when run), then texar's published
    rows (:data:`TEXAR_ROWS`); [] when no Transformer row has a run. Cells: row, seeds,
    source, epochs and :data:`METRICS` (mean ± sd over seeds, :func:`_over_seeds`)."""
    if not any(runs.get(row) for row in TRANSFORMER_ROWS):
        return []
    cells: list[list[Any]] = []
    for row, lstm in TRANSFORMER_ROWS.items():
        for name in (row, lstm):
            items = runs.get(name, [])
            if not items:
                continue
            epochs = sorted({i["metrics"]["epochs"] for i in items})
            tests = [i["metrics"].get("test") or {} for i in items]
            cells.append([name, ",".join(str(i["seed"]) for i in items),
                          _source_label(items[0]["metrics"]), ",".join(map(str, epochs)),
                          *[_over_seeds(tests, k) for k in METRICS]])
    for label, numbers in TEXAR_ROWS.items():
        cells.append(["", "", f"texar (published): {label}", "best of <= 100",
                      *[numbers.get(k) for k in METRICS]])
    return cells


SEED_LINESTYLES = ("-", "--", ":", "-.")


def curve_styles(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Line style per run directory for the learning curves: one colour per row (matplotlib's
    default cycle, in row order) and one line style per seed of that row (solid, dashed,
    dotted, dash-dot, then again), so that a row's seeds read as one group."""
    styles: dict[str, dict[str, Any]] = {}
    for r, items in enumerate(runs.values()):
        for i, item in enumerate(items):
            styles[item["dir"]] = {"color": f"C{r % 10}",
                                   "linestyle": SEED_LINESTYLES[i % len(SEED_LINESTYLES)]}
    return styles


def _decimals(value: float) -> int:
    """Decimals that resolve a few hundredths of a nat: 2 from 10 up, 3 below (KL, MI)."""
    return 2 if abs(value) >= 10 else 3


def _seconds(value: float | None) -> int | None:
    """Seconds per epoch as a whole number for the table (None stays None)."""
    return None if value is None else round(value)


def format_cell(value: Any) -> str:
    """A results-table cell: floats with fixed decimals (:func:`_decimals`), so that rows
    0.02 nats apart read apart; anything else as :func:`format_number` writes it."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.{_decimals(value)}f}"
    return format_number(value)


def _mean_sd(values: list[float], decimals: int | None = None) -> str | None:
    """``"mean ± sd"`` (sample sd) of two or more values, both to ``decimals`` (default: the
    mean's, :func:`_decimals`), else None."""
    if len(values) < 2:
        return None
    s = spread(values)
    d = _decimals(s.mean) if decimals is None else decimals
    return f"{s.mean:.{d}f} ± {s.sd:.{d}f}"


def _over_seeds(tests: list[dict[str, Any]], key: str) -> float | str | None:
    """One metric over a row's seeds (their test blocks): the value of a single seed,
    "mean ± sd" of several (:func:`_mean_sd`), None when no seed or not every seed has it."""
    values = [t[key] for t in tests if t.get(key) is not None]
    if not values or len(values) != len(tests):
        return None
    if len(values) == 1:
        return values[0]
    # active units are counts: a mean of counts to tenths, not to thousandths like a KL
    return _mean_sd(values, 1 if key == "active_units" else None)


def _paper_numbers() -> dict[str, dict[str, dict[str, float]]]:
    """``"Table 1"`` / ``"Table 4"`` -> row -> the paper's test numbers (last epoch)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row, papers in ROWS.items():
        for paper in papers:
            name = row if paper.block == "test" else best_epoch_row(row)
            out.setdefault(paper.table, {}).setdefault(name, dict(paper.numbers))
    return out
