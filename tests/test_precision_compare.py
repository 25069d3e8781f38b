"""benchmarks/precision_compare.py: pairs runs by seed and judges bf16 against seed noise."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "precision_compare.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("precision_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, seed: int, elbo: float, kl: float, row: str = "vae-monotonic") -> None:
    run = root / f"{row}-seed{seed}"
    run.mkdir(parents=True)
    metrics = {"epochs": 2, "config": {"train": {"seed": seed}},
               "test": {"elbo": elbo, "kl": kl, "rec": -elbo - kl}}
    (run / "metrics.json").write_text(json.dumps(metrics))


def test_difference_of_means_is_judged_against_the_largest_seed_spread(tool, tmp_path, capsys):
    _write(tmp_path / "fp32", 0, -110.0, 1.0)
    _write(tmp_path / "fp32", 1, -110.4, 1.2)
    _write(tmp_path / "bf16", 1, -110.3, 3.0)  # seed order on disk does not matter
    _write(tmp_path / "bf16", 0, -110.1, 3.1)
    code = tool.main(["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16")])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    by_metric = {r["metric"]: r for r in lines}
    elbo = by_metric["elbo"]
    assert elbo["fp32"] == [-110.0, -110.4] and elbo["bf16"] == [-110.1, -110.3]
    assert elbo["difference"] == pytest.approx(0.0) and elbo["seed_noise"] == pytest.approx(0.4)
    assert elbo["within_noise"] is True
    assert elbo["paired"] == pytest.approx([-0.1, 0.1])  # seed 0: -110.1 - -110.0, seed 1
    kl = by_metric["kl"]  # bf16 means 1.95 higher; seeds differ by at most 0.2
    assert kl["difference"] == pytest.approx(1.95) and kl["within_noise"] is False
    assert by_metric["all"]["within_noise"] is False and by_metric["all"]["epochs"] == [2]


def test_unpaired_seeds_are_a_one_line_error(tool, tmp_path, capsys):
    _write(tmp_path / "fp32", 0, -110.0, 1.0)
    _write(tmp_path / "fp32", 1, -110.4, 1.2)
    _write(tmp_path / "bf16", 0, -110.1, 3.1)
    code = tool.main(["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "seeds [0]" in err


def test_two_rows_in_one_directory_are_refused(tool, tmp_path, capsys):
    for seed in (0, 1):
        _write(tmp_path / "fp32", seed, -110.0, 1.0)
        _write(tmp_path / "fp32", seed, -105.0, 3.0, row="vae-cyclical")
        _write(tmp_path / "bf16", seed, -110.0, 1.0)
    code = tool.main(["--fp32", str(tmp_path / "fp32"), "--bf16", str(tmp_path / "bf16")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "vae-cyclical-seed0 and vae-monotonic-seed0 are both seed 0" in err
