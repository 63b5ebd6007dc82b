"""Caption parsers: text → :class:`graphmatch.structures.SceneGraph`.

This package holds the spaCy dependency-rule scene-graph parser (:class:`SceneGraphParser`,
rules in :mod:`parsers.rules`), its spaCy pipeline component (``nlp.add_pipe("scene_graph")``),
the parse cache (:mod:`parsers.cache`) and the parser evaluation (:mod:`parsers.evaluation`).
spaCy is imported inside this package only, never by ``graphmatch``.

Names are imported on first use, so ``from parsers.cache import parse_with_cache`` does not load
spaCy. The ``"scene_graph"`` factory is known to spaCy through the package's ``spacy_factories``
entry point (``nlp.add_pipe("scene_graph")`` works without importing anything), and is also
registered when :mod:`parsers.component` is imported.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SceneGraphParser": "parser", "load_model": "parser", "clean_text": "parser",
    "doc_to_scene_graph": "rules", "RULES_VERSION": "rules",
    "Normalizer": "evaluation", "graph_tuples": "evaluation", "score_records": "evaluation",
    "sng_to_record": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parsers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"parsers.{module}"), name)
    if module != "evaluation":
        importlib.import_module("parsers.component")  # a parser user gets the spaCy factory too
    globals()[name] = value
    return value
