"""Config loading: YAML, --set overrides, unknown keys, types, ranges, contradictions."""

from __future__ import annotations

import pytest

from conftest import REPO
from cyclevae.config import config_from_dict, load_config, save_config
from cyclevae.errors import UserError
from cyclevae.families import family_of


def test_defaults_and_overrides_parse_yaml_scalars():
    c = load_config(None, ["data.train=corpus.txt", "train.epochs=4", "schedule.ratio=0.25",
                           "data.max_length=null", "schedule.interpolate=false"])
    assert c.data.train == "corpus.txt" and c.train.epochs == 4
    assert c.schedule.ratio == 0.25 and c.schedule.interpolate is False
    assert c.data.max_length is None
    assert isinstance(load_config(None, ["train.lr=1"]).train.lr, float)


SHIPPED = sorted((REPO / "src" / "cyclevae" / "configs").glob("*/*.yaml"))
TRAIN_SET = {"ptb": "ptb:train", "yelp": "yelp:train", "dialog": "swda:train"}


def test_every_experiment_ships_configs():
    assert {p.parent.name for p in SHIPPED} == set(TRAIN_SET)
    assert len(SHIPPED) >= 17


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_configs_load_validate_and_round_trip(path, tmp_path):
    c = load_config(path)
    family_of(c)  # a known kind, its family's own checks passed
    assert c.data.train == TRAIN_SET[path.parent.name]
    assert config_from_dict(c.to_dict()) == c
    save_config(c, tmp_path / "config.yaml")  # as a run writes it beside its outputs
    assert load_config(tmp_path / "config.yaml") == c


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("training.epochs=3", "unknown config key 'training.epochs'"),
        ("epochs=3", "unknown config key 'epochs'"),
        ("train.epochs=three", "train.epochs must be int"),
        ("train.epochs=2.5", "train.epochs must be int"),
        ("schedule.interpolate=3", "schedule.interpolate must be bool"),
        ("schedule.ratio=1.5", "ratio must be in [0, 1]"),
        ("schedule.shape=square", "shape must be one of"),
        ("schedule.n_cycles=0", "schedule.n_cycles must be in [1, "),
        ("schedule.start=2", "start must be <= stop"),
        ("train.precision=fp8", "train.precision"),
        ("model.dropout=1.0", "model.dropout"),
        ("data.batch_size=0", "data.batch_size"),
        ("train.epochs", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_field(override, fragment):
    with pytest.raises(UserError) as exc:
        load_config(None, [override])
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_bad_yaml_files(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match="nope.yaml: config file not found"):
        load_config(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epochs: 2\n  colour: red\n")
    with pytest.raises(UserError, match="unknown.yaml: unknown config key 'train.colour'"):
        load_config(unknown)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("train: 3\n")
    with pytest.raises(UserError, match="section 'train' must be a mapping"):
        load_config(scalar)


def test_cvae_glove_is_now_glove_init_and_old_configs_migrate():
    with pytest.raises(UserError, match="renamed: use 'model.cvae.glove_init'"):
        load_config(None, ["model.cvae.glove=vectors.txt"])
    raw = load_config(None, ["model.kind=cvae"]).to_dict()
    raw["model"]["cvae"].pop("glove_init")
    raw["model"]["cvae"]["glove"] = "vectors.txt"  # a checkpoint written before the rename
    assert config_from_dict(raw).model.cvae.glove_init == "vectors.txt"


def test_committed_dialog_configs_still_load():
    """The rows in results/dialog/ written before glove_init and train.early_stopping: the
    rename migrates and the rule is off, so they keep meaning what they ran."""
    import yaml

    paths = sorted((REPO / "results" / "dialog").rglob("config.yaml"))
    assert paths
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        config = config_from_dict(raw)
        if "glove" in raw["model"]["cvae"]:
            assert config.model.cvae.glove_init == raw["model"]["cvae"]["glove"]
        if "early_stopping" not in raw["train"]:
            assert not config.train.early_stopping.enabled
