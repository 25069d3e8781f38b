"""The registry of model families: every kind has one, models declare their capabilities,
and a new family is one class plus one registry entry."""

from __future__ import annotations

import pytest
import torch

from conftest import small_overrides
from cyclevae import families
from cyclevae.checkpoint import load_model
from cyclevae.config import ModelConfig, load_config
from cyclevae.diagnose import diagnose_checkpoint
from cyclevae.errors import UserError
from cyclevae.families import FAMILIES, MODEL_KINDS, Labels, build_model, family_of
from cyclevae.families.sentence import SentenceFamily
from cyclevae.inference import evaluate_checkpoint
from cyclevae.models.vae import TextVAE
from cyclevae.training import LAST, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

#: what each kind's model declares (instead of being probed for it)
CAPABILITIES = {  # stochastic, has_amortized_posterior, conditional_prior, can_respond
    "vae": (True, True, False, False), "ae": (False, True, False, False),
    "savae": (True, True, False, False), "svi": (True, False, False, False),
    "cvae": (True, True, True, True), "synthetic": (True, True, False, False),
}


def test_every_kind_has_a_family_and_its_model_declares_what_it_can_do():
    assert set(MODEL_KINDS) == set(FAMILIES) == set(CAPABILITIES)
    for kind in MODEL_KINDS:
        config = ModelConfig(kind=kind, emb_dim=8, enc_hidden=8, dec_hidden=8, latent_dim=4)
        config.svi.steps = 1
        config.cvae.emb_dim = config.cvae.utt_hidden = config.cvae.ctx_hidden = 8
        config.cvae.dec_hidden = config.cvae.prior_hidden = config.cvae.bow_hidden = 8
        config.cvae.latent_dim = 4
        model = build_model(config, 20, Labels(acts=("a", "b")))
        assert (model.stochastic, model.has_amortized_posterior, model.conditional_prior,
                model.can_respond) == CAPABILITIES[kind], kind


def test_the_default_prior_is_a_standard_normal_per_example():
    model = build_model(ModelConfig(emb_dim=8, enc_hidden=8, dec_hidden=8, latent_dim=4), 20)
    batch = type("B", (), {"num_examples": 3, "device": torch.device("cpu")})()
    mu, logvar = model.prior_params(batch)
    assert mu.shape == logvar.shape == (3, 4) and not mu.any() and not logvar.any()
    with pytest.raises(NotImplementedError):
        model.respond(batch)


def test_an_unknown_kind_is_one_line():
    with pytest.raises(UserError, match="model.kind must be 'vae' or 'ae'") as info:
        family_of(load_config(None, ["model.kind=transformer"]))
    assert "\n" not in str(info.value)


class _WideVAE(TextVAE):
    """A 'new family': the sentence VAE under another name (any LatentTextModel would do)."""


def test_a_new_family_needs_only_a_registry_entry(ptb_slice, tmp_path, monkeypatch):
    monkeypatch.setitem(FAMILIES, "wide", SentenceFamily("wide", _WideVAE))
    config = load_config(None, small_overrides(ptb_slice, **{"model.kind": "wide",
                                                             "train.epochs": 1}))
    metrics = Trainer(config, tmp_path / "run", progress=False).fit()
    model, _, saved, _ = load_model(tmp_path / "run" / LAST)
    assert type(model) is _WideVAE and saved.model.kind == "wide"
    result = evaluate_checkpoint(tmp_path / "run" / LAST, iw_samples=8)
    assert result["test"] == metrics["test"]
    # the evaluation path, not the family, names the checkpoint, its data and its epoch
    assert list(result)[:3] == ["checkpoint", "data", "epoch"]
    assert result["epoch"] == 1 and result["data"] == config.data.test
    assert diagnose_checkpoint(tmp_path / "run" / LAST).sentences == metrics["test"]["sentences"]
    assert families.family_for("wide") is FAMILIES["wide"]
