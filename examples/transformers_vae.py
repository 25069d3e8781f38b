"""The cyclical beta schedule in a Hugging Face Transformers ``Trainer``: a toy VAE.

``BetaCallback`` sets ``model.beta`` before every optimizer step (the model declares it and
uses it in the loss its ``forward`` returns) and adds ``beta`` to the training log records; as
a function of ``state.global_step`` it continues exactly after ``resume_from_checkpoint``.

    pip install 'cyclevae[transformers]'
    python examples/transformers_vae.py [--epochs 4] [--cycles 4] [--out runs/transformers]

Writes the Trainer's checkpoints into ``--out``; prints, last, a one-line JSON summary (the
betas the model saw, the logged betas, the final loss).
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch
import torch.nn.functional as F
import transformers

from cyclevae.integrations.transformers import BetaCallback
from cyclevae.losses import gaussian_kl


class ToyVAE(torch.nn.Module):
    """A linear Gaussian VAE on 8-bit binary codes, weighting its KL by ``self.beta``."""

    def __init__(self, dim: int = 8, latent: int = 2) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(dim, 2 * latent)
        self.decoder = torch.nn.Linear(latent, dim)
        self.beta = 0.0  # set by BetaCallback before every optimizer step
        self.betas: list[float] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
        if self.training:
            self.betas.append(self.beta)
        return {"loss": (rec + self.beta * gaussian_kl(mu, logvar)).mean()}


class Codes(torch.utils.data.Dataset):
    """Random 8-bit binary codes as ``{"x": tensor}`` examples."""

    def __init__(self, n: int = 256, dim: int = 8) -> None:
        self.x = torch.randint(0, 2, (n, dim), generator=torch.Generator().manual_seed(0)).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--out", help="checkpoint folder (default: a temporary one)")
    args = parser.parse_args(argv)
    transformers.set_seed(0)

    model = ToyVAE()
    with tempfile.TemporaryDirectory() as tmp:
        training = transformers.TrainingArguments(
            output_dir=args.out or tmp, num_train_epochs=args.epochs,
            per_device_train_batch_size=32, learning_rate=1e-2, logging_steps=1,
            save_strategy="epoch", report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
        trainer = transformers.Trainer(model=model, args=training, train_dataset=Codes(),
                                       callbacks=[BetaCallback(n_cycles=args.cycles, ratio=0.5)])
        trainer.train()
    logged = [r["beta"] for r in trainer.state.log_history if "loss" in r]
    summary = {"steps": trainer.state.global_step, "total": trainer.state.max_steps,
               "n_cycles": args.cycles, "betas": model.betas, "logged_betas": logged,
               "final_loss": [r["loss"] for r in trainer.state.log_history if "loss" in r][-1]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
