"""Caption parsers: text → :class:`graphmatch.structures.SceneGraph`, and the jobs around them.

* :mod:`parsers.registry` — :data:`PARSERS` (``"spacy_rules"``) and :func:`build_parser`;
* :mod:`parsers.parser` — the spaCy dependency-rule parser :class:`SceneGraphParser` (rules in
  :mod:`parsers.rules`, word lists in :mod:`parsers.lexicon`, caption cleaning in
  :mod:`parsers.text`) and :func:`make_parser`; its spaCy pipeline component
  (``nlp.add_pipe("scene_graph")``) is :mod:`parsers.component`;
* :mod:`parsers.cache` — the parse-once cache of scene-graph records;
* :mod:`parsers.job` — the batch parse job (:func:`parse_file`) and the parse sidecars of a
  precomp folder (:func:`parse_precomp`);
* :mod:`parsers.evaluation` — tuple scoring against FACTUAL-style gold graphs;
  :mod:`parsers.benchmark` — the evaluation harness of ``graphmatch eval-parser`` (quality and
  speed, against the ``sng_parser`` baseline);
* :mod:`parsers.cli` — the ``graphmatch parse`` / ``eval-parser`` commands.

spaCy is imported inside this package only, never by ``graphmatch``, and only when a parser is
built. Names are imported on first use, so ``import parsers`` and ``from parsers import PARSERS``
load neither spaCy nor the rules. The ``"scene_graph"`` factory is known to spaCy through the
package's ``spacy_factories`` entry point (``nlp.add_pipe("scene_graph")`` works without importing
anything), and is also registered when :mod:`parsers.component` is imported.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PARSERS": "registry", "build_parser": "registry",
    "SceneGraphParser": "parser", "make_parser": "parser", "load_model": "parser", "clean_text": "parser",
    "doc_to_scene_graph": "rules", "RULES_VERSION": "rules",
    "ParseCache": "cache", "parse_with_cache": "cache",
    "parse_file": "job", "parse_precomp": "job", "load_scene_graphs": "job",
    "Normalizer": "evaluation", "graph_tuples": "evaluation", "score_records": "evaluation",
    "sng_to_record": "evaluation", "evaluate_parser": "benchmark", "canonical_graph": "benchmark",
    "structure_pairs": "benchmark",
}
#: Modules whose names come with the spaCy pipeline component (a parser user gets the factory too).
_WITH_COMPONENT = {"parser", "rules"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'parsers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"parsers.{module}"), name)
    if module in _WITH_COMPONENT:
        importlib.import_module("parsers.component")
    globals()[name] = value
    return value
