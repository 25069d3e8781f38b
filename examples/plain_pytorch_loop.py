"""The README's plain PyTorch loop, runnable: a toy VAE trained with the cyclical beta schedule.

The model is a Gaussian VAE on 8-bit binary codes; what matters is the loop: ``BetaScheduler``
counts batches, ``beta.value`` weights the KL of this step, ``beta.step()`` advances it, and
its ``state_dict()`` goes into the checkpoint beside the model's and the optimizer's.

    python examples/plain_pytorch_loop.py [--epochs 4] [--out toy.pt]

Prints one line per epoch (beta at its start and end, mean loss, KL) and, last, a one-line
JSON summary (the betas used at every step, the final loss).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from cyclevae.losses import gaussian_kl
from cyclevae.schedules import BetaScheduler


class ToyVAE(torch.nn.Module):
    """q(z|x) = N(mu(x), diag sigma(x)^2) and p(x|z) independent Bernoullis, both linear."""

    def __init__(self, dim: int = 8, latent: int = 2) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(dim, 2 * latent)
        self.decoder = torch.nn.Linear(latent, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example reconstruction loss and KL, both ``[B]`` nats, for ``x`` ``[B, dim]``."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        logits = self.decoder(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return rec, gaussian_kl(mu, logvar)


def toy_loader(n: int = 256, dim: int = 8, batch_size: int = 32, seed: int = 0
               ) -> torch.utils.data.DataLoader:
    """``n`` random binary codes of ``dim`` bits, shuffled with a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, 2, (n, dim), generator=g).float()
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, generator=g)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", help="save model, optimizer and schedule here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    loader, epochs = toy_loader(), args.epochs
    model = ToyVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    beta = BetaScheduler(total=len(loader) * epochs, n_cycles=4, ratio=0.5)  # counts batches
    betas: list[float] = []
    for epoch in range(epochs):
        first, losses, kls = beta.value, [], []
        for batch in loader:
            rec, kl = model(batch)                 # per-example tensors
            loss = (rec + beta.value * kl).mean()  # beta in force for this step
            loss.backward(); optimizer.step(); optimizer.zero_grad()
            betas.append(beta.value)
            losses.append(loss.item())
            kls.append(kl.mean().item())
            beta.step()
        print(f"epoch {epoch + 1}: beta {first:.2f} -> {betas[-1]:.2f}, "
              f"loss {sum(losses) / len(losses):.3f}, KL {sum(kls) / len(kls):.3f}")
    if args.out:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "beta": beta.state_dict()}, args.out)
    summary = {"steps": len(betas), "total": beta.total, "n_cycles": beta.n_cycles,
               "betas": betas, "final_loss": losses[-1]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
