"""The one evaluation of a model, used by the Trainer, ``cyclevae evaluate``, ``cyclevae
generate``, the reports and the synthetic experiment: same posterior, same precision, same
seeds, so they can never disagree.

- :func:`evaluate`: every metric of SPEC section 3 on a split, with the model's reported q
  (``posterior``) or, on request, its amortized q.
- :func:`evaluate_blocks`: the blocks a run reports for a split: ``NAME`` (the reported q,
  with the IW-NLL if asked) and, for a model whose reported q is refined from an amortized one
  (SA-VAE), ``NAME_amortized`` too; :func:`posterior_labels` says which q each block used.
- :func:`monte_carlo_elbo`: Rec averaged over several z per example, KL, ELBO (the synthetic
  experiment's curves).

Evaluation is pure: eval mode (restored afterwards), no gradients, and every random number
from private generators seeded by :attr:`EvalSettings.seed` (reconstruction z: ``seed``;
importance samples: ``seed + 1``; MI/marginal-KL samples: ``seed + 2``; the noise of an SVI
refinement: ``seed + 3``), so results repeat exactly and the training RNG is untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .data.batching import Batch
from .metrics.latent import active_units, latent_decomposition
from .metrics.likelihood import batch_mean_perplexity, iw_log_likelihood, randn_on
from .models.base import Gaussian, LatentTextModel
from .reporter import Reporter

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["NOT_DEFINED_CONDITIONAL", "NOT_DEFINED_DETERMINISTIC", "EvalSettings", "evaluate",
           "evaluate_blocks", "evaluate_model", "monte_carlo_elbo", "posterior_fn",
           "posterior_labels", "precision_context", "reports_amortized_block", "selection_loss"]


@dataclass(frozen=True)
class EvalSettings:
    """How a run evaluates: importance samples per decoder pass, the seed of every random
    stream, the precision of the products (``fp32`` or ``bf16``), Monte Carlo samples per
    sentence for MI and marginal KL."""

    iw_chunk: int = 50
    seed: int = 0
    precision: str = "fp32"
    latent_samples: int = 1

    @classmethod
    def from_train_config(cls, train: TrainConfig) -> EvalSettings:
        """The settings a run's ``train`` section implies (the Trainer evaluates with these)."""
        return cls(iw_chunk=train.iw_chunk, seed=train.seed, precision=train.precision)


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16 for ``precision == "bf16"`` (matrix products in bf16; losses, KL and
    sums stay float32), nothing otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@torch.no_grad()
def evaluate_model(
    model: LatentTextModel,
    batches: Iterable[Batch],
    *,
    posterior: Callable[[Batch], Gaussian] | None = None,
    iw_samples: int = 0,
    iw_chunk: int = 50,
    latent_samples: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, float]:
    """The metrics of one split with q(z|x) given by ``posterior`` (default
    ``model.posterior``). Pure (module docstring); uses the precision in force.

    Args:
        model: a :class:`~cyclevae.models.base.LatentTextModel`.
        batches: the split's batches (e.g. :class:`~cyclevae.data.batching.TextBatch`).
        posterior: ``batch -> (mu, logvar)``; called in eval mode under ``torch.no_grad()``.
        iw_samples: K for the importance-weighted NLL; 0 skips it (K = 500 is customary).
        iw_chunk: importance samples per decoder pass (memory ~ iw_chunk * B sentences).
        latent_samples: Monte Carlo samples per sentence for MI and marginal KL.
        seed: seeds the reconstruction, importance and latent samples (separate streams).
        device: where to compute; default the model's parameters' device.
        on_batch: called after each batch (progress reports, :mod:`cyclevae.reporter`).
    Returns:
        Per-sentence averages (nats): ``rec`` (-log p(x|z), one z ~ q(z|x) per sentence),
        ``kl`` (closed form), ``nll_bound`` = rec + kl, ``elbo`` = -(rec + kl),
        ``ppl`` = exp(sum over sentences of (rec + kl) / ``tokens``), ``rec_ppl`` = exp(sum
        of rec / ``tokens``) (the reconstruction perplexity), ``rec_ppl_batch_mean`` = the
        mean over ``batches`` of each batch's exp(rec / tokens) (the authors' dialog Rec-P,
        :func:`~cyclevae.metrics.likelihood.batch_mean_perplexity`); with ``iw_samples`` > 0,
        ``iw_nll`` (mean -log p(x) estimate) and ``iw_ppl`` = exp(sum iw_nll / ``tokens``);
        ``mi``, ``marginal_kl`` (:mod:`cyclevae.metrics.latent`, over all sentences),
        ``active_units`` (count), ``sentences`` and ``tokens`` (predicted tokens, one ``</s>``
        per sentence included). For a model that is not ``stochastic`` (an autoencoder)
        z is the code, and ``kl``, ``elbo``, ``nll_bound``, ``ppl``, ``mi`` and
        ``marginal_kl`` are ``None`` (listed in ``not_defined``); no IW-NLL. For a model with
        a learned conditional prior (``conditional_prior``, the dialog CVAE: KL and the
        IW-NLL against p(z|c)) ``mi`` and ``marginal_kl`` are ``None`` (``not_defined``);
        ``active_units`` counts the dimensions whose posterior mean varies across examples,
        which for the CVAE includes what z takes from the context.
    """
    device = torch.device(device) if device is not None else _model_device(model)
    posterior = posterior or model.posterior
    stochastic = model.stochastic
    rec_gen = torch.Generator().manual_seed(seed)
    iw_gen = torch.Generator().manual_seed(seed + 1)
    latent_gen = torch.Generator().manual_seed(seed + 2)
    was_training = model.training
    model.train(False)
    rec_sum = kl_sum = iw_sum = 0.0
    n_sentences = n_tokens = 0
    n_words: int | None = None  # predicted words, where the tokens are subwords
    batch_recs: list[float] = []  # per batch: rec summed, predicted tokens
    batch_tokens: list[int] = []
    mus: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []
    try:
        for batch in batches:
            batch = batch.to(device)
            if batch.num_words is not None:
                n_words = (n_words or 0) + batch.num_words
            mu, logvar = posterior(batch)
            if not stochastic:  # a point mass: z is the code
                batch_recs.append(model.reconstruction_loss(batch, mu).double().sum().item())
                batch_tokens.append(batch.num_tokens)
                rec_sum += batch_recs[-1]
                n_sentences += batch.num_examples
                n_tokens += batch.num_tokens
                mus.append(mu.double())
                if on_batch is not None:
                    on_batch()
                continue
            z = mu + (0.5 * logvar).exp() * randn_on(tuple(mu.shape), rec_gen, mu.device)
            batch_recs.append(model.reconstruction_loss(batch, z).double().sum().item())
            batch_tokens.append(batch.num_tokens)
            rec_sum += batch_recs[-1]
            kl_sum += model.kl_to_prior(batch, mu.double(), logvar.double()).sum(-1).sum().item()
            if iw_samples > 0:
                log_px = iw_log_likelihood(model, batch, iw_samples, iw_chunk, iw_gen,
                                           posterior=(mu, logvar))
                iw_sum -= log_px.sum().item()
            n_sentences += batch.num_examples
            n_tokens += batch.num_tokens
            mus.append(mu.double())
            logvars.append(logvar.double())
            if on_batch is not None:
                on_batch()
    finally:
        model.train(was_training)
    if n_sentences == 0 or n_tokens == 0:
        raise ValueError("evaluation needs at least one sentence with a predicted token")

    if not stochastic:
        return {**_deterministic_metrics(rec_sum, n_sentences, n_tokens, torch.cat(mus)),
                "rec_ppl_batch_mean": batch_mean_perplexity(batch_recs, batch_tokens),
                **_per_word(n_words, rec=rec_sum)}
    rec, kl = rec_sum / n_sentences, kl_sum / n_sentences
    mu_all, logvar_all = torch.cat(mus), torch.cat(logvars)
    # eq. 8 splits the mean KL against one fixed p(z); with a learned p(z|c) (the dialog CVAE)
    # and one response per context, the aggregate posterior given c is q(z|c, x) itself, so
    # neither part is defined (reported as null and listed in not_defined)
    conditional = model.conditional_prior
    parts = ({"mi": None, "marginal_kl": None} if conditional else
             latent_decomposition(mu_all, logvar_all, n_samples=latent_samples,
                                  generator=latent_gen))
    metrics: dict[str, float] = {
        "rec": rec,
        "kl": kl,
        "elbo": -(rec + kl),
        "nll_bound": rec + kl,
        "ppl": math.exp((rec_sum + kl_sum) / n_tokens),
        "rec_ppl": math.exp(rec_sum / n_tokens),
        "rec_ppl_batch_mean": batch_mean_perplexity(batch_recs, batch_tokens),
    }
    if iw_samples > 0:
        metrics["iw_nll"] = iw_sum / n_sentences
        metrics["iw_ppl"] = math.exp(iw_sum / n_tokens)
    metrics.update(
        mi=parts["mi"],
        marginal_kl=parts["marginal_kl"],
        active_units=active_units(mu_all),
        sentences=n_sentences,
        tokens=n_tokens,
    )
    if conditional:
        metrics["not_defined"] = list(NOT_DEFINED_CONDITIONAL)
    metrics.update(_per_word(n_words, rec=rec_sum, nll_bound=rec_sum + kl_sum,
                             iw_nll=iw_sum if iw_samples > 0 else None))
    return metrics


def _per_word(words: int | None, **nll_sums: float | None) -> dict[str, Any]:
    """Where the tokens are subwords (``words``: the predicted words, each sentence's words
    and one ``</s>``, as a word-level corpus counts them): ``words`` and the perplexities per
    word, ``ppl_word`` = exp(sum of rec + kl / words), ``rec_ppl_word``, ``iw_ppl_word``
    (each only with its sum), comparable with the perplexities of a word-level model. Nothing
    where the tokens are the words."""
    if words is None:
        return {}
    names = {"rec": "rec_ppl_word", "nll_bound": "ppl_word", "iw_nll": "iw_ppl_word"}
    return {"words": words, **{names[k]: math.exp(v / words) for k, v in nll_sums.items()
                               if v is not None}}


#: metrics a model with a learned conditional prior p(z|c) (the dialog CVAE) has no value for
NOT_DEFINED_CONDITIONAL = ("mi", "marginal_kl")

#: metrics a deterministic model (an autoencoder) has no value for
NOT_DEFINED_DETERMINISTIC = ("kl", "elbo", "nll_bound", "ppl", "mi", "marginal_kl")


def _deterministic_metrics(rec_sum: float, n_sentences: int, n_tokens: int,
                           codes: torch.Tensor) -> dict[str, Any]:
    """The metrics of a model without a posterior distribution: Rec, its perplexity and the
    active units of the codes; KL, ELBO, PPL and MI are ``None`` (named in ``not_defined``)."""
    metrics: dict[str, Any] = {"rec": rec_sum / n_sentences}
    metrics.update(dict.fromkeys(NOT_DEFINED_DETERMINISTIC))
    metrics.update(rec_ppl=math.exp(rec_sum / n_tokens), active_units=active_units(codes),
                   sentences=n_sentences, tokens=n_tokens,
                   not_defined=list(NOT_DEFINED_DETERMINISTIC))
    return metrics


def selection_loss(block: dict[str, Any]) -> float:
    """The number a run minimises on valid to keep its best checkpoint: the ELBO bound
    (``nll_bound``), or Rec for a model without one (an autoencoder)."""
    value = block.get("nll_bound")
    return float(block["rec"] if value is None else value)


def posterior_fn(model: LatentTextModel, seed: int, *, amortized: bool = False
                 ) -> Callable[[Batch], Gaussian]:
    """``batch -> (mu, logvar)``: the amortized q, or the reported one with its refinement
    noise from one generator seeded ``seed + 3`` (for a whole split, or a list of sentences)."""
    if amortized:
        return model.amortized_posterior
    generator = torch.Generator().manual_seed(seed + 3)
    return lambda batch: model.posterior(batch, generator=generator)


def evaluate(
    model: LatentTextModel,
    batches: Iterable[Batch],
    *,
    iw_samples: int = 0,
    settings: EvalSettings = EvalSettings(),
    device: torch.device | str | None = None,
    amortized: bool = False,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Every metric of SPEC section 3 on one split (:func:`evaluate_model`), with the model's
    reported q, or its amortized q if ``amortized``. Products in ``settings.precision``."""
    if amortized and not model.has_amortized_posterior:
        raise ValueError(f"{type(model).__name__} has no amortized posterior")
    device = torch.device(device) if device is not None else _model_device(model)
    with precision_context(settings.precision, device):
        return evaluate_model(
            model, batches, posterior=posterior_fn(model, settings.seed, amortized=amortized),
            iw_samples=iw_samples, iw_chunk=settings.iw_chunk,
            latent_samples=settings.latent_samples, seed=settings.seed, device=device,
            on_batch=on_batch)


def reports_amortized_block(model: LatentTextModel) -> bool:
    """Whether a run reports a second, ``*_amortized`` block: the reported q is refined and
    the model also has an amortized one (SA-VAE; not the VAE, whose q is amortized, nor SVI,
    which has no encoder)."""
    return model.posterior_kind == "refined" and model.has_amortized_posterior


def evaluate_blocks(
    model: LatentTextModel,
    batches: Iterable[Batch],
    name: str,
    *,
    iw_samples: int = 0,
    settings: EvalSettings = EvalSettings(),
    device: torch.device | str | None = None,
    progress: Reporter | None = None,
) -> dict[str, dict[str, Any]]:
    """``{name: reported q (IW-NLL with iw_samples), name + "_amortized": amortized q (no
    IW-NLL)}``, the second only where :func:`reports_amortized_block`. ``progress``: where
    each phase reports its batches (an IW-NLL phase is announced when it starts)."""
    batches = list(batches)
    label = f"{name} IW-NLL K={iw_samples}" if iw_samples > 0 else name
    tick = progress.phase(label, len(batches), announce=iw_samples > 0) if progress else None
    blocks = {name: evaluate(model, batches, iw_samples=iw_samples, settings=settings,
                             device=device, on_batch=tick)}
    if reports_amortized_block(model):
        tick = progress.phase(f"{name}_amortized", len(batches)) if progress else None
        blocks[f"{name}_amortized"] = evaluate(model, batches, settings=settings, device=device,
                                               amortized=True, on_batch=tick)
    return blocks


def posterior_labels(model: LatentTextModel, names: Iterable[str]) -> dict[str, str]:
    """Which q each block of :func:`evaluate_blocks` for the splits ``names`` used:
    ``{"test": "refined", "test_amortized": "amortized"}`` for SA-VAE, ``{"test": "amortized"}``
    for the VAE."""
    labels = {}
    for name in names:
        labels[name] = model.posterior_kind
        if reports_amortized_block(model):
            labels[f"{name}_amortized"] = "amortized"
    return labels


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def monte_carlo_elbo(model: LatentTextModel, batch: Batch, n_samples: int,
                     generator: torch.Generator) -> tuple[dict[str, float], Gaussian]:
    """True ELBO (beta = 1) per example with Rec averaged over ``n_samples`` z per example
    (``eps [B, n_samples, D]`` from ``generator``), in eval mode, with the reported q.

    Returns ``({"elbo", "rec", "kl", "rec_se"}, (mu, logvar))``, ``rec_se`` the Monte Carlo
    standard error of ``rec`` (None for one sample).
    """
    with _eval_mode(model):
        mu, logvar = model.posterior(batch)
        eps = torch.randn(mu.shape[0], n_samples, mu.shape[1], generator=generator,
                          dtype=mu.dtype)
        z = (mu.unsqueeze(1) + (0.5 * logvar).exp().unsqueeze(1) * eps).reshape(-1, mu.shape[1])
        rec = model.reconstruction_loss(batch.repeat_each(n_samples), z)
        rec_mean = rec.double().mean().item()
        kl_mean = model.kl_to_prior(batch, mu.double(), logvar.double()).sum(-1).mean().item()
        # the examples are fixed, the z samples random: sd of the mean over B examples of
        # n-sample means is sqrt(sum_b var_b / n) / B
        per = rec.double().view(mu.shape[0], n_samples)
        rec_se = ((per.var(dim=1).sum() / n_samples).sqrt().item() / mu.shape[0]
                  if n_samples > 1 else None)
    return ({"elbo": -(rec_mean + kl_mean), "rec": rec_mean, "kl": kl_mean, "rec_se": rec_se},
            (mu, logvar))
