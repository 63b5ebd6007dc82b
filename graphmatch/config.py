"""Experiment configuration: YAML files turned into typed dataclasses.

A config file has four sections (``data``, ``model``, ``train``, ``eval``) plus ``name`` and
``output_dir``. Every key is checked against the dataclass fields below: an unknown key or a value
of the wrong type is a :class:`ConfigError` that names the key and the file (or the ``--set``
override) it came from. Command-line overrides use dotted keys, ``--set train.lr=1e-4``; their
values are parsed as YAML scalars (``1e-4`` → float, ``true`` → bool, ``null`` → None). Numeric keys are also checked against their valid range (:data:`RANGES`, e.g.
``train.lr > 0``, ``train.margin >= 0``, ``eval.batch_size >= 1``; floats must be finite), with the
same kind of error, so a bad value fails when the config is read, not after an epoch of training.

The config is turned into keyword arguments once, when a component is built (``from_config``);
the functions of the maths never see a config object.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be turned into an :class:`ExperimentConfig`."""


@dataclass
class DataConfig:
    """Where the data is and how it is read.

    ``root`` holds the precomp layout (``{split}_ims.npy``, ``{split}_caps.txt``, ...). With
    ``regions`` set, image regions come from that file instead (an HDF5 region store written by
    ``graphmatch extract``, bottom-up-attention TSV files, or another precomp folder), looked up by
    the ids in ``{split}_ids.txt``; ``root`` then needs only captions and ids. ``synthetic`` set to
    true generates the embedded SYNTHETIC scenes into ``root`` if they are absent.
    """

    root: str = "data/synthetic"
    regions: Optional[str] = None  # region file (HDF5 store, BUTD TSV, precomp folder) keyed by {split}_ids.txt
    train_split: str = "train"
    val_split: str = "dev"
    test_split: str = "test"
    vocab: Optional[str] = None  # JSON vocabulary; built from the training captions when None
    vocab_min_count: int = 1
    synthetic: bool = False
    max_val_images: Optional[int] = None  # evaluate on the first N validation images only
    check_finite: bool = True


@dataclass
class ImageEncoderConfig:
    name: str = "precomp_fc"
    no_imgnorm: bool = False


@dataclass
class TextEncoderConfig:
    name: str = "bigru"
    word_dim: int = 300
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    word_vectors: Optional[str] = None  # local word-vector file (GloVe text format); words not in it stay random
    freeze_word_vectors: bool = False
    no_txtnorm: bool = False


@dataclass
class MatcherConfig:
    name: str = "scan"
    direction: str = "t2i"  # t2i | i2t | both (the t-i and i-t scores averaged within one model)
    agg: str = "lse"  # lse | mean | max | sum
    t2i_lambda_softmax: float = 9.0
    t2i_lambda_lse: float = 6.0
    i2t_lambda_softmax: float = 4.0
    i2t_lambda_lse: float = 5.0


@dataclass
class ModelConfig:
    embed_dim: int = 1024
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-4
    lr_decay_epochs: List[int] = field(default_factory=lambda: [15])  # multiply lr by lr_decay at these epochs
    lr_decay: float = 0.1
    grad_clip: float = 2.0
    margin: float = 0.2
    max_violation: bool = True
    loss_reduction: str = "sum"
    warmup_epochs: int = 0  # epochs with the sum of violations before hardest negatives (VSE-infinity)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0
    log_every: int = 50
    checkpoint_every: int = 0  # also save a resumable "last" checkpoint every N steps (0: end of epoch only)
    max_steps_per_epoch: Optional[int] = None
    max_minutes: Optional[float] = None  # stop (after the current epoch's validation) past this wall time


@dataclass
class EvalConfig:
    img_chunk: int = 128
    cap_chunk: int = 256
    batch_size: int = 256


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    output_dir: str = "runs/experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# dict -> dataclass with type checking
# --------------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = " | ".join(_type_name(a) for a in args)
        return f"{inner} or null" if len(args) < len(typing.get_args(tp)) else inner
    if origin in (list, List):
        (a,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(a)}"
    if origin in (dict, Dict):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, source)
            except ConfigError:
                pass
        raise _type_error(value, tp, key, source)
    if origin in (list, List):
        (a,) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, tp, key, source)
        return [_coerce(v, a, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise _type_error(value, tp, key, source)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping (section), got {type(value).__name__} {value!r}")
        return _build(tp, value, key, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(value, tp, key, source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(value, tp, key, source)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _type_error(value, tp, key, source)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(value, tp, key, source)
    return value


def _type_error(value: Any, tp: Any, key: str, source: str) -> ConfigError:
    return ConfigError(
        f"{source}: '{key}' must be {_type_name(tp)}, got {type(value).__name__} {value!r}"
    )


# --------------------------------------------------------------------------------------------
# value ranges, checked when a config is loaded (before any data is read or any step is taken)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: ``lo <= v`` (or ``lo < v`` when ``lo_open``), and the
    same for ``hi``; ``note`` says what a boundary value means. Floats must also be finite."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return " and ".join(parts) or "finite"

    def accepts(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True


#: The valid range of every numeric key (a float key not listed here must only be finite).
#: ``None`` stays allowed where the type is optional.
RANGES: Dict[str, Range] = {
    "data.vocab_min_count": Range(lo=1, note="1 keeps every training word"),
    "data.max_val_images": Range(lo=1, note="null validates on all images"),
    "model.embed_dim": Range(lo=1),
    "model.text.word_dim": Range(lo=1),
    "model.text.num_layers": Range(lo=1),
    "model.text.dropout": Range(lo=0, hi=1, hi_open=True, note="0: no dropout"),
    "model.matcher.t2i_lambda_softmax": Range(lo=0, note="0: uniform attention"),
    "model.matcher.i2t_lambda_softmax": Range(lo=0, note="0: uniform attention"),
    "model.matcher.t2i_lambda_lse": Range(lo=0, lo_open=True),
    "model.matcher.i2t_lambda_lse": Range(lo=0, lo_open=True),
    "train.epochs": Range(lo=0, note="0 trains nothing"),
    "train.batch_size": Range(lo=2, note="the loss needs a negative in every batch"),
    "train.lr": Range(lo=0, lo_open=True),
    "train.lr_decay_epochs": Range(lo=0, note="0: decayed from the first epoch"),
    "train.lr_decay": Range(lo=0, lo_open=True),
    "train.grad_clip": Range(lo=0, note="0: no clipping"),
    "train.margin": Range(lo=0, note="0: a positive must only score above its negatives"),
    "train.warmup_epochs": Range(lo=0, note="0: no warm-up"),
    "train.seed": Range(lo=0),
    "train.num_workers": Range(lo=0, note="0: batches are built in the main process"),
    "train.log_every": Range(lo=0, note="0: no step log lines"),
    "train.checkpoint_every": Range(lo=0, note="0: the last checkpoint is saved at the end of each epoch only"),
    "train.max_steps_per_epoch": Range(lo=1, note="null: whole epochs"),
    "train.max_minutes": Range(lo=0, note="0 stops after the first epoch; null: no limit"),
    "eval.img_chunk": Range(lo=1),
    "eval.cap_chunk": Range(lo=1),
    "eval.batch_size": Range(lo=1),
}

#: Keys whose value must be one of a fixed set (the matcher's own options are checked when it is built).
CHOICES: Dict[str, Tuple[str, ...]] = {
    "train.loss_reduction": ("sum", "mean"),
}


def _check_value(value: Any, key: str, source: str) -> None:
    """Raise a :class:`ConfigError` naming ``key`` and ``source`` if ``value`` is out of range."""
    if value is None:
        return
    base = key.split("[", 1)[0]
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f"{base}[{i}]", source)
        return
    if base in CHOICES and value not in CHOICES[base]:
        raise ConfigError(f"{source}: '{key}' must be one of {', '.join(CHOICES[base])}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    rng = RANGES.get(base, Range())
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number ({rng.describe()}), got {value!r}")
    if not rng.accepts(value):
        note = f" ({rng.note})" if rng.note else ""
        raise ConfigError(f"{source}: '{key}' must be {rng.describe()}{note}, got {value!r}")


def _build(cls: Any, raw: Dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in fields:
            close = difflib.get_close_matches(str(k), list(fields), n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key '{key}'{hint}; known keys here: {', '.join(fields)}"
            )
        kwargs[k] = _coerce(v, hints[k], key, source)
        _check_value(kwargs[k], key, source)
    return cls(**kwargs)


def _merge(base: Dict[str, Any], other: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in other.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> Tuple[List[str], Any]:
    """``"train.lr=1e-4"`` → ``(["train", "lr"], 1e-4)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.lr=1e-4")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: bad key {key!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: cannot parse value: {e}") from None
    return key.split("."), parsed


def _read_file(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    return raw


def config_from_dict(raw: Dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build and type-check an :class:`ExperimentConfig` from a plain dict."""
    return _build(ExperimentConfig, raw, "", source)


def load_config(
    path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read a YAML (or JSON) config file and apply ``key=value`` overrides.

    Errors name the file (or the override) and the key.
    """
    source = str(path) if path is not None else "<defaults>"
    raw = _read_file(Path(path)) if path is not None else {}
    cfg = config_from_dict(raw, source)  # checks the file alone first, so errors name the file
    if not overrides:
        return cfg
    merged = cfg.to_dict()
    for ov in overrides:
        keys, value = parse_override(ov)
        node = merged
        for i, k in enumerate(keys[:-1]):
            if not isinstance(node.get(k), dict):
                raise ConfigError(f"--set {ov}: '{'.'.join(keys[: i + 1])}' is not a section")
            node = node[k]
        node[keys[-1]] = value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # a text field given a value YAML reads as a number (output_dir=1.5) keeps the text
            node[keys[-1]] = ov.partition("=")[2]
            try:
                config_from_dict(merged, f"--set {ov}")
                continue
            except ConfigError:
                node[keys[-1]] = value
        config_from_dict(merged, f"--set {ov}")  # an error names this override
    return config_from_dict(merged, "--set")


def save_config(cfg: ExperimentConfig, path: Union[str, Path]) -> None:
    """Write the config atomically: YAML for ``.yaml``/``.yml`` (usable as ``graphmatch train`` input),
    JSON otherwise."""
    from graphmatch.utils.io import atomic_write_json, atomic_write_text

    if Path(path).suffix in (".yaml", ".yml"):
        atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    else:
        atomic_write_json(path, cfg.to_dict())
