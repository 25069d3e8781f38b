"""The CUDA path (marked ``cuda``): these tests skip where ``torch.cuda.is_available()`` is
False and run, collected like any other test, on a machine with an NVIDIA GPU
(``pytest -m cuda``; ``benchmarks/gpu_check.sh`` runs them there).

What they check: a tiny PTB training run on ``cuda`` gives finite metrics and its checkpoint
resumes on a machine without a GPU; the fused output layer and the products of
:mod:`cyclevae.ops` give the CPU's values on CUDA to float32 rounding; the evaluation of a
model on CUDA equals its evaluation on CPU; bf16 autocast on CUDA; DistributedDataParallel on
the NCCL backend in one ``torchrun`` process; the Yelp (CNN encoder, autoencoder), dialog
(CVAE) and SA-VAE models' forward and backward on CUDA.

Comparisons "to float32 rounding" run with TF32 off (:func:`full_fp32`): PyTorch's default
lets cuDNN's LSTMs and convolutions use TF32 (a 10-bit mantissa) in float32, which is not
float32 rounding; one evaluation test runs with the defaults and a tolerance for TF32.

Run as a script under ``torchrun`` (``torchrun --nproc-per-node 1 tests/test_cuda.py
nccl-smoke OUT.json``) it is the NCCL smoke test's child process.
"""

from __future__ import annotations

import copy
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REASON = ("no CUDA device (torch.cuda.is_available() is False): the CUDA path runs only on a "
          "machine with an NVIDIA GPU (benchmarks/gpu_check.sh)")
pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not torch.cuda.is_available(), reason=REASON)]
needs_bf16 = pytest.mark.skipif(  # (without CUDA the module's own reason applies)
    torch.cuda.is_available() and not torch.cuda.is_bf16_supported(),
    reason="this CUDA device has no bf16 support (torch.cuda.is_bf16_supported() is False)")

REPO = Path(__file__).resolve().parents[1]
TEST_KEYS = ("rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "marginal_kl")
#: float32 comparisons: |cuda - cpu| <= FP32_TOL * max |cpu| (see test_fused_output_layer...)
FP32_TOL = 1e-5


@pytest.fixture
def full_fp32():
    """TF32 off in cuBLAS and cuDNN for the test (restored after): float32 means float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def assert_fp32_close(ours: torch.Tensor, reference: torch.Tensor, what: str,
                      tol: float = FP32_TOL) -> None:
    """``ours`` (any device) equals ``reference`` to ``tol`` of the reference's largest
    magnitude, entry by entry."""
    ours, reference = ours.detach().cpu().double(), reference.detach().cpu().double()
    assert ours.shape == reference.shape, what
    scale = reference.abs().max().item()
    worst = (ours - reference).abs().max().item()
    assert worst <= tol * max(scale, 1e-30), f"{what}: max |diff| {worst:.3g}, scale {scale:.3g}"


def sentences(vocab: int, rows: int, length: int, seed: int):
    """A :class:`~cyclevae.data.batching.TextBatch` of ``rows`` random sentences of
    ``length`` words (``<s> w .. </s>``)."""
    from cyclevae.data.batching import TextBatch

    g = torch.Generator().manual_seed(seed)
    words = torch.randint(4, vocab, (rows, length), generator=g)
    return TextBatch(torch.cat([torch.ones(rows, 1, dtype=torch.long), words,
                                torch.full((rows, 1), 2, dtype=torch.long)], 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 240
        ) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# ------------------------------------------------------------------ training and resuming
def test_tiny_training_run_on_cuda_gives_finite_metrics(ptb_slice, tmp_path):
    from conftest import small_overrides

    from cyclevae.config import load_config
    from cyclevae.training import Trainer

    trainer = Trainer(load_config(None, small_overrides(ptb_slice, **{"train.device": "cuda"})),
                      tmp_path / "run", progress=False)
    assert trainer.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    metrics = trainer.fit()
    assert metrics["device"].startswith("cuda") and metrics["epochs"] == 2
    for split in ("valid", "test"):
        keys = [k for k in TEST_KEYS if k in metrics[split]]
        assert all(math.isfinite(metrics[split][k]) for k in keys), (split, metrics[split])
    assert {"iw_nll", "mi"} <= set(metrics["test"])
    assert metrics["test"]["iw_nll"] <= metrics["test"]["rec"] + metrics["test"]["kl"] + 1.0
    assert math.isfinite(metrics["train"]["rec"]) and metrics["skipped_batches"] == 0


def test_checkpoint_of_a_cuda_run_resumes_on_cpu(ptb_slice, tmp_path):
    """A run with ``train.device: auto`` trained on the GPU, interrupted mid-epoch, continues
    in a process that sees no GPU (``CUDA_VISIBLE_DEVICES=""``) and finishes on the CPU."""
    from conftest import small_overrides, stop_after_step

    from cyclevae.config import load_config
    from cyclevae.training import LAST, Trainer, TrainingInterrupted

    out = tmp_path / "run"
    trainer = Trainer(load_config(None, small_overrides(ptb_slice, **{"train.device": "auto"})),
                      out, progress=False)
    assert trainer.device.type == "cuda"
    total_steps = 2 * trainer.steps_per_epoch
    stop_after_step(trainer, 3)  # mid-epoch 1
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    saved = torch.load(out / LAST, map_location="cpu", weights_only=True)  # tensors and plain data
    assert 0 < saved["progress"]["global_step"] < trainer.steps_per_epoch  # mid-epoch 1
    run([sys.executable, "-m", "cyclevae", "train", "--resume", "--out", str(out),
         "--no-progress"], {"CUDA_VISIBLE_DEVICES": ""})
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cpu" and metrics["steps"] == total_steps
    assert all(math.isfinite(metrics["test"][k]) for k in TEST_KEYS if k in metrics["test"])


# ------------------------------------------------------------------ ops on CUDA = on CPU
@pytest.mark.parametrize(("n", "hdim", "vocab", "chunk"), [
    (704, 256, 10_002, None),  # a PTB batch: 32 x 22 tokens, the paper's sizes
    (37, 64, 501, 7),          # ragged chunks
    (1, 3, 2, None),
])
def test_fused_output_layer_on_cuda_equals_cpu(full_fp32, n, hdim, vocab, chunk):
    """Values and gradients of :func:`~cyclevae.ops.linear_cross_entropy` (training path) and
    its vocabulary-major inference path. Tolerance: float32 rounding of the products (K = H
    terms) and the log-softmax: on CPU against float64 the error is at most ~7e-7 of the
    largest magnitude at PTB sizes (measured); 1e-5 of it allows that on each device with an
    8x margin, while a wrong row, target or chunk boundary is off by O(1)."""
    from cyclevae.ops import linear_cross_entropy

    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, hdim, generator=g)
    w, b = 0.1 * torch.randn(vocab, hdim, generator=g), 0.1 * torch.randn(vocab, generator=g)
    t = torch.randint(0, vocab, (n,), generator=g)
    upstream = torch.randn(n, generator=g)
    results = {}
    for device in ("cpu", "cuda"):
        hh, ww, bb = (x.to(device).requires_grad_() for x in (h, w, b))
        nll = linear_cross_entropy(hh, ww, bb, t.to(device), chunk_rows=chunk)
        grads = torch.autograd.grad((nll * upstream.to(device)).sum(), (hh, ww, bb))
        with torch.no_grad():
            inference = linear_cross_entropy(hh, ww, bb, t.to(device), chunk_rows=chunk)
        assert nll.device.type == device and nll.dtype == torch.float32
        results[device] = (nll, *grads, inference)
    for name, ours, ref in zip(("nll", "d hidden", "d weight", "d bias", "inference nll"),
                               results["cuda"], results["cpu"]):
        assert_fp32_close(ours, ref, name)


def test_linear_products_on_cuda_equal_cpu(full_fp32):
    """:func:`cyclevae.ops.linear` / ``linear_product`` (oneDNN on CPU, cuBLAS on CUDA)."""
    from cyclevae import ops

    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(64, 300, generator=g), torch.randn(90, 300, generator=g)
    b = torch.randn(90, generator=g)
    grad = torch.randn(64, 90, generator=g)
    results = {}
    for device in ("cpu", "cuda"):
        xx, ww, bb = (v.to(device).requires_grad_() for v in (x, w, b))
        out = ops.linear(xx, ww, bb)
        out.backward(grad.to(device))
        with torch.no_grad():
            product = ops.linear_product(xx, ww, bb)
        results[device] = (out, xx.grad, ww.grad, bb.grad, product)
    for name, ours, ref in zip(("linear", "d x", "d w", "d b", "linear_product"),
                               results["cuda"], results["cpu"]):
        assert_fp32_close(ours, ref, name)


# ------------------------------------------------------------------ evaluation
@pytest.mark.parametrize(("precision", "tol"), [("ieee", 1e-4), ("pytorch-default", 1e-2)])
def test_evaluate_on_cuda_equals_cpu(request, precision, tol):
    """:func:`~cyclevae.evaluation.evaluate_model` draws all its noise from CPU generators,
    so the same model gives the same samples on either device and the metrics differ by
    rounding only. Tolerance, relative per metric: with TF32 off (``ieee``), float32 rounding
    (~1e-6 per product, through a 13-step LSTM and per-sentence sums of 13 token NLLs, summed
    in float64) is far under 1e-4; with PyTorch's defaults cuDNN's LSTMs may round their
    inputs to TF32 (unit roundoff 2^-11 = 4.9e-4), so 1e-2. A wrong mask, a dropped token or
    noise drawn on the device instead would move the metrics by far more (~1e-1 of Rec)."""
    from cyclevae.evaluation import evaluate_model
    from cyclevae.models.vae import TextVAE, VAEConfig

    if precision == "ieee":
        request.getfixturevalue("full_fp32")
    torch.manual_seed(0)
    model = TextVAE(VAEConfig(emb_dim=32, enc_hidden=48, dec_hidden=48, latent_dim=8), 300)
    batches = [sentences(300, rows, length, seed)
               for seed, (rows, length) in enumerate([(16, 12), (7, 3), (16, 1), (9, 20)])]
    settings = {"iw_samples": 12, "iw_chunk": 5, "latent_samples": 2, "seed": 3}
    cpu = evaluate_model(model, batches, **settings)
    cuda = evaluate_model(copy.deepcopy(model).cuda(), batches, **settings)
    assert cuda["sentences"] == cpu["sentences"] and cuda["tokens"] == cpu["tokens"]
    for key in ("rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "marginal_kl"):
        assert cuda[key] == pytest.approx(cpu[key], rel=tol, abs=tol * 1e-2), key


# ------------------------------------------------------------------ bf16 autocast
@needs_bf16
def test_bf16_autocast_output_layer_on_cuda():
    """Products in bf16, softmax and NLL in float32 (as on CPU): float32 outputs and
    gradients within bf16 rounding (0.05 nats) of the float32 values, the inference path equal
    to the training path's values."""
    from cyclevae.ops import linear_cross_entropy, reference_linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(40, 32, device="cuda", requires_grad=True)
    w = (0.1 * torch.randn(500, 32, device="cuda")).requires_grad_()
    b = torch.zeros(500, device="cuda", requires_grad=True)
    t = torch.randint(0, 500, (40,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours = linear_cross_entropy(h, w, b, t)
    assert ours.dtype == torch.float32
    ours.sum().backward()
    assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    assert bool(torch.isfinite(w.grad).all())
    ref = reference_linear_cross_entropy(h.detach(), w.detach(), b.detach(), t)
    assert (ours.detach() - ref).abs().max().item() < 0.05
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        inference = linear_cross_entropy(h, w, b, t)
    assert inference.dtype == torch.float32
    torch.testing.assert_close(inference, ours.detach())


@needs_bf16
def test_bf16_training_run_on_cuda(ptb_slice, tmp_path):
    from conftest import small_overrides

    from cyclevae.config import load_config
    from cyclevae.training import Trainer

    overrides = small_overrides(ptb_slice, **{"train.device": "cuda", "train.precision": "bf16",
                                              "train.epochs": 1, "schedule.n_cycles": 1})
    metrics = Trainer(load_config(None, overrides), tmp_path / "run", progress=False).fit()
    assert metrics["device"].startswith("cuda") and metrics["skipped_batches"] == 0
    assert all(math.isfinite(metrics["test"][k]) for k in TEST_KEYS if k in metrics["test"])


# ------------------------------------------------------------------ NCCL, torchrun
def nccl_smoke(out_path: str) -> None:
    """The child of :func:`test_nccl_ddp_step_in_one_torchrun_process`: join an NCCL group,
    take one DistributedDataParallel step of a small text VAE, compare its gradients with the
    same step without DDP (one process: the average over processes is the gradient itself) and
    write what it saw to ``out_path`` as JSON."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from cyclevae.losses import beta_vae_loss
    from cyclevae.models.vae import TextVAE, VAEConfig

    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl")
    device = torch.device("cuda", local_rank)
    torch.manual_seed(0)
    plain = TextVAE(VAEConfig(emb_dim=16, enc_hidden=16, dec_hidden=16, latent_dim=4,
                              dropout=0.0), 50).to(device)
    wrapped = DistributedDataParallel(copy.deepcopy(plain), device_ids=[local_rank])
    batch = sentences(50, 8, 6, seed=0).to(device)
    grads = []
    for model in (plain, wrapped):
        torch.manual_seed(1)  # the same z noise for both
        out = model(batch, beta=0.5)
        beta_vae_loss(out.rec, out.kl, 0.5).backward()
        module = model.module if isinstance(model, DistributedDataParallel) else model
        grads.append(torch.cat([p.grad.flatten() for p in module.parameters()]))
    value = torch.tensor([float(dist.get_rank() + 1)], device=device)
    dist.all_reduce(value)
    report = {"backend": dist.get_backend(), "world_size": dist.get_world_size(),
              "all_reduce": value.item(),
              "grad_max_abs_diff": (grads[0] - grads[1]).abs().max().item(),
              "grad_norm": grads[0].norm().item(),
              "nccl_version": ".".join(map(str, torch.cuda.nccl.version())),
              "device": torch.cuda.get_device_name(device)}
    dist.barrier()
    dist.destroy_process_group()
    Path(out_path).write_text(json.dumps(report) + "\n")


@pytest.mark.skipif(torch.cuda.is_available() and not torch.distributed.is_nccl_available(),
                    reason="this torch has CUDA but no NCCL (torch.distributed.is_nccl_available())")
def test_nccl_ddp_step_in_one_torchrun_process(tmp_path):
    report_path = tmp_path / "nccl.json"
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         str(Path(__file__).resolve()), "nccl-smoke", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["backend"] == "nccl" and report["world_size"] == 1
    assert report["all_reduce"] == 1.0
    assert report["grad_norm"] > 0 and math.isfinite(report["grad_norm"])
    # DDP's reduced (averaged over one process) gradient is the plain one, to rounding
    assert report["grad_max_abs_diff"] <= 1e-6 * max(1.0, report["grad_norm"])


def test_torchrun_one_process_trains_on_cuda(ptb_slice, tmp_path):
    """``torchrun --nproc-per-node 1 -m cyclevae train`` on ``cuda``: the launcher's
    environment (WORLD_SIZE=1, LOCAL_RANK=0) and the CUDA device together. (One process does
    not form a process group: the Trainer's DDP path needs 2 or more GPUs.)"""
    from conftest import small_overrides

    settings = small_overrides(ptb_slice, **{"train.device": "cuda", "train.epochs": 1,
                                             "schedule.n_cycles": 1})
    sets = [x for item in settings for x in ("--set", item)]
    out = tmp_path / "run"
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         "-m", "cyclevae", "train", *sets, "--out", str(out), "--no-progress"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 1 and metrics["device"].startswith("cuda")
    assert all(math.isfinite(metrics["test"][k]) for k in TEST_KEYS if k in metrics["test"])


# ------------------------------------------------------------------ the other models
def _grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(),
                      device=p.device) for p in model.parameters()])


def _forward_backward(model: torch.nn.Module, batch, **kwargs):
    from cyclevae.losses import beta_vae_loss

    model.train()
    model.zero_grad(set_to_none=True)
    out = model(batch, **kwargs)
    kl = out.kl if out.kl is not None else torch.zeros_like(out.rec)
    beta_vae_loss(out.rec, kl, 0.5, aux=out.aux).backward()
    return out, _grads(model)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_yelp_cnn_models_forward_backward_on_cuda_equal_cpu(full_fp32, kind):
    """The Yelp models (CNN encoder, tied output layer; the VAE and the autoencoder baseline):
    losses and every gradient on CUDA equal the CPU's (dropout off, z = mu). On CPU the
    convolutions run as oneDNN products of unfolded windows, on CUDA as PyTorch's own
    products: float32 rounding only."""
    from cyclevae.config import ModelConfig
    from cyclevae.models.encoders import CNNConfig
    from cyclevae.families import build_model

    config = ModelConfig(kind=kind, emb_dim=32, enc_hidden=32, dec_hidden=32, latent_dim=8,
                         dropout=0.0, encoder="cnn", tie_embeddings=True,
                         cnn=CNNConfig(conv1=24, conv2=40, conv3=56, input_length=13))
    config.validate()
    torch.manual_seed(0)
    model = build_model(config, 200)
    batch = sentences(200, 16, 11, seed=4)
    cpu_out, cpu_grads = _forward_backward(model, batch, sample=False)
    cuda_model = copy.deepcopy(model).cuda()
    cuda_out, cuda_grads = _forward_backward(cuda_model, batch.to("cuda"), sample=False)
    assert bool(torch.isfinite(cuda_grads).all()) and cuda_grads.abs().sum() > 0
    assert_fp32_close(cuda_out.rec, cpu_out.rec, "rec", tol=1e-4)
    if kind == "vae":
        assert_fp32_close(cuda_out.kl, cpu_out.kl, "kl", tol=1e-4)
    assert_fp32_close(cuda_grads, cpu_grads, "gradients", tol=1e-4)


def _tiny_dialogs():
    """A few random conversations, their vocabulary, act labels and encoded corpus."""
    import numpy as np

    from cyclevae.data.dialog import (
        Conversation,
        Utterance,
        build_act_vocabulary,
        build_vocabulary,
        encode_dialogs,
    )

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(15)]
    convs = []
    for c in range(3):
        utts = tuple(Utterance("AB"[k % 2], tuple(rng.choice(words, size=int(rng.integers(1, 7)))),
                               ["sd", "qy", "b"][k % 3])
                     for k in range(int(rng.integers(4, 14))))
        convs.append(Conversation(f"c{c}", utts))
    vocab, acts = build_vocabulary(convs), build_act_vocabulary(convs)
    return vocab, acts, encode_dialogs(convs, vocab, act_labels=acts)


def test_dialog_cvae_forward_backward_on_cuda_equals_cpu(full_fp32):
    """The dialog CVAE (packed utterance/context/decoder GRUs, BoW and act losses: the
    kgCVAE path): losses and gradients on CUDA equal the CPU's (z = mu), and greedy responses
    decode on CUDA."""
    from cyclevae.models.cvae import CVAE, CVAEConfig

    vocab, acts, corpus = _tiny_dialogs()
    config = CVAEConfig(emb_dim=8, utt_hidden=6, ctx_hidden=10, latent_dim=4, dec_hidden=12,
                        prior_hidden=9, bow_hidden=7, act_dim=5, bow=True, use_act=True)
    torch.manual_seed(0)
    model = CVAE(config, len(vocab), num_acts=len(acts))
    batch = corpus.batch(list(range(min(8, len(corpus)))))
    cpu_out, cpu_grads = _forward_backward(model, batch, sample=False)
    cuda_model = copy.deepcopy(model).cuda()
    cuda_out, cuda_grads = _forward_backward(cuda_model, batch.to("cuda"), sample=False)
    assert bool(torch.isfinite(cuda_grads).all()) and cuda_grads.abs().sum() > 0
    for name in ("rec", "kl"):
        assert_fp32_close(getattr(cuda_out, name), getattr(cpu_out, name), name, tol=1e-4)
    for name in ("bow", "act"):
        assert_fp32_close(cuda_out.aux[name], cpu_out.aux[name], name, tol=1e-4)
    assert_fp32_close(cuda_grads, cpu_grads, "gradients", tol=1e-4)
    cuda_model.eval()
    responses = cuda_model.respond(batch.to("cuda"), 2, max_length=4,
                                   generator=torch.Generator().manual_seed(0))
    assert len(responses) == batch.num_examples and all(len(r) == 2 for r in responses)


@pytest.mark.parametrize("grad", ["fd", "exact"])
def test_savae_training_step_on_cuda(grad):
    """SA-VAE (10 SVI steps, the backward through them by finite differences or exactly, the
    latter a double backward through the LSTM, which cuDNN lacks) on CUDA: finite loss and
    gradients, the encoder trained through the steps."""
    from cyclevae.config import ModelConfig
    from cyclevae.families import build_model

    config = ModelConfig(kind="savae", emb_dim=16, enc_hidden=16, dec_hidden=16, latent_dim=4)
    config.svi.grad = grad
    config.validate()
    torch.manual_seed(0)
    model = build_model(config, 100).cuda()
    out, grads = _forward_backward(model, sentences(100, 8, 7, seed=2).to("cuda"), beta=0.5)
    assert math.isfinite(out.rec.sum().item()) and bool(torch.isfinite(grads).all())
    encoder = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    assert encoder.abs().sum() > 0


if __name__ == "__main__":  # torchrun's child: tests/test_cuda.py nccl-smoke OUT.json
    if len(sys.argv) != 3 or sys.argv[1] != "nccl-smoke":
        sys.exit("usage: torchrun --nproc-per-node 1 tests/test_cuda.py nccl-smoke OUT.json")
    sys.path.insert(0, str(REPO / "src"))
    nccl_smoke(sys.argv[2])
