"""The authors' Yelp pre-training settings as options (issue 31): no gradient clipping
(``train.clip: 0``), the lr decayed by 0.99 every 2 epochs (``lr_schedule.kind:
exponential``), L2-normalised embedding rows (``model.normalize_embeddings``) and pad
positions counted in the loss (``model.loss_pad_length``); each off by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import small_overrides

from cyclevae.cli import main
from cyclevae.config import load_config
from cyclevae.data.batching import TextBatch
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError
from cyclevae.families import build_model, family_of
from cyclevae.schedules import ExponentialDecayLR
from cyclevae.training import Trainer, make_schedules

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_CNN = ["model.emb_dim=16", "model.dec_hidden=16", "model.latent_dim=4", "model.cnn.conv1=8",
            "model.cnn.conv2=8", "model.cnn.conv3=8"]


def _train(root: Path, out: Path, **extra: object) -> dict:
    overrides = small_overrides(root, **{"train.epochs": 1, "schedule.n_cycles": 1,
                                         "train.iw_samples": 0, **extra})
    return Trainer(load_config(None, overrides), out, progress=False).fit()


def test_clip_0_turns_clipping_off(ptb_slice, tmp_path) -> None:
    """clip 0 trains exactly as a bound no gradient reaches, and a tight bound changes the run
    (so clipping was live in this setting)."""
    off = _train(ptb_slice, tmp_path / "off", **{"train.clip": 0})
    never = _train(ptb_slice, tmp_path / "never", **{"train.clip": 1e9})
    tight = _train(ptb_slice, tmp_path / "tight", **{"train.clip": 1e-3})
    assert off["test"] == never["test"]
    assert off["test"]["rec"] != tight["test"]["rec"]
    with pytest.raises(UserError, match="train.clip must be >= 0"):
        load_config(None, ["train.clip=-1"])


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_exponential_decay_is_tensorflows_per_step_and_staircase() -> None:
    opt = _optimizer(0.5)
    schedule = ExponentialDecayLR(opt, 4, rate=0.9)
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(9):
        opt.step()
        schedule.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.5 * 0.9 ** (k / 4) for k in range(10)], rel=1e-12)
    stairs = _optimizer(0.5)
    staircase = ExponentialDecayLR(stairs, 4, rate=0.9, staircase=True)
    lrs = []
    for _ in range(9):
        lrs.append(stairs.param_groups[0]["lr"])
        stairs.step()
        staircase.step()
    assert lrs == pytest.approx([0.5] * 4 + [0.45] * 4 + [0.405])
    # resumable: a fresh scheduler loaded from the state continues the same curve
    restored = ExponentialDecayLR(_optimizer(0.5), 4, rate=0.9)
    restored.load_state_dict(schedule.state_dict())
    restored.optimizer.step()
    restored.step()
    assert restored.get_last_lr()[0] == pytest.approx(0.5 * 0.9 ** (10 / 4))


def test_exponential_lr_schedule_from_the_config() -> None:
    """``lr_schedule.kind: exponential`` decays x decay_rate every decay_epochs epochs of the
    data's steps (the authors' 0.99 every 2); constant stays the default."""
    config = load_config(None, ["lr_schedule.kind=exponential"])
    opt = _optimizer(1e-4)
    _, schedule, info = make_schedules(config, opt, steps_per_epoch=50)
    assert isinstance(schedule, ExponentialDecayLR) and info["lr_decay_steps"] == 100
    for _ in range(100):
        opt.step()
        schedule.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.99e-4, rel=1e-12)
    assert make_schedules(load_config(None, []), _optimizer(), 50)[1] is None
    for bad, message in (("lr_schedule.decay_rate=0", "lr_schedule.decay_rate must be in"),
                         ("lr_schedule.decay_epochs=0", "lr_schedule.decay_epochs must be > 0"),
                         ("lr_schedule.kind=step", "'constant', 'cyclical' or 'exponential'")):
        with pytest.raises(UserError, match=message):
            load_config(None, [bad])


def _cnn_model(*extra: str, vocab: int = 30):
    config = load_config("configs/yelp/ae.yaml", [*TINY_CNN, *extra])
    torch.manual_seed(0)
    return build_model(config.model, vocab)


def test_normalized_embeddings_are_unit_rows_one_tied_parameter_and_off_by_default() -> None:
    plain = _cnn_model()
    assert isinstance(plain.encoder.embedding.weight, torch.nn.Parameter)
    assert plain.encoder.embedding.weight.norm(dim=1).sub(1).abs().max() > 0.1
    model = _cnn_model("model.normalize_embeddings=true")
    for table in (model.encoder.embedding.weight, model.decoder.embedding.weight,
                  model.decoder.output.weight):
        assert torch.allclose(table.norm(dim=1), torch.ones(30), atol=1e-6)
    raw = model.decoder.embedding.parametrizations.weight.original
    assert model.decoder.output.parametrizations.weight.original is raw  # still tied
    assert torch.equal(model.decoder.output.weight, model.decoder.embedding.weight)
    assert sum(p is raw for p in model.parameters()) == 1
    tokens = torch.tensor([[Vocabulary.BOS_INDEX, 5, 6, 7, Vocabulary.EOS_INDEX]] * 2)
    model(TextBatch(tokens)).rec.sum().backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0
    # every row scaled by its own factor leaves the model's output unchanged
    model.eval()
    with torch.no_grad():
        before = model(TextBatch(tokens), sample=False).rec
        raw.mul_(torch.linspace(0.5, 3.0, 30)[:, None])
        after = model(TextBatch(tokens), sample=False).rec
    assert torch.allclose(after, before, rtol=1e-5)


def test_loss_pad_length_counts_the_pads_after_the_sentence() -> None:
    model = _cnn_model().eval()
    padded = _cnn_model("model.loss_pad_length=8").eval()
    padded.load_state_dict(model.state_dict())
    tokens = torch.tensor([[Vocabulary.BOS_INDEX, 5, 6, 7, Vocabulary.EOS_INDEX],
                           [Vocabulary.BOS_INDEX, 9, 8, 6, Vocabulary.EOS_INDEX]])
    z = torch.randn(2, 4)
    with torch.no_grad():
        rec = model.reconstruction_loss(TextBatch(tokens), z)
        rec_padded = padded.reconstruction_loss(TextBatch(tokens), z)
        by_hand = model.decoder.reconstruction_loss(
            torch.nn.functional.pad(tokens, (0, 4), value=Vocabulary.PAD_INDEX), z)
        long = torch.randint(4, 30, (2, 12))
        long_rec = model.reconstruction_loss(TextBatch(long), z)
        long_padded = padded.reconstruction_loss(TextBatch(long), z)
    assert torch.equal(rec_padded, by_hand) and (rec_padded > rec).all()
    assert torch.equal(long_padded, long_rec)  # 11 targets already exceed 8: nothing added
    with pytest.raises(UserError, match="model.loss_pad_length must be null unless"):
        family_of(load_config(None, ["model.kind=savae", "model.loss_pad_length=24"]))
    with pytest.raises(UserError, match="model.loss_pad_length must be >= 1 or null"):
        load_config(None, ["model.loss_pad_length=0"])


def test_all_four_settings_train_embed_and_probe(shared_data, tmp_path, capsys) -> None:
    """The AE row with every authors' setting, end to end on a slice of Yelp: the lr in the
    log decays step by step, the checkpoint loads (embed) and both probes run."""
    for split, n in (("train", 200), ("valid", 60), ("test", 60)):
        lines = (shared_data / "yelp" / f"{split}.tsv").read_text().splitlines()
        (tmp_path / f"{split}.tsv").write_text("\n".join(lines[::len(lines) // n][:n]) + "\n")
    out = tmp_path / "run"
    sets = [f"data.{s}={tmp_path / f'{s}.tsv'}" for s in ("train", "valid", "test")]
    sets += [*TINY_CNN, "train.epochs=2", "train.clip=0", "lr_schedule.kind=exponential",
             "model.normalize_embeddings=true", "model.loss_pad_length=24", "train.log_every=1"]
    assert main(["train", "--config", "yelp/ae", "--out", str(out), "--no-progress",
                 *[x for item in sets for x in ("--set", item)]]) == 0
    records = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    assert len(lrs) > 10 and lrs == sorted(lrs, reverse=True) and lrs[-1] < lrs[0] < 1e-4 + 1e-12
    assert lrs[-1] > 0.99 * 1e-4  # under 2 epochs: less than one factor of 0.99
    capsys.readouterr()
    for classifier in ("ours", "authors"):
        assert main(["probe", str(out / "checkpoint_last.pt"), "--train",
                     str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.tsv"),
                     "--test", str(tmp_path / "test.tsv"), "--fractions", "1",
                     "--classifier", classifier, "--classifier-epochs", "2"]) == 0
        assert json.loads(capsys.readouterr().out)["classifier"] == classifier
