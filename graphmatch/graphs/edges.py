"""Edges of visual graphs: which regions talk to which, and with what geometric edge features.

Every builder maps ``(boxes [N, 4], image_size (width, height) or None, **options)`` to
``(edge_index [2, E], edge_attr [E, F] or None)``, or to ``(edge_index, edge_attr, edge_type [E])``;
an edge ``(j, i)`` sends a message from region ``j`` to region ``i``. Builders are registered in
:data:`VISUAL_EDGES` (the ``visual_edges`` key of a config's graph recipe names one), and each
declares, as function attributes set by :func:`visual_edge_builder`:

* ``edge_dim`` — the size ``F`` of its edge features, ``None`` when it gives none;
* ``needs_boxes`` — whether it reads the boxes (when False it may be given an ``[N, 0]`` tensor
  that only carries the node count, for regions without boxes);
* ``reads_relations`` — whether it takes per-image ``relations=`` triples, which the data path reads
  from the file named by its ``file`` option (see :mod:`graphmatch.data.relations`).

A new graph (e.g. one whose edges come from a scene-graph predictor) is one registered function::

    @visual_edge_builder("my_edges", edge_dim=1)
    def my_edges(boxes, image_size, *, radius: float = 0.2): ...
    build_visual_graph(regions, edges="my_edges", radius=0.3)

Its keyword parameters with defaults are its config keys (``data.graph.visual_edges: {name:
my_edges, radius: 0.3}``), unless ``config=`` gives a dataclass.

Built-ins:

* ``"none"`` — nodes only (what SCAN needs); ``"full"`` — every ordered pair ``j != i``, no edge
  features.
* ``"polar"`` — fully connected (no self-loops), edge features GSMN's polar pseudo-coordinates of the
  box centres: ``(rho, theta)`` of the vector from the source centre to the target centre, with
  centres normalised by image width and height (so ``rho`` is in [0, sqrt(2)]). GSMN (Liu et al.,
  CVPR 2020) takes this from Norcliffe-Brown et al. (NeurIPS 2018), whose code computes
  ``theta = atan2(dx, dy)`` of ``centre_i - centre_j``; here ``theta = atan2(dy, dx)`` of
  ``centre_target - centre_source`` (the usual mathematical convention; the same information up to
  a fixed reflection of the angle). Needs the image size.
* ``"knn"`` — each region receives edges from its ``k`` nearest regions by centre distance;
  ``"iou"`` — edges between regions whose IoU exceeds ``iou_threshold`` (both directions). Both carry
  relative geometry ``(dx / w_s, dy / h_s, log(w_t / w_s), log(h_t / h_s), IoU)`` of target ``t`` with
  respect to source ``s`` (as in Hu et al.'s relation networks, plus the overlap).
* ``"relations"`` — edges ``subject -> object`` from given triples ``(subject, predicate, object)``
  (region indices and a predicate id), e.g. Visual Genome annotations or a scene-graph predictor;
  ``edge_type`` holds the predicate id and ``edge_attr`` the relative geometry.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch

from graphmatch.graphs.data import VisualGraph
from graphmatch.graphs.geometry import (
    GEOMETRY_DIM, POLAR_DIM, box_centres, check_boxes, pairwise_iou, polar_features, relative_geometry,
)
from graphmatch.options import option
from graphmatch.registry import Registry
from graphmatch.structures import Regions

#: Visual edge builders by name (``data.graph.visual_edges``).
VISUAL_EDGES = Registry("visual edge builder", "visual_edges")
#: The builders that need no boxes and take no options.
EDGE_MODES = ("none", "full")

__all__ = ["VISUAL_EDGES", "EDGE_MODES", "visual_edge_builder", "edge_dim_of", "build_visual_graph", "full_edges",
           "none_edges", "full_graph_edges", "polar_edges", "knn_edges", "iou_edges", "relation_edges",
           "KnnEdgesOptions", "IouEdgesOptions", "RelationEdgesOptions"]


def visual_edge_builder(name: str, *, edge_dim: Optional[int], needs_boxes: bool = True,
                        reads_relations: bool = False, config: Optional[type] = None) -> Callable[[Any], Any]:
    """Register a builder in :data:`VISUAL_EDGES` with its declarations (module docstring)."""

    def deco(fn: Any) -> Any:
        fn.edge_dim = edge_dim
        fn.needs_boxes = needs_boxes
        fn.reads_relations = reads_relations
        VISUAL_EDGES.register(name, fn, config=config)
        return fn

    return deco


def edge_dim_of(name: Any) -> Optional[int]:
    """The edge feature size declared by builder ``name`` (a registered name or the builder itself;
    None: no edge features or undeclared)."""
    return getattr(VISUAL_EDGES.resolve(name), "edge_dim", None)


def full_edges(n: int) -> torch.Tensor:
    """All ordered pairs ``(j, i)``, ``j != i``: ``[2, n (n - 1)]``."""
    if n < 2:
        return torch.empty(2, 0, dtype=torch.long)
    src = torch.arange(n).repeat_interleave(n)
    dst = torch.arange(n).repeat(n)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


@dataclass
class KnnEdgesOptions:
    k: int = option(8, lo=1, help="edges each region receives from its nearest regions (capped at N - 1)")


@dataclass
class IouEdgesOptions:
    iou_threshold: float = option(0.0, hi=1, hi_open=True, help="regions overlapping by more than this are linked")


@dataclass
class RelationEdgesOptions:
    file: str = option("{root}/{split}_relations.jsonl",
                       help="per-image relation triples ({root} and {split} are replaced)")


@visual_edge_builder("none", edge_dim=None, needs_boxes=False)
def none_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]]) -> Tuple[torch.Tensor, None]:
    """No edges: the regions are a set (SCAN, VSE)."""
    return torch.empty(2, 0, dtype=torch.long), None


@visual_edge_builder("full", edge_dim=None, needs_boxes=False)
def full_graph_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]]) -> Tuple[torch.Tensor, None]:
    """Every ordered pair of distinct regions, no edge features."""
    return full_edges(boxes.size(0)), None


@visual_edge_builder("polar", edge_dim=POLAR_DIM)
def polar_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fully connected graph with GSMN polar pseudo-coordinates as edge features."""
    boxes = check_boxes(boxes)
    if image_size is None or min(image_size) <= 0:
        raise ValueError(f"polar edges need the image size (width, height) > 0, got {image_size}")
    ei = full_edges(boxes.size(0))
    return ei, polar_features(boxes, image_size, ei)


@visual_edge_builder("knn", edge_dim=GEOMETRY_DIM, config=KnnEdgesOptions)
def knn_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]], *, k: int = 8
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each region receives edges from its ``k`` nearest regions (by box-centre distance)."""
    boxes = check_boxes(boxes)
    n = boxes.size(0)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, n - 1)
    if kk <= 0:
        return torch.empty(2, 0, dtype=torch.long), torch.empty(0, GEOMETRY_DIM)
    c = box_centres(boxes)
    dist = torch.cdist(c, c)
    dist.fill_diagonal_(math.inf)
    nbr = dist.topk(kk, dim=1, largest=False).indices  # [n, kk]: sources of target i
    ei = torch.stack([nbr.reshape(-1), torch.arange(n).repeat_interleave(kk)])
    return ei, relative_geometry(boxes, ei)


@visual_edge_builder("iou", edge_dim=GEOMETRY_DIM, config=IouEdgesOptions)
def iou_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]], *,
              iou_threshold: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Edges (both directions) between regions whose IoU is above ``iou_threshold``."""
    boxes = check_boxes(boxes)
    iou = pairwise_iou(boxes, boxes)
    iou.fill_diagonal_(-1.0)
    src, dst = torch.nonzero(iou > iou_threshold, as_tuple=True)
    ei = torch.stack([src, dst])
    return ei, relative_geometry(boxes, ei)


@visual_edge_builder("relations", edge_dim=GEOMETRY_DIM, reads_relations=True, config=RelationEdgesOptions)
def relation_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]], *,
                   relations: Sequence[Tuple[int, int, int]] = ()
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges ``subject -> object`` from ``(subject, predicate_id, object)`` triples of region indices;
    the predicate ids are the third result (``edge_type`` of the graph)."""
    boxes = check_boxes(boxes)
    n = boxes.size(0)
    rel = torch.as_tensor([tuple(r) for r in relations], dtype=torch.long).reshape(-1, 3)
    bad = (rel[:, [0, 2]] < 0) | (rel[:, [0, 2]] >= n)
    if bad.any():
        r = rel[bad.any(1)][0].tolist()
        raise ValueError(f"relation {tuple(r)} refers to a region outside 0..{n - 1}")
    ei = torch.stack([rel[:, 0], rel[:, 2]])
    return ei, relative_geometry(boxes, ei), rel[:, 1]


def _signature_options(builder: Any) -> Optional[frozenset]:
    """Keyword options a builder takes (its parameters after ``boxes, image_size``); None: any."""
    try:
        params = list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params[2:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


_cached_options = functools.lru_cache(maxsize=None)(_signature_options)


def _accepted_options(builder: Any) -> Optional[frozenset]:
    try:
        return _cached_options(builder)  # read once per builder: graphs are built per image
    except TypeError:  # an unhashable callable object
        return _signature_options(builder)


def build_visual_graph(
    regions: Union[Regions, torch.Tensor],
    *,
    boxes: Optional[torch.Tensor] = None,
    image_size: Optional[Tuple[float, float]] = None,
    item: int = -1,
    edges: str = "none",
    **edge_options: Any,
) -> VisualGraph:
    """A :class:`VisualGraph` from :class:`~graphmatch.structures.Regions` or a feature tensor.

    Args:
        regions: ``Regions`` or float [N, D] region features. ``Regions`` flagged
            ``boxes_missing`` / ``image_size_estimated`` (a precomp split without a boxes / sizes
            file) give a graph without ``boxes`` / ``image_size``.
        boxes, image_size: used when ``regions`` is a tensor; optional for builders that need no
            boxes (``"none"``, ``"full"``).
        item: the image's number in its split.
        edges: a builder registered in :data:`VISUAL_EDGES`: ``"none"`` (nodes only), ``"full"``
            (every ordered pair, no edge features), ``"polar"``, ``"knn"``, ``"iou"``,
            ``"relations"``, ... which set ``edge_attr`` and, for ``"relations"``, ``edge_type``.
        edge_options: passed to the builder (``k=8``, ``iou_threshold=0.0``, ``relations=[...]``).

    Shapes:
        ``x`` [N, D], ``boxes`` [N, 4], ``image_size`` [1, 2], ``edge_index`` [2, E],
        ``edge_attr`` [E, F] (F = the builder's ``edge_dim``), ``edge_type`` [E], ``item`` [1].
    """
    if isinstance(regions, Regions):
        x = regions.features
        boxes = None if regions.flags.get("boxes_missing") else regions.boxes
        image_size = None if regions.flags.get("image_size_estimated") else regions.image_size
    else:
        x = torch.as_tensor(regions)
    if x.dim() != 2:
        raise ValueError(f"region features must be [N, D], got {tuple(x.shape)}")
    builder = VISUAL_EDGES.get(edges)
    accepted = _accepted_options(builder)
    if accepted is not None and set(edge_options) - accepted:
        extra = sorted(set(edge_options) - accepted)
        if not accepted:
            raise ValueError(f"visual edge builder {edges!r} takes no options, got {extra}")
        raise ValueError(f"visual edge builder {edges!r} has no option(s) {extra}; it takes {sorted(accepted)}")
    data = VisualGraph(x=x, item=torch.tensor([item]))
    if boxes is not None:
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.shape != (x.size(0), 4):
            raise ValueError(f"boxes must be [{x.size(0)}, 4], got {tuple(boxes.shape)}")
        data.boxes = boxes
    if image_size is not None:
        data.image_size = torch.tensor([list(image_size)], dtype=torch.float32)
    if boxes is None:
        if getattr(builder, "needs_boxes", True):
            raise ValueError(f"edges={edges!r} needs region boxes")
        boxes = torch.empty(x.size(0), 0)
    out = builder(boxes, image_size, **edge_options)
    data.edge_index = out[0]
    if out[1] is not None:
        data.edge_attr = out[1]
    if len(out) > 2 and out[2] is not None:
        data.edge_type = out[2]
    return data
