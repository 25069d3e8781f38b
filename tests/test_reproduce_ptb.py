"""`cyclevae reproduce ptb` end to end at small scale: rows trained, report beside the paper,
finished runs reused, --report-only."""

from __future__ import annotations

import json

from conftest import small_overrides

from cyclevae.cli import main


def test_reproduce_ptb_trains_rows_reports_and_reuses_finished_runs(ptb_slice, tmp_path, capsys):
    out = tmp_path / "ptb"
    sets = [arg for value in small_overrides(ptb_slice, **{"train.num_threads": 1})
            for arg in ("--set", value)
            if value.split("=")[0] not in ("train.epochs", "schedule.n_cycles")]
    args = ["reproduce", "ptb", "--rows", "vae-monotonic,vae-cyclical-cyclr", "--epochs", "4",
            *sets, "--out", str(out), "--no-progress"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["rows"]) == {"vae-monotonic", "vae-cyclical-cyclr"}
    for row in result["rows"]:
        metrics = json.loads((out / row / "metrics.json").read_text())
        assert metrics["epochs"] == 4 and metrics["config"]["train"]["epochs"] == 4
        # shortening keeps the row's own M and R (fewer epochs per cycle)
        schedule = metrics["config"]["schedule"]
        assert (schedule["n_cycles"], schedule["ratio"]) == (
            (1, 0.25) if row == "vae-monotonic" else (4, 0.5))
        assert {"rec", "kl", "elbo", "ppl", "iw_nll", "mi", "active_units"} <= set(metrics["test"])
    report = (out / "report.md").read_text()
    assert report.count("paper Table 1") >= 2
    assert report.count("| ours, shortened (4 of 40 epochs) |") == 2  # labelled as shortened
    # shortened runs are drawn apart, never among the 40-epoch curves
    assert (out / "learning_curves_shortened.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "learning_curves.png").exists()
    assert "](learning_curves_shortened.png)" in report

    # a second call reuses the finished runs (nothing retrained) and --report-only rebuilds
    stamp = (out / "vae-monotonic" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "vae-monotonic" / "metrics.json").stat().st_mtime_ns == stamp
    (out / "report.md").unlink()
    capsys.readouterr()
    assert main(["reproduce", "ptb", "--report-only", "--out", str(out)]) == 0
    assert (out / "report.md").is_file()


def test_reproduce_ptb_unknown_row_is_a_one_line_error(tmp_path, capsys):
    code = main(["reproduce", "ptb", "--rows", "vae-nope", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "vae-nope" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_reproduce_ptb_epochs_below_the_cycles_fails_before_any_row_trains(tmp_path, capsys):
    out = tmp_path / "ptb"
    code = main(["reproduce", "ptb", "--rows", "vae-monotonic,vae-cyclical-cyclr", "--epochs", "2",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--epochs 2" in err and "vae-cyclical-cyclr" in err and "4 cycles" in err
    assert not out.exists()  # the monotonic row (1 cycle) did not start either


def test_learning_curve_beta_is_the_one_each_step_used_not_the_next_epochs():
    from cyclevae.experiments.ptb import _curve_points

    # 10 steps per epoch; the epoch record holds the beta of the step after the epoch (0.1 at a
    # cycle's restart), the train records the beta each logged step trained with
    history = [{"kind": "epoch", "epoch": 1, "step": 10, "beta": 0.1,
                "valid": {"rec": 5.0, "kl": 1.0, "elbo": -6.0}},
               {"kind": "epoch", "epoch": 2, "step": 20, "beta": 0.1,
                "valid": {"rec": 4.0, "kl": 1.5, "elbo": -5.5}}]
    train = [{"kind": "train", "step": s, "beta": b} for s, b in ((5, 0.5), (10, 1.0), (15, 0.4),
                                                                  (20, 1.0))]
    points = _curve_points(history, train)
    beta = [(p["epoch"], p["beta"]) for p in points if "beta" in p]
    assert beta == [(0.5, 0.5), (1.0, 1.0), (1.5, 0.4), (2.0, 1.0)]
    assert [(p["epoch"], p["valid_elbo"]) for p in points if "valid_elbo" in p] == [
        (1.0, -6.0), (2.0, -5.5)]


def test_jobs_train_rows_in_parallel_with_the_same_metrics(ptb_slice, tmp_path):
    """Two tiny rows as two processes at once give exactly the metrics of the same rows trained
    one after the other (same seeds, same thread count)."""
    from cyclevae.experiments.ptb import run_ptb

    sets = [value for value in small_overrides(ptb_slice, **{"train.num_threads": 1,
                                                              "train.iw_samples": 0})
            if value.split("=")[0] not in ("train.epochs", "schedule.n_cycles")]
    rows = ["vae-monotonic", "vae-cyclical-cyclr"]
    run_ptb(rows=rows, out=tmp_path / "serial", epochs=4, overrides=sets, progress=False)
    run_ptb(rows=rows, out=tmp_path / "parallel", epochs=4, overrides=sets, progress=False,
            jobs=2)
    for row in rows:
        serial = json.loads((tmp_path / "serial" / row / "metrics.json").read_text())
        parallel = json.loads((tmp_path / "parallel" / row / "metrics.json").read_text())
        for block in ("train", "valid", "test"):
            assert parallel[block] == serial[block], (row, block)
        assert parallel["config"] == serial["config"]


def test_jobs_split_the_cores_unless_threads_are_set(tmp_path):
    from cyclevae.config import load_config
    from cyclevae.experiments.ptb import assign_threads, train_runs

    unset = load_config(None, ["data.train=x"])
    fixed = load_config(None, ["data.train=x", "train.num_threads=3"])
    todo = [(unset, tmp_path / "a"), (fixed, tmp_path / "b")]
    assigned = assign_threads(todo, jobs=2, cores=8)
    assert [c.train.num_threads for c, _ in assigned] == [4, 3]
    assert unset.train.num_threads is None  # the caller's config is not changed
    assert assign_threads(todo, jobs=4, cores=2)[0][0].train.num_threads == 1
    import pytest

    from cyclevae.errors import UserError
    with pytest.raises(UserError, match="--jobs must be >= 1"):
        train_runs(todo, jobs=0)


def test_a_signal_stops_parallel_runs_and_starts_no_other(ptb_slice, tmp_path):
    """SIGINT to the process training four runs with jobs=2: the two in progress write their
    checkpoints, the other two never start, no worker is left behind, and one
    TrainingInterrupted names them (before, the pool went on to the next runs and its workers
    outlived the parent)."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    import pytest

    from cyclevae.config import load_config
    from cyclevae.errors import TrainingInterrupted
    from cyclevae.experiments.ptb import CONFIG_DIR, train_runs

    config = load_config(CONFIG_DIR / "vae-monotonic.yaml", small_overrides(
        ptb_slice, **{"train.epochs": 100000, "train.iw_samples": 0, "train.num_threads": 1}))
    runs = [tmp_path / f"run{i}" for i in range(4)]

    returned = threading.Event()

    def signal_when_both_train() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                (run / "checkpoint_last.pt").is_file() for run in runs[:2]):
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)
        if not returned.wait(60):  # still training: end the workers so that the test fails
            for child in multiprocessing.active_children():
                child.kill()

    watcher = threading.Thread(target=signal_when_both_train, daemon=True)
    watcher.start()
    try:
        with pytest.raises(TrainingInterrupted) as caught:
            train_runs([(config, run) for run in runs], jobs=2)
    finally:
        returned.set()
        watcher.join()
    message = str(caught.value)
    assert message.startswith("SIGINT received: checkpoint written by 2 run(s) in progress")
    assert f"{runs[0]}, {runs[1]}" in message and "2 run(s) not started" in message
    for run in runs[:2]:
        assert (run / "checkpoint_last.pt").is_file() and not (run / "metrics.json").exists()
    assert not runs[2].exists() and not runs[3].exists()
    assert multiprocessing.active_children() == []


def test_curve_panels_have_y_labels_with_units():
    from cyclevae.report import plot_curves

    fig = plot_curves({"a": [{"epoch": 1, "x": 1.0}, {"epoch": 2, "x": 2.0}]}, ["x"],
                      x="epoch", ylabels=["Rec (nats per sentence)"])
    assert fig.axes[0].get_ylabel() == "Rec (nats per sentence)"


def test_a_row_killed_before_its_first_checkpoint_starts_again_but_another_run_is_kept(
        ptb_slice, tmp_path):
    """A row whose process died before its first checkpoint left config.yaml and a partial
    log: the experiment starts that row again (instead of refusing the directory), but never
    replaces the start of a run with another config."""
    import pytest

    from cyclevae.config import load_config, save_config
    from cyclevae.errors import UserError
    from cyclevae.experiments.runner import train_runs

    sets = small_overrides(ptb_slice, **{"train.num_threads": 1, "train.iw_samples": 0})
    config = load_config(None, sets)
    run = tmp_path / "row"
    run.mkdir()
    save_config(load_config(None, sets + ["train.num_threads=2"]), run / "config.yaml")
    (run / "log.jsonl").write_text('{"kind": "train", "epoch": 1, "step": 5}\n')
    train_runs([(config, run)], progress=False)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "schedule" and records[-1]["kind"] == "final"
    assert sum(r == {"kind": "train", "epoch": 1, "step": 5} for r in records) == 0

    other = tmp_path / "other"
    other.mkdir()
    save_config(load_config(None, sets + ["train.seed=7"]), other / "config.yaml")
    (other / "log.jsonl").write_text("partial\n")
    with pytest.raises(UserError, match="holds another run"):
        train_runs([(config, other)], progress=False)
    assert (other / "log.jsonl").read_text() == "partial\n"
    assert not (other / "metrics.json").exists()


def test_a_rows_seeds_share_a_colour_and_differ_in_line_style():
    from cyclevae.experiments.ptb import curve_styles

    runs = {"vae-monotonic": [{"dir": "vae-monotonic"}, {"dir": "vae-monotonic-seed1"}],
            "vae-cyclical": [{"dir": "vae-cyclical"}]}
    styles = curve_styles(runs)
    assert styles["vae-monotonic"]["color"] == styles["vae-monotonic-seed1"]["color"]
    assert styles["vae-monotonic"]["linestyle"] != styles["vae-monotonic-seed1"]["linestyle"]
    assert styles["vae-cyclical"]["color"] != styles["vae-monotonic"]["color"]


def test_results_cells_keep_the_hundredths_that_separate_rows():
    from cyclevae.experiments.ptb import _mean_sd, format_cell

    assert format_cell(-102.68) != format_cell(-102.70)  # 4 significant digits merge them
    assert format_cell(1.0912) == "1.091" and format_cell(7) == "7" and format_cell(None) == ""
    assert _mean_sd([-102.6, -102.7, -102.8]) == "-102.70 ± 0.10"
    assert _mean_sd([170.2, 180.0], decimals=0) == "175 ± 7"
    assert _mean_sd([1.0]) is None


def test_many_curves_get_one_legend_below_the_panels():
    import pytest

    from cyclevae.report import plot_curves

    curves = {f"run{i}": [{"epoch": 1, "x": float(i)}, {"epoch": 2, "x": i + 1.0}]
              for i in range(6)}
    fig = plot_curves(curves, ["x", "x"], x="epoch", legend="below")
    assert fig.axes[0].get_legend() is None
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 6
    assert plot_curves(curves, ["x"], x="epoch").axes[0].get_legend() is not None
    with pytest.raises(ValueError, match="legend must be"):
        plot_curves(curves, ["x"], x="epoch", legend="right")


def test_interrupted_reproduce_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    """A signal during `reproduce ptb` ends like one during `train`: the checkpoint's line, no
    traceback, exit 130 (it raised through `main` as a traceback before)."""
    from cyclevae.errors import TrainingInterrupted
    from cyclevae.experiments import ptb

    def interrupted(**kwargs):
        raise TrainingInterrupted("SIGINT received: checkpoint written to X at epoch 2")

    monkeypatch.setattr(ptb, "run_ptb", interrupted)
    assert main(["reproduce", "ptb", "--rows", "vae-monotonic", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err == "cyclevae: SIGINT received: checkpoint written to X at epoch 2\n"
