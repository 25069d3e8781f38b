"""``cyclevae config``: every key with its meaning, read from the config dataclasses' source."""

from __future__ import annotations

import dataclasses

import yaml

from cyclevae.cli import main
from cyclevae.config import Config, load_config
from cyclevae.config_docs import commented_yaml, field_docs


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", field_docs(type(obj))[f.name]


def test_every_key_has_a_meaning_from_the_source():
    """A field added without a ``#:`` comment (or a docstring sentence naming it) fails."""
    undocumented = [key for key, meaning in _leaves(Config()) if not meaning.strip()]
    assert undocumented == []
    docs = dict(_leaves(Config()))
    assert docs["train.iw_samples"].startswith("importance samples for the final test IW-NLL")
    assert docs["model.encoder"].startswith("`lstm` (the PTB encoder)")  # inherited field
    assert docs["model.cnn.long_inputs"].startswith("`long_inputs`: what happens")  # docstring


def test_config_command_prints_the_defaults_with_meanings_as_loadable_yaml(capsys):
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert yaml.safe_load(text) == Config().to_dict()  # the output is a config file
    lines = text.splitlines()
    for i, line in enumerate(lines):  # every value line follows its meaning
        if ": " in line and not line.lstrip().startswith("#"):
            assert lines[i - 1].lstrip().startswith("#"), line
    assert "  # importance samples for the final test IW-NLL; 0 disables\n  iw_samples: 500" \
        in text


def test_config_command_prints_a_runs_or_a_files_config(tmp_path, capsys):
    config = load_config(None, ["model.latent_dim=7", "train.lr=1e-4"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    assert main(["config", str(run)]) == 0
    text = capsys.readouterr().out
    assert "the config of" in text and f"{run}," in text
    assert yaml.safe_load(text) == config.to_dict()
    assert main(["config", "ptb/vae-cyclical", "--set", "train.epochs=3"]) == 0
    loaded = yaml.safe_load(capsys.readouterr().out)
    assert loaded["train"]["epochs"] == 3 and loaded["schedule"]["n_cycles"] == 4
    assert main(["config", str(tmp_path)]) == 2
    assert "not a run directory (no config.yaml)" in capsys.readouterr().err
    assert commented_yaml(config).startswith("# ")
