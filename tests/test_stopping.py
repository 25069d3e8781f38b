"""The authors' early-stopping rule (kgcvae_swda_cyc.py:102-152): its arithmetic on scripted
valid losses, its rounds from the data, and the Trainer running it (mid-pass rounds, the best
checkpoint, resume)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import small_overrides, stop_after_step

from cyclevae.checkpoint import load_checkpoint
from cyclevae.config import load_config
from cyclevae.errors import UserError
from cyclevae.stopping import EarlyStopping, round_ends, round_steps
from cyclevae.training import BEST, Trainer, TrainingInterrupted

pytestmark = pytest.mark.usefixtures("one_thread")


def run_rule(rule: EarlyStopping, losses: list[float]) -> list[tuple[bool, float, bool]]:
    """``(improved, patience, stopped)`` after each loss, until the rule stops."""
    out = []
    for loss in losses:
        out.append((rule.update(loss), rule.patience, rule.stopped))
        if rule.stopped:
            break
    return out


def test_rule_on_a_scripted_loss_sequence() -> None:
    """By hand: round 1 sets the threshold (100) with patience max(10, 1 x 2) = 10; round 2
    (99.7) is a new best but not 0.4 % below 100 (99.6), so the patience stays; round 3
    (99.5 <= 99.6) improves enough: patience max(10, 6) = 10, threshold 99.5; round 6 (90)
    raises it to 12; nothing better follows, so the rule stops after round 12."""
    rule = EarlyStopping(patience=10, improve_threshold=0.996, patience_increase=2.0,
                         max_rounds=60)
    losses = [100.0, 99.7, 99.5, 99.6, 99.55, 90.0] + [95.0] * 20
    trace = run_rule(rule, losses)
    assert [t[0] for t in trace] == [True, True, True, False, False, True] + [False] * 6
    assert [t[1] for t in trace] == [10] * 5 + [12] * 7
    assert len(trace) == 12 and trace[-1][2] and rule.reason == "patience"
    assert rule.best == 90.0 and rule.best_round == 6 and rule.threshold == 90.0
    with pytest.raises(RuntimeError):
        rule.update(1.0)


def test_small_improvements_are_kept_but_do_not_extend_the_patience() -> None:
    rule = EarlyStopping(patience=3, improve_threshold=0.996, patience_increase=2.0)
    # every round 0.1 % better: each is the best so far, none is 0.4 % below round 1
    trace = run_rule(rule, [100.0 * 0.999 ** k for k in range(10)])
    assert [t[0] for t in trace] == [True, True, True] and rule.reason == "patience"
    assert rule.best_round == 3 and rule.threshold == 100.0


def test_steady_improvement_runs_to_max_rounds_and_nan_is_never_best() -> None:
    rule = EarlyStopping(patience=2, max_rounds=5)
    trace = run_rule(rule, [100.0 * 0.9 ** k for k in range(10)])
    assert len(trace) == 5 and rule.reason == "max_rounds" and rule.patience == 10.0
    rule = EarlyStopping(patience=2, max_rounds=None)
    assert rule.update(5.0) and not rule.update(math.nan) and rule.stopped
    assert rule.best == 5.0 and rule.reason == "patience"


def test_state_dict_continues_the_rule_exactly() -> None:
    losses = [100.0, 99.0, 98.9, 97.0, 97.5, 96.0, 96.5, 96.2, 96.1, 96.3, 96.4, 95.9, 99.0,
              99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0, 99.0]
    uninterrupted = EarlyStopping(patience=4)
    whole = run_rule(uninterrupted, losses)
    first = EarlyStopping(patience=4)
    head = run_rule(first, losses[:5])
    second = EarlyStopping(patience=4)  # patience 4 again, then the saved state
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    tail = run_rule(second, losses[5:])
    assert head + tail == whole and second.state_dict() == uninterrupted.state_dict()
    assert whole[-1][2] and len(whole) < len(losses)


def test_rounds_come_from_the_pass_length() -> None:
    """The authors' 1,716 batches are a quarter of their pass: the same fraction of ours."""
    assert round_steps(6864, 0.25) == 1716 and round_steps(6057, 0.25) == 1515
    assert round_steps(3, 0.25) == 1 and round_steps(8, 1.0) == 8
    ends = [s for s in range(1, 11) if round_ends(s, 10, round_steps(10, 0.25))]
    assert ends == [3, 6, 9, 10]  # the last round ends with the pass


def test_config_checks_the_rule() -> None:
    config = load_config(None, ["train.early_stopping.enabled=true",
                                "train.early_stopping.round_epochs=0.5"])
    assert config.train.early_stopping.round_epochs == 0.5
    for key, value in (("round_epochs", 0), ("round_epochs", 1.5), ("patience", 0),
                       ("improve_threshold", 1.2), ("max_rounds", 0)):
        with pytest.raises(UserError, match=f"train.early_stopping.{key}"):
            load_config(None, [f"train.early_stopping.{key}={value}"])


# ---------------------------------------------------------------------- in the Trainer
#: half-pass rounds; no round is 50 % better than the first, so the patience (3) stops the
#: run after round 3, in the middle of the second pass
RULE = {"train.early_stopping.enabled": "true", "train.early_stopping.round_epochs": 0.5,
        "train.early_stopping.patience": 3, "train.early_stopping.improve_threshold": 0.5,
        "train.epochs": 4, "train.iw_samples": 0}


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def test_trainer_evaluates_in_rounds_and_stops_mid_pass(ptb_slice, tmp_path):
    config = load_config(None, small_overrides(ptb_slice, **RULE))
    trainer = Trainer(config, tmp_path / "run", progress=False)
    spe, every = trainer.steps_per_epoch, trainer.round_steps
    assert every == math.ceil(spe / 2) and spe > every
    metrics = trainer.fit()
    rule = metrics["early_stopping"]
    assert rule["rounds"] == 3 and rule["reason"] == "patience" and rule["stopped"]
    assert metrics["epochs"] == 2 and metrics["steps"] == spe + every
    log = records(tmp_path / "run")
    rounds = [r for r in log if r["kind"] in ("round", "epoch")]
    assert [(r["kind"], r["step"]) for r in rounds] == [
        ("round", every), ("epoch", spe), ("round", spe + every), ("epoch", spe + every)]
    valid = [r["valid"]["nll_bound"] for r in rounds[:3]]
    assert [r["early_stopping"]["rounds"] for r in rounds[:3]] == [1, 2, 3]
    assert "early_stopping" not in rounds[3]  # the pass cut short is not another round
    best = min(range(3), key=lambda i: valid[i])
    assert rule["best_round"] == best + 1 and rule["best"] == pytest.approx(valid[best])
    # the best checkpoint is that round's weights and knows its valid numbers
    assert metrics["best"]["valid"]["nll_bound"] == pytest.approx(valid[best])
    saved = load_checkpoint(tmp_path / "run" / BEST)
    assert saved["progress"]["global_step"] == rounds[best]["step"]


def test_a_resumed_run_continues_the_rule_exactly(ptb_slice, tmp_path):
    reference = Trainer(load_config(None, small_overrides(ptb_slice, **RULE)),
                        tmp_path / "full", progress=False).fit()
    trainer = Trainer(load_config(None, small_overrides(ptb_slice, **RULE)), tmp_path / "cut",
                      progress=False)
    stop_after_step(trainer, trainer.round_steps + 1)  # after round 1, inside round 2
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint_last.pt")
    assert saved["early_stopping"]["rounds"] == 1
    resumed = Trainer(None, tmp_path / "cut", resume=True, progress=False).fit()
    assert resumed["early_stopping"] == reference["early_stopping"]
    assert resumed["steps"] == reference["steps"]
    for split in ("valid", "test"):
        for key, value in reference[split].items():
            if isinstance(value, float):
                assert resumed[split][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert resumed["best"]["valid"] == pytest.approx(reference["best"]["valid"], rel=1e-6)


def test_without_a_valid_set_the_rule_is_off_and_says_so(ptb_slice, tmp_path, capsys):
    """A row's config on a file with no valid split still trains (for train.epochs)."""
    config = load_config(None, small_overrides(ptb_slice, **{**RULE, "data.valid": "null",
                                                             "train.epochs": 1}))
    trainer = Trainer(config, tmp_path / "run", progress=False)
    assert trainer.stopping is None
    assert "train.early_stopping is off: the run has no valid set" in capsys.readouterr().err
    metrics = trainer.fit()
    assert metrics["epochs"] == 1 and "early_stopping" not in metrics


@pytest.mark.parametrize("row", ["cvae-monotonic", "cvae-cyclical", "cvae-bow-monotonic",
                                 "cvae-bow-cyclical"])
def test_dialog_rows_stop_as_the_authors_did(row: str) -> None:
    """config_utils_cyc.py: update_limit a quarter pass, patience 10, 0.996, x2, 60 rounds;
    train.epochs leaves room for all 60 quarter-pass rounds."""
    from cyclevae.experiments import shipped_config

    config = load_config(shipped_config(f"dialog/{row}"))
    rule = config.train.early_stopping
    assert rule.enabled and (rule.round_epochs, rule.patience, rule.improve_threshold,
                             rule.patience_increase, rule.max_rounds) == (0.25, 10, 0.996, 2.0, 60)
    assert config.train.epochs * round(1 / rule.round_epochs) >= rule.max_rounds
    assert config.data.dialog.preparation == "zhao"
