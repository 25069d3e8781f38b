"""Unsupervised pre-training on Yelp (paper section 6.3, Figure 6; t-SNE in Figure 9 of the
supplement).

Each row (``configs/yelp/``: the paper's ``ae``, ``vae-monotonic``, ``vae-cyclical``; beyond
it ``ae-authors``, the AE pre-trained with the authors' four settings where ours differ, and
``minilm-monotonic`` and ``minilm-cyclical``, the VAE with the pretrained all-MiniLM-L6-v2
encoder fine-tuned, as Optimus (Li et al. 2020) puts a pretrained encoder under the schedule)
pre-trains through the ordinary Trainer into ``OUT/<row>[-seedS]/``, once per training seed
(resumable; a finished run is reused); each run's best-on-valid checkpoint is then frozen and probed
(:mod:`cyclevae.probe`) at labelled fractions of ``yelp:train``, the regularisation chosen on
``yelp:valid``, accuracy on ``yelp:test``, by our classifier (``probe.json``) or the authors'
(``classifier="authors"``: ``probe-authors.json``). The row ``minilm-features`` trains
nothing: it probes the pretrained encoder's own sentence embedding (mean-pooled, L2-normalised,
as sentence-transformers' ``encode``), the baseline the MiniLM VAE's codes are compared with.
The report puts an accuracy table per classifier probed beside the paper's finding (with
several seeds: the mean over seeds and draws, the sd of the seeds' means, and the finding judged
by Welch's 95% interval on the seeds' means, as the PTB claims are), draws accuracy against the
labelled fraction and a t-SNE of the codes of test sentences (the first seed's), and lists each
run's test metrics.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..atomic import write_json_atomic, write_text_atomic
from ..config import load_config
from ..errors import UserError
from ..report import format_number, markdown_table, new_figure, save_figure_atomic
from ..rundir import BEST, LAST
from . import CONFIGS
from .ptb_claims import t_half_width, welch_dof
from .runner import run_dir_name, train_runs

CONFIG_DIR = CONFIGS / "yelp"
#: the rows of Figure 6
PAPER_ROWS = ("ae", "vae-monotonic", "vae-cyclical")
#: rows that train nothing and probe a pretrained encoder's own sentence embedding (mean-pooled
#: and L2-normalised): row -> the row whose config names the encoder (``model.hf_encoder``,
#: after ``--set``)
FEATURE_ROWS = {"minilm-features": "minilm-cyclical"}
ROWS = (*PAPER_ROWS, "ae-authors", "minilm-monotonic", "minilm-cyclical", *FEATURE_ROWS)
#: neighbours counted by the report's label-separation numbers under the t-SNE picture
SEPARATION_K = 10
LABELS = {"ae": "AE", "vae-monotonic": "VAE, monotonic", "vae-cyclical": "VAE, cyclical",
          "ae-authors": "AE, the authors' pre-training",
          "minilm-monotonic": "MiniLM VAE, monotonic", "minilm-cyclical": "MiniLM VAE, cyclical",
          "minilm-features": "MiniLM embedding, no VAE"}
DEFAULT_FRACTIONS = (0.001, 0.01, 0.1, 1.0)
PAPER_EPOCHS = 100
PAPER_FINDING = ("the cyclical schedule is the most accurate at every labelled proportion, and "
                 "its t-SNE clusters are the clearest (Figure 6; Figure 9 of the supplement)")


class Comparison(NamedTuple):
    """One comparison the report judges: ``best`` claimed the most accurate of itself and
    ``rivals`` at every labelled fraction; ``key`` names it in :func:`write_yelp_report`'s
    result. The paper's is judged whenever its rows are probed; one beyond the paper only when
    one of its rows that is not a paper row is."""

    key: str
    best: str
    rivals: tuple[str, ...]
    claim: str
    paper: bool


FINDINGS = (
    Comparison("paper", "vae-cyclical", ("ae", "vae-monotonic"), PAPER_FINDING, True),
    Comparison("ae-authors", "vae-cyclical", ("ae-authors",),
               ("with the AE pre-trained as the authors pre-trained it, the cyclical VAE's codes "
                "are more accurate than the AE's at every labelled proportion, as in Figure 6"),
               False),
    Comparison("minilm", "minilm-cyclical", ("minilm-monotonic", "minilm-features"),
               ("with the pretrained MiniLM encoder, the cyclical schedule's codes are the most "
                "accurate at every labelled proportion, ahead of the monotonic schedule's and of "
                "MiniLM's own sentence embedding"), False),
)
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
             classifier_epochs: int | None = None, seeds: list[int] | None = None
             ) -> dict[str, Any]:
    """Pre-train every (row, seed) not finished in ``out``, probe each run (reused when its
    ``probe.json`` has the same settings), then write ``OUT/report.md`` and its figures.

    Args:
        rows: row names (config stems in ``config_dir``; a row of ``FEATURE_ROWS`` trains
            nothing and probes, once into ``OUT/<row>``, the pretrained encoder that its
            source row's config names).
        seeds: training seeds (``train.seed``; default ``[0]``): seed 0 trains into
            ``OUT/<row>``, seed S into ``OUT/<row>-seedS`` (:func:`run_dir_name`). The probe's
            draws (``seed``) are the same for every training seed.
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
    from ..probe import probe_checkpoint, probe_pretrained

    fractions = list(fractions or DEFAULT_FRACTIONS)
    seeds = list(dict.fromkeys(seeds or [0]))
    if classifier not in PROBE_FILES:
        raise UserError(f"--classifier: expected one of {', '.join(PROBE_FILES)}, got "
                        f"{classifier!r}")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    files = {"train": "yelp:train", "valid": "yelp:valid", "test": "yelp:test", **(data or {})}
    todo = []
    features = []  # (row, its run directory, the pretrained encoder it embeds with)
    for row in rows:
        path = config_dir / f"{FEATURE_ROWS.get(row, row)}.yaml"
        if not path.is_file():
            raise UserError(f"{path}: config of row {row!r} not found (pass --configs DIR)")
        extra = list(overrides or []) + ([f"train.epochs={epochs}"] if epochs else [])
        if row in FEATURE_ROWS:
            encoder = load_config(path, extra).model
            if encoder.encoder != "hf":
                raise UserError(f"{path}: row {row!r} embeds with this config's pretrained "
                                f"encoder, but its model.encoder is {encoder.encoder!r}, not "
                                "'hf'")
            features.append((row, out / run_dir_name(row, 0), encoder.hf_encoder))
            continue
        for training_seed in seeds:
            config = load_config(path, [*extra, f"train.seed={training_seed}"])
            if epochs is not None and config.schedule.n_cycles > epochs:
                raise UserError(f"--epochs {epochs}: row {row!r} has "
                                f"{config.schedule.n_cycles} cycles; shortening keeps them, so "
                                "give at least that many epochs")
            todo.append((row, config, out / run_dir_name(row, training_seed)))
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
    for row, run, encoder in features:
        cached = run / PROBE_FILES[classifier]
        row_settings = {**settings, "pretrained": encoder.path, "pooling": encoder.pooling,
                        "normalize": True, "max_tokens": encoder.max_tokens}
        if cached.is_file() and json.loads(cached.read_text()).get("settings") == row_settings:
            continue
        result = probe_pretrained(encoder.path or "", files["train"], files["test"],
                                  valid=files["valid"], fractions=fractions, draws=draws,
                                  seed=seed, classifier=classifier,
                                  authors_epochs=classifier_epochs, pooling=encoder.pooling,
                                  normalize=True, max_tokens=encoder.max_tokens)
        run.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cached, {"settings": row_settings, **result})
    return write_yelp_report(out, rows=rows, tsne_points=tsne_points, seed=seed,
                             test_file=files["test"], seeds=seeds)


def _full_epochs(row: str) -> int | None:
    """The epochs a row trains unshortened: the paper's for its rows, else the shipped
    config's (None for a row with no shipped config)."""
    if row in PAPER_ROWS:
        return PAPER_EPOCHS
    path = CONFIG_DIR / f"{row}.yaml"
    return load_config(path, []).train.epochs if path.is_file() else None


def _checkpoint(run: Path) -> Path:
    """The best-on-valid checkpoint of a run (the last one if the run kept no best)."""
    return run / BEST if (run / BEST).is_file() else run / LAST


def run_label(row: str, seed: int | None = None) -> str:
    """The report's name of a row (``AE``) or of one of its runs (``AE (seed 1)``; a row of
    ``FEATURE_ROWS`` trains nothing and has no seed)."""
    name = LABELS.get(row, row)
    return name if seed is None or row in FEATURE_ROWS else f"{name} (seed {seed})"


def _row_codes(run: Path, row: str, test_file: str) -> Any:
    """The :class:`~cyclevae.embedding.SentenceCodes` of ``test_file`` under a run: a trained
    run's probed checkpoint, or for a row of ``FEATURE_ROWS`` the pretrained encoder with the
    settings its probe recorded."""
    from ..embedding import embed_file, embed_pretrained

    if row not in FEATURE_ROWS:
        return embed_file(_checkpoint(run), test_file)
    settings = next(json.loads((run / name).read_text())["settings"]
                    for name in PROBE_FILES.values() if (run / name).is_file())
    return embed_pretrained(settings["pretrained"], test_file, pooling=settings["pooling"],
                            normalize=settings["normalize"], max_tokens=settings["max_tokens"])


def over_seeds(probes: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """One row's probe results, one per training seed (seed -> probe file), as one.

    Per fraction: ``mean`` the accuracy over every seed and draw (fractions of 1),
    ``seed_means`` each seed's mean over its draws (seed order), ``seeds`` their number,
    ``draw_sd`` the pooled sample sd over draws within a seed (0 with one draw per seed), and
    ``sd`` the spread the report shows and judges by: the sample sd of the seeds' means with two
    or more seeds, else the single seed's sd over its draws. The other keys are the first
    seed's. Raises UserError when the seeds were probed at different fractions or draws.
    """
    ordered = [probes[seed] for seed in sorted(probes)]
    first = ordered[0]
    shape = [(r["fraction"], r["draws"]) for r in first["fractions"]]
    for seed, probe in zip(sorted(probes), ordered):
        if [(r["fraction"], r["draws"]) for r in probe["fractions"]] != shape:
            raise UserError(f"seed {seed}: probed at other fractions or draws than seed "
                            f"{min(probes)} ({shape}); probe every seed with the same settings")
    fractions = []
    for i, row in enumerate(first["fractions"]):
        per_seed = [p["fractions"][i] for p in ordered]
        means = [r["mean"] for r in per_seed]
        draw_sd = math.sqrt(statistics.fmean(r["sd"] ** 2 for r in per_seed))
        fractions.append({**row, "seeds": len(per_seed), "seed_means": means,
                          "mean": statistics.fmean(a for r in per_seed for a in r["accuracy"]),
                          "sd": statistics.stdev(means) if len(means) > 1 else row["sd"],
                          "draw_sd": draw_sd})
    return {**first, "fractions": fractions, "seeds": sorted(probes)}


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
    several_seeds = any(r["seeds"] > 1 for probes in by_classifier.values()
                        for p in probes.values() for r in p["fractions"])
    ax.set_title("Linear probe on the frozen codes (mean ± sd over "
                 f"{'seeds' if several_seeds else 'draws'})")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _tsne_figure(out: Path, rows: Mapping[str, int], test_file: str, n_points: int, seed: int
                 ) -> tuple[Any, dict[str, dict[str, dict[str, float]]]]:
    """The t-SNE panels and, per row, :func:`cyclevae.probe.label_separation` of the sampled
    sentences in the 2-D map (``"map"``) and in the codes themselves (``"codes"``); ``rows``
    maps each row to the training seed whose run is pictured."""
    from sklearn.manifold import TSNE

    from ..probe import label_separation

    fig, axes = new_figure(1, len(rows), figsize=(4.2 * len(rows), 4.2))
    separation: dict[str, dict[str, dict[str, float]]] = {}
    for ax, (row, training_seed) in zip(axes[0], rows.items()):
        codes = _row_codes(out / run_dir_name(row, training_seed), row, test_file)
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


def seed_interval(a: Sequence[float], b: Sequence[float], *, b_fixed: bool = False
                  ) -> tuple[float, float, float]:
    """``mean(a) - mean(b)``, its Welch-Satterthwaite degrees of freedom and the half-width of
    its two-sided 95% Student-t interval, from two rows' per-seed values (two or more each;
    units as given). ``b_fixed``: ``b`` does not vary with the seed (a pretrained encoder's
    embedding, which trains nothing), so only ``a``'s spread counts (one-sample t)."""
    parts = [(statistics.variance(v) / len(v), len(v) - 1) for v in ((a,) if b_fixed else (a, b))]
    se = math.sqrt(sum(v for v, _ in parts))
    dof = welch_dof(parts)
    return statistics.fmean(a) - statistics.fmean(b), dof, t_half_width(se, dof)


def finding_check(probes: dict[str, dict[str, Any]], best_row: str = "vae-cyclical"
                  ) -> list[str]:
    """One sentence per fraction: whether ``best_row`` has the highest mean accuracy there
    and by how much, against the next best row. Where both rows have two or more seeds
    (:func:`over_seeds`) the gap is judged by the 95% Welch interval of the difference of the
    seeds' means (against a row of ``FEATURE_ROWS``, which has no seed spread, by the
    one-sample interval of ``best_row``'s seeds); otherwise against the larger of the two
    rows' draw sd (one seed: the draws are all the spread measured)."""
    if best_row not in probes or len(probes) < 2:
        return []
    lines = []
    for i, row in enumerate(probes[best_row]["fractions"]):
        ours = row["mean"]
        others = {name: p["fractions"][i] for name, p in probes.items() if name != best_row}
        rival_name, rival = max(others.items(), key=lambda kv: kv[1]["mean"])
        gap = (ours - rival["mean"]) * 100
        verdict = "holds" if gap > 0 else "does not hold"
        head = (f"- {row['fraction'] * 100:g}% labels ({row['labels']}): "
                f"{LABELS[best_row]} {ours * 100:.2f}% vs next best "
                f"{LABELS.get(rival_name, rival_name)} {rival['mean'] * 100:.2f}%: the "
                f"finding {verdict}")
        fixed = rival_name in FEATURE_ROWS
        if row.get("seeds", 1) > 1 and (fixed or rival.get("seeds", 1) > 1):
            _, dof, half = seed_interval([m * 100 for m in row["seed_means"]],
                                         [m * 100 for m in rival["seed_means"]], b_fixed=fixed)
            size = "beyond" if abs(gap) > half else "within"
            against = ("its seeds' one-sample 95% t interval" if fixed else
                       "95% Welch interval")
            lines.append(f"{head} (gap {gap:+.2f} points, {size} seed noise: {against} "
                         f"± {half:.2f}, {dof:.1f} dof, {row['seeds']} vs "
                         f"{'no' if fixed else rival['seeds']} seeds)")
        else:
            spread = max(row["sd"], rival["sd"]) * 100
            size = "beyond" if abs(gap) > spread else "within"
            lines.append(f"{head} (gap {gap:+.2f} points, {size} the larger draw sd "
                         f"{spread:.2f}; one seed, no seed spread measured)")
    return lines


def _convergence_note(runs: Mapping[str, dict[str, Any]]) -> str:
    """One sentence on the probe fits whose solver stopped at its iteration limit; ``runs``
    maps the name the report gives a run (:func:`run_label`) to its probe result."""
    from ..probe import MAX_ITER

    if any("not_converged" not in r for p in runs.values() for r in p["fractions"]):
        return "Solver convergence was not recorded for these probes (probed before it was)."
    stopped = []
    for name, p in runs.items():
        for r in p["fractions"]:
            if r["not_converged"]:
                chosen = sum(r["C"][int(d)] == c for d, c in r["not_converged"])
                stopped.append(
                    f"{name} at {r['fraction'] * 100:g}% (C = "
                    f"{', '.join(sorted({f'{c:g}' for _, c in r['not_converged']}))}; "
                    f"{len(r['not_converged'])} fit(s), {chosen} of them the C chosen on valid)")
    if not stopped:
        return f"Every probe fit converged within {MAX_ITER} lbfgs iterations."
    return (f"Fits that stopped at {MAX_ITER} lbfgs iterations before converging: "
            f"{'; '.join(stopped)}.")


def _epochs_kept_note(runs: Mapping[str, Mapping[int, dict[str, Any]]]) -> str:
    """One sentence on the epochs the authors' classifier kept (best valid accuracy): per row
    and fraction the median and range over seeds and draws, and how many sat at the epoch
    limit (where a longer run might have kept a later one)."""
    parts = []
    for row, by_seed in runs.items():
        first = by_seed[min(by_seed)]
        cells = []
        for i, r in enumerate(first["fractions"]):
            kept = [e for p in by_seed.values() for e in p["fractions"][i]["epoch"]]
            limit = sum(e == r["epochs"] for e in kept)
            cells.append(f"{r['fraction'] * 100:g}%: {statistics.median(kept):g} "
                         f"({min(kept)}-{max(kept)}; {limit} of {len(kept)} at the limit)")
        parts.append(f"{run_label(row)} (limit {first['fractions'][0]['epochs']}) "
                     + ", ".join(cells))
    return ("Epoch kept (1-based; median, range and how many at the epoch limit, over seeds "
            "and draws): " + "; ".join(parts) + ".")


def _classifier_section(classifier: str, runs: Mapping[str, Mapping[int, dict[str, Any]]],
                        probes: Mapping[str, dict[str, Any]], several: bool) -> list[str]:
    """Markdown lines: one classifier's accuracy table (over seeds where a row has several,
    then each seed's), its fit notes and the finding check; ``runs`` maps row -> training
    seed -> probe result, ``probes`` row -> those results over seeds (:func:`over_seeds`)."""
    first = next(iter(probes.values()))
    headers = ["model", *[f"{r['fraction'] * 100:g}% ({r['labels']} labels)"
                          for r in first["fractions"]]]
    table = [[run_label(row), *[f"{r['mean'] * 100:.2f} ± {r['sd'] * 100:.2f}"
                                for r in p["fractions"]]] for row, p in probes.items()]
    draws = first["fractions"][0]["draws"]
    seeds = sorted({len(by_seed) for by_seed in runs.values()})
    if seeds == [1]:
        spread = f"mean ± sd over {draws} draws; one draw at 100%"
    else:
        counts = "/".join(str(n) for n in seeds)
        spread = (f"mean over {counts} training seeds × {draws} draws ± the sample sd of the "
                  f"seeds' means, one draw per seed at 100%; a row with one seed shows its sd "
                  f"over draws; the same labelled draws for every seed")
    if classifier == "authors":
        epochs = " / ".join(f"{run_label(row)} {p['fractions'][0]['epochs']}"
                            for row, p in probes.items())
        intro = (f"Test accuracy (%) of the authors' classifier (`--classifier authors`: one "
                 f"linear layer on the raw {_codes_phrase(probes)}; Adam lr 1e-4, batches of "
                 f"32, no regularisation, "
                 f"epochs {epochs}; the test accuracy of the epoch of best valid accuracy), "
                 f"trained on a stratified random fraction of the labelled training set "
                 f"({spread}).")
        notes = [_epochs_kept_note(runs)]
    else:
        intro = (f"Test accuracy (%) of a logistic regression on the frozen "
                 f"{_codes_phrase(probes)}, trained on a stratified random fraction of the "
                 f"labelled training set ({spread}), regularisation chosen on valid "
                 f"({first['regularisation']}).")
        named = {(run_label(row, seed) if len(by_seed) > 1 else run_label(row)): probe
                 for row, by_seed in runs.items() for seed, probe in sorted(by_seed.items())}
        notes = [_convergence_note(named)]
    per_seed: list[str] = []
    if seeds != [1]:
        per_seed = ["Each training seed (mean ± sd over its draws):", "", markdown_table(
            headers, [[run_label(row, seed), *[f"{r['mean'] * 100:.2f} ± {r['sd'] * 100:.2f}"
                                               for r in probe["fractions"]]]
                      for row, by_seed in runs.items() for seed, probe in sorted(by_seed.items())]
        ), ""]
    heading = ([f"## Classifier: {'ours' if classifier == 'ours' else 'the authors'}", ""]
               if several else [])
    return [*heading, intro, "", markdown_table(headers, table), "", *per_seed, *notes, "",
            *_findings(probes)]


def _codes_phrase(probes: Mapping[str, Any]) -> str:
    """What the probed codes are, for the report's sentences: the posterior means of the
    best-on-valid checkpoints, and what stands for them in the AE and a feature row."""
    instead = {"ae": "the AE: its codes", "ae-authors": "the AE pre-trained as the authors did: "
               "its codes",
               **{row: f"{LABELS[row]}: the pretrained encoder's pooled sentence vector"
                  for row in FEATURE_ROWS}}
    also = [what for row, what in instead.items() if row in probes]
    return ("posterior means of the best-on-valid checkpoint"
            + (f" ({'; '.join(also)})" if also else ""))


def _among(probes: Mapping[str, dict[str, Any]], best: str, rivals: Sequence[str]
           ) -> dict[str, dict[str, Any]]:
    """The probes of one comparison of ``FINDINGS``: ``best`` and its ``rivals``, those present."""
    return {row: probes[row] for row in (best, *rivals) if row in probes}


def _findings(probes: Mapping[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: each comparison of ``FINDINGS`` to be judged (:class:`Comparison`), its
    claim and :func:`finding_check` among its own rows (the paper's among the paper's rows)."""
    lines: list[str] = []
    for _, best, rivals, claim, paper in FINDINGS:
        present = _among(probes, best, rivals)
        if not present or not (paper or set(present) - set(PAPER_ROWS)):
            continue
        head = (f"**The paper's finding:** {claim}. The paper gives a figure, no numbers."
                if paper else f"**Beyond the paper:** {claim}?")
        lines += [head, "", "**In our runs:**",
                  *(finding_check(present, best)
                    or [f"- (needs the row {best} and another of {', '.join(rivals)})"]), ""]
    return lines


def write_yelp_report(out: Path, *, rows: list[str], tsne_points: int = 5000, seed: int = 0,
                      test_file: str = "yelp:test", seeds: list[int] | None = None
                      ) -> dict[str, Any]:
    """``OUT/report.md``, ``OUT/accuracy.png`` and ``OUT/tsne.png`` from the probed runs of
    ``rows`` at the training ``seeds`` (default ``[0]``; run directories by
    :func:`run_dir_name`): a section per classifier whose results (``PROBE_FILES``) some runs
    have; the t-SNE of each row's first probed seed; the test metrics of every run."""
    seeds = list(dict.fromkeys(seeds or [0]))
    raw: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    metrics: dict[tuple[str, int], dict[str, Any]] = {}
    pictured: dict[str, int] = {}  # row -> its first probed seed
    for classifier, name in PROBE_FILES.items():
        for row in rows:
            trains = row not in FEATURE_ROWS
            for training_seed in seeds if trains else [0]:
                run = out / run_dir_name(row, training_seed)
                if not (run / name).is_file() or (trains and not
                                                   (run / "metrics.json").is_file()):
                    continue
                raw.setdefault(classifier, {}).setdefault(row, {})[training_seed] = \
                    json.loads((run / name).read_text())
                if trains:
                    metrics[(row, training_seed)] = json.loads(
                        (run / "metrics.json").read_text())
    for row in rows:
        probed = [s for s in (seeds if row not in FEATURE_ROWS else [0])
                  if any(s in runs.get(row, {}) for runs in raw.values())]
        if probed:
            pictured[row] = probed[0]
    if not raw:
        raise UserError(f"{out}: no pre-trained and probed Yelp rows to report")
    metrics = {(row, s): metrics[(row, s)] for row in rows for s in seeds if (row, s) in metrics}
    several_seeds = len({s for _, s in metrics}) > 1
    by_classifier = {c: {row: over_seeds(by_seed) for row, by_seed in runs.items()}
                     for c, runs in raw.items()}
    save_figure_atomic(_accuracy_figure(by_classifier), out / "accuracy.png")
    tsne = tsne_points > 0
    separation: dict[str, dict[str, dict[str, float]]] = {}
    if tsne:
        figure, separation = _tsne_figure(out, pictured, test_file, tsne_points, seed)
        save_figure_atomic(figure, out / "tsne.png")
    metric_rows = []
    for (row, s), m in metrics.items():
        best = (m.get("best") or {}).get("test") or m.get("test") or {}
        metric_rows.append([run_label(row, s if several_seeds else None),
                            (m.get("best") or {}).get("epoch", m["epochs"]),
                            m["epochs"], *[best.get(k) for k in TEST_METRICS],
                            m.get("seconds_per_epoch")])
    lines = ["# Yelp unsupervised pre-training: linear probes on the codes, ours beside the paper",
             ""]
    for classifier, runs in raw.items():
        lines += _classifier_section(classifier, runs, by_classifier[classifier],
                                     len(raw) > 1)
    lines += ["![accuracy against labelled fraction](accuracy.png)", ""]
    if tsne:
        which = ("" if not several_seeds else " (each row's first seed: "
                 + ", ".join(f"{run_label(row)} {s}" for row, s in pictured.items()
                             if row not in FEATURE_ROWS) + ")")
        lines += [f"t-SNE of the codes of {tsne_points} test sentences (seeded sample, the same "
                  f"sentences for every model){which}, coloured by label:", "",
                  "![t-SNE of the codes](tsne.png)", "", *_separation_table(separation)]
    if metric_rows:
        lines += [
            "Test metrics of the pre-trained models (the probed, best-on-valid checkpoint; per "
            "sentence, nats). KL, MI and PPL are not defined for the AE (no posterior "
            "distribution); rec_ppl = exp(Rec summed / tokens).",
            "",
            markdown_table(["model", "best epoch", "epochs", *TEST_METRICS, "s/epoch"],
                           metric_rows),
            "",
        ]
    for row in FEATURE_ROWS:
        if row in pictured:
            probe = next(runs[row][0] for runs in raw.values() if row in runs)
            lines.append(f"- `{row}` (trains nothing): {probe['pretrained']}, "
                         f"{probe['features']}")
    for (row, s), m in metrics.items():
        full = _full_epochs(row)
        short = ("" if full is None or m["epochs"] >= full else
                 f" (shortened: {m['epochs']} of {full} epochs)")
        lines.append(f"- `{run_dir_name(row, s)}`{short}: schedule {m['config']['schedule']}, "
                     f"lr {m['config']['lr_schedule']}, commit {m.get('git_commit')}, torch "
                     f"{m.get('torch')}, {m.get('num_threads')} threads, "
                     f"{format_number(m.get('seconds_per_epoch'))} s/epoch")
    lines.append(f"\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    main = by_classifier.get("ours") or next(iter(by_classifier.values()))

    def judged(probes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        """``finding``: the paper's comparison; ``findings``: every comparison by its key."""
        found = {c.key: finding_check(_among(probes, c.best, c.rivals), c.best)
                 for c in FINDINGS}
        return {"finding": found["paper"], "findings": found}

    return {"accuracy": {row: [r["mean"] for r in p["fractions"]] for row, p in main.items()},
            **judged(main), "separation": separation,
            "seeds": {row: p["seeds"] for row, p in main.items()},
            "classifiers": {c: {"accuracy": {row: [r["mean"] for r in p["fractions"]]
                                             for row, p in probes.items()},
                                **judged(probes)}
                            for c, probes in by_classifier.items()},
            "finite": all(math.isfinite(r["mean"]) for probes in by_classifier.values()
                          for p in probes.values() for r in p["fractions"])}
