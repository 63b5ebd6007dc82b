"""Graphs of images and captions: PyG ``Data`` types, the builders a graph recipe names, box maths.

* :mod:`graphmatch.graphs.data` — :class:`VisualGraph`, :class:`TextGraph`, :func:`collate_graphs`,
  :func:`to_dense`, :class:`GraphFieldError` (the field conventions are in its docstring).
* :mod:`graphmatch.graphs.edges` — :data:`VISUAL_EDGES` (``none``, ``full``, ``polar``, ``knn``,
  ``iou``, ``relations``) and :func:`build_visual_graph`.
* :mod:`graphmatch.graphs.text` — :data:`TEXT_GRAPHS` (``words``, ``full``, ``dependency``,
  ``scene``), the caption graph builders and :func:`align_scene_graph`.
* :mod:`graphmatch.graphs.geometry` — box centres, IoU, polar and relative geometry.
* :mod:`graphmatch.graphs.needs` — :class:`GraphNeeds` of a matcher and :func:`check_recipe`.

Importing this package fills :data:`VISUAL_EDGES` and :data:`TEXT_GRAPHS`.
"""
from graphmatch.graphs.data import GraphFieldError, TextGraph, VisualGraph, collate_graphs, to_dense
from graphmatch.graphs.edges import (
    EDGE_MODES, VISUAL_EDGES, build_visual_graph, edge_dim_of, full_edges, iou_edges, knn_edges, none_edges,
    polar_edges, relation_edges, visual_edge_builder,
)
from graphmatch.graphs.geometry import (
    GEOMETRY_DIM, POLAR_DIM, box_centres, pairwise_iou, paired_iou, polar_features, relative_geometry,
)
from graphmatch.graphs.needs import GraphNeeds, check_recipe
from graphmatch.graphs.text import (
    DEP_LABELS, EDGE_ATTRIBUTE_OF, EDGE_OBJECT, EDGE_SUBJECT, NODE_ATTRIBUTE, NODE_OBJECT, NODE_RELATION, NODE_WORD,
    TEXT_GRAPH_KINDS, TEXT_GRAPHS, align_scene_graph, build_dependency_graph, build_scene_graph_graph,
    build_text_graph, build_word_graph, needs_parse, text_graph_builder,
)

__all__ = [
    "GraphFieldError", "TextGraph", "VisualGraph", "collate_graphs", "to_dense",
    "EDGE_MODES", "VISUAL_EDGES", "build_visual_graph", "edge_dim_of", "full_edges", "iou_edges", "knn_edges",
    "none_edges", "polar_edges", "relation_edges", "visual_edge_builder",
    "GEOMETRY_DIM", "POLAR_DIM", "box_centres", "pairwise_iou", "paired_iou", "polar_features", "relative_geometry",
    "GraphNeeds", "check_recipe",
    "DEP_LABELS", "EDGE_ATTRIBUTE_OF", "EDGE_OBJECT", "EDGE_SUBJECT", "NODE_ATTRIBUTE", "NODE_OBJECT",
    "NODE_RELATION", "NODE_WORD", "TEXT_GRAPH_KINDS", "TEXT_GRAPHS", "align_scene_graph", "build_dependency_graph",
    "build_scene_graph_graph", "build_text_graph", "build_word_graph", "needs_parse", "text_graph_builder",
]
