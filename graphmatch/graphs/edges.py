"""Edges of visual graphs: which regions talk to which, and with what geometric edge features.

Every builder maps ``(boxes [N, 4], image_size (width, height), **options)`` to
``(edge_index [2, E], edge_attr [E, F])``; an edge ``(j, i)`` sends a message from region ``j`` to
region ``i``. Builders are registered in :data:`VISUAL_EDGES`, so a new graph (e.g. one whose edges
come from annotated or predicted Visual Genome relations) is one registered function::

    @VISUAL_EDGES.register("my_edges")
    def my_edges(boxes, image_size, **options): ...
    build_visual_graph(regions, edges="my_edges")

Built-ins:

* ``"polar"`` — fully connected (no self-loops), edge features GSMN's polar pseudo-coordinates of the
  box centres: ``(rho, theta)`` of the vector from the source centre to the target centre, with
  centres normalised by image width and height (so ``rho`` ∈ [0, √2]). GSMN (Liu et al., CVPR 2020)
  takes this from Norcliffe-Brown et al. (NeurIPS 2018), whose code computes
  ``theta = atan2(dx, dy)`` of ``centre_i − centre_j``; here ``theta = atan2(dy, dx)`` of
  ``centre_target − centre_source`` (the usual mathematical convention; the same information up to
  a fixed reflection of the angle).
* ``"knn"`` — each region receives edges from its ``k`` nearest regions by centre distance;
  ``"iou"`` — edges between regions whose IoU exceeds ``iou_threshold`` (both directions). Both carry
  relative geometry ``(Δx / w_s, Δy / h_s, log(w_t / w_s), log(h_t / h_s), IoU)`` of target ``t`` with
  respect to source ``s`` (as in Hu et al.'s relation networks, plus the overlap).
* ``"relations"`` — edges ``subject → object`` from given triples ``(subject, predicate, object)``
  (region indices and a predicate id), e.g. Visual Genome annotations or a scene-graph predictor;
  ``edge_type`` holds the predicate id and ``edge_attr`` the relative geometry.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch

from graphmatch.registry import VISUAL_EDGES
GEOMETRY_DIM = 5


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """Centres ``[N, 2]`` of ``(x1, y1, x2, y2)`` boxes."""
    return torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)


def _areas(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``[E]`` of box ``a[e]`` with box ``b[e]`` (0 where both areas are 0)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = _areas(a) + _areas(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``[N, M]`` of two sets of ``(x1, y1, x2, y2)`` boxes (0 where both areas are 0)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = _areas(a)[:, None] + _areas(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def full_edges(n: int) -> torch.Tensor:
    """All ordered pairs ``(j, i)``, ``j != i``: ``[2, n (n - 1)]``."""
    if n < 2:
        return torch.empty(2, 0, dtype=torch.long)
    src = torch.arange(n).repeat_interleave(n)
    dst = torch.arange(n).repeat(n)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def polar_features(boxes: torch.Tensor, image_size: Tuple[float, float], edge_index: torch.Tensor) -> torch.Tensor:
    """``(rho, theta)`` per edge, centres normalised by the image size (see module docstring)."""
    w, h = float(image_size[0]), float(image_size[1])
    c = box_centres(boxes.float()) / torch.tensor([w, h])
    d = c[edge_index[1]] - c[edge_index[0]]
    rho = d.norm(dim=1)
    theta = torch.atan2(d[:, 1], d[:, 0])
    return torch.stack([rho, theta], dim=1)


def relative_geometry(boxes: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """``(Δx / w_s, Δy / h_s, log(w_t / w_s), log(h_t / h_s), IoU)`` per edge ``(s, t)``.

    Widths and heights below one pixel count as one pixel, so degenerate (zero-area) boxes give
    finite, bounded features.
    """
    b = boxes.float()
    wh = (b[:, 2:] - b[:, :2]).clamp(min=1.0)
    c = box_centres(b)
    s, t = edge_index[0], edge_index[1]
    delta = (c[t] - c[s]) / wh[s]
    logs = torch.log(wh[t] / wh[s])
    iou = paired_iou(b[s], b[t])  # per edge: O(E) memory
    return torch.cat([delta, logs, iou[:, None]], dim=1)


def _check_boxes(boxes: torch.Tensor) -> torch.Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise ValueError(f"boxes must be [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"boxes: row {i} {boxes[i].tolist()} contains NaN or inf")
    return boxes


@VISUAL_EDGES.register("polar")
def polar_edges(boxes: torch.Tensor, image_size: Tuple[float, float]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fully connected graph with GSMN polar pseudo-coordinates as edge features."""
    boxes = _check_boxes(boxes)
    if image_size is None or min(image_size) <= 0:
        raise ValueError(f"polar edges need the image size (width, height) > 0, got {image_size}")
    ei = full_edges(boxes.size(0))
    return ei, polar_features(boxes, image_size, ei)


@VISUAL_EDGES.register("knn")
def knn_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]] = None, *, k: int = 8
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each region receives edges from its ``k`` nearest regions (by box-centre distance)."""
    boxes = _check_boxes(boxes)
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


@VISUAL_EDGES.register("iou")
def iou_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]] = None, *,
              iou_threshold: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Edges (both directions) between regions whose IoU is above ``iou_threshold``."""
    boxes = _check_boxes(boxes)
    iou = pairwise_iou(boxes, boxes)
    iou.fill_diagonal_(-1.0)
    src, dst = torch.nonzero(iou > iou_threshold, as_tuple=True)
    ei = torch.stack([src, dst])
    return ei, relative_geometry(boxes, ei)


@VISUAL_EDGES.register("relations")
def relation_edges(boxes: torch.Tensor, image_size: Optional[Tuple[float, float]] = None, *,
                   relations: Sequence[Tuple[int, int, int]] = ()) -> Tuple[torch.Tensor, torch.Tensor]:
    """Edges ``subject → object`` from ``(subject, predicate_id, object)`` triples of region indices.

    The predicate ids are returned through :func:`build_visual_graph` as ``edge_type``.
    """
    boxes = _check_boxes(boxes)
    n = boxes.size(0)
    rel = torch.as_tensor(list(relations), dtype=torch.long).reshape(-1, 3)
    bad = (rel[:, [0, 2]] < 0) | (rel[:, [0, 2]] >= n)
    if bad.any():
        r = rel[bad.any(1)][0].tolist()
        raise ValueError(f"relation {tuple(r)} refers to a region outside 0..{n - 1}")
    ei = torch.stack([rel[:, 0], rel[:, 2]])
    return ei, relative_geometry(boxes, ei)
