"""The paper's experiments, one module each; their row configs ship as package data in
``cyclevae/configs/`` (also reachable as ``configs/`` in a checkout)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["CONFIGS", "shipped_config"]

#: the shipped configs: ``CONFIGS / "ptb" / "vae-cyclical.yaml"``
CONFIGS = Path(str(files("cyclevae") / "configs"))


def shipped_config(name: str) -> Path | None:
    """The shipped config called ``name`` (``ptb/vae-cyclical``, with or without ``.yaml``),
    or None if there is none."""
    path = CONFIGS / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return path if path.is_file() else None
