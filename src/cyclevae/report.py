"""Generic reporting helpers: Markdown tables and matplotlib figures.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so importing or
using this module never changes matplotlib's global backend; matplotlib itself is imported
only when a figure is made. Files are written through :mod:`cyclevae.atomic` (the names are
re-exported here for convenience).

Example::

    from cyclevae.report import markdown_table, plot_curves, save_figure_atomic
    fig = plot_curves({"cyclical": curve_c, "monotonic": curve_m}, ["elbo", "rec", "kl"])
    save_figure_atomic(fig, out / "learning_curves.png")
    print(markdown_table(["schedule", "Rec"], [["cyclical", 0.12], ["monotonic", 0.98]]))
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_open, write_json_atomic, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "atomic_open",
    "format_number",
    "markdown_table",
    "new_figure",
    "plot_curves",
    "save_figure_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def new_figure(nrows: int = 1, ncols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A figure and its ``[nrows, ncols]`` array of axes (``Figure.subplots`` with
    ``squeeze=False``), made without pyplot (no global backend or figure registry)."""
    from matplotlib.figure import Figure

    figsize = subplots.pop("figsize", None)
    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots)
    return fig, axes


def save_figure_atomic(
    fig: Figure, path: str | os.PathLike[str], *, close: bool = True, **savefig_kwargs: Any
) -> None:
    """Save a matplotlib figure to ``path`` atomically; the format comes from the suffix.

    Args:
        fig: the figure. close: clear it afterwards (frees its memory).
        savefig_kwargs: passed to ``Figure.savefig`` (default ``dpi=120``, ``bbox_inches="tight"``).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    savefig_kwargs.setdefault("dpi", 120)
    savefig_kwargs.setdefault("bbox_inches", "tight")
    try:
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format=fmt, **savefig_kwargs)
    finally:
        if close:
            fig.clear()


def format_number(value: Any, digits: int = 4) -> str:
    """A table cell: floats with ``digits`` significant digits, ``nan``/``inf`` spelt out,
    ``None`` (not reported) as an empty cell, anything else through ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.{digits}g}"


def markdown_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    align: Sequence[str] | None = None,
    fmt: Callable[[Any], str] = format_number,
) -> str:
    """A GitHub-flavoured Markdown table (ends with a newline).

    Args:
        headers: column names.
        rows: one sequence of cells per row, each as long as ``headers``.
        align: per column ``"l"``, ``"r"`` or ``"c"``; default: left for the first column,
            right for the others.
        fmt: turns a cell into text (default :func:`format_number`).
    """
    ncol = len(headers)
    if align is None:
        align = ["l"] + ["r"] * (ncol - 1)
    if len(align) != ncol:
        raise ValueError(f"align has {len(align)} entries for {ncol} columns")
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(str(h) for h in headers) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    for i, row in enumerate(rows):
        if len(row) != ncol:
            raise ValueError(f"row {i} has {len(row)} cells for {ncol} columns")
        cells = [fmt(cell).replace("|", "\\|") for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(
    curves: Mapping[str, Sequence[Mapping[str, float]]],
    keys: Sequence[str],
    *,
    x: str = "step",
    titles: Sequence[str] | None = None,
    xlabel: str = "iteration",
    ncols: int | None = None,
    panel_size: tuple[float, float] = (4.2, 3.2),
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    suptitle: str | None = None,
    ylabels: Sequence[str] | None = None,
    legend: str = "first",
) -> Figure:
    """One panel per metric, one line per run.

    Args:
        curves: run name -> list of records (dicts) holding ``x`` and some of ``keys`` (e.g.
            the ``curve`` lists of a metrics.json); each panel plots the records that hold
            its key.
        keys: the metrics to plot, one panel each.
        x: record field on the horizontal axis.
        titles: panel titles (default: the keys).
        ncols: panels per row (default: all in one row).
        styles: per-run keyword arguments for ``Axes.plot`` (colour, line style, ...).
        ylabels: the vertical axis label of each panel, with its unit (default: none).
        legend: ``"first"`` (inside the first panel) or ``"below"`` (one legend under the
            panels, in columns: for many runs, where an inside legend would hide curves).
    Returns:
        The figure (save it with :func:`save_figure_atomic`).
    """
    titles = list(titles) if titles is not None else list(keys)
    if legend not in ("first", "below"):
        raise ValueError(f"legend must be 'first' or 'below', got {legend!r}")
    if len(titles) != len(keys):
        raise ValueError(f"{len(titles)} titles for {len(keys)} keys")
    if ylabels is not None and len(ylabels) != len(keys):
        raise ValueError(f"{len(ylabels)} ylabels for {len(keys)} keys")
    ncols = ncols or len(keys)
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = new_figure(nrows, ncols,
                           figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    flat = axes.ravel()
    for i, (ax, key, title) in enumerate(zip(flat, keys, titles)):
        if ylabels is not None:
            ax.set_ylabel(ylabels[i])
        for name, records in curves.items():
            pairs = [(r[x], r[key]) for r in records if r.get(key) is not None]
            style = {"marker": "o"} if len(pairs) == 1 else {}  # a lone point shows no line
            style.update((styles or {}).get(name, {}))
            ax.plot([p[0] for p in pairs], [p[1] for p in pairs], label=name, linewidth=1.2,
                    **style)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    for ax in flat[len(keys):]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    if legend == "first":
        flat[0].legend()
        fig.tight_layout()
    else:
        fig.tight_layout()
        handles, labels = flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncols=min(len(labels), ncols), frameon=False)
    return fig


def plot_beta_schedules(
    schedules: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    xlabel: str = "iteration",
    title: str = "beta schedules",
    stride: int = 1,
) -> None:
    """Plot beta schedules one above the other (the paper's Figure 2) and save the figure.

    Args:
        schedules: label -> beta per step (a ``[T]`` sequence, e.g. from
            :func:`cyclevae.schedules.beta_schedule`); one panel each, sharing the step axis.
        path: output file; the format comes from the suffix (``.png``, ``.pdf``, ``.svg``).
        stride: the values are those of every ``stride``-th step.
    """
    if not schedules:
        raise ValueError("no schedule to plot")
    fig, axes = new_figure(len(schedules), 1, figsize=(6.4, 1.9 * len(schedules)),
                           sharex=True)
    for ax, (label, values) in zip(axes[:, 0], schedules.items()):
        ax.plot(range(0, len(values) * stride, stride), list(values), linewidth=1.4)
        ax.set_ylabel("beta")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure_atomic(fig, path)
