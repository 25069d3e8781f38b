"""The one model interface and the one evaluation path, seen from the command line: evaluate
repeats a run's metrics, generate does what it promises, and the defects of issue 13 stay
fixed (sub-epoch cycles, bf16 without hardware support, --resume with the same --set values,
resume overrides written back)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import small_overrides
from cyclevae import runtime
from cyclevae.cli import main
from cyclevae.config import config_from_dict, load_config
from cyclevae.inference import _posterior_means, load_model
from cyclevae.training import Trainer

KINDS = {"vae": [], "savae": ["model.kind=savae", "model.svi.steps=2"],
         "svi": ["model.kind=svi", "model.svi.steps=2"]}


def _set(items: list[str]) -> list[str]:
    return [x for item in items for x in ("--set", item)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(ptb_slice, tmp_path_factory) -> dict[str, Path]:
    """One finished 1-epoch run of each model kind."""
    root = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind, extra in KINDS.items():
        config = load_config(None, small_overrides(ptb_slice, **{"train.epochs": 1,
                                                                 "schedule.n_cycles": 1})
                             + extra)
        Trainer(config, root / kind, progress=False).fit()
        out[kind] = root / kind
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_evaluate_repeats_the_runs_test_block(kind, runs, capsys):
    """`cyclevae evaluate` on the last checkpoint and the run's test split gives the
    metrics.json test block (same IW K), and for SA-VAE the amortized block too."""
    run = runs[kind]
    saved = json.loads((run / "metrics.json").read_text())
    k = saved["config"]["train"]["iw_samples"]
    assert main(["evaluate", str(run / "checkpoint_last.pt"), "--iw-samples", str(k)]) == 0
    printed = json.loads(capsys.readouterr().out)
    blocks = ["test"] + (["test_amortized"] if kind == "savae" else [])
    assert set(saved) & {"test", "test_amortized"} == set(blocks)
    for block in blocks:
        assert printed[block].keys() == saved[block].keys()
        for key, value in saved[block].items():
            assert printed[block][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (block, key)
    expected = {"vae": "amortized", "savae": "refined", "svi": "refined"}[kind]
    assert printed["posteriors"]["test"] == saved["posteriors"]["test"] == expected


def test_generation_encodes_with_the_reported_posterior(runs):
    """SVI has no encoder: reconstruct/interpolate use its refined q (not the prior's 0)."""
    model, vocab, config, _ = load_model(runs["svi"] / "checkpoint_last.pt")
    means = _posterior_means(model, vocab, [["the", "market"], ["prices", "rose", "sharply"]],
                             seed=0)
    assert means.abs().sum() > 0 and not torch.equal(means[0], means[1])


def test_generate_prior_lengths_and_seeded_determinism(runs, capsys):
    ckpt = str(runs["vae"] / "checkpoint_last.pt")

    def lines(*extra: str) -> list[str]:
        assert main(["generate", ckpt, "--prior", "6", "--sample", "--max-length", "7",
                     *extra]) == 0
        return capsys.readouterr().out.splitlines()

    first, again, other = lines("--seed", "1"), lines("--seed", "1"), lines("--seed", "2")
    assert len(first) == 6 and first == again and first != other
    assert all(len(line.split()) <= 7 for line in first)
    assert main(["generate", ckpt, "--interpolate", "the market", "prices rose",
                 "--steps", "4"]) == 0
    points = capsys.readouterr().out.splitlines()
    assert [p.split("\t")[0] for p in points] == ["0.00", "0.33", "0.67", "1.00"]


def test_greedy_reconstruction_of_memorised_sentences(tmp_path, capsys):
    """A model trained (beta 0, no dropout) on five sentences returns them, greedily from mu."""
    sentences = ["the cat sat on the mat", "a dog ran in the park", "prices rose again today",
                 "we went home very late", "she reads a long book"]
    corpus = tmp_path / "five.txt"
    corpus.write_text("\n".join(sentences) + "\n")
    items = [f"data.train={corpus}", "data.batch_size=8", "model.emb_dim=32",
             "model.enc_hidden=64", "model.dec_hidden=64", "model.latent_dim=8",
             "model.dropout=0", "schedule.start=0", "schedule.stop=0", "schedule.n_cycles=1",
             "train.epochs=300", "train.lr=0.01", "train.iw_samples=0", "train.num_threads=1"]
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *_set(items)]) == 0
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "run" / "checkpoint_last.pt"),
                 "--reconstruct", str(corpus)]) == 0
    pairs = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert pairs == [[s, s] for s in sentences]


def test_cycles_shorter_than_an_epoch_train_with_epoch_units(ptb_slice, tmp_path, capsys):
    """Defect a: the default 4 cycles in a 1-epoch run (schedule.unit epoch) train; the log
    states each cycle's length in optimizer steps, and beta restarts 3 times."""
    items = small_overrides(ptb_slice, **{"train.epochs": 1, "schedule.n_cycles": 4,
                                          "train.log_every": 1, "train.iw_samples": 0})
    assert main(["train", "--out", str(tmp_path / "run"), "--no-progress", *_set(items)]) == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    schedule = records[0]
    assert schedule["kind"] == "schedule"
    assert schedule["beta_cycle_steps"] == pytest.approx(schedule["total_steps"] / 4)
    betas = [r["beta"] for r in records if r["kind"] == "train"]
    assert sum(b < a for a, b in zip(betas, betas[1:])) == 3


def test_bf16_without_native_support_is_a_one_line_error(ptb_slice, tmp_path, capsys,
                                                         monkeypatch):
    """Defect b: no oneDNN traceback on a CPU without bf16; exit 2, capability named."""
    monkeypatch.setattr(runtime, "native_bf16", lambda device: (False, "avx512_bf16 flag"))
    items = small_overrides(ptb_slice, **{"train.precision": "bf16"})
    code = main(["train", "--out", str(tmp_path / "run"), "--no-progress", *_set(items)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "train.precision=bf16 needs native bf16 matrix support (avx512_bf16 flag)" in err
    assert "use train.precision=fp32" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("fields,expected", [
    ({"model name": "AMD EPYC", "cpu family": "26", "model": "2"},
     "AMD EPYC (family 26 model 2)"),
    ({"model name": "Intel(R) Xeon(R) Platinum 8488C"}, "Intel(R) Xeon(R) Platinum 8488C"),
])
def test_cpu_name_tells_cpu_generations_apart(monkeypatch, fields, expected):
    """A VM's model name is often just "AMD EPYC" for Zen 3, 4 and 5 alike: the family and
    model numbers go with it where /proc/cpuinfo has them (provenance and benchmarks)."""
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: fields)
    assert runtime.cpu_name() == expected


def _interrupted_run(ptb_slice, out: Path, items: list[str]) -> None:
    config = load_config(None, items)
    trainer = Trainer(config, out, progress=False)
    trainer._finish = lambda: (_ for _ in ()).throw(KeyboardInterrupt)  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


def test_resume_accepts_the_same_set_values_and_names_a_real_change(ptb_slice, tmp_path, capsys):
    """Defects c and d: the starting command re-run with --resume is accepted; a changed value
    is refused with key, saved and new value; a changed evaluation setting is written back."""
    out = tmp_path / "run"
    items = small_overrides(ptb_slice, **{"train.epochs": 1, "schedule.n_cycles": 1})
    _interrupted_run(ptb_slice, out, items)
    code = main(["train", "--resume", "--out", str(out), "--no-progress",
                 *_set(items[:-1] + ["train.lr=0.5"])])
    err = capsys.readouterr().err
    assert code == 2 and "train.lr=0.001, not 0.5" in err
    code = main(["train", "--resume", "--out", str(out), "--no-progress",
                 *_set(items + ["train.iw_samples=3"])])
    assert code == 0, capsys.readouterr().err
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["train"]["iw_samples"] == 3
    assert json.loads((out / "metrics.json").read_text())["config"]["train"]["iw_samples"] == 3


def test_checkpoint_config_of_an_earlier_version_migrates():
    raw = load_config(None, ["model.kind=savae"]).to_dict()
    raw["model"].pop("svi")
    raw["model"].update(vocab_size=10002, unk_index=3, svi_steps=7, svi_lr=0.5, svi_grad="fd")
    config = config_from_dict(raw)
    assert config.model.svi.steps == 7 and config.model.svi.lr == 0.5


def test_importing_changes_no_global_state():
    """No matplotlib backend switch, no thread or allocator change at import."""
    code = ("import sys, torch; n = torch.get_num_threads(); "
            "import cyclevae.cli, cyclevae.training, cyclevae.report, cyclevae.inference, "
            "cyclevae.experiments.ptb, cyclevae.experiments.synthetic; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; "
            "assert torch.get_num_threads() == n; "
            "import cyclevae.runtime as r; assert not r._configured")
    subprocess.run([sys.executable, "-c", code], check=True)
