"""Determinism: the same config and seed give identical numbers twice in a row on CPU."""

from __future__ import annotations

import json

import torch

from cyclevae.checkpoint import load_checkpoint
from cyclevae.training import LAST
from robust_support import (  # noqa: F401 - fixtures
    log_records,
    reference_args,
    reference_run,
    run_cli,
    tiny_data,
    without_timings,
)


def test_same_config_and_seed_give_identical_numbers(reference_run, tiny_data, tmp_path,
                                                     capsys):
    out = tmp_path / "again"
    code, _, err = run_cli(capsys, "train", *reference_args(tiny_data), "--out", out,
                           "--no-progress")
    assert code == 0, err
    first = without_timings(json.loads((reference_run / "metrics.json").read_text()))
    second = without_timings(json.loads((out / "metrics.json").read_text()))
    assert second == first  # exact: train, test (incl. IW-NLL, MI), data, vocabulary, steps

    def numbers(run):
        return [without_timings(r) for r in log_records(run)]

    assert numbers(out) == numbers(reference_run)  # every logged loss, beta and lr
    a, b = load_checkpoint(reference_run / LAST), load_checkpoint(out / LAST)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert (out / "vocab.txt").read_bytes() == (reference_run / "vocab.txt").read_bytes()
