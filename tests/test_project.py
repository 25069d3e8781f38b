"""The project's promises about itself: README commands, CI, CLI help and version."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from conftest import REPO
from cyclevae import __version__
from cyclevae.cli import build_parser, main
from cyclevae.config import RESUME_SETTABLE


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text().splitlines()
    commands = [line.strip() for line in readme[:12] if line.startswith("    ")]
    assert len(commands) >= 2, "README must open with the two commands"
    assert "cyclevae reproduce synthetic" in commands[0]
    assert "torch==2.13.0" in commands[0] and "torch==2.13.0" in commands[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_version_and_every_subcommand_is_documented(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cyclevae {__version__}"
    readme = (REPO / "README.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    listed = {action.dest: action.help for action in sub._choices_actions}
    for name in sub.choices:
        assert listed.get(name), f"{name}: no one-line help in `cyclevae --help`"
        assert f"`cyclevae {name}" in readme, f"{name}: not in README's commands"


def test_resume_help_names_every_resume_settable_key():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_help = " ".join(sub.choices["train"].format_help().split())
    for key in RESUME_SETTABLE:
        assert key in train_help


@pytest.mark.parametrize("experiment", ["ptb", "yelp", "dialog"])
def test_reproduce_experiments_share_their_options(experiment):
    parser = build_parser()
    args = parser.parse_args(["reproduce", experiment, "--jobs", "3", "--set", "train.seed=1",
                              "--report-only", "--no-progress"])
    assert (args.jobs, args.overrides, args.report_only, args.no_progress) == (
        3, ["train.seed=1"], True, True)
    assert str(args.out) == f"runs/{experiment}"
    with pytest.raises(SystemExit):  # an integer option refuses a non-integer at parse time
        parser.parse_args(["reproduce", experiment, "--jobs", "two"])


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "cyclevae", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "reproduce" in out.stdout
