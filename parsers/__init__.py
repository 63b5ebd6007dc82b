"""Caption parsers: text → :class:`graphmatch.structures.SceneGraph`.

This package holds the spaCy dependency-rule scene-graph parser (:class:`SceneGraphParser`,
rules in :mod:`parsers.rules`), its spaCy pipeline component (``nlp.add_pipe("scene_graph")``,
registered on import) and the parser evaluation (:mod:`parsers.evaluation`). spaCy is imported
inside this package only, never by ``graphmatch``.
"""
from . import component  # noqa: F401  (registers the "scene_graph" factory)
from .evaluation import Normalizer, graph_tuples, score_records, sng_to_record
from .parser import SceneGraphParser, clean_text, load_model
from .rules import RULES_VERSION, doc_to_scene_graph

__all__ = [
    "SceneGraphParser", "load_model", "clean_text", "doc_to_scene_graph", "RULES_VERSION",
    "Normalizer", "graph_tuples", "score_records", "sng_to_record",
]
