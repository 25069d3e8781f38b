"""The project's promises about itself: README commands, CI, CLI help and version."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO
from cyclevae.cli import build_parser, main


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text().splitlines()
    commands = [line.strip() for line in readme[:12] if line.startswith("    ")]
    assert len(commands) >= 2, "README must open with the two commands"
    assert "cyclevae reproduce synthetic" in commands[0]
    assert "torch==2.13.0" in commands[0] and "torch==2.13.0" in commands[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_version_and_every_subcommand_has_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "cyclevae" in capsys.readouterr().out
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, subparser in sub.choices.items():
        assert subparser.format_help().strip(), name


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "cyclevae", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "reproduce" in out.stdout
