"""The svi row with the pre-refactor initialisation, to show that the refactor changed only
where the SVI decoder's initial weights come from in the RNG stream.

The old SVIVAE built an encoder and a decoder, initialised both, then deleted the encoder; the
new SVIModel builds only the decoder. Here the new model gets the decoder weights (and leaves
the RNG where) the old construction would. Usage (same data as run.sh):
    python svi_old_init.py RUN_SH_OUT_DIR   # trains RUN_SH_OUT_DIR/svi-old-init
"""
import sys
from pathlib import Path

import torch

from cyclevae import training
from cyclevae.config import load_config
from cyclevae.models import SVIModel, TextVAE
from cyclevae.runtime import configure_process


def old_init(config, vocab_size):
    with torch.random.fork_rng(devices=[]):
        model = SVIModel(config, vocab_size, config.svi)
    vae = TextVAE(config, vocab_size)  # draws from the RNG exactly as SVIVAE.__init__ did
    model.decoder.load_state_dict(vae.decoder.state_dict())
    return model


root = Path(sys.argv[1])
config = load_config(None, [f"data.train={root}/data/train.txt", f"data.valid={root}/data/valid.txt",
                            f"data.test={root}/data/test.txt", "train.epochs=1",
                            "schedule.unit=step", "train.iw_samples=10", "train.num_threads=1",
                            "train.seed=0", "model.kind=svi", "model.svi.steps=2"])
configure_process(1)
training.build_model = old_init
training.Trainer(config, root / "svi-old-init", overwrite=True, progress=False).fit()
