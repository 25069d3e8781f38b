"""Unsupervised pre-training on Yelp (paper section 6.3, Figure 6; t-SNE in Figure 9 of the
supplement).

Each row (``configs/yelp/``: ``ae``, ``vae-monotonic``, ``vae-cyclical``) pre-trains through the
ordinary Trainer into ``OUT/<row>/`` (resumable; a finished row is reused); its best-on-valid
checkpoint is then frozen and probed (:mod:`cyclevae.probe`) at labelled fractions of
``yelp:train``, the regularisation chosen on ``yelp:valid``, accuracy on ``yelp:test``, by our
classifier (``probe.json``) or the authors' (``classifier="authors"``: ``probe-authors.json``).
The report puts an accuracy table per classifier probed beside the paper's finding, draws
accuracy against the labelled fraction and a t-SNE of the codes of test sentences, and lists
each model's test metrics.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_json_atomic, write_text_atomic
from ..config import load_config
from ..errors import UserError
from ..report import format_number, markdown_table, new_figure, save_figure_atomic
from ..rundir import BEST, LAST
from . import CONFIGS
from .runner import train_runs

CONFIG_DIR = CONFIGS / "yelp"
ROWS = ("ae", "vae-monotonic", "vae-cyclical")
#: neighbours counted by the report's label-separation numbers under the t-SNE picture
SEPARATION_K = 10
LABELS = {"ae": "AE", "vae-monotonic": "VAE, monotonic", "vae-cyclical": "VAE, cyclical"}
DEFAULT_FRACTIONS = (0.001, 0.01, 0.1, 1.0)
PAPER_EPOCHS = 100
PAPER_FINDING = ("the cyclical schedule is the most accurate at every labelled proportion, and "
                 "its t-SNE clusters are the clearest (Figure 6; Figure 9 of the supplement)")
TEST_METRICS = ("rec", "kl", "mi", "active_units", "ppl", "rec_ppl")
#: each classifier's probe results in a row's directory (cyclevae.probe.CLASSIFIERS)
PROBE_FILES = {"ours": "probe.json", "authors": "probe-authors.json"}


def _probe_settings(fractions: list[float], draws: int, seed: int) -> dict[str, Any]:
    return {"fractions": fractions, "draws": draws, "seed": seed, "train": "yelp:train",
            "valid": "yelp:valid", "test": "yelp:test"}


def run_yelp(*, rows: list[str], out: Path, epochs: int | None = None,
             overrides: list[str] | None = None, fractions: list[float] | None = None,
             draws: int = 5, seed: int = 0, tsne_points: int = 5000,
             config_dir: Path = CONFIG_DIR, progress: bool | None = None,
             data: dict[str, str] | None = None, jobs: int = 1, classifier: str = "ours",
             classifier_epochs: int | None = None) -> dict[str, Any]:
    """Pre-train every row not finished in ``out``, probe each (reused when its ``probe.json``
    has the same settings), then write ``OUT/report.md`` and its figures.

    Args:
        rows: row names (config stems in ``config_dir``).
        epochs: shortens every row (cycles kept, fewer epochs per cycle).
        overrides: ``key=value`` strings applied to every row.
        fractions, draws, seed: the probe's (:func:`cyclevae.probe.probe_fractions`).
        tsne_points: test sentences in the t-SNE picture (a seeded sample; 0 skips it).
        data: ``{"train", "valid", "test"}`` labelled files instead of ``yelp:SPLIT`` for the
            probe and the picture (a run's own data is set through ``overrides``).
        jobs: train up to that many rows at once, each in its own process, the cores split
            between them (:func:`cyclevae.experiments.runner.train_runs`).
        classifier, classifier_epochs: the probe's classifier, ``"ours"`` or ``"authors"``
            (:func:`cyclevae.probe.probe_checkpoint`), kept in ``PROBE_FILES[classifier]``;
            the report shows every classifier probed in ``out``.
    """
    from ..probe import probe_checkpoint

    fractions = list(fractions or DEFAULT_FRACTIONS)
    if classifier not in PROBE_FILES:
        raise UserError(f"--classifier: expected one of {', '.join(PROBE_FILES)}, got "
                        f"{classifier!r}")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    files = {"train": "yelp:train", "valid": "yelp:valid", "test": "yelp:test", **(data or {})}
    todo = []
    for row in rows:
        path = config_dir / f"{row}.yaml"
        if not path.is_file():
            raise UserError(f"{path}: config of row {row!r} not found (pass --configs DIR)")
        extra = list(overrides or []) + ([f"train.epochs={epochs}"] if epochs else [])
        config = load_config(path, extra)
        if epochs is not None and config.schedule.n_cycles > epochs:
            raise UserError(f"--epochs {epochs}: row {row!r} has {config.schedule.n_cycles} "
                            "cycles; shortening keeps them, so give at least that many epochs")
        todo.append((row, config, out / row))
    train_runs([(config, run) for _, config, run in todo
                if not (run / "metrics.json").is_file()], jobs=jobs, progress=progress)
    settings = {**_probe_settings(fractions, draws, seed), **files}
    if classifier != "ours":
        settings.update({"classifier": classifier, "classifier_epochs": classifier_epochs})
    for row, _, run in todo:
        cached = run / PROBE_FILES[classifier]
        if cached.is_file() and json.loads(cached.read_text()).get("settings") == settings:
            continue
        result = probe_checkpoint(_checkpoint(run), files["train"], files["test"],
                                  valid=files["valid"], fractions=fractions, draws=draws,
                                  seed=seed, classifier=classifier,
                                  authors_epochs=classifier_epochs)
        write_json_atomic(cached, {"settings": settings, **result})
    return write_yelp_report(out, rows=rows, tsne_points=tsne_points, seed=seed,
                             test_file=files["test"])


def _checkpoint(run: Path) -> Path:
    """The best-on-valid checkpoint of a run (the last one if the run kept no best)."""
    return run / BEST if (run / BEST).is_file() else run / LAST


def _accuracy_figure(by_classifier: dict[str, dict[str, dict[str, Any]]]) -> Any:
    """Accuracy against the labelled fraction, a line per row and classifier (ours solid,
    the authors' dashed, a row's colour shared)."""
    fig, axes = new_figure(1, 1, figsize=(5.5, 4.0))
    ax = axes[0, 0]
    colours: dict[str, Any] = {}
    several = len(by_classifier) > 1
    for classifier, probes in by_classifier.items():
        for row, probe in probes.items():
            xs = [r["fraction"] * 100 for r in probe["fractions"]]
            label = LABELS.get(row, row) + (f" ({classifier})" if several else "")
            line = ax.errorbar(xs, [r["mean"] * 100 for r in probe["fractions"]],
                               yerr=[r["sd"] * 100 for r in probe["fractions"]], marker="o",
                               capsize=3, label=label, color=colours.get(row),
                               linestyle="--" if classifier == "authors" else "-")
            colours.setdefault(row, line.lines[0].get_color())
    ax.set_xscale("log")
    ticks = sorted({r["fraction"] * 100 for probes in by_classifier.values()
                    for p in probes.values() for r in p["fractions"]})
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training data (share of the training set, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Linear probe on the frozen codes (mean ± sd over draws)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _tsne_figure(out: Path, rows: list[str], test_file: str, n_points: int, seed: int
                 ) -> tuple[Any, dict[str, dict[str, dict[str, float]]]]:
    """The t-SNE panels and, per row, :func:`cyclevae.probe.label_separation` of the sampled
    sentences in the 2-D map (``"map"``) and in the codes themselves (``"codes"``)."""
    from sklearn.manifold import TSNE

    from ..embedding import embed_file
    from ..probe import label_separation

    fig, axes = new_figure(1, len(rows), figsize=(4.2 * len(rows), 4.2))
    separation: dict[str, dict[str, dict[str, float]]] = {}
    for ax, row in zip(axes[0], rows):
        codes = embed_file(_checkpoint(out / row), test_file)
        labels = np.asarray(codes.labels if codes.labels is not None else ["?"] * len(codes.mu))
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(codes.mu), size=min(n_points, len(codes.mu)),
                                  replace=False))
        x, y = codes.mu[pick].astype(np.float64), labels[pick]
        classes = sorted(set(y.tolist()))
        perplexity = min(30.0, (len(pick) - 1) / 3)  # the usual 30, less for tiny samples
        points = TSNE(n_components=2, init="pca", random_state=seed,
                      perplexity=perplexity).fit_transform(x)
        if len(classes) > 1 and len(pick) > SEPARATION_K:
            separation[row] = {"map": label_separation(points, y, k=SEPARATION_K),
                               "codes": label_separation(x, y, k=SEPARATION_K)}
        for label in classes:
            mask = y == label
            ax.scatter(points[mask, 0], points[mask, 1], s=2, alpha=0.5, label=f"label {label}")
        ax.set_title(f"{LABELS.get(row, row)} ({len(pick)} test sentences)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=4, loc="upper right", fontsize=8)
    return fig, separation


def _separation_table(separation: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown lines: how well each row's sampled test codes group by label."""
    if not separation:
        return []
    rows = [[LABELS.get(row, row), f"{s['map']['silhouette']:.3f}",
             f"{s['map']['knn_agreement'] * 100:.1f}", f"{s['codes']['knn_agreement'] * 100:.1f}",
             f"{s['codes']['silhouette']:.3f}", f"{s['map']['chance'] * 100:.1f}"]
            for row, s in separation.items()]
    return [f"How clearly the labels cluster, in numbers rather than by eye (the same sentences; "
            f"{SEPARATION_K}-NN agreement: the share of each sentence's {SEPARATION_K} nearest "
            "neighbours with its label; silhouette by label, -1..1):", "",
            markdown_table(["model", "silhouette (t-SNE map)", f"{SEPARATION_K}-NN agreement, "
                            "map (%)", f"{SEPARATION_K}-NN agreement, codes (%)",
                            "silhouette (codes)", "agreement by chance (%)"], rows), ""]


def finding_check(probes: dict[str, dict[str, Any]], best_row: str = "vae-cyclical"
                  ) -> list[str]:
    """One sentence per fraction: whether ``best_row`` has the highest mean accuracy there,
    by how much, and whether the gap exceeds the larger of the two rows' draw sd."""
    if best_row not in probes or len(probes) < 2:
        return []
    lines = []
    for i, row in enumerate(probes[best_row]["fractions"]):
        ours = row["mean"]
        others = {name: p["fractions"][i] for name, p in probes.items() if name != best_row}
        rival_name, rival = max(others.items(), key=lambda kv: kv[1]["mean"])
        gap = (ours - rival["mean"]) * 100
        spread = max(row["sd"], rival["sd"]) * 100
        verdict = "holds" if gap > 0 else "does not hold"
        size = "beyond" if abs(gap) > spread else "within"
        lines.append(f"- {row['fraction'] * 100:g}% labels ({row['labels']}): "
                     f"{LABELS[best_row]} {ours * 100:.2f}% vs next best "
                     f"{LABELS.get(rival_name, rival_name)} {rival['mean'] * 100:.2f}%: the "
                     f"finding {verdict} (gap {gap:+.2f} points, {size} the larger draw sd "
                     f"{spread:.2f})")
    return lines


def _convergence_note(probes: dict[str, dict[str, Any]]) -> str:
    """One sentence on the probe fits whose solver stopped at its iteration limit."""
    from ..probe import MAX_ITER

    if any("not_converged" not in r for p in probes.values() for r in p["fractions"]):
        return "Solver convergence was not recorded for these probes (probed before it was)."
    stopped = []
    for row, p in probes.items():
        for r in p["fractions"]:
            if r["not_converged"]:
                chosen = sum(r["C"][int(d)] == c for d, c in r["not_converged"])
                stopped.append(
                    f"{LABELS.get(row, row)} at {r['fraction'] * 100:g}% (C = "
                    f"{', '.join(sorted({f'{c:g}' for _, c in r['not_converged']}))}; "
                    f"{len(r['not_converged'])} fit(s), {chosen} of them the C chosen on valid)")
    if not stopped:
        return f"Every probe fit converged within {MAX_ITER} lbfgs iterations."
    return (f"Fits that stopped at {MAX_ITER} lbfgs iterations before converging: "
            f"{'; '.join(stopped)}.")


def _classifier_section(classifier: str, probes: dict[str, dict[str, Any]],
                        several: bool) -> list[str]:
    """Markdown lines: one classifier's accuracy table, its fit notes and the finding check."""
    first = next(iter(probes.values()))
    headers = ["model", *[f"{r['fraction'] * 100:g}% ({r['labels']} labels)"
                          for r in first["fractions"]]]
    table = [[LABELS.get(row, row), *[f"{r['mean'] * 100:.2f} ± {r['sd'] * 100:.2f}"
                                      for r in p["fractions"]]] for row, p in probes.items()]
    draws = first["fractions"][0]["draws"]
    spread = f"mean ± sd over {draws} draws; one draw at 100%"
    if classifier == "authors":
        epochs = " / ".join(f"{LABELS.get(row, row)} {p['fractions'][0]['epochs']}"
                            for row, p in probes.items())
        intro = (f"Test accuracy (%) of the authors' classifier (`--classifier authors`: one "
                 f"linear layer on the raw posterior means, for the AE its codes, of the "
                 f"best-on-valid checkpoint; Adam lr 1e-4, batches of 32, no regularisation, "
                 f"epochs {epochs}; the test accuracy of the epoch of best valid accuracy), "
                 f"trained on a stratified random fraction of the labelled training set "
                 f"({spread}).")
        notes = ["Epochs kept (1-based, per draw): " + "; ".join(
            f"{LABELS.get(row, row)} " + ", ".join(
                f"{r['fraction'] * 100:g}%: {'/'.join(str(e) for e in r['epoch'])}"
                for r in p["fractions"]) for row, p in probes.items()) + "."]
    else:
        intro = (f"Test accuracy (%) of a logistic regression on the frozen posterior means of "
                 f"the best-on-valid checkpoint, trained on a stratified random fraction of the "
                 f"labelled training set ({spread}), regularisation chosen on valid "
                 f"({first['regularisation']}).")
        notes = [_convergence_note(probes)]
    heading = ([f"## Classifier: {'ours' if classifier == 'ours' else 'the authors'}", ""]
               if several else [])
    return [*heading, intro, "", markdown_table(headers, table), "", *notes, "",
            f"**The paper's finding:** {PAPER_FINDING}. The paper gives a figure, no numbers.",
            "", "**In our runs:**",
            *(finding_check(probes) or ["- (needs the cyclical row and another row)"]), ""]


def write_yelp_report(out: Path, *, rows: list[str], tsne_points: int = 5000, seed: int = 0,
                      test_file: str = "yelp:test") -> dict[str, Any]:
    """``OUT/report.md``, ``OUT/accuracy.png`` and ``OUT/tsne.png`` from the probed rows: a
    section per classifier whose results (``PROBE_FILES``) some rows have."""
    by_classifier: dict[str, dict[str, dict[str, Any]]] = {}
    metrics = {}
    for classifier, name in PROBE_FILES.items():
        for row in rows:
            if (out / row / name).is_file() and (out / row / "metrics.json").is_file():
                by_classifier.setdefault(classifier, {})[row] = json.loads(
                    (out / row / name).read_text())
                metrics[row] = json.loads((out / row / "metrics.json").read_text())
    if not by_classifier:
        raise UserError(f"{out}: no pre-trained and probed Yelp rows to report")
    metrics = {row: metrics[row] for row in rows if row in metrics}
    save_figure_atomic(_accuracy_figure(by_classifier), out / "accuracy.png")
    tsne = tsne_points > 0
    separation: dict[str, dict[str, dict[str, float]]] = {}
    if tsne:
        figure, separation = _tsne_figure(out, list(metrics), test_file, tsne_points, seed)
        save_figure_atomic(figure, out / "tsne.png")
    metric_rows = []
    for row, m in metrics.items():
        best = (m.get("best") or {}).get("test") or m.get("test") or {}
        metric_rows.append([LABELS.get(row, row), (m.get("best") or {}).get("epoch", m["epochs"]),
                            m["epochs"], *[best.get(k) for k in TEST_METRICS],
                            m.get("seconds_per_epoch")])
    lines = ["# Yelp unsupervised pre-training: linear probes on the codes, ours beside the paper",
             ""]
    for classifier, probes in by_classifier.items():
        lines += _classifier_section(classifier, probes, len(by_classifier) > 1)
    lines += ["![accuracy against labelled fraction](accuracy.png)", ""]
    if tsne:
        lines += [f"t-SNE of the codes of {tsne_points} test sentences (seeded sample, the same "
                  "sentences for every model), coloured by label:", "",
                  "![t-SNE of the codes](tsne.png)", "", *_separation_table(separation)]
    lines += [
        "Test metrics of the pre-trained models (the probed, best-on-valid checkpoint; per "
        "sentence, nats). KL, MI and PPL are not defined for the AE (no posterior "
        "distribution); rec_ppl = exp(Rec summed / tokens).",
        "",
        markdown_table(["model", "best epoch", "epochs", *TEST_METRICS, "s/epoch"],
                       metric_rows),
        "",
    ]
    for row, m in metrics.items():
        short = "" if m["epochs"] >= PAPER_EPOCHS else f" (shortened: {m['epochs']} of " \
            f"{PAPER_EPOCHS} epochs)"
        lines.append(f"- `{row}`{short}: schedule {m['config']['schedule']}, lr "
                     f"{m['config']['lr_schedule']}, commit {m.get('git_commit')}, torch "
                     f"{m.get('torch')}, {m.get('num_threads')} threads, "
                     f"{format_number(m.get('seconds_per_epoch'))} s/epoch")
    lines.append(f"\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    main = by_classifier.get("ours") or next(iter(by_classifier.values()))
    return {"accuracy": {row: [r["mean"] for r in p["fractions"]] for row, p in main.items()},
            "finding": finding_check(main), "separation": separation,
            "classifiers": {c: {"accuracy": {row: [r["mean"] for r in p["fractions"]]
                                             for row, p in probes.items()},
                                "finding": finding_check(probes)}
                            for c, probes in by_classifier.items()},
            "finite": all(math.isfinite(r["mean"]) for probes in by_classifier.values()
                          for p in probes.values() for r in p["fractions"])}
