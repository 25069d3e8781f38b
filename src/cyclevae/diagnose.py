"""Did the posterior collapse? ``cyclevae diagnose``: the latent statistics of a model on a
corpus and a direct test of how much its decoder uses z.

- Latent statistics over every sentence, with the model's reported q(z|x) (the refined one for
  SA-VAE and SVI, seeded as :mod:`cyclevae.evaluation` seeds it, so they equal a run's
  metrics.json block on the same split): the mean KL(q(z|x) || p(z)) and its share on every
  latent dimension (``kl_to_prior``, so a learned prior is used as the model defines it), the
  mutual information I_q(z; x) and the active units (:mod:`cyclevae.metrics.latent`).
- Decoder use: the reconstruction loss ``reconstruction_loss(batch, z)`` per predicted token
  with three codes: each sentence's own z (the posterior mean), the z of another sentence of
  the same batch (a fixed derangement: row i gets the code of row i - 1), and the prior mean
  (z = 0 for N(0, I); a model with a learned prior may offer ``prior_mean(batch) -> [B, D]``
  or ``prior_params(batch) -> (mu, logvar)``).
  All three are computed on the same sentences: those in batches of two or more (a batch holds
  sentences of one length, so a batch of one has no other sentence to borrow from).
- The verdict comes from the swap gap, rec(another sentence's z) - rec(own z), in nats per
  sentence (the information a code carries is per sentence; per token it would shrink with the
  sentence length): below :data:`COLLAPSED_BELOW` the decoder ignores z ("collapsed"), below
  :data:`USES_Z_FROM` it uses z weakly ("partly collapsed"), else "uses z". The thresholds are
  printed with the verdict. (For scale: 0.5 nats is under one bit; the PTB VAEs of
  ``results/ptb`` have I(z; x) of 1.1 (monotonic) and 2.7 (cyclical) nats.)

A deterministic model (class attribute ``stochastic = False``, e.g. an autoencoder) has no KL
and no mutual information: they are reported as not defined, and the swap test still runs.

Example::

    from cyclevae.diagnose import diagnose, diagnosis_markdown
    result = diagnose(model, corpus.batches(0, shuffle=False))
    print(result.verdict, result.swap_gap)
    print(diagnosis_markdown(result))
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .data.batching import Batch, BatchSource
from .errors import UserError
from .evaluation import EvalSettings, posterior_fn, precision_context
from .metrics.latent import active_units, latent_decomposition
from .models.base import LatentTextModel
from .report import format_number, markdown_table, new_figure, save_figure_atomic, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AU_THRESHOLD", "COLLAPSED_BELOW", "USES_Z_FROM", "Diagnosis", "diagnose",
           "diagnose_checkpoint", "diagnosis_figure", "diagnosis_markdown", "write_diagnosis"]

#: swap gap (nats per sentence) below which the decoder is said to ignore z
COLLAPSED_BELOW = 0.5
#: swap gap (nats per sentence) from which the decoder is said to use z
USES_Z_FROM = 2.0
#: variance of the posterior mean over sentences above which a dimension is active
AU_THRESHOLD = 0.01


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found. Losses in nats; ``None`` where a quantity is not defined
    (KL and MI of a deterministic model).

    Attributes:
        stochastic: whether the model's q(z|x) is a distribution (False: a deterministic code).
        sentences, tokens: sentences and predicted tokens the latent statistics cover.
        latent_dim: D.
        kl: mean KL(q(z|x) || p(z)) per sentence; ``kl_per_dim`` its ``[D]`` parts (sum = kl).
        mi: I_q(z; x) (at most log ``sentences``).
        active_units: dimensions whose posterior mean varies over sentences by more than
            ``au_threshold`` (variance); ``mean_variance``: that variance per dimension, ``[D]``.
        usage_sentences, usage_tokens: the sentences and tokens of the decoder-use test (those
            in batches of two or more).
        rec_own, rec_swap, rec_prior: reconstruction loss per token with the sentence's own z
            (posterior mean), another sentence's z, the prior mean.
        prior_label: what the prior-mean row used (``"z = 0"`` or the model's ``prior_mean``).
        collapsed_below, uses_z_from: the verdict's thresholds (nats per sentence).
    """

    stochastic: bool
    sentences: int
    tokens: int
    latent_dim: int
    kl: float | None
    kl_per_dim: list[float] | None
    mi: float | None
    active_units: int
    mean_variance: list[float]
    usage_sentences: int
    usage_tokens: int
    rec_own: float
    rec_swap: float
    rec_prior: float
    prior_label: str = "z = 0"
    au_threshold: float = AU_THRESHOLD
    collapsed_below: float = COLLAPSED_BELOW
    uses_z_from: float = USES_Z_FROM
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def swap_gap(self) -> float:
        """rec(another sentence's z) - rec(own z), nats per token."""
        return self.rec_swap - self.rec_own

    @property
    def prior_gap(self) -> float:
        """rec(prior mean) - rec(own z), nats per token."""
        return self.rec_prior - self.rec_own

    @property
    def tokens_per_sentence(self) -> float:
        """Mean predicted tokens per sentence of the decoder-use test (per token -> per
        sentence)."""
        return self.usage_tokens / self.usage_sentences

    @property
    def swap_gap_sentence(self) -> float:
        """:attr:`swap_gap` in nats per sentence (what the verdict compares)."""
        return self.swap_gap * self.tokens_per_sentence

    @property
    def verdict(self) -> str:
        """``"collapsed"``, ``"partly collapsed"`` or ``"uses z"`` (module docstring)."""
        if self.swap_gap_sentence < self.collapsed_below:
            return "collapsed"
        if self.swap_gap_sentence < self.uses_z_from:
            return "partly collapsed"
        return "uses z"

    @property
    def verdict_line(self) -> str:
        """The verdict in one line, with the numbers and thresholds it rests on."""
        what = {"collapsed": "the decoder ignores z",
                "partly collapsed": "the decoder uses z weakly",
                "uses z": "the decoder uses z"}[self.verdict]
        kl = (f"KL {format_number(self.kl)} nats/sentence, " if self.kl is not None else "")
        return (f"**Verdict: {self.verdict}** ({what}): another sentence's z costs "
                f"{self.swap_gap_sentence:+.3g} nats/sentence ({self.swap_gap:+.3g} "
                f"nats/token) over the sentence's own (thresholds: collapsed below "
                f"{self.collapsed_below}, uses z from {self.uses_z_from} nats/sentence); "
                f"{kl}{self.active_units} of {self.latent_dim} units active.")


def _prior_mean(model: LatentTextModel, batch: Batch, like: torch.Tensor
                ) -> tuple[torch.Tensor, str]:
    """The prior mean for every row of ``batch`` (``[B, D]``, like ``like``) and its label:
    the model's ``prior_params(batch)`` mean for a learned prior
    (:attr:`~cyclevae.models.base.LatentTextModel.conditional_prior`, e.g. the dialog CVAE's
    p(z|c)), else zeros."""
    if model.conditional_prior:
        return model.prior_params(batch)[0].to(like.dtype), "prior mean (model.prior_params)"
    return torch.zeros_like(like), "prior mean (z = 0)"


@torch.no_grad()
def diagnose(
    model: LatentTextModel,
    batches: Iterable[Batch],
    *,
    settings: EvalSettings | None = None,
    device: torch.device | str | None = None,
    au_threshold: float = AU_THRESHOLD,
    collapsed_below: float = COLLAPSED_BELOW,
    uses_z_from: float = USES_Z_FROM,
) -> Diagnosis:
    """Latent statistics and the decoder-use test of ``model`` on ``batches`` (module
    docstring), in eval mode (restored afterwards), products in ``settings.precision``.

    Args:
        model: any :class:`~cyclevae.models.base.LatentTextModel`; only ``posterior``,
            ``reconstruction_loss``, ``kl_to_prior`` (stochastic models) and, if it has one,
            ``prior_mean`` are called.
        batches: e.g. :class:`~cyclevae.data.batching.TextBatch` objects; the swap test uses
            the batches of two or more examples.
        settings: the seeds (refinement noise ``seed + 3``, MI samples ``seed + 2``) and
            precision, as in :func:`cyclevae.evaluation.evaluate` (default
            :class:`~cyclevae.evaluation.EvalSettings`).
        au_threshold, collapsed_below, uses_z_from: the thresholds (module docstring).
    Raises:
        UserError: no sentence, or no batch of two or more sentences for the swap test.
    """
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    settings = settings or EvalSettings()
    stochastic = model.stochastic
    posterior = posterior_fn(model, settings.seed)
    latent_gen = torch.Generator().manual_seed(settings.seed + 2)
    was_training = model.training
    model.train(False)
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    kl_sum: torch.Tensor | None = None
    n_sentences = n_tokens = use_sentences = use_tokens = 0
    rec = {"own": 0.0, "swap": 0.0, "prior": 0.0}
    prior_label = "prior mean (z = 0)"
    try:
        with precision_context(settings.precision, device):
            for batch in batches:
                batch = batch.to(device)
                mu, logvar = posterior(batch)
                mus.append(mu.double())
                n_sentences += batch.num_examples
                n_tokens += batch.num_tokens
                if stochastic:
                    logvars.append(logvar.double())
                    part = model.kl_to_prior(batch, mu.double(), logvar.double()).sum(0)
                    kl_sum = part if kl_sum is None else kl_sum + part
                if batch.num_examples < 2:
                    continue
                prior, prior_label = _prior_mean(model, batch, mu)
                for name, z in (("own", mu), ("swap", mu.roll(1, dims=0)), ("prior", prior)):
                    rec[name] += model.reconstruction_loss(batch, z).double().sum().item()
                use_sentences += batch.num_examples
                use_tokens += batch.num_tokens
    finally:
        model.train(was_training)
    if n_sentences == 0:
        raise UserError("diagnose: no sentences to diagnose")
    if use_tokens == 0:
        raise UserError("diagnose: the swap test needs a batch of two or more sentences of one "
                        "length; give more sentences")
    mu_all = torch.cat(mus)
    variance = (mu_all.var(dim=0, unbiased=True) if mu_all.shape[0] > 1
                else torch.zeros(mu_all.shape[1], dtype=torch.float64))
    kl = kl_per_dim = mi = None
    if stochastic:
        assert kl_sum is not None
        kl_per_dim = (kl_sum / n_sentences).tolist()
        kl = float(sum(kl_per_dim))
        mi = latent_decomposition(mu_all, torch.cat(logvars), n_samples=settings.latent_samples,
                                  generator=latent_gen)["mi"]
    return Diagnosis(
        stochastic=stochastic, sentences=n_sentences, tokens=n_tokens,
        latent_dim=int(mu_all.shape[1]), kl=kl, kl_per_dim=kl_per_dim, mi=mi,
        active_units=active_units(mu_all, threshold=au_threshold),
        mean_variance=variance.tolist(), usage_sentences=use_sentences, usage_tokens=use_tokens,
        rec_own=rec["own"] / use_tokens, rec_swap=rec["swap"] / use_tokens,
        rec_prior=rec["prior"] / use_tokens, prior_label=prior_label,
        au_threshold=au_threshold, collapsed_below=collapsed_below, uses_z_from=uses_z_from)


# ----------------------------------------------------------------------- output
def _cell(value: float | None) -> str:
    return "not defined" if value is None else format_number(value)


def diagnosis_markdown(d: Diagnosis, *, figure: str | None = None) -> str:
    """The diagnosis as a Markdown document (``figure``: the chart's file name to link)."""
    src = d.source
    lines = ["# Posterior collapse diagnosis", ""]
    if src:
        lines += [f"- {key}: {value}" for key, value in src.items()] + [""]
    kind = "stochastic q(z|x)" if d.stochastic else "deterministic code (no KL, no MI)"
    lines += [(f"{d.sentences} sentences, {d.tokens} predicted tokens, {d.latent_dim} latent "
               f"dimensions, {kind}."), "", d.verdict_line, "",  # first: the answer asked for
              "## Latent statistics (nats)", ""]
    mi_max = f" (at most log N = {format_number(math.log(d.sentences))})"
    lines.append(markdown_table(["quantity", "value"], [
        ["KL(q || p) per sentence", _cell(d.kl)],
        ["mutual information I(z; x)" + (mi_max if d.mi is not None else ""), _cell(d.mi)],
        [f"active units (variance over sentences of the posterior mean > {d.au_threshold})",
         f"{d.active_units} of {d.latent_dim}"],
    ], fmt=str))
    lines += ["## Per latent dimension", ""]
    kl_dims = d.kl_per_dim or [None] * d.latent_dim
    lines.append(markdown_table(
        ["dim", "KL (nats/sentence)", "variance of the posterior mean", "active"],
        [[i, _cell(k), format_number(v), "yes" if v > d.au_threshold else ""]
         for i, (k, v) in enumerate(zip(kl_dims, d.mean_variance))], fmt=str))
    if figure:
        lines += [f"![KL per latent dimension]({figure})", ""]
    lines += [(f"## How much the decoder uses z ({d.usage_sentences} sentences, "
               f"{d.usage_tokens} tokens, in batches of two or more)"), ""]
    per = d.tokens_per_sentence
    lines.append(markdown_table(
        ["z given to the decoder", "rec (nats/token)", "vs own z", "rec (nats/sentence)",
         "vs own z"],
        [["own (posterior mean)", format_number(d.rec_own), "", format_number(d.rec_own * per),
          ""],
         ["another sentence's of the batch (fixed derangement)", format_number(d.rec_swap),
          f"{d.swap_gap:+.3g}", format_number(d.rec_swap * per), f"{d.swap_gap * per:+.3g}"],
         [d.prior_label, format_number(d.rec_prior), f"{d.prior_gap:+.3g}",
          format_number(d.rec_prior * per), f"{d.prior_gap * per:+.3g}"]], fmt=str))
    return "\n".join(lines)


def collapse_warning(metrics: dict[str, Any], out: str | Path) -> str | None:
    """One line for the end of a training whose final evaluation (``metrics``, as in
    ``metrics.json``: the ``test`` block, else ``valid``) has no active latent unit: the
    posterior means do not vary across sentences, so z carries next to nothing about x (He et
    al. 2019's active-unit count); None otherwise."""
    split = "test" if metrics.get("test") else "valid"
    block = metrics.get(split) or {}
    if block.get("active_units") != 0:
        return None
    numbers = ", ".join(f"{name} {block[key]:.3g}" for name, key in (("KL", "kl"), ("MI", "mi"))
                        if block.get(key) is not None)
    return (f"cyclevae: warning: the posterior collapsed: no latent unit is active on the "
            f"{split} set" + (f" ({numbers} nats per sentence)" if numbers else "") +
            f"; `cyclevae diagnose {Path(out) / 'checkpoint_last.pt'}` shows how much the "
            "decoder uses z (remedies: the cyclical schedule, train.free_bits, "
            "model.word_dropout)")


def diagnosis_figure(d: Diagnosis) -> Figure:
    """Bar charts of the KL of every latent dimension and of the variance of its posterior
    mean over sentences (with the active-unit threshold); KL panel marked not defined for a
    deterministic model."""
    fig, axes = new_figure(1, 2, figsize=(max(6.0, 0.9 + 0.18 * d.latent_dim) * 2, 3.2),
                           sharex=True)
    dims = list(range(d.latent_dim))
    ax_kl, ax_var = axes[0]
    if d.kl_per_dim is not None:
        ax_kl.bar(dims, d.kl_per_dim, color="tab:blue")
        ax_kl.set_title(f"KL per dimension (total {format_number(d.kl)} nats)")
    else:
        ax_kl.text(0.5, 0.5, "KL not defined\n(deterministic model)", ha="center",
                   va="center", transform=ax_kl.transAxes)
        ax_kl.set_title("KL per dimension")
    ax_kl.set_ylabel("KL (nats per sentence)")
    ax_var.bar(dims, d.mean_variance, color="tab:orange")
    ax_var.axhline(d.au_threshold, color="black", linestyle="--", linewidth=1,
                   label=f"active-unit threshold {d.au_threshold}")
    ax_var.set_ylabel("variance of the posterior mean")
    ax_var.set_title(f"{d.active_units} of {d.latent_dim} units active")
    ax_var.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_kl, ax_var):
        ax.set_xlabel("latent dimension")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_diagnosis(d: Diagnosis, out: str | Path) -> str:
    """Write ``out/kl_per_dim.png`` then ``out/diagnosis.md`` (each atomically; the directory
    is created); returns the Markdown."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out exists and is not a directory")
    save_figure_atomic(diagnosis_figure(d), out / "kl_per_dim.png")
    text = diagnosis_markdown(d, figure="kl_per_dim.png")
    write_text_atomic(out / "diagnosis.md", text)
    return text


def _sample_batches(corpus: BatchSource, max_sentences: int) -> list[Batch]:
    """At most ``max_sentences`` sentences: whole batches in the corpus's seeded epoch-0
    order (so every length is represented), the last one cut."""
    chosen, left = [], max_sentences
    for batch in corpus.batches(0, shuffle=True, drop_last=False):
        if left <= 0:
            break
        if batch.num_examples > left:
            batch = batch.select(torch.arange(left))
        chosen.append(batch)
        left -= batch.num_examples
    return chosen


def diagnose_checkpoint(path: str | Path, *, data: str | None = None,
                        data_dir: str | None = None, max_sentences: int | None = None
                        ) -> Diagnosis:
    """:func:`diagnose` a checkpoint on a corpus file (or ``NAME:SPLIT``; default the run's
    test split), batched and seeded as its run evaluates. ``max_sentences``: a seeded sample
    of whole batches instead of every sentence."""
    from .checkpoint import load_model, saved_labels
    from .data.splits import split_spec
    from .families import family_of
    from .runtime import check_precision

    if max_sentences is not None and max_sentences < 2:
        raise UserError(f"--max-sentences must be >= 2, got {max_sentences}")
    model, vocab, config, ckpt = load_model(path)
    spec = data or split_spec(config.data, "test")
    if not spec:
        raise UserError(f"{path}: the run has no data.test; pass --data FILE")
    check_precision(config.train.precision, torch.device("cpu"))
    corpus = family_of(config).load_split(config, spec, vocab, saved_labels(ckpt),
                                          data_dir=data_dir).batches
    batches = (corpus.batches(0, shuffle=False, drop_last=False) if max_sentences is None
               else _sample_batches(corpus, max_sentences))
    result = diagnose(model, batches, settings=EvalSettings.from_train_config(config.train))
    source = {"checkpoint": f"`{path}` (epoch {ckpt.get('progress', {}).get('epoch')})",
              "model": (f"{config.model.kind}, q(z|x) {model.posterior_kind}"
                        if result.stochastic else f"{config.model.kind}, deterministic code"),
              "data": f"`{spec}`" + (f" (a seeded sample of at most {max_sentences} sentences)"
                                     if max_sentences is not None else "")}
    return replace(result, source=source)
