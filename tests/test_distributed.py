"""DistributedDataParallel through torchrun: 2 processes on gloo equal 1 process that
accumulates the same 2 batches per step (same seed, same global batch)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from conftest import small_overrides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env_extra: dict[str, str] | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    out = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-3000:]


def test_two_gloo_processes_match_one_process_with_accumulation(ptb_slice, tmp_path):
    settings = small_overrides(ptb_slice, **{"train.epochs": 2, "train.num_threads": 1})
    sets = [x for item in settings for x in ("--set", item)]
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
         "-m", "cyclevae", "train", *sets, "--out", str(ddp_out), "--no-progress"])
    run([sys.executable, "-m", "cyclevae", "train", *sets, "--set", "train.accumulate=2",
         "--out", str(single_out), "--no-progress"])
    ddp = json.loads((ddp_out / "metrics.json").read_text())
    single = json.loads((single_out / "metrics.json").read_text())
    assert ddp["processes"] == 2 and single["processes"] == 1
    assert ddp["steps"] == single["steps"] > 0
    for split, keys in (("valid", ("rec", "kl", "elbo", "mi")),
                        ("test", ("rec", "kl", "elbo", "iw_nll", "mi"))):
        for key in keys:
            a, b = ddp[split][key], single[split][key]
            assert abs(a - b) <= 1e-4 * max(1.0, abs(b)), (split, key, a, b)
    for key in ("rec", "kl"):
        assert abs(ddp["train"][key] - single["train"][key]) <= 1e-4 * max(1.0, abs(single["train"][key]))
