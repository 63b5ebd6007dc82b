"""One registry mechanism for every pluggable part (GNN layers, encoders, matchers, extractors,
parsers, data sets).

A registry maps a name to a class or factory. Registration is separate from construction, as in
detectron2's ``Registry``: a class is usable without any config system, and a config names it by its
registered name. Python callers may pass the class or an instance instead of a name.

Example::

    from graphmatch.registry import MATCHERS

    @MATCHERS.register("my_matcher")
    class MyMatcher(Matcher):
        ...

    MATCHERS.get("my_matcher")      # -> MyMatcher
    list_matchers()                 # -> [..., "my_matcher", ...]
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered. A ``KeyError`` (it is a failed lookup) and a ``ValueError``
    (it usually comes from a config value), with a readable message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """A named mapping ``name -> object`` with decorator registration and helpful lookup errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Any] = {}

    def register(self, name: Optional[str] = None, obj: Any = None) -> Any:
        """Register ``obj`` under ``name`` (default: ``obj.__name__``).

        Usable as ``@REG.register()``, ``@REG.register("name")`` or ``REG.register("name", obj)``.
        Registering a different object under a taken name is an error.
        """
        if obj is not None:
            self._add(name or obj.__name__, obj)
            return obj

        def deco(o: T) -> T:
            self._add(name or o.__name__, o)  # type: ignore[attr-defined]
            return o

        return deco

    def _add(self, name: str, obj: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} registry: name must be a non-empty string, got {name!r}")
        if name in self._items and self._items[name] is not obj:
            raise KeyError(f"{self.kind} {name!r} is already registered to {self._items[name]!r}")
        self._items[name] = obj

    def get(self, name: str) -> Any:
        """Return the object registered as ``name``; an unknown name lists the known ones."""
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._items, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Registered: {', '.join(sorted(self._items)) or '(none)'}"
            ) from None

    def resolve(self, spec: Any) -> Any:
        """A name is looked up; anything else (a class, a factory) is returned unchanged."""
        return self.get(spec) if isinstance(spec, str) else spec

    def build(self, spec: Any, **kwargs: Any) -> Any:
        """Construct ``spec`` (a registered name or a class/factory) with ``kwargs``."""
        factory: Callable[..., Any] = self.resolve(spec)
        return factory(**kwargs)

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


GNN_LAYERS = Registry("GNN layer")
ENCODERS = Registry("encoder")
MATCHERS = Registry("matcher")
EXTRACTORS = Registry("region extractor")
PARSERS = Registry("scene-graph parser")
DATASETS = Registry("data set")
VISUAL_EDGES = Registry("visual edge builder")

_ALL = {
    "gnn_layers": GNN_LAYERS,
    "encoders": ENCODERS,
    "matchers": MATCHERS,
    "extractors": EXTRACTORS,
    "parsers": PARSERS,
    "datasets": DATASETS,
    "visual_edges": VISUAL_EDGES,
}


def _ensure_builtins() -> None:
    """Import the modules whose import registers the built-in components."""
    import graphmatch.models  # noqa: F401  (registers matchers)
    import graphmatch.encoders  # noqa: F401  (registers encoders)
    import graphmatch.visual_graphs  # noqa: F401  (registers visual edge builders)
    import graphmatch.data.precomp  # noqa: F401  (registers data set loaders)
    import graphmatch.data.synthetic  # noqa: F401


def list_gnn_layers() -> List[str]:
    _ensure_builtins()
    return GNN_LAYERS.names()


def list_encoders() -> List[str]:
    _ensure_builtins()
    return ENCODERS.names()


def list_matchers() -> List[str]:
    _ensure_builtins()
    return MATCHERS.names()


def list_extractors() -> List[str]:
    return EXTRACTORS.names()


def list_parsers() -> List[str]:
    return PARSERS.names()


def list_datasets() -> List[str]:
    _ensure_builtins()
    return DATASETS.names()


def list_all() -> Dict[str, List[str]]:
    """Every registry and its registered names."""
    _ensure_builtins()
    return {k: r.names() for k, r in _ALL.items()}
