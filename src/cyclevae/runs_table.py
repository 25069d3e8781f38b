"""``cyclevae runs``: the final metrics of several run directories in one table, and their
learning curves in one figure.

A run directory (:mod:`cyclevae.rundir`) is read from its files alone (no checkpoint, no
data): ``metrics.json`` for a finished run (its ``test`` block, or ``valid``), otherwise the
last ``epoch`` record of ``log.jsonl`` that holds that block (the run is then marked
unfinished), and the config (``metrics.json``'s, else ``config.yaml``) for the model kind and
the schedule. The curves are the ``valid`` block of every ``epoch`` record.

Example::

    from cyclevae.runs_table import load_runs, runs_table, curves_figure
    runs = load_runs(["results/ptb/vae-monotonic", "results/ptb/vae-cyclical-cyclr"])
    print(runs_table(runs, fmt="md"))
    save_figure_atomic(curves_figure(runs), "curves.png")
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import UserError
from .report import markdown_table, plot_curves

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_METRICS", "RunSummary", "curves_figure", "describe_schedule",
           "differing_settings", "load_run", "load_runs", "runs_table"]

#: metric columns shown by default (those no run reports are left out)
DEFAULT_METRICS = ("rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "active_units")

#: Markdown column titles of the metrics (CSV uses the keys)
_TITLES = {"rec": "Rec", "kl": "KL", "elbo": "ELBO", "nll_bound": "NLL bound", "ppl": "PPL",
           "rec_ppl": "Rec-PPL", "iw_nll": "IW-NLL", "iw_ppl": "IW-PPL", "mi": "MI",
           "marginal_kl": "marginal KL", "active_units": "AU"}

#: the panels of the learning-curve figure: (metric of the valid block, title, y label)
_CURVES = (("elbo", "valid ELBO", "ELBO (nats per sentence)"),
           ("rec", "valid Rec", "reconstruction loss (nats per sentence)"),
           ("kl", "valid KL", "KL (nats per sentence)"))


@dataclass(frozen=True)
class RunSummary:
    """One run directory as the table and the figure see it.

    Attributes:
        path: the directory; name: how the table names it (see :func:`load_runs`).
        kind: ``model.kind``; schedule: :func:`describe_schedule` of its config.
        finished: whether it has ``metrics.json``.
        epoch: the epoch its numbers are from (metrics.json's ``epochs``, or the epoch record
            they came from; None if no epoch finished); total_epochs: ``train.epochs``.
        metrics: the block (``test`` or ``valid``): metric name -> value (nats per sentence).
        curve: per finished epoch ``{"epoch", "elbo", "rec", "kl"}`` of the ``valid`` block.
    """

    path: Path
    name: str
    kind: str | None
    schedule: str
    finished: bool
    epoch: int | None
    total_epochs: int | None
    metrics: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # flattened: "train.lr" -> 0.001

    @property
    def status(self) -> str:
        """``finished``, or ``unfinished (epoch E of T)`` / ``unfinished (no epoch done)``."""
        if self.finished:
            return "finished"
        if self.epoch is None:
            return "unfinished (no epoch done)"
        of = f" of {self.total_epochs}" if self.total_epochs else ""
        return f"unfinished (epoch {self.epoch}{of})"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_schedule(config: dict[str, Any]) -> str:
    """A short name of a run's beta (and lr) schedule from its config dict, e.g.
    ``cyclical M=4 R=0.5, beta 0.1-1; lr cyclical M=4`` or ``monotonic R=0.25``."""
    s = config.get("schedule") or {}
    n, ratio = s.get("n_cycles", 1), s.get("ratio")
    start, stop = s.get("start", 0.0), s.get("stop", 1.0)
    if start == stop:
        text = f"constant beta {_number(stop)}"
    else:
        text = (f"cyclical M={n} R={_number(ratio)}" if n > 1 else f"monotonic R={_number(ratio)}")
        if s.get("shape", "linear") != "linear":
            text += f" {s['shape']}"
        if (start, stop) != (0.0, 1.0):
            text += f", beta {_number(start)}-{_number(stop)}"
        if s.get("unit") == "step":
            text += " (per step)"
    lr = config.get("lr_schedule") or {}
    if lr.get("kind") == "cyclical":
        text += f"; lr cyclical M={lr.get('n_cycles')}"
    return text


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object")
    return value


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The records of ``log.jsonl``; a last line cut short by a kill is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the training log ({exc})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines) and not line.endswith("\n"):
                break  # an interrupted append
            raise UserError(f"{path}:{number}: not a JSON record") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object")
        records.append(record)
    return records


def _read_config(run: Path, metrics: dict[str, Any] | None) -> dict[str, Any]:
    if metrics is not None and isinstance(metrics.get("config"), dict):
        return metrics["config"]
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"{path}: cannot read ({' '.join(str(exc).split())})") from None
    return config if isinstance(config, dict) else {}


def load_run(path: str | Path, *, block: str = "test", name: str | None = None) -> RunSummary:
    """Read one run directory (module docstring); ``block`` is ``test`` or ``valid``.

    Raises:
        UserError: ``path`` is not a directory holding ``metrics.json``, ``log.jsonl`` or
            ``config.yaml``, or one of them cannot be read.
    """
    run = Path(path)
    if not run.is_dir():
        raise UserError(f"{run}: not a directory")
    files = {n: run / n for n in ("metrics.json", "log.jsonl", "config.yaml")}
    if not any(p.is_file() for p in files.values()):
        raise UserError(f"{run}: not a run directory (no metrics.json, log.jsonl or "
                        "config.yaml)")
    metrics = _read_json(files["metrics.json"]) if files["metrics.json"].is_file() else None
    log = _read_log(files["log.jsonl"]) if files["log.jsonl"].is_file() else []
    config = _read_config(run, metrics)
    epochs = [r for r in log if r.get("kind") == "epoch"]
    if metrics is not None:
        values, epoch = metrics.get(block) or {}, metrics.get("epochs")
    else:
        holding = [r for r in epochs if isinstance(r.get(block), dict)]
        values = holding[-1][block] if holding else {}
        epoch = holding[-1].get("epoch") if holding else (epochs[-1].get("epoch") if epochs
                                                          else None)
    curve = [{"epoch": float(r["epoch"]), **{k: r["valid"][k] for k, _, _ in _CURVES
                                             if r["valid"].get(k) is not None}}
             for r in epochs if isinstance(r.get("valid"), dict) and "epoch" in r]
    return RunSummary(
        path=run, name=name or run.name, kind=(config.get("model") or {}).get("kind"),
        schedule=describe_schedule(config) if config else "", finished=metrics is not None,
        epoch=epoch, total_epochs=(config.get("train") or {}).get("epochs"),
        metrics=dict(values), curve=curve, config=_flatten(config))


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


#: config keys the table shows in their own columns (kind, schedule, status)
_SHOWN = ("model.kind", "schedule.", "lr_schedule.")


def differing_settings(runs: Sequence[RunSummary]) -> list[str]:
    """The config keys (``section.field``) whose values differ between ``runs``, other than
    those the kind and schedule columns show; none for a single run."""
    if len(runs) < 2:
        return []
    keys = sorted({k for run in runs for k in run.config})
    missing = object()
    return [k for k in keys if not k.startswith(_SHOWN)
            and len({repr(run.config.get(k, missing)) for run in runs}) > 1]


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """The shortest trailing path parts that tell the runs apart (``seed0`` twice becomes
    ``bf16/seed0`` and ``fp32/seed0``)."""
    parts = [p.resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]  # the same directory twice


def load_runs(paths: Sequence[str | Path], *, block: str = "test") -> list[RunSummary]:
    """:func:`load_run` of every path, named by their shortest distinct trailing parts."""
    if not paths:
        raise UserError("runs: give at least one run directory")
    paths = [Path(p) for p in paths]
    return [load_run(p, block=block, name=n) for p, n in zip(paths, _unique_names(paths))]


def _columns(runs: Sequence[RunSummary], metrics: Sequence[str] | None) -> list[str]:
    reported = {k for run in runs for k, v in run.metrics.items() if v is not None}
    if metrics is None:
        return [k for k in DEFAULT_METRICS if k in reported]
    unknown = [k for k in metrics if k not in reported]
    if unknown:
        raise UserError(f"--metrics: {', '.join(unknown)} reported by none of the runs; they "
                        f"report {', '.join(sorted(reported)) or 'nothing'}")
    return list(metrics)


def runs_table(runs: Sequence[RunSummary], *, fmt: str = "md",
               metrics: Sequence[str] | None = None) -> str:
    """One row per run: name, kind, schedule, the other settings in which the runs differ
    (:func:`differing_settings`, ``key=value``; the column is left out when there are none),
    status, epoch, then the metrics (default :data:`DEFAULT_METRICS` that some run reports).
    ``fmt``: ``md`` (4 significant digits) or ``csv`` (full precision, metric keys as column
    names, empty cells for missing)."""
    columns = _columns(runs, metrics)
    differ = differing_settings(runs)
    settings = [[", ".join(f"{k}={_number(r.config[k])}" for k in differ if k in r.config)]
                if differ else [] for r in runs]
    rows = [[r.name, r.kind, r.schedule, *extra, r.status, r.epoch,
             *[r.metrics.get(k) for k in columns]] for r, extra in zip(runs, settings)]
    fixed = ["run", "kind", "schedule", *(["settings"] if differ else []), "status", "epoch"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*fixed, *columns])
        for row in rows:
            writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                             for v in row])
        return buffer.getvalue()
    if fmt != "md":
        raise ValueError(f"fmt must be 'md' or 'csv', got {fmt!r}")
    headers = [*fixed, *[_TITLES.get(k, k) for k in columns]]
    left = len(fixed) - 1  # the epoch and the metrics are right-aligned
    return markdown_table(headers, rows, align=["l"] * left + ["r"] * (len(headers) - left))


def curves_figure(runs: Sequence[RunSummary]) -> Figure:
    """The valid ELBO, Rec and KL of every run against the epoch, one panel each, sharing
    the epoch axis, one line per run (dashed: unfinished)."""
    if not any(run.curve for run in runs):
        raise UserError("runs: no run has an epoch record with a valid block to plot")
    names = [run.name + ("" if run.finished else " (unfinished)") for run in runs]
    fig = plot_curves({n: r.curve for n, r in zip(names, runs)}, [k for k, _, _ in _CURVES],
                      x="epoch", titles=[t for _, t, _ in _CURVES], xlabel="epoch",
                      styles={n: {"linestyle": "--"} for n, r in zip(names, runs)
                              if not r.finished})
    axes = fig.axes
    for ax, (_, _, ylabel) in zip(axes, _CURVES):
        ax.set_ylabel(ylabel)
        if ax is not axes[0]:
            ax.sharex(axes[0])
    lo = min((p["epoch"] for r in runs for p in r.curve), default=0.0)
    hi = max((p["epoch"] for r in runs for p in r.curve), default=1.0)
    pad = max(0.5, 0.03 * (hi - lo))
    axes[0].set_xlim(lo - pad, hi + pad)
    if not math.isclose(lo, hi):
        axes[0].xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig
