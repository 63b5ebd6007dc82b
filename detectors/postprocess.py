"""Detection post-processing shared by every backend: which regions an image keeps, and where.

* :func:`select_detections` — from class-specific boxes and scores of the proposals to the final
  regions (one per proposal, per-class NMS, fixed count with padding or adaptive count);
* :func:`final_boxes` — the whole-image fallback when nothing is left, and the mapping of the
  boxes back to the pixels of the loaded image.

Pure tensor maths: tensors and numbers in, tensors out (the extractor options become keyword
arguments at the call site).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = ["select_detections", "FinalBoxes", "final_boxes"]


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    nms_threshold: float,
    num_regions: Optional[int],
    min_regions: int = 10,
    max_regions: int = 100,
    conf_threshold: float = 0.2,
    score_floor: float = 0.0,
    classes_per_proposal: int = 10,
    min_box_size: float = 1e-2,
) -> Dict[str, Any]:
    """Choose the final regions from class-specific detections of ``P`` proposals.

    Each proposal yields at most one region (as in bottom-up attention): its best-scoring class whose
    box survives per-class NMS. Ranking: proposals with a surviving class first, by that score
    (confident detections); then proposals all of whose classes were suppressed, by their best class
    score (the padding reserve — "lowering the threshold"; padding boxes may overlap kept ones).
    Fixed mode returns the first ``num_regions`` of this ranking; adaptive mode the detections scoring
    ``>= conf_threshold``, clamped to ``[min_regions, max_regions]`` along the same ranking. Candidates
    scoring below ``score_floor`` and boxes narrower/shorter than ``min_box_size`` are never returned.

    Deviations: bottom-up attention runs NMS over all classes of every proposal and returns the
    proposal box; here only each proposal's ``classes_per_proposal`` best classes enter NMS (so it stays
    fast with 1600 classes; a proposal whose top classes are all suppressed falls into the padding
    reserve) and the class-regressed box is returned, as torchvision and detectron2 do.

    Args:
        boxes: float ``[P, C, 4]`` class-specific boxes (background excluded), clipped to the image.
        scores: float ``[P, C]`` class probabilities (background excluded).
        nms_threshold, num_regions, min_regions, max_regions, conf_threshold, score_floor: see
            :class:`ExtractorOptions`.
        classes_per_proposal: classes per proposal that enter NMS.
        min_box_size: boxes with a side shorter than this (pixels) are dropped.

    Returns:
        dict with ``proposal`` (long ``[K]`` proposal index), ``label`` (long ``[K]`` column index into
        ``C``), ``box`` (``[K, 4]``), ``score`` (``[K]``), ``num_confident`` (detections surviving NMS
        with score ``>= conf_threshold``) and ``num_padded`` (regions taken from the padding reserve).
        ``K`` may be 0.
    """
    from torchvision.ops import batched_nms

    if boxes.dim() != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]:
        raise ValueError(f"expected boxes [P, C, 4] and scores [P, C], got {tuple(boxes.shape)}, {tuple(scores.shape)}")
    P, C = scores.shape
    dev = scores.device
    empty = {
        "proposal": torch.zeros(0, dtype=torch.long, device=dev),
        "label": torch.zeros(0, dtype=torch.long, device=dev),
        "box": boxes.new_zeros((0, 4)),
        "score": scores.new_zeros((0,)),
        "num_confident": 0,
        "num_padded": 0,
    }
    if P == 0 or C == 0:
        return empty
    k = min(int(classes_per_proposal), C)
    top_s, top_c = scores.topk(k, dim=1)  # [P, k], sorted descending
    prop = torch.arange(P, device=dev)[:, None].expand(P, k)
    cand_box = boxes[prop, top_c]  # [P, k, 4]
    wh = cand_box[..., 2:] - cand_box[..., :2]
    valid = (wh >= min_box_size).all(-1) & (top_s >= score_floor)  # [P, k]

    flat_valid = valid.reshape(-1)
    idx = flat_valid.nonzero().squeeze(1)
    survived = torch.zeros(P * k, dtype=torch.bool, device=dev)
    if idx.numel():
        keep = batched_nms(cand_box.reshape(-1, 4)[idx], top_s.reshape(-1)[idx], top_c.reshape(-1)[idx],
                           float(nms_threshold))
        survived[idx[keep]] = True
    survived = survived.view(P, k)

    # best surviving class per proposal: the first surviving column (columns are sorted by score)
    has_surv = survived.any(1)
    first_surv = torch.where(survived, torch.arange(k, device=dev)[None].expand(P, k), k).min(1).values
    # padding reserve: proposals with no survivor but a valid candidate; take their first valid column
    has_valid = valid.any(1)
    first_valid = torch.where(valid, torch.arange(k, device=dev)[None].expand(P, k), k).min(1).values
    col = torch.where(has_surv, first_surv, first_valid)
    usable = has_surv | has_valid
    col = col.clamp(max=k - 1)
    sel_score = top_s[torch.arange(P, device=dev), col]
    sel_label = top_c[torch.arange(P, device=dev), col]
    sel_box = cand_box[torch.arange(P, device=dev), col]

    tier1 = has_surv.nonzero().squeeze(1)
    tier1 = tier1[sel_score[tier1].argsort(descending=True, stable=True)]
    tier2 = (usable & ~has_surv).nonzero().squeeze(1)
    tier2 = tier2[sel_score[tier2].argsort(descending=True, stable=True)]
    order = torch.cat([tier1, tier2])
    n_conf = int((sel_score[tier1] >= conf_threshold).sum())
    if num_regions is not None:
        n = min(int(num_regions), order.numel())
    else:
        n = min(max(n_conf, int(min_regions)), int(max_regions), order.numel())
    chosen = order[:n]
    return {
        "proposal": chosen,
        "label": sel_label[chosen],
        "box": sel_box[chosen],
        "score": sel_score[chosen],
        "num_confident": n_conf,
        "num_padded": max(0, n - tier1.numel()),
    }


@dataclass
class FinalBoxes:
    """The final regions of one image, as :func:`final_boxes` returns them.

    Attributes:
        boxes: ``[K, 4]`` in the coordinates of the resized image the model saw (for pooling).
        labels / scores: ``[K]``; for the fallback, the background label and score 0.
        fallback: no region was left, so ``boxes`` is the single whole-image box.
        image_boxes: float32 ``[K, 4]`` on the CPU in pixels of the loaded image: ``boxes``
            scaled back and clamped to the image; exactly ``(0, 0, width, height)`` for the
            fallback.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    fallback: bool
    image_boxes: torch.Tensor


def final_boxes(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, *,
                resized_size: Tuple[int, int], image_size: Tuple[int, int],
                background_label: int = 0) -> FinalBoxes:
    """Whole-image fallback and mapping back to the loaded image, shared by every backend.

    Args:
        boxes / labels / scores: the selected regions (``[K, 4]`` in resized-image coordinates,
            ``[K]``, ``[K]``); ``K`` may be 0.
        resized_size: ``(height, width)`` of the resized image.
        image_size: ``(width, height)`` of the loaded image.
        background_label: the label given to the fallback region (in the backend's own
            numbering, e.g. detectron2's background index).

    When ``K == 0`` the result is one region covering the whole image, with label
    ``background_label`` and score 0. The scale factors are ``image / resized`` per axis in
    float32.
    """
    rh, rw = int(resized_size[0]), int(resized_size[1])
    iw, ih = int(image_size[0]), int(image_size[1])
    fallback = boxes.shape[0] == 0
    if fallback:
        dev = boxes.device
        boxes = torch.tensor([[0.0, 0.0, float(rw), float(rh)]], device=dev)
        labels = torch.full((1,), int(background_label), dtype=torch.long, device=dev)
        scores = torch.zeros(1, device=dev)
        image_boxes = torch.tensor([[0.0, 0.0, float(iw), float(ih)]])
    else:
        scale = (torch.tensor([iw, ih], dtype=torch.float32, device=boxes.device)
                 / torch.tensor([rw, rh], dtype=torch.float32, device=boxes.device)).repeat(2)
        image_boxes = (boxes.float() * scale).cpu()
        image_boxes[:, 0::2] = image_boxes[:, 0::2].clamp(0, iw)
        image_boxes[:, 1::2] = image_boxes[:, 1::2].clamp(0, ih)
    return FinalBoxes(boxes=boxes, labels=labels, scores=scores, fallback=fallback,
                      image_boxes=image_boxes)
