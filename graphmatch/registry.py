"""The one registry mechanism for every pluggable part (matchers, encoders, GNN layers, losses,
visual edge builders, data sets, region extractors, parsers).

A :class:`Registry` maps a name to a class or factory and, for components that a config file can
name, to the component's *options*: the keys its config section may hold besides ``name``.
Registration is separate from construction, as in detectron2's ``Registry``: a class is usable
without any config system, and a config names it by its registered name.

Each registry lives in the package of what it holds (``graphmatch.models.MATCHERS``,
``graphmatch.encoders.ENCODERS``, ``graphmatch.nn.conv.GNN_LAYERS``, ``graphmatch.losses.LOSSES``,
``graphmatch.graphs.VISUAL_EDGES``, ``graphmatch.data.DATASETS``, ``detectors.EXTRACTORS``,
``parsers.PARSERS``); importing that package fills it. :mod:`graphmatch.catalog` lists them all.
This module imports nothing of the package.

Example::

    from dataclasses import dataclass
    from graphmatch.models import MATCHERS, Matcher

    @dataclass
    class MyConfig:
        temperature: float = 0.1

    @MATCHERS.register("my_matcher", config=MyConfig)
    class MyMatcher(Matcher):
        def __init__(self, *, image_encoder, text_encoder, temperature=0.1): ...

    MATCHERS.get("my_matcher")          # -> MyMatcher
    MATCHERS.options("my_matcher")      # -> MyConfig (the schema of its config section)

Options. With ``config=`` a dataclass is the schema of the component's config section. Without it,
the schema is read from the signature of the class's ``__init__`` (or the function): every
parameter *with a default* is an option, typed by its annotation; parameters without a default
are supplied by the code that builds the component (e.g. a matcher's encoders, a GNN layer's
channel sizes) and are not config keys. Range and choice constraints ride on dataclass field
metadata (:func:`graphmatch.options.option`).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

T = TypeVar("T")

#: Every registry created so far, by its ``key`` (``"matchers"``, ``"encoders"``, ...).
_REGISTRIES: Dict[str, "Registry"] = {}
#: Called (each at most once) when a lookup misses, before the miss is reported: loading the
#: entry-point plug-ins (:mod:`graphmatch.plugins` adds itself here) may register the name.
_MISS_HOOKS: List[Callable[[], Any]] = []


def add_miss_hook(hook: Callable[[], Any]) -> None:
    """Run ``hook()`` once, the first time any registry lookup misses."""
    if hook not in _MISS_HOOKS:
        _MISS_HOOKS.append(hook)


def _run_miss_hooks() -> bool:
    ran = False
    while _MISS_HOOKS:
        _MISS_HOOKS.pop(0)()
        ran = True
    return ran


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered. A ``KeyError`` (it is a failed lookup) and a ``ValueError``
    (it usually comes from a config value), with a readable message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """A named mapping ``name -> object`` with decorator registration, an options schema per entry
    and helpful lookup errors.

    Args:
        kind: what it holds, for messages (``"matcher"``).
        key: its name in :mod:`graphmatch.catalog` and in ``graphmatch list`` (``"matchers"``);
            default ``kind + "s"`` with spaces as underscores.
    """

    def __init__(self, kind: str, key: Optional[str] = None) -> None:
        self.kind = kind
        self.key = key or kind.replace(" ", "_").replace("-", "_") + "s"
        self._items: Dict[str, Any] = {}
        self._configs: Dict[str, Optional[type]] = {}
        self._derived: Dict[str, type] = {}
        _REGISTRIES.setdefault(self.key, self)

    # ------------------------------------------------------------------ registration
    def register(self, name: Optional[str] = None, obj: Any = None, *, config: Optional[type] = None) -> Any:
        """Register ``obj`` under ``name`` (default: ``obj.__name__``), with ``config`` (a dataclass)
        as the schema of its options (default: read from its signature, see module docstring).

        Usable as ``@REG.register()``, ``@REG.register("name", config=C)`` or
        ``REG.register("name", obj)``. Registering a different object under a taken name is an error.
        """
        if config is not None and not (isinstance(config, type) and dataclasses.is_dataclass(config)):
            raise TypeError(f"{self.kind} registry: config= must be a dataclass type, got {config!r}")
        if obj is not None:
            self._add(name or obj.__name__, obj, config)
            return obj

        def deco(o: T) -> T:
            self._add(name or o.__name__, o, config)  # type: ignore[attr-defined]
            return o

        return deco

    def _add(self, name: str, obj: Any, config: Optional[type]) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registry: name must be a non-empty string, got {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise KeyError(f"{self.kind} {name!r} is already registered to {self._items[name]!r}")
        self._items[name] = obj
        self._configs[name] = config
        self._derived.pop(name, None)

    # ------------------------------------------------------------------ lookup
    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; an unknown name lists the known ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            if isinstance(name, str) and _run_miss_hooks() and name in self._items:
                return self._items[name]
            close = difflib.get_close_matches(str(name), self._items, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def resolve(self, spec: Any) -> Any:
        """A name is looked up; anything else (a class, a factory) is returned unchanged."""
        return self.get(spec) if isinstance(spec, str) else spec

    def options(self, spec: Any) -> type:
        """The dataclass that is the schema of ``spec``'s config section (a registered name, or a
        class / factory not registered here, whose signature is read)."""
        if isinstance(spec, str):
            obj = self.get(spec)
            if self._configs.get(spec) is not None:
                return self._configs[spec]  # type: ignore[return-value]
            if spec not in self._derived:
                self._derived[spec] = options_from_signature(obj)
            return self._derived[spec]
        for n, o in self._items.items():
            if o is spec:
                return self.options(n)
        explicit = getattr(spec, "config_class", None)
        if isinstance(explicit, type) and dataclasses.is_dataclass(explicit):
            return explicit
        return options_from_signature(spec)

    def name_of(self, obj: Any) -> Optional[str]:
        """The name ``obj`` is registered under, or None."""
        for n, o in self._items.items():
            if o is obj:
                return n
        return None

    def build(self, spec: Any, **kwargs: Any) -> Any:
        """Construct ``spec`` (a registered name or a class/factory) with ``kwargs``."""
        factory: Callable[..., Any] = self.resolve(spec)
        return factory(**kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def items(self) -> List[tuple]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def registries() -> Dict[str, Registry]:
    """Every registry created so far, by key (see :mod:`graphmatch.catalog` for all of them with
    their packages imported)."""
    return dict(_REGISTRIES)


def accepted_kwargs(factory: Any, available: Dict[str, Any]) -> Dict[str, Any]:
    """The entries of ``available`` that ``factory`` (a class or function) takes as arguments (all
    of them when it takes ``**kwargs``): how builders pass what the data decides (channel sizes,
    a vocabulary) to the components that ask for it."""
    try:
        params = inspect.signature(_signature_target(factory)).parameters
    except (TypeError, ValueError):
        return dict(available)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(available)
    return {k: v for k, v in available.items() if k in params}


def _signature_target(obj: Any) -> Any:
    return obj.__init__ if inspect.isclass(obj) else obj


def options_from_signature(obj: Any) -> type:
    """A dataclass of the parameters of ``obj`` (its ``__init__`` for a class) that have a
    default: name, annotation (``Any`` where it cannot be resolved) and default. ``*args``,
    ``**kwargs`` and parameters without a default are left out."""
    target = _signature_target(obj)
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        sig = None
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: the annotations are then not checked
        hints = {}
    fields = []
    if sig is not None:
        for p in sig.parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty:
                continue
            tp = hints.get(p.name, Any)
            d = p.default
            if isinstance(d, (list, dict, set)):
                fields.append((p.name, tp, dataclasses.field(default_factory=lambda d=d: type(d)(d))))
            else:
                fields.append((p.name, tp, dataclasses.field(default=d)))
    name = getattr(obj, "__name__", type(obj).__name__) + "Options"
    return dataclasses.make_dataclass(name, fields)
