"""The PTB report's seed statistics and the paper's claims judged against the seed spread."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cyclevae.experiments.ptb import run_dir_name, write_ptb_report
from cyclevae.experiments.ptb_claims import (
    Claim,
    check_claim,
    check_claims,
    paper_claims,
    pooled_sd,
    spread,
    welch_dof,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(finite, min_size=1, max_size=6))
def test_spread_is_the_mean_and_sample_sd(values):
    s = spread(values)
    assert s.n == len(values) and s.values == tuple(values)
    assert s.mean == pytest.approx(sum(values) / len(values), abs=1e-9)
    if len(values) == 1:
        assert s.sd is None
    else:
        var = sum((v - s.mean) ** 2 for v in values) / (len(values) - 1)
        assert s.sd == pytest.approx(math.sqrt(var), rel=1e-6, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(finite, min_size=1, max_size=5), min_size=1, max_size=4))
def test_pooled_sd_weights_variances_by_degrees_of_freedom(groups):
    spreads = [spread(g) for g in groups]
    dof = sum(len(g) - 1 for g in groups)
    pooled = pooled_sd(spreads)
    if dof == 0:
        assert pooled is None
        return
    centred = [v - statistics.fmean(g) for g in groups for v in g]
    assert pooled == pytest.approx(math.sqrt(sum(c * c for c in centred) / dof),
                                   rel=1e-6, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e3), st.integers(1, 50)), min_size=1, max_size=4))
def test_welch_dof_lies_between_the_smallest_and_the_sum(parts):
    nu = welch_dof(parts)
    dofs = [d for _, d in parts]
    assert min(dofs) * (1 - 1e-9) <= nu <= sum(dofs) * (1 + 1e-9)


def test_welch_dof_of_two_equal_samples_is_the_pooled_dof():
    # equal n and equal sd: nu = 2 (n - 1), the classical pooled two-sample t
    assert welch_dof([(0.04 / 3, 2), (0.04 / 3, 2)]) == pytest.approx(4.0)
    # one variance dominating: nu tends to that term's dof
    assert welch_dof([(1.0, 2), (1e-6, 40)]) == pytest.approx(2.0, rel=1e-4)
    with pytest.raises(ValueError, match="positive degrees of freedom"):
        welch_dof([(1.0, 0)])


def _t95(sd_a: float, n_a: int, sd_b: float, n_b: int, nu_a: int, nu_b: int) -> float:
    """The 95% half-width written out by hand (Welch): an independent check of check_claim."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    nu = (va + vb) ** 2 / (va**2 / nu_a + vb**2 / nu_b)
    return stats.t.ppf(0.975, nu) * math.sqrt(va + vb)


def _rows(**values: list[float]):
    return {row.replace("_", "-"): {"kl": spread(v)} for row, v in values.items()}


@pytest.mark.parametrize("a,b,direction,verdict", [
    ([2.0, 2.1, 1.9], [1.0, 1.1, 0.9], +1, "holds, beyond seed noise"),
    ([1.05, 1.25, 0.85], [1.0, 1.2, 0.8], +1, "same direction, within seed noise"),
    ([0.95, 1.15, 0.75], [1.0, 1.2, 0.8], +1, "opposite direction, within seed noise"),
    ([0.0, 0.1, -0.1], [1.0, 1.1, 0.9], +1, "does not hold: the opposite, beyond seed noise"),
    ([0.0, 0.1, -0.1], [1.0, 1.1, 0.9], -1, "holds, beyond seed noise"),
    ([1.0, 1.1, 0.9], [1.0, 1.1, 0.9], 0, "holds (no gain beyond seed noise)"),
    ([2.0, 2.1, 1.9], [1.0, 1.1, 0.9], 0, "does not hold: a gain beyond seed noise"),
    # 2.5 SE: beyond the normal 2 SE but inside t(0.975, 4) = 2.78 SE -> within seed noise
    ([1.2041, 1.3041, 1.1041], [1.0, 1.1, 0.9], +1, "same direction, within seed noise"),
])
def test_verdicts_against_the_welch_t_interval(a, b, direction, verdict):
    rows = _rows(x=a, y=b)
    result = check_claim(Claim("c", "x", "y", "kl", direction), rows, {"kl": None})
    sa, sb = rows["x"]["kl"], rows["y"]["kl"]
    assert result["ours"] == pytest.approx(sa.mean - sb.mean, abs=1e-3)
    assert result["se"] == pytest.approx(math.sqrt(sa.sd**2 / 3 + sb.sd**2 / 3), abs=1e-3)
    assert result["t95"] == pytest.approx(_t95(sa.sd, 3, sb.sd, 3, 2, 2), abs=1e-3)
    assert result["dof"] == pytest.approx(4.0, abs=0.05)  # equal sds: 2 + 2
    assert result["verdict"] == verdict and result["seeds"] == "3 vs 3"


def test_one_seed_rows_borrow_the_pooled_sd_or_judge_the_sign_only():
    rows = _rows(x=[2.0], y=[1.0])
    borrowed = check_claim(Claim("c", "x", "y", "kl", +1), rows, {"kl": 0.1}, dof=4)
    assert borrowed["t95"] == pytest.approx(stats.t.ppf(0.975, 4) * math.sqrt(0.02), abs=1e-3)
    # one pooled sd serves both rows: a single estimate with its own 4 degrees of freedom
    assert borrowed["dof"] == pytest.approx(4.0)
    assert "(both 1-seed rows take the pooled seed sd" in borrowed["verdict"]
    assert borrowed["verdict"].startswith("holds, beyond seed noise")
    with pytest.raises(ValueError, match="degrees of freedom"):
        check_claim(Claim("c", "x", "y", "kl", +1), rows, {"kl": 0.1})
    alone = check_claim(Claim("c", "x", "y", "kl", -1), rows, {"kl": None})
    assert alone["t95"] is None and alone["se"] is None
    assert alone["verdict"].startswith("opposite direction; no seed spread measured")
    missing = check_claim(Claim("c", "x", "z", "kl", +1), rows, {"kl": None})
    assert missing["ours"] is None and "no finished run of z" in missing["verdict"]


def test_paper_claims_take_each_tables_numbers():
    paper = {"Table 1": {"vae-monotonic": {"kl": 0.907}, "vae-cyclical-cyclr": {"kl": 1.955}},
             "Table 4": {"vae-monotonic": {"kl": 0.858}, "vae-cyclical-cyclr": {"kl": 1.897},
                         "vae-monotonic-cyclr": {"kl": 0.748}}}
    claims = {c.text: c for c in paper_claims(paper)}
    first = claims["Cyclical beta gives a higher KL than monotonic (beta_max = 1)"]
    assert first.paper == pytest.approx(1.955 - 0.907, abs=1e-9)
    t4 = claims["Table 4: the cyclical beta raises KL (cyclical lr)"]
    assert t4.paper == pytest.approx(1.897 - 0.748, abs=1e-9)
    lr = claims["Table 4: the cyclical lr alone does not raise KL (monotonic beta)"]
    assert lr.direction == 0 and lr.paper == pytest.approx(0.748 - 0.858, abs=1e-9)


def test_check_claims_pools_the_multi_seed_rows():
    tests = {"vae-monotonic": [{"kl": 1.0}, {"kl": 1.2}, {"kl": 0.8}],
             "vae-cyclical-cyclr": [{"kl": 2.6}]}
    (first, *_) = check_claims(tests, {})
    assert first["a"] == "vae-cyclical-cyclr" and first["seeds"] == "1 vs 3"
    # the 1-seed row takes the 3-seed row's sd (0.2) and its 2 degrees of freedom
    assert first["se"] == pytest.approx(math.sqrt(0.04 + 0.04 / 3), abs=1e-3)
    assert first["t95"] == pytest.approx(_t95(0.2, 1, 0.2, 3, 2, 2), abs=1e-3)


def test_seed_zero_is_the_plain_row_directory():
    assert run_dir_name("vae-monotonic", 0) == "vae-monotonic"
    assert run_dir_name("vae-monotonic", 2) == "vae-monotonic-seed2"


def _fake_run(path, seed: int, kl: float, rec: float) -> None:
    path.mkdir(parents=True)
    test = {"rec": rec, "kl": kl, "elbo": -(rec + kl), "ppl": 100.0,
            "active_units": 2 + seed}
    cfg = {"schedule": {"n_cycles": 4, "ramp_steps": None}, "lr_schedule": {"kind": "constant"},
           "train": {"iw_samples": 0},
           "model": {"kind": "vae"}}
    (path / "metrics.json").write_text(json.dumps({
        "config": cfg, "epochs": 40, "test": test, "seconds_per_epoch": 200.0 + seed,
        "git_commit": "abc", "torch": "2.13.0", "num_threads": 1}))
    (path / "log.jsonl").write_text(json.dumps(
        {"kind": "epoch", "epoch": 40, "step": 400, "beta": 1.0,
         "valid": {"rec": rec, "kl": kl, "elbo": -(rec + kl)}}) + "\n")


def test_report_has_mean_sd_over_seeds_and_the_claims(tmp_path):
    """Three seeds of each main row: one mean +- sd line per row beside each seed's, and the
    claims table judges the KL difference against the spread."""
    kls = {"vae-monotonic": [1.0, 1.2, 0.8], "vae-cyclical-cyclr": [2.6, 2.7, 2.5]}
    for row, values in kls.items():
        for seed, kl in enumerate(values):
            _fake_run(tmp_path / run_dir_name(row, seed), seed, kl, 100.0 - kl)
    result = write_ptb_report(tmp_path, rows=list(kls), seeds=[0, 1, 2])
    report = (tmp_path / "report.md").read_text()
    assert "| vae-monotonic | 0,1,2 | ours, mean ± sd over 3 seeds | 40 |" in report
    assert "1.000 ± 0.200" in report and "2.600 ± 0.100" in report  # KL mean +- sample sd
    assert "201 ± 1" in report  # seconds per epoch over the seeds
    assert "| 3.0 ± 1.0 |" in report  # active units (2, 3, 4): a count, to tenths
    first = result["claims"][0]
    assert first["ours"] == pytest.approx(1.6, abs=1e-6) and first["seeds"] == "3 vs 3"
    assert first["verdict"] == "holds, beyond seed noise"
    assert "## The paper's claims against our runs" in report
    # each run listed with its settings as key=value and its commit
    assert ("- `vae-monotonic-seed2`: 40 epochs; beta n_cycles=4; lr kind=constant; precision "
            "fp32; IW-NLL with K = 0; ") in report
    assert "commit abc, torch 2.13.0, 1 thread\n" in report
    assert "not measured (no finished run of vae-beta0.5-monotonic)" in report


def test_report_prints_table_4_in_the_papers_order_with_the_seed_spread(tmp_path):
    kls = {"vae-monotonic": [1.0, 1.2, 0.8], "vae-cyclical": [1.5]}
    for row, values in kls.items():
        for seed, kl in enumerate(values):
            _fake_run(tmp_path / run_dir_name(row, seed), seed, kl, 100.0 - kl)
    write_ptb_report(tmp_path, rows=list(kls), seeds=[0, 1, 2])
    report = (tmp_path / "report.md").read_text()
    grid = report.split("## Table 4 (the ablation) as the paper prints it")[1].split("\n\n")[2]
    lines = grid.splitlines()[2:]
    assert [line.split(" | ")[:2] for line in lines] == [
        ["| cyclical", "constant"], ["| monotonic", "constant"],
        ["| cyclical", "cyclical"], ["| monotonic", "cyclical"]]
    assert lines[0].startswith("| cyclical | constant | 1 | 98.50 | 1.500 | -100.00 | 101.30 |")
    assert "| 3 | 99.00 ± 0.20 | 1.000 ± 0.200 | -100.00 ± 0.00 | 101.93 |" in lines[1]
    assert lines[3].startswith("| monotonic | cyclical |  |  |  |  | 101.74 |")  # not run


def test_report_has_no_table_4_without_a_table_4_run(tmp_path):
    _fake_run(tmp_path / "vae-beta0.5-monotonic", 0, 10.0, 95.0)
    write_ptb_report(tmp_path, rows=["vae-beta0.5-monotonic"], seeds=[0])
    assert "## Table 4" not in (tmp_path / "report.md").read_text()


def test_a_borrowed_sd_names_its_degrees_of_freedom():
    tests = {"vae-monotonic": [{"kl": 1.0}, {"kl": 1.2}], "vae-cyclical-cyclr": [{"kl": 2.6}]}
    (first, *_) = check_claims(tests, {})
    assert first["verdict"].endswith(
        "(the 1-seed row takes the pooled seed sd of the multi-seed rows, 1 degree of freedom)")


def _fake_savae_run(path, kl: float, rec: float, best_elbo: float, epochs: int = 40) -> None:
    """A finished SA-VAE run: its last-epoch test block and the best-on-valid checkpoint's."""
    _fake_run(path, 0, kl, rec)
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["epochs"] = epochs
    metrics["config"]["model"]["kind"] = "savae"
    metrics["best"] = {"epoch": 17, "test": {"rec": -best_elbo - 1.0, "kl": 1.0,
                                             "elbo": best_elbo}}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_savae_claims_and_m_star_compare_the_best_epochs_test_block(tmp_path):
    """SA-VAE C against M on KL/Rec/ELBO, and M* (the best-on-valid checkpoint of SA-VAE M, not
    its last epoch) against VAE M, with the paper's M* numbers."""
    _fake_run(tmp_path / "vae-monotonic", 0, 1.0, 101.7)  # ELBO -102.7
    _fake_savae_run(tmp_path / "savae-monotonic", kl=1.0, rec=102.0, best_elbo=-102.5)
    _fake_savae_run(tmp_path / "savae-cyclical", kl=2.5, rec=100.3, best_elbo=-102.9)
    result = write_ptb_report(tmp_path, rows=["vae-monotonic", "savae-monotonic",
                                              "savae-cyclical"], seeds=[0])
    claims = {c["claim"]: c for c in result["claims"]}
    assert claims["SA-VAE: cyclical beta gives a higher KL than monotonic"]["ours"] == \
        pytest.approx(1.5, abs=1e-6)
    assert claims["SA-VAE: ... and a lower Rec"]["ours"] == pytest.approx(-1.7, abs=1e-6)
    m_star = claims["SA-VAE M at its best epoch (M*) has a better ELBO than VAE M"]
    assert m_star["a"] == "savae-monotonic (best epoch)"
    assert m_star["ours"] == pytest.approx(-102.5 + 102.7, abs=1e-6)  # best, not last (-103)
    assert m_star["paper"] == pytest.approx(-102.54 + 102.63, abs=1e-6)


def test_figure5_draws_the_four_rows_and_skips_shortened_runs(tmp_path):
    for row in ("vae-monotonic", "vae-cyclical-cyclr"):
        _fake_run(tmp_path / row, 0, 1.0, 101.0)
    _fake_savae_run(tmp_path / "savae-monotonic", kl=1.0, rec=102.0, best_elbo=-102.5)
    _fake_savae_run(tmp_path / "savae-cyclical", kl=2.5, rec=100.3, best_elbo=-102.9, epochs=5)
    from cyclevae.experiments.ptb import _figure5_curves, _load_runs

    runs = _load_runs(tmp_path, ["vae-monotonic", "vae-cyclical-cyclr", "savae-monotonic",
                                 "savae-cyclical"], [0])
    curves = _figure5_curves(runs)
    assert sorted(curves) == ["SA-VAE M", "VAE C", "VAE M"]  # SA-VAE C is shortened
    assert [p["valid_kl"] for p in curves["SA-VAE M"]] == [1.0]
    write_ptb_report(tmp_path, rows=list(runs), seeds=[0])
    assert (tmp_path / "figure5.png").is_file()
    assert "not yet run: SA-VAE C" in (tmp_path / "report.md").read_text()
