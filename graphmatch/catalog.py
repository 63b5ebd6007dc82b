"""The catalogue of every registry: built-in components and plug-ins, for ``graphmatch list`` and for
the config loader.

Each registry lives in its package; :func:`registry` imports that package (which fills it) and
returns it. Registries of other packages (``detectors``' extractors, ``parsers``' parsers) and
third-party components arrive through the ``graphmatch.plugins`` entry-point group
(:mod:`graphmatch.plugins`): the core never imports ``detectors`` or ``parsers`` by name.
"""
from __future__ import annotations

import importlib
from typing import Dict, List

from graphmatch.plugins import load_entry_points
from graphmatch.registry import Registry, UnknownNameError, registries

#: Registry key -> the package whose import fills it.
BUILTIN: Dict[str, str] = {
    "matchers": "graphmatch.models",
    "encoders": "graphmatch.encoders",
    "gnn_layers": "graphmatch.nn.conv",
    "losses": "graphmatch.losses",
    "visual_edges": "graphmatch.graphs",
    "text_graphs": "graphmatch.graphs",
    "datasets": "graphmatch.data",
}


def registry(key: str) -> Registry:
    """The registry ``key`` (``"matchers"``, ``"encoders"``, ...), its built-ins imported. A name
    not among them loads the entry-point plug-ins once before it is reported unknown."""
    if key in BUILTIN:
        importlib.import_module(BUILTIN[key])
    regs = registries()
    if key not in regs:
        load_entry_points()
        regs = registries()
    if key not in regs:
        raise UnknownNameError(f"unknown registry {key!r}; known: {', '.join(sorted(set(BUILTIN) | set(regs)))}")
    return regs[key]


def load_all() -> Dict[str, Registry]:
    """Every registry, the built-in packages imported and the plug-ins loaded."""
    for module in sorted(set(BUILTIN.values())):
        importlib.import_module(module)
    load_entry_points()
    return dict(sorted(registries().items()))


def list_all() -> Dict[str, List[str]]:
    """Every registry and its registered names."""
    return {k: r.names() for k, r in load_all().items()}
