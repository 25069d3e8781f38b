"""Dialog response generation on Switchboard (paper section 5.2: Table 3, and Table 2's
samples).

Each row is one config in ``configs/dialog/`` (``cvae-monotonic``, ``cvae-cyclical``,
``cvae-bow-monotonic``, ``cvae-bow-cyclical``) and trains through the ordinary Trainer into
``OUT/<row>/`` (resumable; a finished row is reused). Its best-on-valid checkpoint (the
authors early-stop on the valid loss) is then evaluated on every evaluation set (default
``swda-zhao:test``, the paper's dialogs, and ``swda:test``) by the function behind
``cyclevae evaluate``: Rec-P and KL, then 5 responses per context, each decoded greedily from
its own z ~ p(z|c), scored by BLEU-1..4, A-bow, E-bow precision/recall and distinct-1/2. The
report puts our numbers beside Table 3, checks the paper's findings, draws the learning curves
(KL and Rec-P per logged step) and shows Table 2-style samples: the same five test contexts,
five responses each from every model. Evaluations and samples are cached in each run
directory (``eval-*.json``, ``samples.json``) and redone only when their settings or the
checkpoint change.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json_atomic, write_text_atomic
from ..config import load_config
from ..errors import UserError
from ..report import format_number, markdown_table, plot_curves, save_figure_atomic
from ..rundir import BEST, LAST
from . import CONFIGS
from .runner import train_runs

__all__ = ["CONFIG_DIR", "EVAL_SETS", "PAPER", "ROWS", "run_dialog", "write_dialog_report"]

CONFIG_DIR = CONFIGS / "dialog"
ROWS = ("cvae-monotonic", "cvae-cyclical", "cvae-bow-monotonic", "cvae-bow-cyclical")
LABELS = {"cvae-monotonic": "CVAE M", "cvae-cyclical": "CVAE C",
          "cvae-bow-monotonic": "CVAE+BoW M", "cvae-bow-cyclical": "CVAE+BoW C"}
#: Table 3 of Fu et al. (2019), test set (Zhao's multi-reference swda test dialogs). Its Rec-P
#: is the authors' batch mean (``rec_ppl_batch_mean``: the mean over test batches of each
#: batch's perplexity, models/cvae_cyc.py's ``rc_ppl`` then ``np.mean``), not our ``rec_ppl``.
PAPER: dict[str, dict[str, float]] = {
    "cvae-monotonic": {"rec_ppl_batch_mean": 36.16, "kl": 0.265, "bleu4_precision": 0.185,
                       "bleu4_recall": 0.122, "abow_precision": 0.957, "abow_recall": 0.911,
                       "ebow_precision": 0.867, "ebow_recall": 0.784},
    "cvae-cyclical": {"rec_ppl_batch_mean": 29.77, "kl": 4.104, "bleu4_precision": 0.234,
                      "bleu4_recall": 0.220, "abow_precision": 0.961, "abow_recall": 0.941,
                      "ebow_precision": 0.833, "ebow_recall": 0.808},
    "cvae-bow-monotonic": {"rec_ppl_batch_mean": 18.44, "kl": 14.06, "bleu4_precision": 0.211,
                           "bleu4_recall": 0.210, "abow_precision": 0.958, "abow_recall": 0.938,
                           "ebow_precision": 0.830, "ebow_recall": 0.808},
    "cvae-bow-cyclical": {"rec_ppl_batch_mean": 16.74, "kl": 15.55, "bleu4_precision": 0.219,
                          "bleu4_recall": 0.219, "abow_precision": 0.961, "abow_recall": 0.940,
                          "ebow_precision": 0.828, "ebow_recall": 0.805},
}
#: the paper's test dialogs (its numbers sit beside ours only for this set)
PAPER_SET = "swda-zhao:test"
EVAL_SETS = ("swda-zhao:test", "swda:test")
PAPER_STEPS = 60 * 1716  # the authors' at most 60 rounds of 1,716 batches (early-stopped)
METRICS = ("rec_ppl", "rec_ppl_batch_mean", "kl",
           *[f"bleu{n}_{s}" for n in range(1, 5) for s in ("precision", "recall")],
           "abow_precision", "abow_recall", "ebow_precision", "ebow_recall", "distinct1",
           "distinct2")


def _checkpoint(run: Path) -> Path:
    """The best-on-valid checkpoint of a run (the last one if the run kept no best)."""
    return run / BEST if (run / BEST).is_file() else run / LAST


def _final_evaluation(run: Path, ckpt: Path, spec: str, samples: int, contexts: int | str | None,
                      glove: str | None) -> dict[str, Any] | None:
    """The evaluation that training already made of ``ckpt`` on ``spec``, in
    :func:`cyclevae.inference.evaluate_checkpoint`'s layout, when it is the one asked for:
    the best checkpoint on the run's own test set, with the run's sample count, contexts and
    word vectors and no IW-NLL. Training's final evaluation decodes every test context for the
    best checkpoint (``metrics.json``'s ``best.test``); decoding them again would repeat the same
    seeded numbers (tested) at ~10 minutes a set. ``None`` when it does not apply."""
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    config, best = metrics.get("config") or {}, metrics.get("best") or {}
    t, block = config.get("train") or {}, best.get("test") or {}
    wanted = {"samples": t.get("response_samples"), "contexts": t.get("response_contexts"),
              "glove": t.get("response_glove")}
    asked = {"samples": samples, "contexts": wanted["contexts"] if contexts == "run" else contexts,
             "glove": glove or t.get("response_glove")}
    if (ckpt.name != BEST or spec != (config.get("data") or {}).get("test")
            or t.get("iw_samples") or asked != wanted or "bleu1_precision" not in block):
        return None
    return {"checkpoint": str(ckpt), "data": spec, "epoch": best.get("epoch"),
            "source": "metrics.json best.test (training's final evaluation of this checkpoint)",
            "test": block}


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", spec).strip("-")


def _cached(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("settings") == settings:
            return data
    return None


def run_dialog(*, rows: list[str], out: Path, epochs: int | None = None,
               overrides: list[str] | None = None, config_dir: Path = CONFIG_DIR,
               progress: bool | None = None, eval_sets: list[str] | None = None,
               samples: int = 5, contexts: int | str | None = "run", glove: str | None = None,
               examples: int = 5, seed: int = 0, jobs: int = 1) -> dict[str, Any]:
    """Train every row not finished in ``out``, evaluate and sample each, write the report.

    Args:
        rows: row names (config stems in ``config_dir``).
        epochs: every row's ``train.epochs`` (the schedules are in steps and in 3/4 epochs,
            computed from the data, so they keep their meaning).
        overrides: ``key=value`` strings applied to every row (e.g. ``data.*``).
        eval_sets: conversation files or ``NAME:SPLIT`` to evaluate on (default
            :data:`EVAL_SETS`; the first also gives the sampled contexts).
        samples, contexts, glove: the sampled-response evaluation
            (:func:`cyclevae.inference.evaluate_checkpoint`).
        examples: Table 2-style contexts (the same for every model), 5 responses each.
        seed: seeds the choice of those contexts and their responses.
        jobs: train up to that many rows at once, each in its own process, the cores split
            between them (:func:`cyclevae.experiments.runner.train_runs`).
    """
    from ..inference import evaluate_checkpoint

    eval_sets = list(eval_sets or EVAL_SETS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if not rows:
        raise UserError("--rows: give at least one row")
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    todo = []  # every config is read and checked before the first row trains
    for row in rows:
        path = config_dir / f"{row}.yaml"
        if not path.is_file():
            raise UserError(f"{path}: config of row {row!r} not found (pass --configs DIR)")
        extra = list(overrides or []) + ([f"train.epochs={epochs}"] if epochs else [])
        todo.append((row, load_config(path, extra), out / row))
    train_runs([(config, run) for _, config, run in todo
                if not (run / "metrics.json").is_file()], jobs=jobs, progress=progress)
    for _, _, run in todo:
        ckpt = _checkpoint(run)
        version = {"checkpoint": ckpt.name, "mtime_ns": ckpt.stat().st_mtime_ns}
        for spec in eval_sets:
            settings = {"data": spec, "samples": samples, "contexts": contexts,
                        "glove": glove, **version}
            cache = run / f"eval-{_slug(spec)}.json"
            if _cached(cache, settings) is None:
                result = (_final_evaluation(run, ckpt, spec, samples, contexts, glove)
                          or evaluate_checkpoint(ckpt, data=spec, samples=samples,
                                                 contexts=contexts, glove=glove))
                write_json_atomic(cache, {"settings": settings, **result})
        settings = {"data": eval_sets[0], "examples": examples, "seed": seed, **version}
        if _cached(run / "samples.json", settings) is None and examples > 0:
            write_json_atomic(run / "samples.json",
                              {"settings": settings, **sample_table(ckpt, eval_sets[0],
                                                                    examples, seed)})
    return write_dialog_report(out, rows=rows, eval_sets=eval_sets)


def _speaker_names(speakers: np.ndarray) -> list[str]:
    return ["" if s < 0 else ("ABCDEFGH"[s] if s < 8 else f"S{s}") for s in speakers.tolist()]


def sample_table(checkpoint: Path, spec: str, examples: int, seed: int, *, n: int = 5
                 ) -> dict[str, Any]:
    """Table 2-style samples of one model: ``examples`` contexts of ``spec`` (a seeded choice
    among those with at least 3 context utterances, the same for every model trained on the
    same data), each with its reference and ``n`` responses decoded greedily, each from its
    own z ~ p(z|c) (a generator seeded ``seed``)."""
    from ..inference import load_checkpoint_dialogs, load_model

    model, vocab, config, ckpt = load_model(checkpoint)
    _, corpus, _ = load_checkpoint_dialogs(config, ckpt, vocab, spec)
    eligible = corpus.example_ids(min_context=3)
    if len(eligible) == 0:
        eligible = corpus.example_ids(min_context=1)
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(eligible, size=min(examples, len(eligible)), replace=False))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = model.respond(corpus.batch(ids), n, generator=generator)
    names = _speaker_names(corpus.speakers)
    items = []
    for k, i in enumerate(ids.tolist()):
        start, response = (int(v) for v in corpus.examples[i])
        context = [{"speaker": names[g], "text": " ".join(vocab.decode(corpus.utterances[g]))}
                   for g in range(start, response) if corpus.speakers[g] >= 0]
        items.append({"example": i, "context": context,
                      "reference": {"speaker": names[response],
                                    "text": " ".join(vocab.decode(corpus.response_ids(i)))},
                      "responses": [" ".join(vocab.decode(w)) for w in out[k]]})
    return {"contexts": items}


def _load(out: Path, rows: list[str], eval_sets: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = out / row
        if not (run / "metrics.json").is_file():
            continue
        log = ([json.loads(line) for line in
                (run / "log.jsonl").read_text(encoding="utf-8").splitlines()]
               if (run / "log.jsonl").is_file() else [])
        evals = {}
        for spec in eval_sets:
            path = run / f"eval-{_slug(spec)}.json"
            if path.is_file():
                evals[spec] = json.loads(path.read_text(encoding="utf-8"))
        samples = (json.loads((run / "samples.json").read_text(encoding="utf-8"))
                   if (run / "samples.json").is_file() else None)
        found[row] = {"metrics": json.loads((run / "metrics.json").read_text(encoding="utf-8")),
                      "log": log, "evals": evals, "samples": samples}
    return found


def _block(evaluation: dict[str, Any]) -> dict[str, Any]:
    return evaluation.get("test") or {}


def finding_checks(runs: dict[str, dict[str, Any]], spec: str) -> list[str]:
    """The paper's claims on ``spec``, each with what our runs show: the cyclical CVAE has a
    higher KL and a lower Rec-P than the monotonic CVAE (Rec-P both ways: the paper's batch
    mean, and ours over all tokens), and so does the cyclical CVAE+BoW than the monotonic
    one (Table 3: KL 15.55 vs 14.06, Rec-P 16.74 vs 18.44); each BoW row a higher KL than the
    plain row of its schedule; and Table 3's BLEU-4 orderings: the cyclical row above the
    monotonic row of its model in precision and in recall."""
    def value(row: str, key: str) -> float | None:
        block = _block(runs.get(row, {}).get("evals", {}).get(spec, {}))
        return block.get(key)

    lines = []
    claims = [("cvae-cyclical", "cvae-monotonic", "kl", "higher"),
              ("cvae-cyclical", "cvae-monotonic", "rec_ppl_batch_mean", "lower"),
              ("cvae-cyclical", "cvae-monotonic", "rec_ppl", "lower"),
              ("cvae-bow-cyclical", "cvae-bow-monotonic", "kl", "higher"),
              ("cvae-bow-cyclical", "cvae-bow-monotonic", "rec_ppl_batch_mean", "lower"),
              ("cvae-bow-monotonic", "cvae-monotonic", "kl", "higher"),
              ("cvae-bow-cyclical", "cvae-cyclical", "kl", "higher"),
              ("cvae-cyclical", "cvae-monotonic", "bleu4_precision", "higher"),
              ("cvae-cyclical", "cvae-monotonic", "bleu4_recall", "higher"),
              ("cvae-bow-cyclical", "cvae-bow-monotonic", "bleu4_precision", "higher"),
              ("cvae-bow-cyclical", "cvae-bow-monotonic", "bleu4_recall", "higher")]
    for a, b, key, direction in claims:
        va, vb = value(a, key), value(b, key)
        pa, pb = PAPER[a].get(key), PAPER[b].get(key)
        claim = (f"{LABELS[a]} has a {direction} {key} than {LABELS[b]} "
                 + (f"(paper: {pa} vs {pb})" if pa is not None else
                    "(the paper reports Rec-P as rec_ppl_batch_mean only)"))
        if va is None or vb is None:
            lines.append(f"- {claim}: not checked (a row or its value is missing)")
            continue
        holds = va > vb if direction == "higher" else va < vb
        lines.append(f"- {claim}: ours {format_number(va)} vs {format_number(vb)}: "
                     f"{'holds' if holds else 'does not hold'}")
    return lines


#: logged training records averaged in each point of the train curves (batches are grouped by
#: length, so single batches swing widely)
CURVE_WINDOW = 20


def trailing_mean(values: list[float], window: int, *, geometric: bool = False) -> list[float]:
    """Mean of each value with up to ``window - 1`` values before it (fewer at the start);
    ``geometric``: the mean of the logarithms, exponentiated (for perplexities)."""
    x = np.log(np.asarray(values, dtype=np.float64)) if geometric else np.asarray(
        values, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(x)])
    ends = np.arange(1, len(x) + 1)
    starts = np.maximum(ends - window, 0)
    means = (sums[ends] - sums[starts]) / (ends - starts)
    return (np.exp(means) if geometric else means).tolist()


def _curves(runs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    curves = {}
    for row, item in runs.items():
        train = [r for r in item["log"] if r.get("kind") == "train"
                 and r.get("kl") is not None and r.get("rec_ppl") is not None]
        kl = trailing_mean([r["kl"] for r in train], CURVE_WINDOW)
        ppl = trailing_mean([r["rec_ppl"] for r in train], CURVE_WINDOW, geometric=True)
        points = [{"step": r["step"], "kl": k, "rec_ppl": q, "beta": r.get("beta")}
                  for r, k, q in zip(train, kl, ppl)]
        points += [{"step": r["step"], "valid_kl": r["valid"].get("kl"),
                    "valid_rec_ppl": r["valid"].get("rec_ppl")}
                   for r in item["log"] if r.get("kind") in ("epoch", "round") and r.get("valid")]
        curves[LABELS.get(row, row)] = sorted(points, key=lambda p: p["step"])
    return curves


def _samples_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    tables = {row: item["samples"]["contexts"] for row, item in runs.items()
              if item.get("samples")}
    if not tables:
        return []
    first = next(iter(tables.values()))
    lines = ["## Samples (Table 2 style)", "",
             ("The same test contexts for every model; five responses each, decoded greedily, "
             "each from its own z ~ p(z|c). Text as the models see it (normalised, `<unk>` "
             "for words outside the vocabulary)."), ""]
    for k, item in enumerate(first):
        lines.append(f"### Context {k + 1} (example {item['example']})")
        lines.append("")
        lines += [f"    {u['speaker']}: {u['text']}" for u in item["context"]]
        ref = item["reference"]
        lines += ["", f"Reference ({ref['speaker']}): *{ref['text']}*", ""]
        for row, contexts in tables.items():
            if k < len(contexts) and contexts[k]["example"] == item["example"]:
                lines.append(f"- **{LABELS.get(row, row)}**: "
                             + " / ".join(f"`{r or '(empty)'}`" for r in contexts[k]["responses"]))
        lines.append("")
    return lines


def _differences(runs: dict[str, dict[str, Any]]) -> str:
    """The report's "why the numbers differ" paragraph, from what the rows ran: the training
    text's preparation (``data.dialog.preparation``; rows written before it existed ran
    ``swda``) and the run length (the authors' stopping rule, recorded in metrics.json as
    ``early_stopping``, or a fixed number of steps)."""
    preparation, length = [], []
    for row, item in runs.items():
        m = item["metrics"]
        prep = (m["config"]["data"].get("dialog") or {}).get("preparation", "swda")
        preparation.append(f"`{row}` {prep}")
        rule = m.get("early_stopping")
        if rule and rule.get("reason") == "patience":
            length.append(f"`{row}` stopped by the rule after {rule['rounds']} rounds")
        elif rule and rule.get("reason") == "max_rounds":
            length.append(f"`{row}` stopped at the rule's maximum, {rule['rounds']} rounds")
        elif rule:
            length.append(f"`{row}` cut at train.epochs after {rule['rounds']} rounds, "
                          "before the rule stopped it")
        else:
            length.append(f"`{row}` a fixed {m['steps']} steps, no stopping rule")
    return ("Why the numbers differ from the paper's: training on the standard SwDA split "
            "(swda/, minus the conversations that leak into the evaluation files) instead of "
            "Zhao's 2,316 conversations, its text prepared as `data.dialog.preparation` says ("
            + ", ".join(preparation) + "; `zhao` imitates Zhao's text, `swda` is our own "
            "cleaning); one reference per context instead of Zhao's multi-reference test set "
            "(lower recall, and precision against one answer); GloVe 6B 50d instead of "
            "Twitter 200d for A-bow/E-bow; run length (the authors stop by the valid loss, "
            f"at most {PAPER_STEPS} steps): " + "; ".join(length) + " (see the run details).")


def write_dialog_report(out: Path, *, rows: list[str], eval_sets: list[str] | None = None
                        ) -> dict[str, Any]:
    """``OUT/report.md`` and ``OUT/learning_curves.png`` from the finished, evaluated rows."""
    eval_sets = list(eval_sets or EVAL_SETS)
    runs = _load(out, rows, eval_sets)
    if not runs:
        raise UserError(f"{out}: no finished dialog runs (metrics.json) to report")
    lines = [
        "# Dialog response generation on Switchboard: ours beside Table 3",
        "",
        ("Each model's best-on-valid checkpoint. Rec-P two ways, z ~ q(z|c,x): `rec_ppl` = "
        "exp(reconstruction nats per predicted token over the whole set), ours; "
        "`rec_ppl_batch_mean` = the mean over the evaluation batches (data.batch_size "
        "examples each; the authors' test batches held 60) of each batch's exp(nats per "
        "token), the authors' way (models/cvae_cyc.py `rc_ppl`, then np.mean) and the "
        "paper's Rec-P column, which is compared with it; KL = KL(q(z|c,x) || p(z|c)) per response; BLEU-n (NLTK "
        "sentence_bleu, smoothing method 7), A-bow / E-bow ((cos + 1) / 2 of the average / "
        "extrema word vectors) precision and recall over 5 sampled responses per context "
        "(contexts of at least 2 utterances), distinct-n over all samples."),
        "",
        _differences(runs),
        "",
    ]
    for spec in eval_sets:
        paper = spec == PAPER_SET
        headers = ["metric"]
        for row in runs:
            headers += [f"{LABELS.get(row, row)} ours"] + (
                [f"{LABELS.get(row, row)} paper"] if paper else [])
        table = []
        for key in METRICS:
            cells: list[Any] = [key]
            for row, item in runs.items():
                cells.append(_block(item["evals"].get(spec, {})).get(key))
                if paper:
                    cells.append(PAPER[row].get(key))
            table.append(cells)
        first = next((item["evals"][spec] for item in runs.values() if spec in item["evals"]),
                     {})
        block = _block(first)
        note = (f"{block.get('contexts')} contexts scored of {block.get('eligible_contexts')}, "
                f"word vectors: {block.get('word_vectors')}") if block else "not evaluated"
        lines += [f"## Test set `{spec}`" + (" (the paper's dialogs)" if paper else ""), "",
                  note, "", markdown_table(headers, table), ""]
        if paper:
            lines += ["The paper's findings on this set:", "", *finding_checks(runs, spec), ""]
        leaks = {row: item["evals"][spec].get("leakage") for row, item in runs.items()
                 if spec in item["evals"] and item["evals"][spec].get("leakage")}
        for row, leak in leaks.items():
            if leak.get("conversations_in_training"):
                lines += [(f"Warning: {leak['conversations_in_training']} of "
                          f"{leak['conversations']} conversations of `{spec}` also occur in "
                          f"the training data of {row}."), ""]
    curves = _curves(runs)
    if any(curves.values()):
        fig = plot_curves(curves, ["kl", "rec_ppl", "beta", "valid_kl", "valid_rec_ppl"],
                          titles=["train KL (running mean)", "train Rec-P (running mean)",
                                  "beta", "valid KL (per evaluation)",
                                  "valid Rec-P (per evaluation)"],
                          ylabels=["nats per response", "perplexity per token",
                                   "KL weight", "nats per response", "perplexity per token"],
                          xlabel="optimizer step", ncols=5)
        save_figure_atomic(fig, out / "learning_curves.png")
        lines += ["## Learning curves", "", "![learning curves](learning_curves.png)", "",
                  f"Train curves: the running mean of the last {CURVE_WINDOW} logged batches "
                  "(arithmetic for KL, geometric for Rec-P; batches are grouped by length, so "
                  "single batches swing widely); valid: the whole valid set after each epoch "
                  "(and each early-stopping round).",
                  ""]
    lines += _samples_section(runs)
    lines += ["## Runs", ""]
    for row, item in runs.items():
        m = item["metrics"]
        leak = (m.get("data") or {}).get("leakage") or {}
        best = m.get("best") or {}
        rule = m.get("early_stopping")
        # a round inside a pass is best after the passes before it: name the round, not the
        # number of passes finished when it was kept
        stopping = (f"early-stopped after {rule['rounds']} rounds of {rule['round_steps']} steps "
                    f"({rule['reason'] or 'train.epochs reached'}), best round "
                    f"{rule['best_round']}, " if rule else
                    f"best epoch {best.get('epoch', m['epochs'])}, ")
        lines.append(
            f"- `{row}`: {m['epochs']} epochs, {m['steps']} steps (the authors: at most "
            f"{PAPER_STEPS}, early-stopped), {stopping}"
            f"{leak.get('dropped')} leaked training conversations dropped "
            f"(against {', '.join((leak.get('against') or {}).values()) or 'none'}), "
            f"schedule {m['config']['schedule']}, lr {m['config']['lr_schedule']}, "
            f"{format_number(m.get('seconds_per_epoch'))} s/epoch, commit "
            f"{m.get('git_commit')}, torch {m.get('torch')}, {m.get('num_threads')} threads")
    lines.append(f"\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    return {"rows": {row: {spec: {k: _block(e).get(k) for k in METRICS}
                           for spec, e in item["evals"].items()} for row, item in runs.items()},
            "findings": finding_checks(runs, PAPER_SET) if PAPER_SET in eval_sets else []}
