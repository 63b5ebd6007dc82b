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

from typing import Any, Optional

import torch
from torch import Tensor

from graphmatch.nn.functional.attention import func_attention
from graphmatch.nn.functional.norms import cosine_similarity
from graphmatch.nn.functional.scan import validate_scan_inputs

__all__ = ["scan_t2i_loop", "scan_i2t_loop", "sgm_score_loop"]


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


# ------------------------------------------------------------------------------------------ SGM
def _unit(v: Tensor) -> Tensor:
    return v / (v.norm() + 1e-8)


def _sgm_level_loop(img_nodes: list, cap_nodes: list, direction: str) -> float:
    """mean over the query nodes of the best cosine over the key nodes (0 for no key / no query)."""
    def one(queries: list, keys: list) -> float:
        if not queries:
            return 0.0
        total = 0.0
        for q in queries:
            total += max((float(q @ k) for k in keys), default=0.0)
        return total / len(queries)

    t2i, i2t = one(cap_nodes, img_nodes), one(img_nodes, cap_nodes)
    return {"t2i": t2i, "i2t": i2t, "both": (t2i + i2t) / 2}[direction]


def sgm_score_loop(img: Any, cap: Any, *, image_triple: Any, text_triple: Any, attribute_path: Any = None,
                   rel_weight: float = 1.0, direction: str = "t2i", attributes: str = "nodes") -> Tensor:
    """Reference formulation of SGM's score (:class:`graphmatch.models.sgm.SGM`): one image and one
    caption at a time, their relation nodes built edge by edge, the best matches found by loops.

    Args:
        img: image node embeddings with ``adj`` (``adj[b, o, s] != 0`` for the edge ``s -> o``) and,
            when ``image_triple`` reads them, ``edge_attr`` (a :class:`~graphmatch.structures.NodeEmb`).
        cap: caption node embeddings with ``adj`` and ``node_type`` (0 object, 1 attribute,
            2 relation, 3 word).
        image_triple: ``f_v``, applied to ``[v_s; e_so; v_o]`` (``[v_s; v_o]`` when ``img`` has no
            ``edge_attr``). text_triple: ``f_t`` on ``[t_s; t_r; t_o]``. attribute_path: ``f_a`` on
            ``[t_a; t_o]`` (``attributes="nodes"``).
        rel_weight, direction, attributes: as SGM's.

    Returns:
        ``[len(img), len(cap)]``.
    """
    images = []
    for b in range(len(img)):
        objs = [_unit(img.x[b, i]) for i in range(img.num_nodes) if img.mask[b, i]]
        rels = []
        for o in range(img.num_nodes):
            for s in range(img.num_nodes):
                if img.adj[b, o, s] != 0:
                    parts = [img.x[b, s]] + ([] if img.edge_attr is None else [img.edge_attr[b, o, s]]) + [img.x[b, o]]
                    rels.append(_unit(image_triple(torch.cat(parts))))
        images.append((objs, rels))
    captions = []
    for c in range(len(cap)):
        n = [i for i in range(cap.num_nodes) if cap.mask[c, i]]
        typ = {i: int(cap.node_type[c, i]) for i in n}
        edges = [(j, i) for i in n for j in n if cap.adj[c, i, j] != 0]  # j -> i
        objs, rels = [], []
        for i in n:
            if typ[i] == 3:
                objs.append(_unit(cap.x[c, i]))
            elif typ[i] == 0:
                attrs = [j for (j, k) in edges if k == i and typ[j] == 1]
                if attributes == "fold" and attrs:
                    objs.append(_unit(cap.x[c, i] + sum(cap.x[c, j] for j in attrs) / len(attrs)))
                else:
                    objs.append(_unit(cap.x[c, i]))
            elif typ[i] == 1 and attributes == "nodes":
                o = [k for (j, k) in edges if j == i and typ[k] == 0]
                t_o = cap.x[c, o[0]] if o else torch.zeros_like(cap.x[c, i])
                objs.append(_unit(attribute_path(torch.cat([cap.x[c, i], t_o]))))
            elif typ[i] == 2:
                s = [j for (j, k) in edges if k == i and typ[j] == 0]
                o = [k for (j, k) in edges if j == i and typ[k] == 0]
                zero = torch.zeros_like(cap.x[c, i])
                t_s, t_o = (cap.x[c, s[0]] if s else zero), (cap.x[c, o[0]] if o else zero)
                rels.append(_unit(text_triple(torch.cat([t_s, cap.x[c, i], t_o]))))
        captions.append((objs, rels))
    out = torch.zeros(len(images), len(captions))
    for i, (i_obj, i_rel) in enumerate(images):
        for c, (c_obj, c_rel) in enumerate(captions):
            s = _sgm_level_loop(i_obj, c_obj, direction)
            if rel_weight:
                s += rel_weight * _sgm_level_loop(i_rel, c_rel, direction)
            out[i, c] = s
    return out
