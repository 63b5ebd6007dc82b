"""Box maths for visual graphs: centres, areas, IoU, polar pseudo-coordinates, relative geometry.

Boxes are float ``[N, 4]`` tensors of ``(x1, y1, x2, y2)`` in pixels (image y axis pointing down).
Every function takes tensors and numbers only.
"""
from __future__ import annotations

from typing import Tuple

import torch

#: Size of :func:`relative_geometry` per edge.
GEOMETRY_DIM = 5
#: Size of :func:`polar_features` per edge.
POLAR_DIM = 2

__all__ = ["GEOMETRY_DIM", "POLAR_DIM", "box_centres", "box_areas", "paired_iou", "pairwise_iou",
           "polar_features", "relative_geometry", "check_boxes"]


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """Centres ``[N, 2]`` of ``(x1, y1, x2, y2)`` boxes."""
    return torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)


def box_areas(b: torch.Tensor) -> torch.Tensor:
    """Areas ``[...]`` of boxes ``[..., 4]`` (inverted extents count as zero)."""
    return (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``[E]`` of box ``a[e]`` with box ``b[e]`` (0 where both areas are 0)."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_areas(a) + box_areas(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU ``[N, M]`` of two sets of ``(x1, y1, x2, y2)`` boxes (0 where both areas are 0)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def polar_features(boxes: torch.Tensor, image_size: Tuple[float, float], edge_index: torch.Tensor) -> torch.Tensor:
    """``(rho, theta)`` ``[E, 2]`` of the vector from the source centre to the target centre of each
    edge, centres normalised by the image ``(width, height)`` (so ``rho`` is in ``[0, sqrt(2)]``)."""
    w, h = float(image_size[0]), float(image_size[1])
    c = box_centres(boxes.float()) / torch.tensor([w, h])
    d = c[edge_index[1]] - c[edge_index[0]]
    rho = d.norm(dim=1)
    theta = torch.atan2(d[:, 1], d[:, 0])
    return torch.stack([rho, theta], dim=1)


def relative_geometry(boxes: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
    """``(dx / w_s, dy / h_s, log(w_t / w_s), log(h_t / h_s), IoU)`` ``[E, 5]`` per edge ``(s, t)``.

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


def check_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """``boxes`` as float32 ``[N, 4]``; ``ValueError`` naming the first row with NaN or inf."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.dim() != 2 or boxes.size(1) != 4:
        raise ValueError(f"boxes must be [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    bad = ~torch.isfinite(boxes).all(dim=1)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"boxes: row {i} {boxes[i].tolist()} contains NaN or inf")
    return boxes
