"""SCAN scored caption by caption, as the released code does (``xattn_score_t2i`` /
``xattn_score_i2t`` of https://github.com/kuanghuei/SCAN, ``model.py``).

Each caption is cut to its real words and expanded over the images, passed to
:func:`~graphmatch.nn.functional.func_attention`, followed by
:func:`~graphmatch.nn.functional.cosine_similarity` and the aggregation. Images with padding are
grouped by their number of real regions and each group is cut to its real regions. Slow; a
readable reference for the tests and the baseline of ``experiments/benchmarks/bench_scoring.py``.
Same arguments, checks and results (up to float rounding) as the batched
:func:`~graphmatch.nn.functional.scan_t2i` / :func:`~graphmatch.nn.functional.scan_i2t`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from graphmatch.nn.functional.attention import func_attention
from graphmatch.nn.functional.norms import cosine_similarity
from graphmatch.nn.functional.scan import validate_scan_inputs

__all__ = ["scan_t2i_loop", "scan_i2t_loop"]


def _aggregate_dense(rel: Tensor, agg: str, lambda_lse: float) -> Tensor:
    """Aggregate ``rel`` [B, m] (no padding) over dim 1 as the released code."""
    if agg == "lse":
        return torch.log(torch.exp(rel * lambda_lse).sum(dim=1)) / lambda_lse
    if agg == "max":
        return rel.max(dim=1).values
    if agg == "sum":
        return rel.sum(dim=1)
    return rel.mean(dim=1)


def _image_groups(images: Tensor, image_mask: Optional[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Split images into groups with equal numbers of real regions.

    Returns a list of ``(indices, regions)`` with ``regions`` of shape
    ``[group, n_real, D]`` holding only the real regions, in order.
    """
    n = images.shape[0]
    if image_mask is None or bool(image_mask.all()):
        return [(torch.arange(n, device=images.device), images)]
    counts = image_mask.sum(dim=1)
    groups = []
    for cnt in torch.unique(counts).tolist():
        idx = (counts == cnt).nonzero().flatten()
        regions = torch.stack([images[i][image_mask[i]] for i in idx.tolist()])
        groups.append((idx, regions))
    return groups


def _scan_loop(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    direction: str,
    lambda_softmax: float,
    agg: str,
    lambda_lse: float,
    eps: float,
) -> Tensor:
    _, word_mask_v = validate_scan_inputs(images, image_mask, words, word_mask, agg, lambda_lse)
    n_img, n_cap = images.shape[0], words.shape[0]
    if n_img == 0 or n_cap == 0:
        return images.new_zeros(n_img, n_cap)
    groups = _image_groups(images, image_mask)
    columns = []
    for c in range(n_cap):
        # The c-th caption, cut to its real words.
        cap = words[c][word_mask_v[c]].unsqueeze(0)  # [1, L_c, D]
        parts = []
        for idx, regions in groups:
            cap_expand = cap.expand(regions.shape[0], -1, -1).contiguous()
            if direction == "t2i":
                attended = func_attention(cap_expand, regions, smooth=lambda_softmax, eps=eps)
                rel = cosine_similarity(cap_expand, attended, dim=2, eps=eps)
            else:
                attended = func_attention(regions, cap_expand, smooth=lambda_softmax, eps=eps)
                rel = cosine_similarity(regions, attended, dim=2, eps=eps)
            parts.append((idx, _aggregate_dense(rel, agg, lambda_lse)))
        if len(parts) == 1:
            col = parts[0][1]
        else:
            col = torch.zeros(n_img, dtype=images.dtype, device=images.device)
            for idx, val in parts:
                col = col.index_put((idx,), val)
        columns.append(col)
    return torch.stack(columns, dim=1)


def scan_t2i_loop(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    lambda_softmax: float = 9.0,
    agg: str = "lse",
    lambda_lse: float = 6.0,
    eps: float = 1e-8,
) -> Tensor:
    """Reference formulation of :func:`~graphmatch.nn.functional.scan_t2i` (released
    ``xattn_score_t2i``): words attend over regions, one caption at a time.

    Args and result as :func:`~graphmatch.nn.functional.scan_t2i` (without ``chunk``):
    ``images`` ``[n_images, R, D]``, ``words`` ``[n_captions, L, D]``, bool masks or ``None``;
    returns ``[n_images, n_captions]``.
    """
    return _scan_loop(
        images, image_mask, words, word_mask, direction="t2i",
        lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse, eps=eps,
    )


def scan_i2t_loop(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    lambda_softmax: float = 4.0,
    agg: str = "lse",
    lambda_lse: float = 5.0,
    eps: float = 1e-8,
) -> Tensor:
    """Reference formulation of :func:`~graphmatch.nn.functional.scan_i2t` (released
    ``xattn_score_i2t``): regions attend over the words, one caption at a time. Args and result
    as :func:`scan_t2i_loop`.
    """
    return _scan_loop(
        images, image_mask, words, word_mask, direction="i2t",
        lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse, eps=eps,
    )
