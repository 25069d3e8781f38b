"""The package as users get it: ``python -m build`` makes a wheel and an sdist that pass
``twine check``, and the wheel, installed non-editable into a fresh venv, runs the commands
(``reproduce synthetic``, ``train --config`` with a shipped config, ``data download``).

Slow (a venv, a torch install, a short synthetic run: about a minute on an idle 2-core
machine): ``pytest -m "not wheel"`` leaves it out; without ``build``/``twine`` it is skipped
locally and fails under CI.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import REPO

import cyclevae

pytestmark = [pytest.mark.wheel, pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

CONFIGS = sorted(p.relative_to(REPO / "src").as_posix()
                 for p in (REPO / "src" / "cyclevae" / "configs").glob("*/*.yaml"))


def _run(cmd: list[str], *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run outside the checkout (nothing of it importable), failing with its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} -> {out.returncode}\n" \
                                f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel of this checkout, built in isolation."""
    missing = [m for m in ("build", "twine") if importlib.util.find_spec(m) is None]
    if missing:
        message = (f"{' and '.join(missing)} not installed (pip install -e '.[test]'): "
                   "the wheel is not built")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out)
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with torch and the wheel (not editable); returns its bin folder."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(root / "env")], cwd=root)
    bin_dir = root / "env" / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "torch==2.13.0",
          str(_one(dist, "*.whl"))], cwd=root, timeout=900)
    return bin_dir


def _one(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


def test_sdist_and_wheel_pass_twine_and_carry_the_package_data(dist: Path) -> None:
    wheel, sdist = _one(dist, "*.whl"), _one(dist, "*.tar.gz")
    assert wheel.name == f"cyclevae-{cyclevae.__version__}-py3-none-any.whl"
    _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=dist)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"cyclevae-{cyclevae.__version__}.dist-info"
        metadata = zf.read(f"{info}/METADATA").decode()
    assert CONFIGS and set(CONFIGS) <= names
    assert "cyclevae/integrations/lightning.py" in names
    assert f"{info}/licenses/LICENSE" in names
    assert f"Version: {cyclevae.__version__}\n" in metadata
    assert "License-Expression: MIT\n" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11\n" in metadata
    assert "Provides-Extra: lightning\n" in metadata and "Provides-Extra: transformers\n" in metadata
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"LICENSE", "CHANGELOG.md", "pyproject.toml", "tests/conftest.py"} <= members
    assert {f"src/{c}" for c in CONFIGS} <= members


def test_installed_wheel_is_the_package_and_knows_its_version(venv: Path,
                                                              tmp_path: Path) -> None:
    out = _run([str(venv / "python"), "-c", "import cyclevae; print(cyclevae.__file__)"],
               cwd=tmp_path)
    assert Path(out.stdout.strip()).is_relative_to(venv.parent / "lib")
    out = _run([str(venv / "cyclevae"), "--version"], cwd=tmp_path)
    assert out.stdout.strip() == f"cyclevae {cyclevae.__version__}"


def test_installed_wheel_reproduces_synthetic(venv: Path, tmp_path: Path) -> None:
    _run([str(venv / "cyclevae"), "reproduce", "synthetic", "--steps", "500", "--out", "syn",
          "--no-progress"], cwd=tmp_path)
    metrics = json.loads((tmp_path / "syn" / "metrics.json").read_text())
    assert {"constant", "monotonic", "cyclical"} <= set(metrics)
    for name in ("report.md", "learning_curves.png", "latent_space.png"):
        assert (tmp_path / "syn" / name).stat().st_size > 0


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_installed_wheel_trains_a_shipped_config(venv: Path, tmp_path: Path) -> None:
    words = ["the", "market", "fell", "as", "prices", "rose", "and", "traders", "sold", "shares"]
    for split, n in (("train", 48), ("valid", 8), ("test", 8)):
        lines = [" ".join(words[(i + j) % len(words)] for j in range(4 + i % 5)) for i in range(n)]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    overrides = {"data.train": "train.txt", "data.valid": "valid.txt", "data.test": "test.txt",
                 "data.batch_size": 16, "model.emb_dim": 8, "model.enc_hidden": 8,
                 "model.dec_hidden": 8, "model.latent_dim": 2, "train.epochs": 1,
                 "train.iw_samples": 0}
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    _run([str(venv / "cyclevae"), "train", "--config", "ptb/vae-cyclical", *sets, "--out", "run",
          "--no-progress"], cwd=tmp_path)
    assert "test" in json.loads((tmp_path / "run" / "metrics.json").read_text())
    shipped = _leaves(yaml.safe_load(
        (REPO / "src" / "cyclevae" / "configs" / "ptb" / "vae-cyclical.yaml").read_text()))
    saved = _leaves(yaml.safe_load((tmp_path / "run" / "config.yaml").read_text()))
    assert {k: saved[k] for k in shipped if k not in overrides} == \
        {k: v for k, v in shipped.items() if k not in overrides}
    assert saved["schedule.start"] == 0.1  # the shipped config's, not the default


def test_installed_wheel_downloads_ptb_from_a_local_archive(venv: Path, tmp_path: Path,
                                                            shared_data: Path) -> None:
    """``cyclevae data download ptb`` from a ``file://`` copy of Mikolov's archive, checked
    against the published checksums (the real download needs the internet: not tested)."""
    _run([str(venv / "cyclevae"), "data", "download", "--help"], cwd=tmp_path)
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for split in ("train", "valid", "test"):
            data = (shared_data / "ptb" / f"{split}.txt").read_bytes()
            info = tarfile.TarInfo(f"./simple-examples/data/ptb.{split}.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = _run([str(venv / "cyclevae"), "data", "download", "ptb", "--data-dir", "data",
                "--url", archive.as_uri()], cwd=tmp_path)
    got = [Path(line) for line in out.stdout.split()]
    assert sorted(p.name for p in got) == ["test.txt", "train.txt", "valid.txt"]
    for split in ("train", "valid", "test"):
        assert (tmp_path / "data" / "ptb" / f"{split}.txt").read_bytes() == \
            (shared_data / "ptb" / f"{split}.txt").read_bytes()
