"""Semi-amortized VAE (Kim, Wiseman, Miller, Sontag and Rush 2018) and plain SVI.

SA-VAE: the encoder's variational parameters lambda_0 = (mu, logvar) are the starting point of
K steps of stochastic variational inference (SVI) on the ELBO of the current batch, and the
decoder is trained on the refined lambda_K. The encoder is trained end to end, through the K
steps: d loss / d lambda_0 follows every SVI update back to the encoder's output. With
``decoder_grad`` the decoder's weights theta also get the gradient through the steps (the
updates depend on theta), as in Kim et al.'s algorithm 1 and code; that costs two more
[N, V] x [V, H] products per step (about 1.4x the time), so by default the decoder is
trained on lambda_K only.

One SVI step, in Kim et al.'s conventions (their ``OptimN2N`` and ``train_text.py``): with
eps_k ~ N(0, I) and z_k = mu_k + exp(logvar_k / 2) * eps_k,

    f_k(lambda) = mean over the batch of [-log p(x|z_k) + beta * KL(q_lambda || p)]
    g_k = grad_lambda f_k, clipped to norm ``max_grad_norm`` (mu and logvar separately, the
          norm taken over the whole [B, D] batch tensor)
    m_k = momentum * m_{k-1} + g_k,      lambda_{k+1} = lambda_k - lr * m_k

Because f_k is a batch *mean*, a sentence's own step is ``lr / B`` times the gradient of its
own ELBO (Kim et al.'s lr = 1 with B = 32). Each step uses its own z noise and, in training,
its own decoder dropout masks (replayed exactly wherever the step is re-evaluated; drawn as
uniform >= p, the law of :class:`torch.nn.Dropout` at a quarter of its cost on CPU).

Two ways to send the gradient back through the steps (``grad``):

- ``fd`` (default): an autograd Function runs the steps with first-order gradients only and,
  in its backward, walks them in reverse; each step's Hessian-vector products (with respect to
  lambda, and to theta with ``decoder_grad``) come from a one-sided finite difference of the
  gradient, as in Kim et al., with the gradient at the unperturbed point stored during the
  forward pass (the step moves the largest coordinate by sqrt(machine epsilon) x
  max(1, |lambda|)). The derivative of the norm clipping is applied exactly. Every decoder pass
  uses the fused output projection + cross-entropy (:func:`cyclevae.ops.linear_cross_entropy`)
  and, without ``decoder_grad``, skips the weight gradients: a training step costs 20 decoder
  passes with gradients to z only, plus one ordinary one.
- ``exact``: the steps are unrolled in autograd with ``create_graph=True`` and differentiated
  exactly. The decoder's loss is then written with materialised logits (the fused op has no
  second derivative), which costs more time and memory; kept as the reference.

Measured with ``benchmarks/savae_speed.py`` (PTB, paper sizes, 10 steps, float32, beside the
plain VAE in the same run, one thread): ``fd`` takes 11.8x the VAE's time per step (61% of the
GEMM peak on its FLOPs), ``fd`` with ``decoder_grad`` 16.2x, ``exact`` 21.4x; the float32
``fd`` gradient of the encoder is within 1e-4 (relative) of the float64 exact one (``exact``
in float32: 4e-7). Hence ``fd`` by default.

SVI (``kind: svi``): no encoder; lambda starts at 0 (the prior) for every sentence, and the
refined lambda_K is a constant for the decoder's update (Kim et al.'s ``--model svi``).

Both are compositions: a decoder (with, for SA-VAE, the VAE's encoder) and an
:class:`SVIRefiner`, which holds the SVI update, written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.batching import TextBatch
from ..errors import UserError, check_fields
from ..losses import gaussian_kl
from .base import Gaussian, ModelOutput, init_uniform_
from .vae import SentenceModel, TextVAE, VAEConfig, build_sentence_decoder

__all__ = ["SVIConfig", "SVIModel", "SVIRefiner", "SemiAmortizedVAE"]


@dataclass
class SVIConfig:
    """The refinement: ``steps`` SVI steps of SGD with momentum on the batch-mean ELBO.

    Defaults are Kim et al.'s text settings (``--svi_lr1 1 --momentum 0.5 --max_grad_norm 5``)
    with the 10 steps of the cyclical-annealing paper. ``grad``: ``fd`` or ``exact`` (module
    docstring). ``max_grad_norm = 0`` disables the clipping. ``decoder_grad``: the decoder's
    weights also get the gradient through the steps (Kim et al.'s code does; about 1.4x the
    time); by default they are trained on the refined lambda_K only, and only the encoder is
    trained through the steps.
    """

    steps: int = 10
    #: learning rate of the SVI steps
    lr: float = 1.0
    #: momentum of the SVI steps
    momentum: float = 0.5
    #: gradient-norm clipping of each SVI step (0 disables)
    max_grad_norm: float = 5.0
    grad: str = "fd"
    decoder_grad: bool = False

    def validate(self, prefix: str = "model.svi", min_steps: int = 0) -> None:
        """Raise :class:`UserError` naming the first out-of-range field (``prefix.field``)."""
        check_fields(self, prefix, [
            (self.steps >= min_steps, "steps", f">= {min_steps}"),
            (self.lr > 0, "lr", "> 0"),
            (0.0 <= self.momentum < 1.0, "momentum", "in [0, 1)"),
            (self.max_grad_norm >= 0, "max_grad_norm", ">= 0 (0 disables clipping)"),
            (self.grad in ("fd", "exact"), "grad", "'fd' or 'exact'"),
        ])


# ----------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Parameters temporarily not requiring grad, so autograd skips their gradients."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class _FastDropout(nn.Module):
    """Inverted dropout with the same law as :class:`torch.nn.Dropout` but its mask drawn as
    ``uniform >= p`` (3-4x faster than ``bernoulli_`` on CPU). Used for the SVI steps only."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


@contextlib.contextmanager
def _fast_dropout(decoder: nn.Module) -> Iterator[None]:
    """The decoder's ``dropout`` module swapped for :class:`_FastDropout` (if it is a plain
    :class:`torch.nn.Dropout`), put back afterwards."""
    original = decoder.dropout
    if type(original) is not nn.Dropout:
        yield
        return
    fast = _FastDropout(original.p)
    fast.train(original.training)
    decoder.dropout = fast
    try:
        yield
    finally:
        decoder.dropout = original


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextlib.contextmanager
def _replay_rng(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device
                ) -> Iterator[None]:
    """Run with the global RNG as it was at ``state``, and put it back afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


def _clip_coef(g: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Kim et al.'s clip factor min(1, max_norm / (||g|| + 1e-6)) (a 0-d tensor)."""
    return (max_norm / (g.norm() + 1e-6)).clamp(max=1.0)


def _clip(g: torch.Tensor, max_norm: float) -> torch.Tensor:
    return g if max_norm <= 0 else g * _clip_coef(g, max_norm)


def _clip_vjp(g: torch.Tensor, adjoint: torch.Tensor, max_norm: float) -> torch.Tensor:
    """adjoint^T d clip(g) / dg, exactly (clip(g) = g * min(1, c / (||g|| + 1e-6)))."""
    if max_norm <= 0:
        return adjoint
    norm = g.norm()
    if max_norm / (norm + 1e-6) >= 1.0:
        return adjoint
    scale = max_norm / (norm + 1e-6)
    # d/dg [c g / (n + d)] = c/(n + d) I - c g g^T / ((n + d)^2 n)
    return scale * adjoint - (scale / ((norm + 1e-6) * norm.clamp_min(1e-30))) * (
        g * adjoint).sum() * g


def _twice_differentiable_rec(decoder: nn.Module, tokens: torch.Tensor,
                              z: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per sentence with materialised logits (differentiable twice)."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    out, _ = decoder.hidden_states(inputs, z)
    logits = decoder.output(out)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                          reduction="none")
    return nll.view(targets.shape).sum(dim=1)


# ----------------------------------------------------------------------- the SVI loop
class _SVIRun:
    """One refinement of one batch: the K steps forward and, for ``fd``, their reverse.

    Args:
        decoder: the model's decoder (its train/eval mode decides the dropout).
        tokens: ``[B, L+1]``.
        eps: ``[K, B, D]`` the z noise of every step.
        beta: KL weight of the SVI objective.
        svi: step settings.
        params: decoder weights whose gradient through the steps is wanted (empty: none).
    """

    def __init__(self, decoder: nn.Module, tokens: torch.Tensor, eps: torch.Tensor, beta: float,
                 svi: SVIConfig, params: list[nn.Parameter]) -> None:
        self.decoder = decoder
        self.tokens = tokens
        self.eps = eps
        self.beta = beta
        self.svi = svi
        self.params = params
        self.device = tokens.device
        # per step: lambda_k, raw gradient g_k, decoder-weight gradient, dropout RNG state
        self.lambdas: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.grads: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.param_grads: list[list[torch.Tensor | None]] = []
        self.rng: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def loss(self, k: int, mu: torch.Tensor, logvar: torch.Tensor, *,
             twice_differentiable: bool = False) -> torch.Tensor:
        """f_k: batch mean of rec + beta * KL at ``(mu, logvar)`` with step k's noise."""
        z = mu + (0.5 * logvar).exp() * self.eps[k]
        if twice_differentiable:
            rec = _twice_differentiable_rec(self.decoder, self.tokens, z)
        else:
            rec = self.decoder.reconstruction_loss(self.tokens, z)
        kl = gaussian_kl(mu, logvar)
        return (rec.to(mu.dtype).sum() + self.beta * kl.sum()) / mu.shape[0]

    def _gradients(self, k: int, mu: torch.Tensor, logvar: torch.Tensor, with_params: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        mu = mu.detach().requires_grad_(True)
        logvar = logvar.detach().requires_grad_(True)
        params = self.params if with_params else []
        with contextlib.ExitStack() as stack:
            if not with_params:
                stack.enter_context(_frozen(list(self.decoder.parameters())))
            stack.enter_context(_fast_dropout(self.decoder))
            loss = self.loss(k, mu, logvar)
            grads = torch.autograd.grad(loss, [mu, logvar, *params], allow_unused=True)
        g_mu = grads[0] if grads[0] is not None else torch.zeros_like(mu)
        g_lv = grads[1] if grads[1] is not None else torch.zeros_like(logvar)
        return g_mu, g_lv, list(grads[2:])

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor, *, record: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The K steps from ``(mu, logvar)`` (detached, float32); ``record`` keeps what the
        finite-difference backward needs (including the decoder-weight gradients)."""
        svi = self.svi
        m_mu = m_lv = None
        for k in range(svi.steps):
            if record:
                self.rng.append(_rng_state(self.device))
            g_mu, g_lv, g_params = self._gradients(k, mu, logvar, with_params=record and
                                                   bool(self.params))
            if record:
                self.lambdas.append((mu, logvar))
                self.grads.append((g_mu, g_lv))
                self.param_grads.append(g_params)
            c_mu, c_lv = _clip(g_mu, svi.max_grad_norm), _clip(g_lv, svi.max_grad_norm)
            m_mu = c_mu if m_mu is None else svi.momentum * m_mu + c_mu
            m_lv = c_lv if m_lv is None else svi.momentum * m_lv + c_lv
            mu, logvar = mu - svi.lr * m_mu, logvar - svi.lr * m_lv
        return mu, logvar

    def backward(self, a_mu: torch.Tensor, a_lv: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        """Reverse of :meth:`forward`: d loss / d lambda_0 and d loss / d theta through the steps,
        given d loss / d lambda_K. Hessian-vector products by one-sided finite differences."""
        svi = self.svi
        am_mu, am_lv = torch.zeros_like(a_mu), torch.zeros_like(a_lv)
        theta: list[torch.Tensor | None] = [None] * len(self.params)
        rel_step = torch.finfo(a_mu.dtype).eps ** 0.5
        for k in reversed(range(svi.steps)):
            # lambda_{k+1} = lambda_k - lr m_k,  m_k = momentum m_{k-1} + clip(g_k)
            am_mu = am_mu - svi.lr * a_mu
            am_lv = am_lv - svi.lr * a_lv
            g_mu, g_lv = self.grads[k]
            v_mu = _clip_vjp(g_mu, am_mu, svi.max_grad_norm)
            v_lv = _clip_vjp(g_lv, am_lv, svi.max_grad_norm)
            am_mu, am_lv = svi.momentum * am_mu, svi.momentum * am_lv
            size = torch.maximum(v_mu.abs().max(), v_lv.abs().max()).item()
            if size == 0.0:
                continue
            mu, logvar = self.lambdas[k]
            scale = max(1.0, mu.abs().max().item(), logvar.abs().max().item())
            h = rel_step * scale / size  # the largest coordinate moves by rel_step * scale
            with _replay_rng(self.rng[k], self.device):
                p_mu, p_lv, p_params = self._gradients(k, mu + h * v_mu, logvar + h * v_lv,
                                                       with_params=bool(self.params))
            # lambda_k also reaches lambda_{k+1} directly (identity), kept in a_mu / a_lv
            a_mu = a_mu + (p_mu - g_mu) / h
            a_lv = a_lv + (p_lv - g_lv) / h
            for i, (p_grad, g_grad) in enumerate(zip(p_params, self.param_grads[k])):
                if p_grad is None or g_grad is None:
                    continue
                diff = (p_grad - g_grad).div_(h)
                theta[i] = diff if theta[i] is None else theta[i].add_(diff)
        return a_mu, a_lv, theta


class _UnrolledSVI(torch.autograd.Function):
    """lambda_0 (and theta) -> lambda_K with the finite-difference backward of :class:`_SVIRun`."""

    @staticmethod
    def forward(ctx, run: _SVIRun, mu: torch.Tensor, logvar: torch.Tensor,  # type: ignore[override]
                *params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = run.eps.dtype
        with torch.enable_grad():
            mu_k, logvar_k = run.forward(mu.detach().to(dtype), logvar.detach().to(dtype),
                                         record=True)
        ctx.run = run
        ctx.dtypes = (mu.dtype, logvar.dtype)
        return mu_k, logvar_k

    @staticmethod
    def backward(ctx, a_mu: torch.Tensor, a_lv: torch.Tensor):  # type: ignore[override]
        run: _SVIRun = ctx.run
        with torch.enable_grad(), torch.autocast(run.device.type, enabled=False):
            g_mu, g_lv, theta = run.backward(a_mu.to(run.eps.dtype), a_lv.to(run.eps.dtype))
        ctx.run = None  # free the stored steps
        return (None, g_mu.to(ctx.dtypes[0]), g_lv.to(ctx.dtypes[1]), *theta)


def _exact_unroll(run: _SVIRun, mu: torch.Tensor, logvar: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The K steps in autograd with ``create_graph=True``: exact gradients through the steps
    to lambda_0 (and to the decoder's weights, unless they are frozen by the caller).

    On CUDA the steps' LSTM runs without cuDNN, whose LSTM has no double backward (PyTorch's
    native kernels do); the graph keeps that choice for the backward pass."""
    cudnn = torch.backends.cudnn
    with cudnn.flags(enabled=cudnn.enabled and not mu.is_cuda, benchmark=cudnn.benchmark,
                     deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32):
        return _exact_steps(run, mu, logvar)


def _exact_steps(run: _SVIRun, mu: torch.Tensor, logvar: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    svi = run.svi
    m_mu = m_lv = None
    for k in range(svi.steps):
        if not mu.requires_grad:
            mu = mu.detach().requires_grad_(True)
        if not logvar.requires_grad:
            logvar = logvar.detach().requires_grad_(True)
        with _fast_dropout(run.decoder):
            loss = run.loss(k, mu, logvar, twice_differentiable=True)
        g_mu, g_lv = torch.autograd.grad(loss, [mu, logvar], create_graph=True)
        c_mu, c_lv = _clip(g_mu, svi.max_grad_norm), _clip(g_lv, svi.max_grad_norm)
        m_mu = c_mu if m_mu is None else svi.momentum * m_mu + c_mu
        m_lv = c_lv if m_lv is None else svi.momentum * m_lv + c_lv
        mu, logvar = mu - svi.lr * m_mu, logvar - svi.lr * m_lv
    return mu, logvar


# ----------------------------------------------------------------------- the refiner
class SVIRefiner:
    """K SVI steps on a batch's objective for a given decoder: the SVI update of this module.

    Args:
        config: the step settings (:class:`SVIConfig`, checked by its own ``validate``).
        latent_dim: D.
    """

    def __init__(self, config: SVIConfig, latent_dim: int) -> None:
        config.validate("svi")
        self.config = config
        self.latent_dim = latent_dim

    def _noise(self, batch: int, like: torch.Tensor, generator: torch.Generator | None
               ) -> torch.Tensor:
        shape = (self.config.steps, batch, self.latent_dim)
        if generator is None:
            return torch.randn(shape, device=like.device)
        return torch.randn(shape, generator=generator, device=generator.device).to(like.device)

    def refine(
        self,
        decoder: nn.Module,
        tokens: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        *,
        beta: float = 1.0,
        generator: torch.Generator | None = None,
        differentiable: bool | None = None,
    ) -> Gaussian:
        """K SVI steps from ``(mu, logvar)`` on the batch ``tokens [B, L+1]``; returns lambda_K.

        Args:
            decoder: the model's decoder (its train/eval mode decides the dropout).
            beta: KL weight of the SVI objective (1: the ELBO).
            generator: source of the z noise (None: the global RNG). Dropout follows the
                decoder's mode and draws from the global RNG.
            differentiable: keep the gradient path back to ``(mu, logvar)`` and (with
                ``decoder_grad``) the decoder's weights (default: when grad mode is on and
                ``mu`` requires grad).
        Works under ``torch.no_grad()`` (the steps need gradients and enable them inside).
        """
        svi = self.config
        if svi.steps == 0:
            return mu, logvar
        if differentiable is None:
            differentiable = torch.is_grad_enabled() and (mu.requires_grad or
                                                          logvar.requires_grad)
        # the steps run in float32 at least (float64 models stay float64)
        dtype = torch.promote_types(mu.dtype, torch.float32)
        eps = self._noise(mu.shape[0], mu, generator).to(dtype)
        params = ([p for p in decoder.parameters() if p.requires_grad]
                  if svi.decoder_grad else [])
        device_type = tokens.device.type
        if differentiable and svi.grad == "exact":
            run = _SVIRun(decoder, tokens, eps, beta, svi, params)
            frozen = [] if params else list(decoder.parameters())
            with torch.enable_grad(), _frozen(frozen):
                return _exact_unroll(run, mu.to(dtype), logvar.to(dtype))
        if differentiable:
            run = _SVIRun(decoder, tokens, eps, beta, svi, params)
            # finite differences need float32 gradients: no autocast inside the steps
            with torch.autocast(device_type, enabled=False):
                return _UnrolledSVI.apply(run, mu, logvar, *params)
        run = _SVIRun(decoder, tokens, eps, beta, svi, [])
        with torch.enable_grad(), torch.autocast(device_type, enabled=False):
            mu_k, logvar_k = run.forward(mu.detach().to(dtype), logvar.detach().to(dtype),
                                         record=False)
        return mu_k.detach(), logvar_k.detach()


# ----------------------------------------------------------------------- the models
def _require_lstm_decoder(config: VAEConfig) -> None:
    """The SVI steps run the LSTM decoder's own passes (its ``hidden_states``, ``output`` and
    ``dropout``): another decoder is a :class:`UserError`."""
    if config.decoder != "lstm":
        raise UserError(f"config: model.decoder must be 'lstm' for model.kind savae and svi "
                        f"(the SVI steps need the LSTM decoder), got {config.decoder!r}")


class SemiAmortizedVAE(TextVAE):
    """:class:`~cyclevae.models.vae.TextVAE` whose q(z|x) is refined by K SVI steps, trained
    through them.

    :meth:`amortized_posterior` is the encoder's q (before refinement), :meth:`posterior` the
    refined one (reported by the evaluation); :meth:`forward` builds its
    :class:`~cyclevae.models.base.ModelOutput` on the refined parameters and uses the training
    beta as the KL weight of the SVI objective too.
    """

    posterior_kind = "refined"

    def __init__(self, config: VAEConfig, vocab_size: int, svi: SVIConfig | None = None
                 ) -> None:
        _require_lstm_decoder(config)
        super().__init__(config, vocab_size)
        self.refiner = SVIRefiner(svi or SVIConfig(), config.latent_dim)

    @property
    def svi(self) -> SVIConfig:
        """The refinement's settings."""
        return self.refiner.config

    def posterior(self, batch: TextBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """The refined q(z|x): K SVI steps on the ELBO from the encoder's q, detached (usable
        under ``torch.no_grad()``; only the z noise draws from ``generator``, and in eval mode
        nothing else is random)."""
        with torch.no_grad():
            mu, logvar = self.amortized_posterior(batch)
        return self.refiner.refine(self.decoder, batch.tokens, mu, logvar, generator=generator,
                                   differentiable=False)

    def forward(self, batch: TextBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """One training pass: lambda_0 -> K SVI steps (objective rec + ``beta`` KL) ->
        lambda_K -> one z per sentence (the mean if ``sample=False``) -> decoder."""
        mu0, logvar0 = self.amortized_posterior(batch)
        mu, logvar = self.refiner.refine(self.decoder, batch.tokens, mu0, logvar0, beta=beta)
        return self.output(batch, mu, logvar, sample=sample)


class SVIModel(SentenceModel):
    """A decoder trained with plain SVI: lambda_0 = 0 (the prior) for every sentence, no
    encoder; the refined lambda_K is a constant for the decoder's update (Kim et al.'s
    ``--model svi``)."""

    posterior_kind = "refined"
    has_amortized_posterior = False

    def __init__(self, config: VAEConfig, vocab_size: int, svi: SVIConfig | None = None
                 ) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
        _require_lstm_decoder(config)
        self.config = config
        self.latent_dim = config.latent_dim
        self.decoder = build_sentence_decoder(config, vocab_size)
        self.refiner = SVIRefiner(svi or SVIConfig(), config.latent_dim)
        init_uniform_(self, config.init_range)

    @property
    def svi(self) -> SVIConfig:
        """The refinement's settings."""
        return self.refiner.config

    def _refined(self, batch: TextBatch, beta: float, generator: torch.Generator | None
                 ) -> Gaussian:
        zeros = torch.zeros(batch.num_examples, self.latent_dim, device=batch.device)
        return self.refiner.refine(self.decoder, batch.tokens, zeros, zeros.clone(), beta=beta,
                                   generator=generator, differentiable=False)

    def posterior(self, batch: TextBatch, *, generator: torch.Generator | None = None
                  ) -> Gaussian:
        """K SVI steps on the ELBO from the prior's parameters (detached)."""
        return self._refined(batch, 1.0, generator)

    def forward(self, batch: TextBatch, *, beta: float = 1.0, sample: bool = True
                ) -> ModelOutput:
        """One training pass: K SVI steps from the prior (objective rec + ``beta`` KL), then
        the decoder on one z per sentence from lambda_K."""
        mu, logvar = self._refined(batch, beta, None)
        return self.output(batch, mu, logvar, sample=sample)
