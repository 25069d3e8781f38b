"""The Transformer VAE rows of `cyclevae reproduce ptb` (issue 32): known rows whose configs
differ from their LSTM rows in the model alone, and a report that sets them beside our LSTM rows
and texar's published numbers."""

from __future__ import annotations

import json

from cyclevae.cli import main
from cyclevae.config import load_config
from cyclevae.experiments.ptb import (CONFIG_DIR, ROWS, TEXAR_ROWS, TRANSFORMER_ROWS,
                                      write_ptb_report)


def test_transformer_rows_change_only_the_model_of_their_lstm_rows():
    assert set(TRANSFORMER_ROWS) == {"transformer-monotonic", "transformer-cyclical"}
    for row, lstm in TRANSFORMER_ROWS.items():
        assert row in ROWS and lstm in ROWS
        ours = load_config(CONFIG_DIR / f"{row}.yaml").to_dict()
        base = load_config(CONFIG_DIR / f"{lstm}.yaml").to_dict()
        assert (ours["model"]["encoder"], ours["model"]["decoder"]) == ("transformer",
                                                                        "transformer")
        assert ours["model"]["latent_dim"] == base["model"]["latent_dim"]
        ours.pop("model"), base.pop("model")
        assert ours == base, row  # beta, lr, data, epochs, seeds, IW samples: the same


def test_reproduce_ptb_knows_the_transformer_rows(tmp_path, capsys):
    # known rows: the command reads both configs and refuses only the too-short --epochs
    # (the cyclical row has 4 cycles) before anything trains
    out = tmp_path / "ptb"
    code = main(["reproduce", "ptb", "--rows", "transformer-monotonic,transformer-cyclical",
                 "--epochs", "2", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown row" not in err
    assert "transformer-cyclical" in err and "4 cycles" in err and err.count("\n") == 1
    assert not out.exists()


def _fake_run(out, name, test, epochs=40):
    config = load_config(CONFIG_DIR / f"{name.split('-seed')[0]}.yaml").to_dict()
    run = out / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({
        "epochs": epochs, "test": test, "config": config, "seconds_per_epoch": 100.0,
        "num_threads": 1, "git_commit": "abc", "torch": "2.13.0"}))


def test_report_sets_the_transformer_rows_beside_the_lstm_rows_and_texar(tmp_path):
    out = tmp_path / "ptb"
    metrics = ("rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "active_units")
    block = dict(zip(metrics, (100.0, 2.0, -102.0, 106.0, 101.5, 104.0, 1.5, 3)))
    _fake_run(out, "transformer-cyclical", block)
    _fake_run(out, "transformer-cyclical-seed1", {**block, "elbo": -102.2})
    _fake_run(out, "vae-cyclical-cyclr", {**block, "elbo": -102.46})
    write_ptb_report(out, rows=["vae-cyclical-cyclr", "transformer-cyclical"], seeds=[0, 1])
    report = (out / "report.md").read_text()
    section = report.split("## The Transformer VAE beside our LSTM rows and texar's "
                           "published numbers")[1].split("\n## ")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    # the Transformer row (two seeds: mean ± sd), then its LSTM row, then texar's two rows
    assert lines[0].startswith("| transformer-cyclical | 0,1 | ours |")
    assert "-102.10 ± 0.14" in lines[0]
    assert lines[1].startswith("| vae-cyclical-cyclr | 0 | ours |") and "-102.46" in lines[1]
    assert [("texar (published)" in line) for line in lines[2:]] == [True] * len(TEXAR_ROWS)
    assert "-102.54" in lines[2] and "107.64" in lines[2]
    assert "-101.61" in lines[3] and "103.14" in lines[3]
    assert "not the paper's" in section


def test_report_without_transformer_runs_has_no_texar_block(tmp_path):
    out = tmp_path / "ptb"
    _fake_run(out, "vae-monotonic", {"rec": 101.0, "kl": 1.0, "elbo": -102.0, "ppl": 107.0})
    write_ptb_report(out, rows=["vae-monotonic"], seeds=[0])
    assert "texar" not in (out / "report.md").read_text()


def test_the_injection_grid_command_trains_a_shortened_transformer_row(ptb_slice, tmp_path,
                                                                       capsys):
    """results/transformer/README.md's grid, one injection, at tiny sizes on a PTB slice: the
    cyclical row shortened to 4 epochs (its 4 cycles kept) trains, evaluates and reports with
    the injection it was given."""
    from conftest import small_overrides

    tiny = {"model.transformer.d_model": 16, "model.transformer.d_ff": 32,
            "model.transformer.n_heads": 2, "model.transformer.n_layers": 1,
            "model.transformer.z_injection": "memory", "train.num_threads": 1,
            "train.iw_samples": 4}
    sets = [arg for value in small_overrides(ptb_slice, **tiny) for arg in ("--set", value)
            if value.split("=")[0] not in ("train.epochs", "schedule.n_cycles",
                                           "model.emb_dim", "model.enc_hidden",
                                           "model.dec_hidden")]
    out = tmp_path / "memory"
    assert main(["reproduce", "ptb", "--rows", "transformer-cyclical", "--epochs", "4", *sets,
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "transformer-cyclical" / "metrics.json").read_text())
    model = metrics["config"]["model"]
    assert (model["encoder"], model["transformer"]["z_injection"]) == ("transformer", "memory")
    assert metrics["epochs"] == 4 and metrics["config"]["schedule"]["n_cycles"] == 4
    assert {"kl", "mi", "active_units", "iw_nll"} <= set(metrics["test"])
    assert "texar (published)" in (out / "report.md").read_text()


def test_the_cyclical_claims_are_judged_on_the_transformer_rows_too():
    from cyclevae.experiments.ptb_claims import check_claims

    def seeds(rec, kl):
        return [{"rec": rec + d, "kl": kl + d / 10, "elbo": -(rec + kl) - d} for d in
                (-0.05, 0.0, 0.05)]

    tests = {"transformer-monotonic": seeds(101.0, 0.5),
             "transformer-cyclical": seeds(100.0, 2.0)}
    claims = {c["claim"]: c for c in check_claims(tests, {})
              if c["a"].startswith("transformer-")}
    assert len(claims) == 3
    kl = claims["Transformer VAE: cyclical beta gives a higher KL than monotonic"]
    assert kl["ours"] == 1.5 and kl["seeds"] == "3 vs 3" and kl["paper"] is None
    assert kl["verdict"] == "holds, beyond seed noise"
    assert claims["Transformer VAE: ... and a lower Rec"]["verdict"] == "holds, beyond seed noise"
    elbo = claims["Transformer VAE: ... at an ELBO no worse (monotonic's not higher than "
                  "cyclical's)"]
    assert elbo["ours"] == 0.5 and elbo["verdict"].startswith("does not hold")
