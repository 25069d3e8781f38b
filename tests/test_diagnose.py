"""`cyclevae diagnose`: constructed models whose use of z is known (a decoder that ignores z,
one that copies the sentence through z, a deterministic code, a learned prior), and tiny
trained runs of every sentence-model kind, whose latent statistics must equal the run's own
metrics.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import small_overrides
from torch import nn

from cyclevae.cli import main
from cyclevae.config import load_config
from cyclevae.data.batching import TextBatch
from cyclevae.diagnose import (
    COLLAPSED_BELOW,
    USES_Z_FROM,
    Diagnosis,
    diagnose,
    diagnose_checkpoint,
    diagnosis_markdown,
)
from cyclevae.families import MODEL_KINDS
from cyclevae.losses import gaussian_kl_per_dim
from cyclevae.models.base import LatentTextModel, ModelOutput
from cyclevae.training import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

V = 12  # toy vocabulary; the toy latent has one dimension per word


class _Toy(LatentTextModel):
    """q(z|x) = N(3 * word frequencies of x, e^-2 I) in D = V dimensions; the decoder predicts
    every token from ``logits = scale * z`` (``scale = 0``: it ignores z)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.latent_dim = V
        self.scale = scale
        self.bias = nn.Parameter(torch.linspace(-1.0, 1.0, V))  # a unigram LM besides z

    def posterior(self, batch, *, generator=None):
        words = batch.tokens[:, 1:]
        freq = torch.zeros(words.shape[0], V).scatter_add_(
            1, words, torch.ones_like(words, dtype=torch.float)) / words.shape[1]
        return 3.0 * freq, torch.full_like(freq, -2.0)

    def reconstruction_loss(self, batch, z):
        logp = torch.log_softmax(self.scale * z + self.bias, dim=-1)  # [B, V]
        return -logp.gather(1, batch.tokens[:, 1:]).sum(-1)

    def forward(self, batch, *, beta=1.0, sample=True) -> ModelOutput:
        mu, logvar = self.posterior(batch)
        return self.output(batch, mu, logvar, sample=sample)


class _Deterministic(_Toy):
    """The toy with a point-mass code: KL must never be asked for."""

    stochastic = False

    def kl_to_prior(self, batch, mu, logvar):
        raise AssertionError("kl_to_prior called on a deterministic model")


class _LearnedPrior(_Toy):
    """The toy with p(z) = N(m, I), m = (0, 0.2, .., 2.2): a learned prior, declared as the
    CVAE declares its p(z|c) (``conditional_prior``, ``prior_params``)."""

    MEAN = torch.linspace(0.0, 2.2, V)
    conditional_prior = True

    def kl_to_prior(self, batch, mu, logvar):
        return gaussian_kl_per_dim(mu - self.MEAN, logvar)

    def prior_params(self, batch):
        mu = self.MEAN.expand(batch.num_examples, V)
        return mu, torch.zeros_like(mu)


def _batches(n_batches: int = 4, size: int = 8, length: int = 6) -> list[TextBatch]:
    """Random sentences (distinct within a batch, almost surely), a lone one at the end."""
    gen = torch.Generator().manual_seed(1)
    out = [TextBatch(torch.randint(4, V, (size, length + 1), generator=gen))
           for _ in range(n_batches)]
    return out + [TextBatch(torch.randint(4, V, (1, length + 2), generator=gen))]


def test_a_decoder_that_ignores_z_is_collapsed():
    """Own, swapped and prior z give the same loss exactly; the lone sentence is left out of
    the swap test but counted in the latent statistics."""
    d = diagnose(_Toy(scale=0.0), _batches())
    assert d.rec_own == d.rec_swap == d.rec_prior
    assert d.verdict == "collapsed"
    assert d.sentences == 33 and d.usage_sentences == 32 and d.usage_tokens == 32 * 6
    assert d.kl > 0  # the posterior carries information the decoder throws away
    assert "Verdict: collapsed" in diagnosis_markdown(d)


def test_a_decoder_that_copies_x_through_z_uses_z():
    batches = _batches()
    model = _Toy(scale=5.0)
    d = diagnose(model, batches)
    assert d.verdict == "uses z"
    assert d.swap_gap_sentence == pytest.approx(6 * d.swap_gap)  # 6 tokens per sentence
    assert d.swap_gap_sentence > USES_Z_FROM and d.prior_gap > 0
    # the own-z loss is the per-token loss with the posterior mean, batches of 2+ only
    own = sum(model.reconstruction_loss(b, model.posterior(b)[0]).sum() for b in batches[:-1])
    assert d.rec_own == pytest.approx(own.item() / (32 * 6), rel=1e-6)
    # the swapped z is another sentence's: row i decoded with row i-1's code
    b = batches[0]
    mu = model.posterior(b)[0]
    swapped = model.reconstruction_loss(b, mu[[7, 0, 1, 2, 3, 4, 5, 6]]).sum()
    assert swapped.item() > model.reconstruction_loss(b, mu).sum().item()


def test_kl_mi_and_active_units_are_the_metric_functions():
    from cyclevae.evaluation import evaluate

    model, batches = _Toy(scale=5.0), _batches()
    d = diagnose(model, batches)
    reference = evaluate(model, batches)
    assert d.kl == pytest.approx(reference["kl"], rel=1e-9)
    assert d.mi == pytest.approx(reference["mi"], rel=1e-9)
    assert d.active_units == reference["active_units"]
    assert sum(d.kl_per_dim) == pytest.approx(d.kl, rel=1e-12)
    assert len(d.kl_per_dim) == len(d.mean_variance) == V


def test_deterministic_model_has_no_kl_or_mi_but_is_swap_tested():
    d = diagnose(_Deterministic(scale=5.0), _batches())
    assert d.kl is None and d.kl_per_dim is None and d.mi is None
    assert d.verdict == "uses z"
    text = diagnosis_markdown(d)
    assert "not defined" in text and "deterministic" in text


def test_learned_prior_is_used_for_kl_and_prior_mean():
    batches = _batches()
    model = _LearnedPrior(scale=5.0)
    d = diagnose(model, batches)
    plain = diagnose(_Toy(scale=5.0), batches)
    expected = torch.stack([model.kl_to_prior(b, *model.posterior(b)).sum(0)
                            for b in batches]).sum(0) / 33
    assert d.kl_per_dim == pytest.approx(expected.tolist(), rel=1e-6)
    assert d.kl != pytest.approx(plain.kl)
    at_mean = sum(model.reconstruction_loss(b, model.MEAN.expand(8, V)).sum()
                  for b in batches[:-1])
    assert d.rec_prior == pytest.approx(at_mean.item() / (32 * 6), rel=1e-6)
    assert d.rec_prior != pytest.approx(plain.rec_prior)
    assert "model.prior_params" in d.prior_label
    assert "z = 0" in plain.prior_label


@pytest.mark.parametrize("gap,verdict", [(0.0, "collapsed"), (COLLAPSED_BELOW / 2, "collapsed"),
                                         (COLLAPSED_BELOW, "partly collapsed"),
                                         (USES_Z_FROM / 2, "partly collapsed"),
                                         (USES_Z_FROM, "uses z"), (10.0, "uses z")])
def test_verdict_thresholds(gap, verdict):
    d = Diagnosis(stochastic=True, sentences=10, tokens=50, latent_dim=2, kl=1.0,
                  kl_per_dim=[0.5, 0.5], mi=0.5, active_units=1, mean_variance=[0.1, 0.0],
                  usage_sentences=10, usage_tokens=10, rec_own=0.0, rec_swap=gap,
                  rec_prior=0.5)
    assert d.verdict == verdict
    assert f"collapsed below {COLLAPSED_BELOW}" in d.verdict_line
    assert f"uses z from {USES_Z_FROM} nats/sentence" in d.verdict_line
    # the thresholds are per sentence: the same per-token gap over longer sentences is more
    longer = Diagnosis(**{**d.__dict__, "usage_tokens": 40})
    assert longer.swap_gap_sentence == pytest.approx(4 * gap)


def test_no_batch_of_two_is_a_user_error():
    from cyclevae.errors import UserError

    with pytest.raises(UserError, match="two or more"):
        diagnose(_Toy(scale=1.0), _batches()[-1:])


# ----------------------------------------------------------------------- trained runs
KINDS = {"vae": [], "savae": ["model.kind=savae", "model.svi.steps=2"],
         "svi": ["model.kind=svi", "model.svi.steps=2"], "ae": ["model.kind=ae"]}
KINDS = {k: v for k, v in KINDS.items() if k in MODEL_KINDS}


@pytest.fixture(scope="module")
def runs(ptb_slice, tmp_path_factory) -> dict[str, Path]:
    """One finished 1-epoch run of each sentence-model kind."""
    root = tmp_path_factory.mktemp("diagnose")
    out = {}
    for kind, extra in KINDS.items():
        config = load_config(None, small_overrides(ptb_slice, **{"train.epochs": 1,
                                                                 "schedule.n_cycles": 1,
                                                                 "train.iw_samples": 0})
                             + extra)
        Trainer(config, root / kind, progress=False).fit()
        out[kind] = root / kind
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_checkpoint_statistics_equal_the_runs_test_block(kind, runs, ptb_slice):
    run = runs[kind]
    saved = json.loads((run / "metrics.json").read_text())["test"]
    d = diagnose_checkpoint(run / "checkpoint_last.pt", data=str(ptb_slice / "test.txt"))
    assert d.sentences == saved["sentences"] and d.tokens == saved["tokens"]
    assert d.active_units == saved["active_units"]
    if saved.get("kl") is None:  # a deterministic model
        assert d.kl is None and d.mi is None
    else:
        assert d.kl == pytest.approx(saved["kl"], rel=1e-6, abs=1e-9)
        assert d.mi == pytest.approx(saved["mi"], rel=1e-6, abs=1e-9)
    assert all(math.isfinite(x) for x in (d.rec_own, d.rec_swap, d.rec_prior))
    assert d.verdict in ("collapsed", "partly collapsed", "uses z")


def test_cli_writes_markdown_and_figure(runs, ptb_slice, tmp_path, capsys):
    ckpt = runs["vae"] / "checkpoint_last.pt"
    out = tmp_path / "diag"
    assert main(["diagnose", str(ckpt), "--data", str(ptb_slice / "test.txt"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == (out / "diagnosis.md").read_text().strip()
    assert "**Verdict:" in printed and "nats/token" in printed
    assert (out / "kl_per_dim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


def test_cli_default_out_and_max_sentences(runs, ptb_slice, capsys):
    ckpt = runs["vae"] / "checkpoint_last.pt"
    assert main(["diagnose", str(ckpt), "--data", str(ptb_slice / "test.txt"),
                 "--max-sentences", "20"]) == 0
    text = (runs["vae"] / "diagnosis-checkpoint_last" / "diagnosis.md").read_text()
    assert "20 sentences" in text and "at most 20 sentences" in text
    capsys.readouterr()


@pytest.mark.parametrize("argv,message", [
    (["diagnose", "{tmp}/missing.pt"], "checkpoint not found"),
    (["diagnose", "{ckpt}", "--data", "{tmp}/missing.txt"], "missing.txt"),
    (["diagnose", "{ckpt}", "--max-sentences", "1"], "--max-sentences"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, runs, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, ckpt=runs["vae"] / "checkpoint_last.pt") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cyclevae: error:") and err.count("\n") == 1 and message in err
