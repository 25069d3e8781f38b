"""The benchmark scripts run end to end at tiny sizes and print the fields of their interface
(mode, tokens_per_s, reference_tokens_per_s, ratio, seconds_per_epoch, floor_fraction), so
they cannot rot between the runs that measure with them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cyclevae import runtime

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, data: Path, *args: str) -> list[dict]:
    """The JSON lines ``benchmarks/<script>`` prints (one thread)."""
    env = {**os.environ, "CYCLEVAE_SHARED_DATA": str(data), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_yelp_speed_small(shared_data):
    records = run_benchmark("yelp_speed.py", shared_data, "--small", "--threads", "1",
                            "--profile", "--modes", "fp32,bf16")
    by_mode = {}
    for r in records:
        by_mode.setdefault(r["mode"], []).append(r)
    assert set(by_mode) == {"train_yelp_cnn_vae_fp32", "train_yelp_cnn_vae_bf16",
                            "profile_yelp_cnn_vae_fp32"}
    (fp32,) = by_mode["train_yelp_cnn_vae_fp32"]
    for key in ("tokens_per_s", "reference_tokens_per_s", "ratio", "seconds_per_epoch",
                "floor_fraction", "reference_child_tokens_per_s", "ratio_child",
                "ratio_cpu_time"):
        assert isinstance(fp32[key], (int, float)) and fp32[key] > 0, key
    assert fp32["cpu"] == runtime.cpu_name() and fp32["threads"] == 1 and fp32["small"]
    assert fp32["ratio"] == pytest.approx(fp32["tokens_per_s"] / fp32["reference_tokens_per_s"],
                                          rel=0.01)
    # an epoch is every yelp:train batch (44,409 sentences, batches of 32 of one length)
    assert fp32["epoch_batches"] >= math.ceil(44_409 / 32)
    assert fp32["seconds_per_epoch"] == pytest.approx(
        fp32["epoch_tokens"] / fp32["tokens_per_s"], rel=0.01)
    assert sum(fp32["flop_shares"].values()) == pytest.approx(1.0, abs=0.01)
    assert fp32["gemm_gflops_fp32"] == max(fp32["gemm_gflops_fp32_blas"],
                                           fp32["gemm_gflops_fp32_linear_product"])
    (bf16,) = by_mode["train_yelp_cnn_vae_bf16"]
    has_bf16, _ = runtime.native_bf16(torch.device("cpu"))
    if has_bf16:
        assert bf16["tokens_per_s"] > 0 and bf16["floor_fraction"] > 0
    else:
        assert "no native bf16" in bf16["skipped"]
    profiles = {r["which"]: r for r in by_mode["profile_yelp_cnn_vae_fp32"]}
    assert set(profiles) == {"ours", "reference"}
    for profile in profiles.values():
        parts = profile["parts"]
        # the parts that carry FLOPs are found (forward and backward), and shares add up
        for part in ("conv_encoder", "decoder_lstm", "output_layer", "optimizer"):
            assert parts[part]["ms_per_step"] > 0, part
        for part in ("conv_encoder", "decoder_lstm", "output_layer"):
            assert parts[part + "_backward"]["ms_per_step"] > 0, part
        assert sum(p["time_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)
        assert sum(p["flop_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_savae_speed_small(shared_data):
    records = run_benchmark("savae_speed.py", shared_data, "--small", "--threads", "1")
    by_mode = {r["mode"]: r for r in records}
    assert set(by_mode) == {"train_savae_fp32", "train_savae_fd_decoder_fp32",
                            "train_savae_exact_fp32"}
    for r in by_mode.values():
        for key in ("tokens_per_s", "reference_tokens_per_s", "ratio", "seconds_per_epoch",
                    "reference_seconds_per_epoch", "floor_fraction", "ratio_to_vae"):
            assert isinstance(r[key], (int, float)) and r[key] > 0, key
        assert r["cpu"] == runtime.cpu_name() and r["threads"] == 1 and r["small"]
        assert r["ratio"] == pytest.approx(r["tokens_per_s"] / r["reference_tokens_per_s"],
                                           rel=0.01)
        assert r["seconds_per_epoch"] == pytest.approx(929_589 / r["tokens_per_s"], rel=0.01)
        assert r["reference_seconds_per_epoch"] == pytest.approx(
            929_589 / r["reference_tokens_per_s"], rel=0.01)
    # one reference for every mode, timed once
    assert len({r["reference_tokens_per_s"] for r in by_mode.values()}) == 1


def test_savae_reference_trains_the_encoder_through_the_steps(monkeypatch):
    from cyclevae.models.savae import SVIConfig

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import savae_speed
    import train_speed

    torch.manual_seed(0)
    ref = train_speed.ReferenceVAE(40, emb=8, hidden=8, latent=4)
    tokens = torch.randint(0, 40, (4, 7))
    encoder = [p for m in (ref.enc_emb, ref.enc, ref.to_params) for p in m.parameters()]
    decoder = [p for m in (ref.dec_emb, ref.z_to_h, ref.dec, ref.out) for p in m.parameters()]

    def grads(create_graph: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
        ref.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same z noise and dropout masks for both
        loss = savae_speed.reference_savae_loss(ref, tokens, SVIConfig(), 0.5, create_graph)
        loss.backward()
        return (loss.item(), torch.cat([p.grad.flatten() for p in encoder]),
                torch.cat([p.grad.flatten() for p in decoder]))

    loss, enc_exact, dec_exact = grads(True)
    loss_first, enc_first, dec_first = grads(False)
    assert math.isfinite(loss) and loss == pytest.approx(loss_first, rel=1e-6)
    assert enc_exact.norm() > 0
    # the second derivatives through the steps change the encoder's gradient...
    assert (enc_exact - enc_first).norm() > 1e-3 * enc_exact.norm()
    # ...but not the decoder's: it is trained on the refined lambda_K only
    assert torch.allclose(dec_exact, dec_first, rtol=1e-4, atol=1e-7)
    assert all(p.requires_grad for p in decoder)  # unfrozen after the steps


@pytest.mark.slow
def test_train_speed_small(shared_data):
    """benchmarks/train_speed.py (the PTB VAE at the paper's sizes, two batches) prints every
    mode with the interface's fields, a skipped line for bf16 where it cannot run, floors from
    the faster of BLAS and oneDNN, and a by-part profile whose shares add up."""
    records = run_benchmark("train_speed.py", shared_data, "--batches", "2", "--repeats", "1",
                            "--iw-sentences", "1", "--profile",
                            "--modes", "train_fp32,train_bf16,eval_elbo,eval_iw_nll")
    by_mode: dict[str, list[dict]] = {}
    for r in records:
        by_mode.setdefault(r["mode"], []).append(r)
    assert set(by_mode) == {"train_fp32", "train_bf16", "eval_elbo", "eval_iw_nll",
                            "profile_train_fp32"}
    (fp32,) = by_mode["train_fp32"]
    for key in ("tokens_per_s", "reference_tokens_per_s", "reference_same_process_tokens_per_s",
                "ratio", "ratio_same_process", "ratio_cpu_time", "seconds_per_epoch",
                "floor_fraction", "floor_fraction_cpu_time"):
        assert isinstance(fp32[key], (int, float)) and fp32[key] > 0, key
    assert fp32["cpu"] == runtime.cpu_name() and fp32["threads"] == 1
    assert fp32["ratio"] == pytest.approx(fp32["tokens_per_s"] / fp32["reference_tokens_per_s"],
                                          rel=0.01)
    assert fp32["gemm_gflops_fp32"] == max(fp32["gemm_gflops_fp32_blas"],
                                           fp32["gemm_gflops_fp32_linear_product"])
    (bf16,) = by_mode["train_bf16"]
    if runtime.native_bf16(torch.device("cpu"))[0]:
        assert bf16["tokens_per_s"] > 0 and bf16["floor_fraction"] > 0
    else:
        assert "no native bf16" in bf16["skipped"]
    for mode in ("eval_elbo", "eval_iw_nll"):
        (line,) = by_mode[mode]
        assert line["tokens_per_s"] > 0 and line["reference_tokens_per_s"] > 0, mode
        assert 0 < line["floor_fraction"], mode
    assert by_mode["eval_iw_nll"][0]["iw_samples"] == 500
    profiles = {r["which"]: r for r in by_mode["profile_train_fp32"]}
    assert set(profiles) == {"ours", "reference"}
    for profile in profiles.values():
        parts = profile["parts"]
        for part in ("encoder_lstm", "decoder_lstm", "output_layer"):
            assert parts[part]["ms_per_step"] > 0, part
            assert parts[part + "_backward"]["ms_per_step"] > 0, part
        assert parts["optimizer"]["ms_per_step"] > 0
        assert sum(p["time_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)
        assert sum(p["flop_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_transformer_speed_small(shared_data):
    """benchmarks/transformer_speed.py at tiny sizes: the fp32 line with the reference and the
    LSTM row beside it, bf16 (or its skipped line), and a by-part profile that adds up."""
    records = run_benchmark("transformer_speed.py", shared_data, "--small", "--threads", "1",
                            "--profile", "--modes", "fp32,bf16")
    by_mode: dict[str, list[dict]] = {}
    for r in records:
        by_mode.setdefault(r["mode"], []).append(r)
    assert set(by_mode) == {"train_transformer_vae_fp32", "train_transformer_vae_bf16",
                            "profile_transformer_vae_fp32"}
    (fp32,) = by_mode["train_transformer_vae_fp32"]
    for key in ("tokens_per_s", "reference_tokens_per_s", "ratio", "seconds_per_epoch",
                "floor_fraction", "lstm_seconds_per_epoch", "epoch_cost_vs_lstm"):
        assert isinstance(fp32[key], (int, float)) and fp32[key] > 0, key
    assert fp32["ratio"] == pytest.approx(fp32["tokens_per_s"] / fp32["reference_tokens_per_s"],
                                          rel=0.01)
    assert fp32["epoch_cost_vs_lstm"] == pytest.approx(
        fp32["lstm_tokens_per_s"] / fp32["tokens_per_s"], rel=0.01)
    assert fp32["epoch_tokens"] == 929_589  # every ptb:train sentence's predicted tokens
    assert sum(fp32["flop_shares"].values()) == pytest.approx(1.0, abs=0.01)
    (bf16,) = by_mode["train_transformer_vae_bf16"]
    if runtime.native_bf16(torch.device("cpu"))[0]:
        assert bf16["tokens_per_s"] > 0 and "lstm_seconds_per_epoch" not in bf16
    else:
        assert "no native bf16" in bf16["skipped"]
    for profile in by_mode["profile_transformer_vae_fp32"]:
        parts = profile["parts"]
        for part in ("output_layer", "feed_forward", "optimizer"):
            assert parts[part]["ms_per_step"] > 0, (profile["which"], part)
        assert sum(p["time_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)
        assert sum(p["flop_share"] for p in parts.values()) == pytest.approx(1.0, abs=0.01)


def test_transformer_speed_counts_the_products_pytorch_counts(monkeypatch):
    """The benchmark's FLOP count of the projections, feed-forward layers, output layer and z
    maps equals what torch.utils.flop_counter counts for the model's forward (its attention
    core counts the causal triangle, which PyTorch's count of the kernel's square exceeds)."""
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from cyclevae.models.transformer import (TransformerConfig, TransformerDecoder,
                                             TransformerEncoder)

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import transformer_speed

    class Both(nn.Module):
        def __init__(self, config: TransformerConfig) -> None:
            super().__init__()
            self.encoder = TransformerEncoder(50, 4, config)
            self.decoder = TransformerDecoder(50, 4, config)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            mu, _ = self.encoder(tokens)
            return self.decoder.logits(tokens[:, :-1], mu)  # the output layer as a product

    sizes = transformer_speed.Sizes(d_model=16, n_layers=2, d_ff=24, n_heads=2)
    tokens = torch.randint(4, 50, (3, 8))  # 3 sentences, 7 predicted tokens each
    for injection in ("memory", "embedding", "both"):
        config = TransformerConfig(d_model=16, n_heads=2, n_layers=2, d_ff=24,
                                   z_injection=injection)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            Both(config)(tokens)
        counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
        ours = transformer_speed.step_flops(tokens, sizes, latent=4, vocab=50,
                                            injection=injection)
        blocks = sum(counts[f"Both.{side}.blocks.{i}.{name}"] for side in ("encoder", "decoder")
                     for i in range(2) for name in ("attn.qkv", "attn.proj", "ff_in", "ff_out"))
        assert ours["attention_projections"] + ours["feed_forward"] == blocks
        assert ours["output_layer"] == counts["Both.decoder.output"]
        products = sum(v for k, v in counter.get_flop_counts()["Global"].items()
                       if "bmm" not in str(k))
        assert sum(ours.values()) - ours["attention_core"] == products, injection
        kernel_core = sum(v for k, v in counter.get_flop_counts()["Global"].items()
                          if "bmm" in str(k))
        assert 0 < ours["attention_core"] < kernel_core
