"""`cyclevae runs`: the table repeats the committed PTB runs' metrics.json exactly, unfinished
runs are read from their log and marked, the figure plots every run's valid curve, and bad
directories are one-line errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO

from cyclevae.cli import main
from cyclevae.errors import UserError
from cyclevae.report import format_number
from cyclevae.runs_table import (
    DEFAULT_METRICS,
    curves_figure,
    describe_schedule,
    load_run,
    load_runs,
    runs_table,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PTB = REPO / "results" / "ptb"
ROWS = ["vae-monotonic", "vae-cyclical-cyclr", "savae-monotonic", "savae-cyclical"]


def _saved(row: str) -> dict:
    return json.loads((PTB / row / "metrics.json").read_text())


def _epochs(run: Path) -> list[dict]:
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def test_csv_repeats_metrics_json_exactly(capsys):
    assert main(["runs", *[str(PTB / r) for r in ROWS], "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["run"] for r in rows] == ROWS
    for row in rows:
        saved = _saved(row["run"])
        assert row["kind"] == saved["config"]["model"]["kind"]
        assert row["status"] == "finished" and int(row["epoch"]) == saved["epochs"]
        assert [k for k in row if k in DEFAULT_METRICS] == list(DEFAULT_METRICS)
        for key in DEFAULT_METRICS:
            assert float(row[key]) == saved["test"][key], (row["run"], key)


def test_markdown_cells_and_valid_split(capsys):
    assert main(["runs", str(PTB / "vae-monotonic"), "--split", "valid",
                 "--metrics", "rec,kl,active_units"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| run | kind | schedule | status | epoch | Rec | KL | AU |"
    valid = _saved("vae-monotonic")["valid"]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[0] == "vae-monotonic" and cells[3] == "finished"
    assert cells[5:] == [format_number(valid["rec"]), format_number(valid["kl"]),
                         str(valid["active_units"])]


def test_schedules_are_named_from_the_config():
    assert describe_schedule(_saved("vae-cyclical-cyclr")["config"]) == (
        "cyclical M=4 R=0.5, beta 0.1-1; lr cyclical M=4")
    assert describe_schedule(_saved("vae-monotonic")["config"]) == "monotonic R=0.25, beta 0.1-1"
    assert describe_schedule({"schedule": {"start": 1.0, "stop": 1.0}}) == "constant beta 1"


def test_same_named_runs_get_distinct_names():
    dirs = sorted((PTB / "precision" / "vae-monotonic").glob("*/seed0"))
    names = [r.name for r in load_runs(dirs)]
    assert names == ["bf16/seed0", "fp32/seed0"]


def test_unfinished_run_is_read_from_its_last_epoch_record(tmp_path):
    """No metrics.json, the log cut after epoch 3 with half a record after it (a kill)."""
    run = tmp_path / "vae-cut"
    shutil.copytree(PTB / "vae-cyclical-cyclr", run)
    (run / "metrics.json").unlink()
    lines = (run / "log.jsonl").read_text().splitlines(keepends=True)
    last = max(i for i, x in enumerate(lines) if json.loads(x).get("epoch") == 3
               and json.loads(x)["kind"] == "epoch")
    (run / "log.jsonl").write_text("".join(lines[:last + 1]) + lines[last + 1][:40])
    summary = load_run(run)
    third = _epochs(PTB / "vae-cyclical-cyclr")[2]
    assert not summary.finished and summary.status == "unfinished (epoch 3 of 40)"
    assert summary.metrics == third["test"]
    assert summary.kind == "vae" and summary.schedule.startswith("cyclical M=4")
    text = runs_table([summary, load_run(PTB / "vae-monotonic")])
    assert "unfinished (epoch 3 of 40)" in text and "| finished |" in text


def test_config_only_run_is_listed_without_numbers(tmp_path, capsys):
    run = tmp_path / "started"
    run.mkdir()
    shutil.copy(PTB / "vae-monotonic" / "config.yaml", run / "config.yaml")
    assert main(["runs", str(run), str(PTB / "vae-monotonic"), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["status"] == "unfinished (no epoch done)" and rows[0]["rec"] == ""
    assert rows[0]["schedule"] == rows[1]["schedule"] == "monotonic R=0.25, beta 0.1-1"


def test_figure_plots_every_runs_valid_curve(tmp_path, capsys):
    out = tmp_path / "curves.png"
    runs = [str(PTB / r) for r in ROWS]
    assert main(["runs", *runs, "--out", str(out)]) == 0
    capsys.readouterr()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = curves_figure(load_runs(runs))
    elbo, rec, kl = fig.axes[:3]
    assert [ax.get_xlabel() for ax in (elbo, rec, kl)] == ["epoch"] * 3
    assert all("nats per sentence" in ax.get_ylabel() for ax in (elbo, rec, kl))
    assert rec.get_shared_x_axes().joined(elbo, rec) and kl.get_xlim() == elbo.get_xlim()
    for ax, key in ((elbo, "elbo"), (kl, "kl")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == set(ROWS)
        for row in ROWS:
            epochs = _epochs(PTB / row)
            assert list(lines[row].get_xdata()) == [r["epoch"] for r in epochs]
            assert list(lines[row].get_ydata()) == [r["valid"][key] for r in epochs]


@pytest.mark.parametrize("setup,message", [
    ("empty", "not a run directory"),
    ("missing", "not a directory"),
    ("bad_log", "log.jsonl:2: not a JSON record"),
    ("bad_metric", "--metrics: bleu reported by none of the runs"),
])
def test_bad_input_is_one_line_exit_2(setup, message, tmp_path, capsys):
    run = tmp_path / "run"
    extra: list[str] = []
    if setup == "empty":
        run.mkdir()
    elif setup == "bad_log":
        run.mkdir()
        (run / "log.jsonl").write_text('{"kind": "train"}\nnot json\n{"kind": "train"}\n')
    elif setup == "bad_metric":
        run = PTB / "vae-monotonic"
        extra = ["--metrics", "rec,bleu"]
    assert main(["runs", str(run), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("cyclevae: error:") and captured.err.count("\n") == 1
    assert message in captured.err


def test_no_curve_to_plot_is_a_user_error(tmp_path):
    run = tmp_path / "started"
    run.mkdir()
    (run / "config.yaml").write_text("train:\n  epochs: 3\n")
    with pytest.raises(UserError, match="no run has an epoch record"):
        curves_figure(load_runs([run]))
