"""End to end on a slice of Yelp and on a labelled file nobody prepared: pre-train a CNN-encoder
VAE through the CLI, ``embed`` (same mu as the model, file order), ``probe``, bad input, and a
shortened ``reproduce yelp``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclevae.cli import main
from cyclevae.data.batching import TextBatch, encode_corpus
from cyclevae.data.corpus import read_labelled
from cyclevae.inference import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["model.emb_dim=16", "model.dec_hidden=16", "model.latent_dim=4", "model.cnn.conv1=8",
        "model.cnn.conv2=8", "model.cnn.conv3=8", "train.lr=0.003", "train.log_every=20"]


def _set(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def yelp_slice(tmp_path_factory, shared_data) -> Path:
    root = tmp_path_factory.mktemp("yelp_slice")
    for split, n in (("train", 600), ("valid", 150), ("test", 150)):
        lines = (shared_data / "yelp" / f"{split}.tsv").read_text().splitlines()
        lines = lines[::len(lines) // n][:n]  # the files are sorted by label: take every k-th
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def data_set(root: Path) -> list[str]:
    return [f"data.train={root / 'train.tsv'}", f"data.valid={root / 'valid.tsv'}",
            f"data.test={root / 'test.tsv'}"]


@pytest.fixture(scope="module")
def yelp_run(yelp_slice, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("yelp_run") / "vae"
    code = main(["train", "--config", "yelp/vae-cyclical", "--out", str(out), "--no-progress",
                 *_set([*data_set(yelp_slice), *TINY, "train.epochs=2", "schedule.n_cycles=2",
                        "lr_schedule.n_cycles=2"])])
    assert code == 0
    return out


def test_training_reads_labelled_files_and_ignores_labels(yelp_run, yelp_slice) -> None:
    metrics = json.loads((yelp_run / "metrics.json").read_text())
    assert metrics["data"]["train"]["sentences"] == 600
    assert metrics["data"]["train"]["encoder_cut"] == 0  # Yelp: at most 16 words
    vocab = (yelp_run / "vocab.txt").read_text().split()
    assert "0" not in vocab[:4] and metrics["config"]["model"]["encoder"] == "cnn"
    assert metrics["test"]["kl"] > 0 and metrics["test"]["rec_ppl"] < metrics["test"]["ppl"]


def test_embed_gives_the_models_mu_in_file_order(yelp_run, yelp_slice, tmp_path, capsys) -> None:
    out = tmp_path / "codes.npz"
    code, _, err = run_cli(capsys, "embed", yelp_run / "checkpoint_last.pt", "--data",
                           yelp_slice / "test.tsv", "--out", out)
    assert code == 0 and "150 x 4 codes and labels" in err
    saved = np.load(out)
    labels, sentences, _ = read_labelled(yelp_slice / "test.tsv")
    assert saved["labels"].tolist() == labels and saved["mu"].shape == (150, 4)
    model, vocab, _, _ = load_model(yelp_run / "checkpoint_last.pt")
    for i in (0, 7, 149):  # each sentence alone through the model: same code, same row
        ids = encode_corpus([sentences[i]], vocab)
        with torch.no_grad():
            mu, _ = model.posterior(TextBatch(torch.tensor(ids)))
        np.testing.assert_allclose(saved["mu"][i], mu[0].numpy(), rtol=1e-5, atol=1e-6)
    npy = tmp_path / "codes.npy"
    assert run_cli(capsys, "embed", yelp_run / "checkpoint_last.pt", "--data",
                   yelp_slice / "test.tsv", "--out", npy)[0] == 0
    np.testing.assert_array_equal(np.load(npy), saved["mu"])


def test_probe_prints_one_json_object(yelp_run, yelp_slice, capsys) -> None:
    code, out, _ = run_cli(capsys, "probe", yelp_run / "checkpoint_last.pt", "--train",
                           yelp_slice / "train.tsv", "--valid", yelp_slice / "valid.tsv",
                           "--test", yelp_slice / "test.tsv", "--fractions", "0.05,1",
                           "--draws", "3", "--seed", "4")
    assert code == 0
    result = json.loads(out)
    small, full = result["fractions"]
    assert small["labels"] == 30 and len(small["accuracy"]) == 3 and full["labels"] == 600
    assert all(0.0 <= a <= 1.0 for a in small["accuracy"] + full["accuracy"])
    assert result["classes"] == ["0", "1"] and result["features"].startswith("posterior mean")
    assert result["classifier"] == "ours" and "C" in full


def test_probe_with_the_authors_classifier(yelp_run, yelp_slice, capsys) -> None:
    """--classifier authors: named in the output, its epochs (a VAE's default 3000, here 4)
    and the kept epoch per draw recorded; seeded, so a second call prints the same."""
    args = ["probe", yelp_run / "checkpoint_last.pt", "--train", yelp_slice / "train.tsv",
            "--valid", yelp_slice / "valid.tsv", "--test", yelp_slice / "test.tsv",
            "--fractions", "0.1,1", "--draws", "2", "--classifier", "authors",
            "--classifier-epochs", "4"]
    code, out, _ = run_cli(capsys, *args)
    assert code == 0
    result = json.loads(out)
    assert result["classifier"] == "authors" and "authors' linear layer" in \
        result["classifier_description"]
    small, full = result["fractions"]
    assert small["epochs"] == 4 and len(small["epoch"]) == 2 and "C" not in small
    assert all(0.0 <= a <= 1.0 for a in small["accuracy"] + full["accuracy"])
    assert json.loads(run_cli(capsys, *args)[1])["fractions"] == result["fractions"]
    code, _, err = run_cli(capsys, *args[:-1], "0")
    assert code == 2 and "--classifier-epochs must be >= 1, got 0" in err


def test_bad_probe_and_embed_input(yelp_run, yelp_slice, tmp_path, capsys) -> None:
    ckpt = yelp_run / "checkpoint_last.pt"
    base = ["probe", ckpt, "--train", yelp_slice / "train.tsv", "--test"]
    code, _, err = run_cli(capsys, *base, yelp_slice / "test.tsv", "--fractions", "0,1")
    assert code == 2 and "--fractions: each fraction must be in (0, 1], got 0" in err
    code, _, err = run_cli(capsys, *base, yelp_slice / "test.tsv", "--fractions", "0.001")
    assert code == 2 and "leaves 1 labels, fewer than the 2 classes" in err
    other = tmp_path / "other.tsv"
    other.write_text("0\tthe food\n3\tgreat service\n")
    code, _, err = run_cli(capsys, *base, other, "--fractions", "1")
    assert code == 2 and "label '3' does not occur in the training file" in err
    broken = tmp_path / "broken.tsv"
    broken.write_text("1\tgood\nno tab\n")
    code, _, err = run_cli(capsys, "embed", ckpt, "--data", broken, "--out", tmp_path / "x.npz")
    assert code == 2 and f"{broken}, line 2: expected LABEL<TAB>SENTENCE" in err
    assert not (tmp_path / "x.npz").exists()
    empty = tmp_path / "empty.tsv"
    empty.write_text("1\tgood\n0\t\n")
    code, _, err = run_cli(capsys, "embed", ckpt, "--data", empty, "--out", tmp_path / "y.npz")
    assert code == 2 and f"{empty}, line 2: the sentence after the tab is empty" in err
    code, _, err = run_cli(capsys, "embed", ckpt, "--data", empty, "--out", tmp_path / "y.txt")
    assert code == 2 and "expected a .npy or .npz file name" in err


def test_a_labelled_file_nobody_prepared(tmp_path, capsys) -> None:
    """Topics instead of 0/1, a long line: train, embed and probe with defaults alone."""
    rng = np.random.default_rng(0)
    words = {"sports": "ball team goal match win coach".split(),
             "food": "pizza pasta salad taste chef menu".split(),
             "travel": "train hotel flight beach city trip".split()}
    lines = []
    for i in range(240):
        topic = list(words)[i % 3]
        n = 40 if i == 5 else int(rng.integers(3, 9))  # one sentence longer than the CNN reads
        lines.append(f"{topic}\t" + " ".join(rng.choice(words[topic], n)))
    (tmp_path / "mine.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    code, _, _ = run_cli(capsys, "train", "--config", "yelp/vae-monotonic", "--out", out,
                         "--no-progress",
                         *_set([f"data.train={tmp_path / 'mine.tsv'}", "data.valid=null",
                                "data.test=null", *TINY, "train.epochs=2"]))
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["train"]["encoder_cut"] == 1
    code, _, err = run_cli(capsys, "embed", out / "checkpoint_last.pt", "--data",
                           tmp_path / "mine.tsv", "--out", tmp_path / "codes.npz")
    assert code == 0 and "1 longer than the encoder's input" in err
    assert np.load(tmp_path / "codes.npz")["mu"].shape == (240, 4)
    code, printed, _ = run_cli(capsys, "probe", out / "checkpoint_last.pt", "--train",
                               tmp_path / "mine.tsv", "--test", tmp_path / "mine.tsv")
    assert code == 0
    result = json.loads(printed)
    assert result["classes"] == ["food", "sports", "travel"]
    # 0.1% and 1% of 240 leave 0 and 2 labels for 3 classes: left out with the reason
    assert [s["fraction"] for s in result["skipped"]] == [0.001, 0.01]
    assert "fewer than the 3 classes" in result["skipped"][1]["reason"]
    assert [r["fraction"] for r in result["fractions"]] == [0.1, 1.0]
    code, printed, _ = run_cli(capsys, "probe", out / "checkpoint_last.pt", "--train",
                               tmp_path / "mine.tsv", "--test", tmp_path / "mine.tsv",
                               "--classifier", "authors", "--classifier-epochs", "3")
    assert code == 0
    result = json.loads(printed)
    assert result["classifier"] == "authors" and result["classes"] == ["food", "sports", "travel"]
    assert result["regularisation"] == "none; the last of 3 epochs (no valid set)"


def test_reproduce_yelp_shortened(yelp_slice, tmp_path, monkeypatch) -> None:
    from cyclevae.experiments.yelp import _checkpoint, run_yelp

    files = {s: str(yelp_slice / f"{s}.tsv") for s in ("train", "valid", "test")}
    overrides = [*data_set(yelp_slice), *TINY, "data.batch_size=64"]
    result = run_yelp(rows=["ae", "vae-cyclical"], out=tmp_path, epochs=2,
                      overrides=[*overrides, "schedule.n_cycles=2", "lr_schedule.n_cycles=2"],
                      fractions=[0.1, 1.0], draws=2, tsne_points=60, progress=False, data=files)
    report = (tmp_path / "report.md").read_text()
    for name in ("accuracy.png", "tsne.png", "ae/probe.json", "vae-cyclical/probe.json"):
        assert (tmp_path / name).is_file()
    assert "The paper's finding" in report and "shortened: 2 of 100 epochs" in report
    assert re.search(r"(Every probe fit converged|Fits that stopped) .*lbfgs iterations", report)
    assert len(result["finding"]) == 2 and result["finite"]
    assert set(result["separation"]) == {"ae", "vae-cyclical"} and "10-NN agreement" in report
    for where in ("map", "codes"):
        assert 0.0 <= result["separation"]["ae"][where]["knn_agreement"] <= 1.0
    ae = json.loads((tmp_path / "ae" / "metrics.json").read_text())["test"]
    assert ae["kl"] is None and "kl" in ae["not_defined"]
    stamp = (tmp_path / "ae" / "probe.json").stat().st_mtime_ns
    run_yelp(rows=["ae", "vae-cyclical"], out=tmp_path, epochs=2,
             overrides=[*overrides, "schedule.n_cycles=2", "lr_schedule.n_cycles=2"],
             fractions=[0.1, 1.0], draws=2, tsne_points=0, progress=False, data=files)
    assert (tmp_path / "ae" / "probe.json").stat().st_mtime_ns == stamp  # reused
    # the authors' classifier beside ours: its own file and a section each in the report
    result = run_yelp(rows=["ae", "vae-cyclical"], out=tmp_path, epochs=2,
                      overrides=[*overrides, "schedule.n_cycles=2", "lr_schedule.n_cycles=2"],
                      fractions=[0.1, 1.0], draws=2, tsne_points=0, progress=False, data=files,
                      classifier="authors", classifier_epochs=3)
    assert (tmp_path / "ae" / "probe.json").stat().st_mtime_ns == stamp  # ours untouched
    authors = json.loads((tmp_path / "ae" / "probe-authors.json").read_text())
    assert authors["classifier"] == authors["settings"]["classifier"] == "authors"
    assert authors["fractions"][0]["epochs"] == 3
    report = (tmp_path / "report.md").read_text()
    assert "## Classifier: ours" in report and "## Classifier: the authors" in report
    assert report.count("**The paper's finding:**") == 2
    assert set(result["classifiers"]) == {"ours", "authors"}
    assert len(result["classifiers"]["authors"]["finding"]) == 2
    # a second training seed: its own run directories, seed 0's runs and probes reused, the
    # report over both seeds
    result = run_yelp(rows=["ae", "vae-cyclical"], out=tmp_path, epochs=2,
                      overrides=[*overrides, "schedule.n_cycles=2", "lr_schedule.n_cycles=2"],
                      fractions=[0.1, 1.0], draws=2, tsne_points=0, progress=False, data=files,
                      seeds=[0, 1])
    assert (tmp_path / "ae" / "probe.json").stat().st_mtime_ns == stamp
    seeded = {s: json.loads((tmp_path / d / "metrics.json").read_text())
              for s, d in ((0, "ae"), (1, "ae-seed1"))}
    assert [seeded[s]["config"]["train"]["seed"] for s in (0, 1)] == [0, 1]
    assert seeded[0]["test"]["rec"] != seeded[1]["test"]["rec"]
    assert result["seeds"] == {"ae": [0, 1], "vae-cyclical": [0, 1]}
    draws = [a for d in ("ae", "ae-seed1") for a in
             json.loads((tmp_path / d / "probe.json").read_text())["fractions"][0]["accuracy"]]
    assert result["accuracy"]["ae"][0] == pytest.approx(np.mean(draws))
    report = (tmp_path / "report.md").read_text()
    assert "mean over 2 training seeds × 2 draws" in report and "AE (seed 1)" in report
    assert "Each training seed" in report and "`vae-cyclical-seed1`" in report
    assert all("95% Welch interval" in line and "2 vs 2 seeds" in line
               for line in result["finding"])
    # unless set, its epoch limit is the authors': 1000 on the AE's codes, 3000 on a VAE's
    import dataclasses

    import cyclevae.probe as probe_module

    seen, real = [], probe_module.fit_authors_classifier

    def shortened(*args, settings, **kwargs):
        seen.append(settings.epochs)
        return real(*args, settings=dataclasses.replace(settings, epochs=1), **kwargs)

    monkeypatch.setattr(probe_module, "fit_authors_classifier", shortened)
    for row in ("ae", "vae-cyclical"):
        probe_module.probe_checkpoint(_checkpoint(tmp_path / row), files["train"],
                                      files["test"], fractions=[1.0], classifier="authors")
    assert seen == [1000, 3000]


@pytest.mark.parametrize("experiment", ["yelp", "dialog"])
def test_reproduce_passes_jobs_to_the_shared_runner(experiment, tmp_path, monkeypatch):
    """`reproduce yelp|dialog --jobs N` hands the unfinished rows to the runner that `reproduce
    ptb --jobs` uses (parallel processes, cores split; tested there for equal metrics), and
    --jobs 0 is a one-line error."""
    import importlib

    from cyclevae.cli import main

    module = importlib.import_module(f"cyclevae.experiments.{experiment}")
    calls = []

    def fake_train_runs(todo, *, jobs, progress):
        calls.append(([run.name for _, run in todo], jobs))
        raise SystemExit(0)  # stop before probing / evaluating

    monkeypatch.setattr(module, "train_runs", fake_train_runs)
    rows = "ae,vae-cyclical" if experiment == "yelp" else "cvae-monotonic,cvae-cyclical"
    with pytest.raises(SystemExit):
        main(["reproduce", experiment, "--rows", rows, "--out", str(tmp_path), "--jobs", "2",
              "--no-progress"])
    assert calls == [(rows.split(","), 2)]
    assert main(["reproduce", experiment, "--rows", rows, "--out", str(tmp_path),
                 "--jobs", "0"]) == 2


def test_report_names_the_probe_fits_that_did_not_converge() -> None:
    from cyclevae.experiments.yelp import _convergence_note

    def probe(*stopped):
        return {"fractions": [{"fraction": 0.01, "not_converged": list(stopped),
                               "C": [100.0, 1.0, 1.0, 10.0]},
                              {"fraction": 1.0, "not_converged": [], "C": [1.0]}]}

    assert _convergence_note({"AE": probe()}).startswith("Every probe fit converged")
    note = _convergence_note({"AE": probe(), "VAE, cyclical": probe([0, 100.0], [3, 100.0])})
    assert "VAE, cyclical at 1% (C = 100; 2 fit(s), 1 of them the C chosen on valid)" in note
    assert "AE at" not in note
    old = {"fractions": [{"fraction": 1.0}]}
    assert "not recorded" in _convergence_note({"AE": old})


def _probe(fractions: list[tuple[float, list[float]]]) -> dict:
    return {"regularisation": "C", "fractions": [
        {"fraction": f, "labels": int(f * 1000), "draws": len(acc), "accuracy": acc,
         "mean": float(np.mean(acc)), "sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0}
        for f, acc in fractions]}


def test_over_seeds_pools_draws_and_measures_the_seed_spread() -> None:
    from cyclevae.errors import UserError
    from cyclevae.experiments.yelp import over_seeds

    by_seed = {2: _probe([(0.1, [0.70, 0.74]), (1.0, [0.80])]),
               0: _probe([(0.1, [0.60, 0.62]), (1.0, [0.78])]),
               1: _probe([(0.1, [0.66, 0.66]), (1.0, [0.79])])}
    small, full = over_seeds(by_seed)["fractions"]
    assert small["seeds"] == 3 and small["seed_means"] == pytest.approx([0.61, 0.66, 0.72])
    assert small["mean"] == pytest.approx(np.mean([0.60, 0.62, 0.66, 0.66, 0.70, 0.74]))
    assert small["sd"] == pytest.approx(np.std([0.61, 0.66, 0.72], ddof=1))
    within = [np.var(d, ddof=1) for d in ([0.60, 0.62], [0.66, 0.66], [0.70, 0.74])]
    assert small["draw_sd"] == pytest.approx(np.sqrt(np.mean(within)))
    assert full["sd"] == pytest.approx(0.01) and full["draw_sd"] == 0.0
    one = over_seeds({0: by_seed[0]})["fractions"][0]  # one seed: the draws' sd, as probed
    assert one["seeds"] == 1 and one["sd"] == pytest.approx(np.std([0.60, 0.62], ddof=1))
    with pytest.raises(UserError, match="seed 1: probed at other fractions or draws"):
        over_seeds({0: by_seed[0], 1: _probe([(0.1, [0.6, 0.6])])})


def test_finding_is_judged_by_the_welch_interval_of_the_seed_means() -> None:
    from scipy import stats

    from cyclevae.experiments.yelp import finding_check, over_seeds

    def row(means_small, means_full):
        return over_seeds({s: _probe([(0.01, [a, a]), (1.0, [b])])
                           for s, (a, b) in enumerate(zip(means_small, means_full))})

    probes = {"ae": row([0.79, 0.80, 0.81], [0.70, 0.71, 0.72]),
              "vae-monotonic": row([0.50, 0.50, 0.51], [0.50, 0.50, 0.51]),
              "vae-cyclical": row([0.80, 0.81, 0.82], [0.75, 0.76, 0.77])}
    small, full = finding_check(probes)
    # equal sds (1 point) and 3 seeds each: Welch's dof is 4, the half-width t(0.975, 4) *
    # sqrt(1/3 + 1/3) points
    half = stats.t.ppf(0.975, 4) * np.sqrt(2 / 3)
    assert f"interval ± {half:.2f}, 4.0 dof, 3 vs 3 seeds" in small
    assert "finding holds (gap +1.00 points, within seed noise" in small  # 1.00 < 2.27
    assert "finding holds (gap +5.00 points, beyond seed noise" in full
    assert "next best AE" in small
    probes["ae"] = row([0.85], [0.70])  # the rival with one seed: the draw sd, said so
    small, _ = finding_check(probes)
    assert "does not hold (gap -4.00 points" in small and "one seed, no seed spread" in small


def test_the_ae_authors_row_is_the_ae_with_the_authors_four_settings_alone() -> None:
    from dataclasses import asdict

    from cyclevae.config import load_config
    from cyclevae.experiments.yelp import CONFIG_DIR
    from cyclevae.runs_table import _flatten as flat  # dotted keys, as `runs` shows them

    ae = flat(asdict(load_config(CONFIG_DIR / "ae.yaml", [])))
    theirs = flat(asdict(load_config(CONFIG_DIR / "ae-authors.yaml", [])))
    changed = {key: theirs[key] for key in ae if ae[key] != theirs[key]}
    assert changed == {"train.clip": 0.0, "lr_schedule.kind": "exponential",
                       "model.normalize_embeddings": True, "model.loss_pad_length": 24}
    assert theirs["lr_schedule.decay_rate"] == 0.99 and theirs["lr_schedule.decay_epochs"] == 2.0


def test_the_ae_authors_comparison_is_judged_only_when_that_row_is_probed() -> None:
    from cyclevae.experiments.yelp import _findings, over_seeds

    def row(small: float, full: float) -> dict:
        return over_seeds({0: _probe([(0.01, [small, small]), (1.0, [full])])})

    paper = {"ae": row(0.81, 0.85), "vae-monotonic": row(0.75, 0.79),
             "vae-cyclical": row(0.80, 0.82)}
    lines = "\n".join(_findings(paper))
    assert "**The paper's finding:**" in lines and "**Beyond the paper" not in lines
    lines = "\n".join(_findings({**paper, "ae-authors": row(0.78, 0.80)}))
    assert "**Beyond the paper:** with the AE pre-trained as the authors pre-trained it" in lines
    # judged among its own rows: the cyclical VAE beats the authors' AE, not ours
    beyond = lines.split("**Beyond the paper:**")[1]
    assert beyond.count("the finding holds") == 2 and "next best AE, the authors'" in beyond
    assert "finding does not hold" in lines.split("**Beyond the paper:**")[0]
