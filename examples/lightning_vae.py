"""The cyclical beta schedule in a Lightning ``Trainer``: a toy VAE as a LightningModule.

``BetaCallback`` sets ``module.beta`` before every training batch (the module declares it and
uses it in its loss), logs it as ``beta``, and saves the schedule in the checkpoints.

    pip install 'cyclevae[lightning]'
    python examples/lightning_vae.py [--epochs 4] [--cycles 4] [--out runs/lightning]

Writes the Lightning logs (``metrics.csv`` with ``beta`` per step) and a checkpoint into
``--out``; prints, last, a one-line JSON summary (the betas the module saw, the final loss).
"""

from __future__ import annotations

import argparse
import json
import tempfile

import lightning.pytorch as L
import torch
import torch.nn.functional as F

from cyclevae.integrations.lightning import BetaCallback
from cyclevae.losses import gaussian_kl


class ToyVAE(L.LightningModule):
    """A linear Gaussian VAE on 8-bit binary codes, weighting its KL by ``self.beta``."""

    def __init__(self, dim: int = 8, latent: int = 2) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(dim, 2 * latent)
        self.decoder = torch.nn.Linear(latent, dim)
        self.beta = 0.0  # set by BetaCallback before every training batch
        self.betas: list[float] = []

    def training_step(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1)
        kl = gaussian_kl(mu, logvar)
        loss = (rec + self.beta * kl).mean()
        self.betas.append(self.beta)
        self.log_dict({"loss": loss, "kl": kl.mean()}, batch_size=len(x))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--out", help="log and checkpoint folder (default: a temporary one)")
    args = parser.parse_args(argv)
    L.seed_everything(0, verbose=False)
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 2, (256, 8), generator=g).float()
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True, generator=g)

    model = ToyVAE()
    callback = BetaCallback(n_cycles=args.cycles, ratio=0.5)  # over the whole run
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1,
                            default_root_dir=args.out or tmp, log_every_n_steps=1,
                            callbacks=[callback], enable_progress_bar=False,
                            enable_model_summary=False)
        trainer.fit(model, loader)
    summary = {"steps": trainer.global_step, "total": callback.scheduler.total,
               "n_cycles": args.cycles, "betas": model.betas,
               "final_loss": float(trainer.callback_metrics["loss"])}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
