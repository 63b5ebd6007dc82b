"""Experiment configuration: YAML files turned into typed dataclasses.

A config file has the sections ``data``, ``model``, ``train`` and ``eval`` plus ``name``,
``output_dir`` and ``imports``. The core keys of each section are the dataclass fields below. A
section that names a registered component (``model.matcher``, ``model.image``, ``model.text``,
``model.image_gnn``, ``model.text_gnn``, ``train.loss``, ``data`` itself, ``data.graph.visual_edges``,
``data.graph.text_graph``) is ``name`` plus *that component's own keys*, which the component
declares where it is defined (a dataclass registered with it, or its keyword arguments, see
:mod:`graphmatch.registry`); this module never changes when a component is added::

    model:
      matcher:
        name: scan            # a registered matcher
        direction: t2i        # ... and SCAN's own keys
      image: precomp_fc       # a bare name takes the component's defaults

Every key is checked: an unknown key (with "did you mean"), a value of the wrong type, or a number
outside its range (:func:`graphmatch.options.option` metadata, e.g. ``train.lr > 0``) is a
:class:`ConfigError` that names the key and the file (or the ``--set`` override) it came from, so
a bad value fails when the config is read, before any data is read.

``imports`` (files or module names, also ``graphmatch train --import``) is imported before any
section is checked, so a component defined in a user's own file is known by name, with its keys.

Command-line overrides use dotted keys, ``--set train.lr=1e-4``; their values are parsed as YAML
scalars (``1e-4`` → float, ``true`` → bool, ``null`` → None). Configs of earlier versions (loss
keys directly under ``train``, ``data.synthetic: true``) are read through :func:`migrate`.

The config is turned into keyword arguments once, when a component is built; the functions of the
maths never see a config object. A config (:meth:`ExperimentConfig.to_dict`) is plain data.
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

from graphmatch.options import Range, field_choices, field_range, option

#: The layout version written into every saved config; version 1 had the loss keys under ``train``.
CONFIG_VERSION = 2


class ConfigError(ValueError):
    """A config file or override that cannot be turned into an :class:`ExperimentConfig`."""


# --------------------------------------------------------------------------------------------
# component sections
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComponentSpec:
    """What a component section holds: a component of registry ``kind`` (``"matchers"``),
    ``default`` when no name is given, and ``common`` (a dataclass of keys every component of this
    section shares, e.g. a GNN stack's depth) or None."""

    kind: str
    default: Optional[str]
    common: Optional[type] = None


def _registry(kind: str) -> Any:
    from graphmatch import catalog  # imported when a section is checked: this module stays light

    return catalog.registry(kind)


class Component:
    """A config section that names a registered component: ``name``, the component's own options
    (an instance of its options dataclass) and, for sections with shared keys, ``common``.

    Attribute access reads the common keys first, then the options (``cfg.model.matcher.agg``);
    :meth:`kwargs` gives the options as keyword arguments of the component. ``name`` may also be a
    class or factory (Python callers), whose signature is then the schema.
    """

    def __init__(self, spec: ComponentSpec, name: Any, options: Any = None, common: Any = None) -> None:
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_options", options)
        if common is None and spec.common is not None:
            common = spec.common()
        object.__setattr__(self, "common", common)

    @property
    def kind(self) -> str:
        return self._spec.kind

    @property
    def options(self) -> Any:
        if self._options is None:
            schema = _registry(self._spec.kind).options(self.name)
            object.__setattr__(self, "_options", schema())
        return self._options

    def kwargs(self) -> Dict[str, Any]:
        """The component's own options as keyword arguments (shallow copies of lists and dicts)."""
        o = self.options
        return {f.name: _plain(getattr(o, f.name)) for f in dataclasses.fields(o)}

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        common = self.__dict__.get("common")
        if common is not None and key in {f.name for f in dataclasses.fields(common)}:
            return getattr(common, key)
        options = self.options
        if key in {f.name for f in dataclasses.fields(options)}:
            return getattr(options, key)
        raise AttributeError(f"{self._spec.kind} section {self.name!r} has no key {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "name":
            object.__setattr__(self, "name", value)
            object.__setattr__(self, "_options", None)  # the new component's defaults
            return
        if self.common is not None and key in {f.name for f in dataclasses.fields(self.common)}:
            setattr(self.common, key, value)
            return
        if key in {f.name for f in dataclasses.fields(self.options)}:
            setattr(self.options, key, value)
            return
        raise AttributeError(f"{self._spec.kind} section {self.name!r} has no key {key!r}")

    def to_dict(self) -> Dict[str, Any]:
        name = self.name if isinstance(self.name, str) else _qualified_name(self.name)
        out: Dict[str, Any] = {"name": name}
        if self.common is not None:
            out.update(_to_plain(self.common))
        out.update(_to_plain(self.options))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Component) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Component({self.to_dict()!r})"


def _qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v


def component(kind: str, default: Optional[str], *, common: Optional[type] = None, optional: bool = False) -> Any:
    """A dataclass field holding a :class:`Component` section of registry ``kind``. ``optional``:
    the section is absent (None) unless given."""
    spec = ComponentSpec(kind, default, common)
    if optional:
        return field(default=None, metadata={"component": spec})
    return field(default_factory=lambda: Component(spec, default), metadata={"component": spec})


# --------------------------------------------------------------------------------------------
# the core sections
# --------------------------------------------------------------------------------------------

@dataclass
class GraphRecipe:
    """How images and captions become graphs (``data.graph``).

    ``visual_edges``: a registered visual edge builder (``none``, ``full``, ``polar``, ``knn``,
    ``iou``, ``relations``) with its options, e.g. ``{name: knn, k: 8}``. ``text_graph``: a
    registered text graph kind (``words``, ``full``, ``dependency``, ``scene``). ``parses``: the
    parse file of a split for ``dependency`` / ``scene`` graphs, ``{root}`` and ``{split}``
    replaced (written by ``graphmatch parse --precomp``).
    """

    visual_edges: Any = component("visual_edges", "none")
    text_graph: Any = component("text_graphs", "words")
    parses: str = "{root}/{split}_graphs.jsonl"


@dataclass
class DataConfig:
    """Keys every data set shares (``data``; the data set's own keys sit beside them).

    ``root`` holds the precomp layout (``{split}_ims.npy``, ``{split}_caps.txt``, ...). With
    ``regions`` set, image regions come from that file instead (an HDF5 region store written by
    ``graphmatch extract``, bottom-up-attention TSV files, or another precomp folder), looked up by
    the ids in ``{split}_ids.txt``; ``root`` then needs only captions and ids.
    """

    root: str = "data/synthetic"
    regions: Optional[str] = None  # region file (HDF5 store, BUTD TSV, precomp folder) keyed by {split}_ids.txt
    train_split: str = "train"
    val_split: str = "dev"
    test_split: str = "test"
    vocab: Optional[str] = None  # JSON vocabulary; built from the training captions when None
    vocab_min_count: int = option(1, lo=1, note="1 keeps every training word")
    max_val_images: Optional[int] = option(None, lo=1, note="null validates on all images")
    check_finite: bool = True
    graph: GraphRecipe = field(default_factory=GraphRecipe)


@dataclass
class GNNStackConfig:
    """Keys of a GNN stack section (``model.image_gnn`` / ``model.text_gnn``) besides the layer's
    own: the layer (``name``) is applied ``num_layers`` times to the encoder's node embeddings."""

    num_layers: int = option(1, lo=1)
    residual: bool = True
    dropout: float = option(0.0, lo=0, hi=1, hi_open=True, note="0: no dropout")
    norm: str = option("none", choices=("none", "layer", "batch"))
    edge_features: bool = option(True, help="pass the graph's edge_attr to layers that take edge features")
    activation: str = option("relu", choices=("relu", "gelu", "elu", "none"))
    hidden_channels: Optional[int] = option(None, lo=1, help="size between the layers (dim -> hidden -> ... -> dim)",
                                            note="null: dim")


@dataclass
class ModelConfig:
    embed_dim: int = option(1024, lo=1)
    image: Any = component("encoders", "precomp_fc")
    text: Any = component("encoders", "bigru")
    matcher: Any = component("matchers", "scan")
    image_gnn: Any = component("gnn_layers", None, common=GNNStackConfig, optional=True)
    text_gnn: Any = component("gnn_layers", None, common=GNNStackConfig, optional=True)
    text_pool: str = option("mean", choices=("mean", "attention"),
                            help="scene text graphs: how a node's feature is pooled from the text encoder's "
                                 "word states over its span (graphmatch.encoders.span)")


@dataclass
class TrainConfig:
    epochs: int = option(30, lo=0, note="0 trains nothing")
    batch_size: int = option(128, lo=2, note="the loss needs a negative in every batch")
    lr: float = option(2e-4, lo=0, lo_open=True)
    lr_decay_epochs: List[int] = option([15], lo=0, note="0: decayed from the first epoch")
    lr_decay: float = option(0.1, lo=0, lo_open=True)
    grad_clip: float = option(2.0, lo=0, note="0: no clipping")
    loss: Any = component("losses", "contrastive")
    seed: int = option(0, lo=0)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = option(0, lo=0, note="0: batches are built in the main process")
    log_every: int = option(50, lo=0, note="0: no step log lines")
    checkpoint_every: int = option(0, lo=0, note="0: the last checkpoint is saved at the end of each epoch only")
    max_steps_per_epoch: Optional[int] = option(None, lo=1, note="null: whole epochs")
    max_minutes: Optional[float] = option(None, lo=0, note="0 stops after the first epoch; null: no limit")


@dataclass
class EvalConfig:
    img_chunk: int = option(128, lo=1)
    cap_chunk: int = option(256, lo=1)
    batch_size: int = option(256, lo=1)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    output_dir: str = "runs/experiment"
    imports: List[str] = field(default_factory=list)  # plug-in files / modules imported before building
    data: Any = component("datasets", "precomp", common=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return _to_plain(self)


def _to_plain(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a config dataclass, component sections included."""
    if isinstance(obj, Component):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


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
    if origin in (tuple, Tuple):
        return "list"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, typing.TypeVar):
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
    if origin in (list, List, tuple, Tuple, Sequence):
        args = typing.get_args(tp)
        a = args[0] if args and (origin in (list, List, Sequence) or (len(args) == 2 and args[1] is Ellipsis)) else Any
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


def _check_value(value: Any, f: dataclasses.Field, key: str, source: str) -> None:
    """Raise a :class:`ConfigError` naming ``key`` and ``source`` if ``value`` is out of the range or
    not one of the choices of field ``f``."""
    if value is None:
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, f, f"{key}[{i}]", source)
        return
    choices = field_choices(f)
    if choices is not None and value not in choices:
        raise ConfigError(f"{source}: '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    rng: Range = field_range(f)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: '{key}' must be a finite number ({rng.describe()}), got {value!r}")
    if not rng.accepts(value):
        note = f" ({rng.note})" if rng.note else ""
        raise ConfigError(f"{source}: '{key}' must be {rng.describe()}{note}, got {value!r}")


def _unknown_key(key: str, k: str, known: Sequence[str], source: str, where: str = "") -> ConfigError:
    close = difflib.get_close_matches(str(k), list(known), n=2)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"{source}: unknown key '{key}'{where}{hint}; known keys here: {', '.join(known) or '(none)'}")


def _type_hints(cls: Any) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a user's options dataclass with unresolvable annotations: values unchecked
        return {f.name: Any for f in dataclasses.fields(cls)}


def _build(cls: Any, raw: Dict[str, Any], prefix: str, source: str) -> Any:
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in fields:
            raise _unknown_key(key, k, list(fields), source)
        spec = fields[k].metadata.get("component")
        if spec is not None:
            kwargs[k] = _build_component(spec, v, key, source)
            continue
        kwargs[k] = _coerce(v, hints.get(k, Any), key, source)
        _check_value(kwargs[k], fields[k], key, source)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{source}: '{prefix or '(top level)'}' needs the key(s) "
                          f"{', '.join(f'{prefix}.{m}' if prefix else m for m in missing)}")
    return cls(**kwargs)


def _build_component(spec: ComponentSpec, raw: Any, key: str, source: str) -> Optional[Component]:
    """A :class:`Component` from a section value: a bare name, ``{name: ..., **keys}``, or null
    (an optional section left out)."""
    if raw is None:
        if spec.default is None:
            return None
        raw = {}
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{key}' must be a name or a mapping with 'name', got {type(raw).__name__} {raw!r}")
    raw = dict(raw)
    name = raw.pop("name", spec.default)
    if name is None:
        raise ConfigError(f"{source}: '{key}' needs a 'name' (a registered {_registry(spec.kind).kind})")
    reg = _registry(spec.kind)
    if isinstance(name, str):
        if name not in reg:
            try:
                reg.get(name)
            except KeyError as e:
                raise ConfigError(f"{source}: '{key}.name': {e} (a component of your own is registered by "
                                  "importing its file: --import FILE or 'imports:' in the config)") from None
    elif not callable(name):
        raise ConfigError(f"{source}: '{key}.name' must be a string, got {type(name).__name__} {name!r}")
    schema = reg.options(name)
    own = {f.name for f in dataclasses.fields(schema)}
    common_raw: Dict[str, Any] = {}
    if spec.common is not None:
        shared = {f.name for f in dataclasses.fields(spec.common)}
        common_raw = {k: raw.pop(k) for k in list(raw) if k in shared and k not in own}
    known = ([f.name for f in dataclasses.fields(spec.common)] if spec.common is not None else []) + sorted(own)
    for k in raw:
        if k not in own:
            raise _unknown_key(f"{key}.{k}", k, known, source, where=f" for {reg.kind} "
                               f"{name if isinstance(name, str) else _qualified_name(name)!r}")
    options = _build(schema, raw, key, source)
    common = _build(spec.common, common_raw, key, source) if spec.common is not None else None
    return Component(spec, name, options, common)


# --------------------------------------------------------------------------------------------
# migration of earlier layouts
# --------------------------------------------------------------------------------------------

_V1_LOSS_KEYS = {"margin": "margin", "max_violation": "max_violation", "loss_reduction": "reduction",
                 "warmup_epochs": "warmup_epochs"}


def migrate(raw: Dict[str, Any]) -> Dict[str, Any]:
    """The current layout of a config dict of an earlier version (a copy; ``raw`` is unchanged).

    Version 1 (configs and checkpoints written before component sections): the loss keys
    ``train.margin``, ``train.max_violation``, ``train.loss_reduction`` and ``train.warmup_epochs``
    become ``train.loss.{margin, max_violation, reduction, warmup_epochs}``; ``data.synthetic: true``
    becomes ``data.name: synthetic`` (and ``false`` becomes ``data.name: precomp``).
    """
    out = dict(raw)
    version = out.pop("version", 1)
    train = out.get("train")
    if isinstance(train, dict) and any(k in train for k in _V1_LOSS_KEYS):
        train = dict(train)
        loss = train.get("loss")
        loss = {"name": loss} if isinstance(loss, str) else dict(loss or {})
        for old, new in _V1_LOSS_KEYS.items():
            if old in train:
                loss.setdefault(new, train.pop(old))
        loss.setdefault("name", "contrastive")
        train["loss"] = loss
        out["train"] = train
    data = out.get("data")
    if isinstance(data, dict) and "synthetic" in data:
        data = dict(data)
        data["name"] = "synthetic" if data.pop("synthetic") is True else "precomp"
        out["data"] = data
    if version not in (1, CONFIG_VERSION):
        raise ConfigError(f"config version {version!r} is not known (this graphmatch reads 1 and {CONFIG_VERSION})")
    return out


# --------------------------------------------------------------------------------------------
# files and overrides
# --------------------------------------------------------------------------------------------

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


def _import_plugins(raw: Dict[str, Any], source: str, base_dir: Optional[Path]) -> List[str]:
    """Import the ``imports`` of ``raw`` (files or module names); returns them as they are to be
    saved (files as absolute paths)."""
    specs = raw.get("imports") or []
    if isinstance(specs, str):
        specs = [specs]
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise ConfigError(f"{source}: 'imports' must be a list of files or module names, got {specs!r}")
    from graphmatch.plugins import PluginError, import_plugins

    try:
        return import_plugins(specs, base_dir=base_dir)
    except PluginError as e:
        raise ConfigError(f"{source}: 'imports': {e}") from None


def config_from_dict(raw: Dict[str, Any], source: str = "<dict>", *, base_dir: Optional[Path] = None) -> ExperimentConfig:
    """Build and type-check an :class:`ExperimentConfig` from a plain dict (any version); its
    ``imports`` are imported first (relative files are looked up from ``base_dir`` too)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    raw = migrate(raw)
    if raw.get("imports"):
        raw["imports"] = _import_plugins(raw, source, base_dir)
    return _build(ExperimentConfig, raw, "", source)


def _set_path(raw: Dict[str, Any], keys: List[str], value: Any, ov: str) -> None:
    """Set ``keys`` in the nested dict ``raw``, creating sections; a key path through a value that
    is not a section (by the schema) is an error."""
    node: Dict[str, Any] = raw
    cls: Any = ExperimentConfig
    for i, k in enumerate(keys[:-1]):
        f = {f.name: f for f in dataclasses.fields(cls)}.get(k) if cls is not None else None
        if f is not None and f.metadata.get("component") is None:
            tp = _type_hints(cls).get(k)
            if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
                raise ConfigError(f"--set {ov}: '{'.'.join(keys[: i + 1])}' is not a section")
            cls = tp
        else:
            cls = None  # a component section (or an unknown key, reported by the check)
        child = node.get(k)
        if isinstance(child, str):  # a bare component name: "matcher: scan"
            child = {"name": child}
        elif not isinstance(child, dict):
            child = {}
        node[k] = child = dict(child)
        node = child
    node[keys[-1]] = value


def load_config(
    path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = (), *, imports: Sequence[str] = ()
) -> ExperimentConfig:
    """Read a YAML (or JSON) config file and apply ``key=value`` overrides.

    ``imports``: plug-in files or modules imported before the config is checked (``--import``),
    added to the config's own ``imports``. Errors name the file (or the override) and the key.
    """
    source = str(path) if path is not None else "<defaults>"
    raw = _read_file(Path(path)) if path is not None else {}
    base_dir = Path(path).resolve().parent if path is not None else None
    raw = migrate(raw)
    if imports:
        own = raw.get("imports") or []
        raw["imports"] = list(own if isinstance(own, list) else [own]) + [s for s in imports if s not in own]
    cfg = config_from_dict(raw, source, base_dir=base_dir)  # checks the file alone first, so errors name the file
    if not overrides:
        return cfg
    raw = dict(raw, imports=cfg.imports)
    for ov in overrides:
        keys, value = parse_override(ov)
        _set_path(raw, keys, value, ov)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # a text field given a value YAML reads as a number (output_dir=1.5) keeps the text
            _set_path(raw, keys, ov.partition("=")[2], ov)
            try:
                config_from_dict(raw, f"--set {ov}")
                continue
            except ConfigError:
                _set_path(raw, keys, value, ov)
        config_from_dict(raw, f"--set {ov}")  # an error names this override
    return config_from_dict(raw, "--set")


def save_config(cfg: ExperimentConfig, path: Union[str, Path]) -> None:
    """Write the config atomically: YAML for ``.yaml``/``.yml`` (usable as ``graphmatch train`` input),
    JSON otherwise."""
    from graphmatch.utils.atomic import atomic_write_json, atomic_write_text

    if Path(path).suffix in (".yaml", ".yml"):
        atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    else:
        atomic_write_json(path, cfg.to_dict())
