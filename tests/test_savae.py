"""SA-VAE and SVI: the gradient through the SVI steps, reduction to the VAE, training, metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import REPO, small_overrides
from cyclevae.config import load_config
from cyclevae.data.batching import TextBatch
from cyclevae.errors import UserError
from cyclevae.evaluation import evaluate_model
from cyclevae.families import build_model, family_of
from cyclevae.losses import beta_vae_loss
from cyclevae.models import SemiAmortizedVAE, SVIConfig, SVIModel, TextVAE, VAEConfig
from cyclevae.ops import linear_cross_entropy
from cyclevae.training import Trainer

BETA = 0.7


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(svi: SVIConfig | None = None, *, dtype=torch.float64, kind=SemiAmortizedVAE,
         dropout: float = 0.3, init_range: float = 0.1):
    torch.manual_seed(0)
    config = VAEConfig(emb_dim=5, enc_hidden=6, dec_hidden=6, latent_dim=3,
                       dropout=dropout, init_range=init_range)
    if kind is TextVAE:
        return TextVAE(config, 11).to(dtype)
    return kind(config, 11, svi).to(dtype)


def tokens(batch: int = 4, length: int = 7, seed: int = 1) -> TextBatch:
    return TextBatch(torch.randint(0, 11, (batch, length),
                                   generator=torch.Generator().manual_seed(seed)))


def loss_of(model, x: torch.Tensor, beta: float = BETA) -> torch.Tensor:
    """The training loss with fixed noise (z samples and dropout masks)."""
    torch.manual_seed(5)
    out = model(x, beta=beta)
    return beta_vae_loss(out.rec, out.kl, beta)


def directional_check(model, x: torch.Tensor, params: list[torch.nn.Parameter]) -> tuple:
    """(analytic, central-difference) derivative of the loss along a random direction."""
    model.zero_grad(set_to_none=True)
    loss_of(model, x).backward()
    gen = torch.Generator().manual_seed(7)
    direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    analytic = sum((p.grad * d).sum() for p, d in zip(params, direction)).item()
    step = 1e-6
    values = []
    with torch.no_grad():
        for sign in (1, -1):
            for p, d in zip(params, direction):
                p.add_(sign * step * d)
            values.append(loss_of(model, x).item())
            for p, d in zip(params, direction):
                p.sub_(sign * step * d)
    return analytic, (values[0] - values[1]) / (2 * step)


# clipping active (max_grad_norm far below the gradients' norm), dropout on, momentum on
CHECKED = dict(steps=4, lr=1.0, momentum=0.5, max_grad_norm=0.02)


def test_clipping_is_active_in_the_checked_setting():
    x = tokens()
    a, b = tiny(SVIConfig(**CHECKED)), tiny(SVIConfig(**{**CHECKED, "max_grad_norm": 0.0}))
    a.eval(), b.eval()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    mu_a, _ = a.posterior(x, generator=gen())
    mu_b, _ = b.posterior(x, generator=gen())
    assert not torch.allclose(mu_a, mu_b)


@pytest.mark.parametrize("decoder_grad", [False, True], ids=["encoder", "encoder+decoder"])
@pytest.mark.parametrize("grad", ["fd", "exact"])
def test_gradient_through_the_steps_matches_finite_differences(grad, decoder_grad):
    """float64: the loss's derivative along random directions of the encoder's (and, when the
    decoder is trained through the steps, the decoder's) weights equals central differences
    of the whole pipeline (same z noise and dropout masks)."""
    model = tiny(SVIConfig(**CHECKED, grad=grad, decoder_grad=decoder_grad))
    x = tokens()
    groups = [list(model.encoder.parameters())]
    if decoder_grad:
        groups.append(list(model.decoder.parameters()))
    for params in groups:
        analytic, numeric = directional_check(model, x, params)
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("decoder_grad", [False, True], ids=["encoder", "encoder+decoder"])
def test_finite_difference_backward_equals_exact_backward(decoder_grad):
    x = tokens()
    grads = {}
    for grad in ("fd", "exact"):
        model = tiny(SVIConfig(**CHECKED, grad=grad, decoder_grad=decoder_grad))
        loss_of(model, x).backward()
        grads[grad] = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads["fd"], grads["exact"], rtol=1e-6, atol=1e-10)


def test_float32_finite_differences_stay_close_to_exact():
    """The finite-difference step suits float32 (reference: exact, float64, same noise)."""
    x = tokens(batch=8, length=9)
    grads = {}
    for grad, dtype in (("fd", torch.float32), ("exact", torch.float64)):
        model = tiny(SVIConfig(steps=10, grad=grad, decoder_grad=True), dtype=dtype, dropout=0.0)
        torch.manual_seed(5)  # the SVI noise is drawn in float32 whatever the dtype
        out = model(x, beta=BETA, sample=False)
        beta_vae_loss(out.rec, out.kl, BETA).backward()
        grads[grad] = torch.cat([p.grad.flatten().double() for p in model.parameters()])
    error = (grads["fd"] - grads["exact"]).norm() / grads["exact"].norm()
    assert error < 1e-3


def test_zero_steps_is_exactly_the_vae():
    vae = tiny(kind=TextVAE, dtype=torch.float32)
    savae = tiny(SVIConfig(steps=0), dtype=torch.float32)
    savae.load_state_dict(vae.state_dict())
    x = tokens()
    torch.manual_seed(9)
    a = vae(x)
    torch.manual_seed(9)
    b = savae(x, beta=BETA)
    for field in ("rec", "kl", "kl_per_dim", "mu", "logvar", "z"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    beta_vae_loss(a.rec, a.kl, BETA).backward()
    beta_vae_loss(b.rec, b.kl, BETA).backward()
    for (name, p), q in zip(vae.named_parameters(), savae.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_fused_output_op_refuses_second_derivatives():
    """Its backward uses a saved softmax: a create_graph pass through it must fail loudly."""
    h = torch.randn(6, 4, requires_grad=True)
    w, b = torch.randn(9, 4, requires_grad=True), torch.zeros(9, requires_grad=True)
    nll = linear_cross_entropy(h, w, b, torch.randint(0, 9, (6,)))
    (g,) = torch.autograd.grad(nll.sum(), h, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_refinement_raises_the_elbo():
    """Refined q beats the amortized q on the ELBO (many samples, fixed model, eval mode)."""
    model = tiny(SVIConfig(steps=20, lr=1.0), init_range=0.5)
    model.eval()
    x = tokens(batch=4, length=6)
    refined = model.posterior(x, generator=torch.Generator().manual_seed(0))

    def elbo(mu, logvar):
        gen = torch.Generator().manual_seed(1)
        eps = torch.randn(256, *mu.shape, generator=gen, dtype=mu.dtype)
        z = (mu + (0.5 * logvar).exp() * eps).reshape(-1, mu.shape[1])
        with torch.no_grad():
            rec = model.reconstruction_loss(x.repeat(256), z).mean()
        return -(rec + 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()).item()

    with torch.no_grad():
        amortized = model.amortized_posterior(x)
    assert elbo(*refined) > elbo(*amortized) + 0.01


def test_evaluation_with_the_refined_q_is_pure_and_repeatable():
    model = tiny(SVIConfig(steps=3), dtype=torch.float32)
    batches = [tokens(4, 6, seed=s) for s in range(3)]

    def run():
        gen = torch.Generator().manual_seed(0)
        return evaluate_model(model, batches, iw_samples=4, iw_chunk=2,
                              posterior=lambda t: model.posterior(t, generator=gen))

    state = torch.get_rng_state()
    first, second = run(), run()
    assert first == second
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training  # mode restored
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    amortized = evaluate_model(model, batches, iw_samples=4, iw_chunk=2,
                               posterior=model.amortized_posterior)
    assert first["kl"] != amortized["kl"]
    assert all(math.isfinite(v) for v in first.values())


def test_svi_kind_trains_its_decoder():
    model = tiny(SVIConfig(steps=5), kind=SVIModel, dtype=torch.float32, dropout=0.0)
    assert not any(name.startswith("encoder") for name in model.state_dict())
    x = tokens(batch=8, length=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = loss_of(model, x, beta=1.0)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0
    assert not model.has_amortized_posterior and model.posterior_kind == "refined"
    with pytest.raises(NotImplementedError):
        model.amortized_posterior(x)
    model.refiner.config.steps = 0  # no steps: the posterior is the prior's parameters
    mu, logvar = model.posterior(x)
    assert torch.equal(mu, torch.zeros_like(mu)) and torch.equal(logvar, torch.zeros_like(mu))


def test_config_kinds_and_build_model():
    assert type(build_model(load_config(None, ["model.kind=savae"]).model, 20)) is SemiAmortizedVAE
    svi = build_model(load_config(None, ["model.kind=svi", "model.svi.steps=3"]).model, 20)
    assert type(svi) is SVIModel and svi.svi.steps == 3
    assert type(build_model(load_config(None, []).model, 20)) is TextVAE
    for override, fragment in [("model.svi.grad=adjoint", "model.svi.grad"),
                               ("model.svi.steps=-1", "model.svi.steps"),
                               ("model.svi.momentum=1.0", "model.svi.momentum"),
                               ("model.svi_steps=3", "renamed: use 'model.svi.steps'"),
                               ("model.vocab_size=5", "comes from the training data")]:
        with pytest.raises(UserError, match="config: |--set: "):
            load_config(None, [override])
        with pytest.raises(UserError) as exc:
            load_config(None, [override])
        assert fragment in str(exc.value)
    # the kind and a family's own rules are the registry's: checked before anything is built
    with pytest.raises(UserError) as exc:
        family_of(load_config(None, ["model.kind=iwae"]))
    assert "config: model.kind must be 'vae' or 'ae' or 'savae' or 'svi'" in str(exc.value)
    with pytest.raises(UserError, match="model.svi.steps must be >= 1"):
        family_of(load_config(None, ["model.kind=svi", "model.svi.steps=0"]))


def test_trainer_reports_refined_and_amortized_blocks(ptb_slice, tmp_path):
    overrides = small_overrides(ptb_slice, **{
        "model.kind": "savae", "model.svi.steps": 2, "train.epochs": 1,
        "schedule.n_cycles": 1, "train.num_threads": 1})
    metrics = Trainer(load_config(None, overrides), tmp_path / "run", progress=False).fit()
    for block in ("test", "valid", "test_amortized", "valid_amortized"):
        assert math.isfinite(metrics[block]["elbo"]), block
    assert "iw_nll" in metrics["test"] and "iw_nll" not in metrics["test_amortized"]
    assert metrics["test"]["kl"] != metrics["test_amortized"]["kl"]
    assert set(metrics["best"]) >= {"test", "test_amortized"}
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test_amortized"] == metrics["test_amortized"]
    epochs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text()
              .splitlines() if '"kind": "epoch"' in line]
    assert {"valid", "valid_amortized", "test", "test_amortized"} <= set(epochs[0])


def test_ptb_report_has_the_sa_vae_rows_and_their_best_epoch(tmp_path):
    from cyclevae.experiments.ptb import ROWS, write_ptb_report

    assert {"savae-monotonic", "savae-cyclical"} <= set(ROWS)
    config = load_config(REPO / "configs" / "ptb" / "savae-monotonic.yaml")
    assert config.model.kind == "savae" and config.model.svi.steps == 10
    run = tmp_path / "savae-monotonic"
    run.mkdir()
    block = {"rec": 100.0, "kl": 2.0, "elbo": -102.0, "ppl": 108.0}
    metrics = {"epochs": 40, "seconds_per_epoch": 1000.0, "config": config.to_dict(),
               "test": block, "test_amortized": {**block, "kl": 1.25},
               "best": {"epoch": 17, "test": {**block, "rec": 99.5}},
               "git_commit": None, "torch": torch.__version__, "num_threads": 2}
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_ptb_report(tmp_path, rows=["savae-monotonic"], seeds=[0])
    report = (tmp_path / "report.md").read_text()
    assert "ours (best epoch 17)" in report and "99.5" in report
    assert "| ours, amortized q (before SVI) |" in report and "1.25" in report
    assert "SA-VAE, M (best epoch)" in report and "472" in report
    assert "precision fp32; IW-NLL with K = 500" in report  # what the IW columns mean
