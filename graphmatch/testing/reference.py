"""SCAN scored caption by caption, as the released code does (``xattn_score_t2i`` /
``xattn_score_i2t`` of https://github.com/kuanghuei/SCAN, ``model.py``).

Each caption is cut to its real words and expanded over the images, passed to
:func:`~graphmatch.nn.functional.func_attention`, followed by
:func:`~graphmatch.nn.functional.cosine_similarity` and the aggregation. Images with padding are
grouped by their number of real regions and each group is cut to its real regions. Slow; a
readable reference for the tests and the baseline of ``experiments/benchmarks/bench_scoring.py``.
Same arguments, checks and results (up to float rounding) as the batched
:func:`~graphmatch.nn.functional.scan_t2i` / :func:`~graphmatch.nn.functional.scan_i2t`.

GSMN (:class:`graphmatch.models.GSMN`): :func:`gsmn_pair_score` scores one image and one caption
node by node from the paper's equations (real message passing); :func:`gsmn_caption_loop` scores
caption by caption in the structure of the released code, with the released neighbourhood (copies
of each node's own matching vector) or with messages; both take parameters in the released layout.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from graphmatch.nn.functional.attention import func_attention
from graphmatch.nn.functional.norms import cosine_similarity
from graphmatch.nn.functional.scan import validate_scan_inputs

__all__ = ["scan_t2i_loop", "scan_i2t_loop", "sgm_score_loop", "gsmn_pair_score", "gsmn_caption_loop"]


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


# --------------------------------------------------------------------------------------------- GSMN
# Parameters in the released layout: ``i2t_state`` / ``t2i_state`` are state dicts of the released
# ``VisualGraph`` / ``TextualGraph`` (``graph_convolution_1.mean_rho`` [K, 1], ...,
# ``graph_convolution_{1,3}.conv_weights.{k}.weight`` [hid / K, B], ``graph_convolution_3.conv_weights.{k}.bias``
# [hid / K] (the released textual maps have biases), ``graph_convolution_3.params``
# [K, 1], ``out_{1,2}.weight_g / weight_v / bias``); :func:`graphmatch.models.gsmn.released_graph_state`
# maps them onto the matcher.

def _gsmn_wn(state: dict, name: str, x: Tensor) -> Tensor:
    g, v, b = state[f"{name}.weight_g"], state[f"{name}.weight_v"], state[f"{name}.bias"]
    return x @ (g * v / v.norm(dim=1, keepdim=True)).t() + b


def _gsmn_mlp(state: dict, z: Tensor) -> Tensor:
    return _gsmn_wn(state, "out_2", torch.tanh(_gsmn_wn(state, "out_1", z)))


def _gsmn_kernels(state: dict, conv: str) -> list:
    k = state[f"{conv}.mean_rho"].numel() if f"{conv}.mean_rho" in state else state[f"{conv}.params"].numel()
    return [state[f"{conv}.conv_weights.{i}.weight"] for i in range(k)]


def _gsmn_biases(state: dict, conv: str, k: int) -> list:
    """The per-kernel biases (zeros where the layer has none: the visual one)."""
    w = state[f"{conv}.conv_weights.0.weight"]
    return [state.get(f"{conv}.conv_weights.{i}.bias", w.new_zeros(w.size(0))) for i in range(k)]


def _gsmn_gauss(state: dict, rho: Tensor, theta: Tensor) -> Tensor:
    """The released ``get_gaussian_weights``: ``[..., K]``, normalised over the kernels."""
    p = "graph_convolution_1"
    diff = (rho.reshape(-1, 1) - state[f"{p}.mean_rho"].view(1, -1)) ** 2
    w_rho = torch.exp(-0.5 * diff / (1e-14 + state[f"{p}.precision_rho"].view(1, -1) ** 2))
    first = torch.abs(theta.reshape(-1, 1) - state[f"{p}.mean_theta"].view(1, -1))
    second = torch.abs(2 * math.pi - first)
    w_theta = torch.exp(-0.5 * torch.min(first, second) ** 2 / (1e-14 + state[f"{p}.precision_theta"].view(1, -1) ** 2))
    w = w_rho * w_theta
    w = torch.where(torch.isnan(w), torch.zeros_like(w), w)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), torch.zeros_like(w))
    return w.view(*rho.shape, -1)


def _block_cos(q: Tensor, c: Tensor, num_block: int, eps: float = 1e-8) -> Tensor:
    """Cosine of each of the ``num_block`` blocks of ``q`` and ``c`` ``[..., D]`` -> ``[..., num_block]``."""
    q = torch.stack(torch.split(q, q.size(-1) // num_block, dim=-1), dim=-2)
    c = torch.stack(torch.split(c, c.size(-1) // num_block, dim=-1), dim=-2)
    return cosine_similarity(q, c, dim=-1, eps=eps)


def gsmn_pair_score(regions: Tensor, words: Tensor, region_adj: Tensor, centres: Optional[Tensor],
                    word_adj: Optional[Tensor], *, i2t_state: dict, t2i_state: dict, num_block: int,
                    lambda_softmax: float, uniform: bool = False, eps: float = 1e-8) -> Tensor:
    """GSMN's score of ONE image and ONE caption from the paper's equations, node by node, with real
    message passing (``neighbourhood: messages`` of :class:`graphmatch.models.GSMN`).

    Args:
        regions: ``[N, D]`` the image's real regions; words: ``[L, D]`` the caption's real words.
        region_adj: ``[N, N]``, nonzero at ``[i, j]`` for an edge ``j -> i``.
        centres: ``[N, 2]`` box centres normalised by the image size (``u_ij`` = polar coordinates
            ``(|d|, atan2(d_y, d_x))`` of ``d = c_i - c_j``); unused with ``uniform``.
        word_adj: ``[L, L]`` (edge ``j -> i`` at ``[i, j]``) for the sparse graph, None for dense.
        uniform: kernel weights ``1 / K`` on every edge instead of the polar Gaussians.

    Returns:
        0-d tensor: visual part + textual part.
    """
    n, l = regions.size(0), words.size(0)
    lam = lambda_softmax
    x = torch.nn.functional.leaky_relu(regions @ words.t(), 0.1)  # [N, L]
    # node level, regions: attention over the words, scores l2-normalised over the regions
    m_v = []
    xr = x / (x.norm(dim=0, keepdim=True) + eps)
    for r in range(n):
        a = torch.softmax(lam * xr[r], dim=0) @ words
        m_v.append(_block_cos(regions[r], a, num_block, eps))
    xw = x / (x.norm(dim=1, keepdim=True) + eps)
    m_t = []
    for w in range(l):
        a = torch.softmax(lam * xw[:, w], dim=0) @ regions
        m_t.append(_block_cos(words[w], a, num_block, eps))
    # structure level, visual: z_i = ||_k W_k sum_{j in N(i) + i} w_k(u_ij) m_j
    wv = _gsmn_kernels(i2t_state, "graph_convolution_1")
    k = len(wv)
    s_v = []
    for i in range(n):
        h = torch.zeros(k, num_block, dtype=regions.dtype)
        for j in range(n):
            if j != i and region_adj[i, j] == 0:
                continue
            if uniform:
                wk = torch.full((k,), 1.0 / k, dtype=regions.dtype)
            else:
                d = centres[i] - centres[j]
                rho, theta = d.norm(), torch.atan2(d[1], d[0])
                wk = _gsmn_gauss(i2t_state, rho.reshape(1), theta.reshape(1))[0]
            h = h + wk[:, None] * m_v[j][None]
        z = torch.cat([wv[kk] @ h[kk] for kk in range(k)])
        s_v.append(_gsmn_mlp(i2t_state, z).mean())
    # structure level, textual: z_i = ||_k W_k sum_j softmax_j(lambda u_i.u_j) m_j over N(i) + i
    wt = _gsmn_kernels(t2i_state, "graph_convolution_3")
    s_t = []
    for i in range(l):
        nbr = [j for j in range(l) if word_adj is None or j == i or word_adj[i, j] != 0]
        aff = torch.softmax(torch.stack([lam * (words[i] @ words[j]) for j in nbr]), dim=0)
        h = sum(a * m_t[j] for a, j in zip(aff, nbr))
        z = torch.cat([w @ h + bt for w, bt in zip(wt, _gsmn_biases(t2i_state, "graph_convolution_3", len(wt)))])
        s_t.append(_gsmn_mlp(t2i_state, z).mean())
    return torch.stack(s_v).mean() + torch.stack(s_t).mean()


def _released_inter_relations(k: Tensor, q: Tensor, lam: float) -> Tensor:
    """The released ``inter_relations``: ``[B, Lq, Lk]``."""
    attn = torch.nn.functional.leaky_relu(torch.bmm(k, q.transpose(1, 2)), 0.1)
    attn = attn / (attn.pow(2).sum(dim=2, keepdim=True).sqrt() + 1e-8)
    return torch.softmax(attn.transpose(1, 2) * lam, dim=2)


def _released_node_level(context: Tensor, query: Tensor, num_block: int, lam: float) -> Tensor:
    """The released ``node_level_matching``: each query node against its attended context."""
    attn = _released_inter_relations(context, query, lam)  # [B, Lq, Lc]
    weighted = torch.bmm(context.transpose(1, 2), attn.transpose(1, 2)).transpose(1, 2)  # [B, Lq, D]
    return _block_cos(query, weighted, num_block)


def _released_conv(weights: Tensor, nbhd: Tensor, kernels: list, biases: list) -> Tensor:
    """The released patch operator + per-kernel maps: ``weights`` [B, K_nodes, n, K], ``nbhd``
    [B, K_nodes, n, F] -> [B, K_nodes, hid]."""
    b, kn, n, _ = nbhd.shape
    wn = torch.bmm(weights.reshape(b * kn, n, -1).transpose(1, 2), nbhd.reshape(b * kn, n, -1))
    return torch.cat([(wn[:, i] @ kernels[i].t() + biases[i]).unsqueeze(1) for i in range(len(kernels))],
                     dim=1).view(b, kn, -1)


def gsmn_caption_loop(images: Tensor, image_mask: Optional[Tensor], image_adj: Tensor, centres: Optional[Tensor],
                      captions: Tensor, caption_mask: Optional[Tensor], caption_adj: Optional[Tensor], *,
                      i2t_state: dict, t2i_state: dict, num_block: int, lambda_softmax: float,
                      neighbourhood: str = "released", dense: bool = False, uniform: bool = False) -> Tensor:
    """GSMN scored caption by caption, structured like the released ``VisualGraph.forward`` /
    ``TextualGraph.forward`` (``graph_model.py`` of https://github.com/CrossmodalGroup/GSMN): each
    caption cut to its words and expanded over the images (grouped by their number of real
    regions), released node-level matching, the dense neighbourhood tensors of the released
    structure-level matching and the released convolutions.

    ``neighbourhood="released"`` is the released computation: ``neighbour[b, i, j] = m_i`` and, on
    the visual side, pseudo-coordinates ``(|d|, atan2(d_x, d_y))`` of ``d = c_i - c_j``;
    ``"messages"`` puts the neighbour's vector there (``neighbour[b, i, j] = m_j``) with
    ``atan2(d_y, d_x)``. The visual neighbourhood is ``region_adj + I`` (all regions for the fully
    connected polar graph, as released), the sparse textual one ``caption_adj + I`` (the released
    ``build_sparse_graph``), the dense one every word.

    Args:
        images: ``[n_img, N, D]``, image_mask ``[n_img, N]`` (None: all real), image_adj
            ``[n_img, N, N]`` (edge ``j -> i`` at ``[i, j]``), centres ``[n_img, N, 2]`` normalised
            box centres (None with ``uniform``).
        captions: ``[n_cap, L, D]``, caption_mask ``[n_cap, L]``, caption_adj ``[n_cap, L, L]``
            (None with ``dense``).
        i2t_state, t2i_state: released-layout parameters (see above). dense: the dense word graph.
        uniform: kernel weights ``1 / K`` instead of the Gaussians.

    Returns:
        ``[n_img, n_cap]``.
    """
    if neighbourhood not in ("released", "messages"):
        raise ValueError(f"neighbourhood must be 'released' or 'messages', got {neighbourhood!r}")
    lam = lambda_softmax
    n_img, n_cap = images.size(0), captions.size(0)
    if image_mask is None:
        image_mask = torch.ones(images.shape[:2], dtype=torch.bool)
    if caption_mask is None:
        caption_mask = torch.ones(captions.shape[:2], dtype=torch.bool)
    counts = image_mask.sum(1)
    groups = []
    for cnt in torch.unique(counts).tolist():
        idx = (counts == cnt).nonzero().flatten().tolist()
        rows = [image_mask[i].nonzero().flatten() for i in idx]
        groups.append((idx, torch.stack([images[i][r] for i, r in zip(idx, rows)]),
                       torch.stack([image_adj[i][r][:, r] for i, r in zip(idx, rows)]),
                       None if centres is None else torch.stack([centres[i][r] for i, r in zip(idx, rows)])))
    wv = _gsmn_kernels(i2t_state, "graph_convolution_1")
    wt = _gsmn_kernels(t2i_state, "graph_convolution_3")
    params = t2i_state["graph_convolution_3.params"].view(1, -1)
    k = len(wv)
    released = neighbourhood == "released"
    out = torch.zeros(n_img, n_cap, dtype=images.dtype)
    for c in range(n_cap):
        real = caption_mask[c].nonzero().flatten()
        cap = captions[c][real].unsqueeze(0)  # [1, L, D]
        n_word = cap.size(1)
        words_sim = torch.softmax(torch.bmm(cap, cap.transpose(1, 2)).view(n_word, n_word) * lam, dim=1)
        words_sim = words_sim.view(1, n_word, n_word, 1)
        for idx, imgs, adj, cen in groups:
            g, n = imgs.size(0), imgs.size(1)
            cap_e = cap.repeat(g, 1, 1)
            # ---- visual graph
            vm = _released_node_level(cap_e, imgs, num_block, lam)  # [g, n, B]
            if uniform:
                w = torch.full((g, n, n, k), 1.0 / k, dtype=images.dtype)
            else:
                pc = cen.view(-1, n, 1, 2) - cen.view(-1, 1, n, 2)
                rho = torch.sqrt(pc[..., 0] ** 2 + pc[..., 1] ** 2)
                theta = torch.atan2(pc[..., 0], pc[..., 1]) if released else torch.atan2(pc[..., 1], pc[..., 0])
                w = _gsmn_gauss(i2t_state, rho, theta)
            w = w * ((adj != 0) | torch.eye(n, dtype=torch.bool)).unsqueeze(-1).to(w.dtype)
            nbhd = vm.unsqueeze(2).repeat(1, 1, n, 1) if released else vm.unsqueeze(1).repeat(1, n, 1, 1)
            hid = _released_conv(w, nbhd, wv, _gsmn_biases(i2t_state, "graph_convolution_1", k))
            v_sim = _gsmn_mlp(i2t_state, hid.view(g * n, -1)).view(g, -1).mean(dim=1)
            # ---- textual graph
            tm = _released_node_level(imgs, cap_e, num_block, lam).unsqueeze(2)  # [g, L, 1, B]
            if dense:
                nodes = tm.repeat(1, 1, n_word, 1) if released else tm.transpose(1, 2).repeat(1, n_word, 1, 1)
                nw = words_sim.repeat(g, 1, 1, 1)
            else:
                a = (caption_adj[c][real][:, real] != 0).to(images.dtype) + torch.eye(n_word, dtype=images.dtype)
                a = a.view(1, n_word, n_word, 1)
                nodes = a * tm if released else a * tm.transpose(1, 2)
                nw = a * words_sim
                nw = (nw / (nw.pow(2).sum(dim=2, keepdim=True).sqrt() + 1e-8)).repeat(g, 1, 1, 1)
            tw = (nw.reshape(-1, 1) * params).view(g * n_word, n_word, -1)
            tw = (tw / tw.sum(dim=1, keepdim=True)).view(g, n_word, n_word, -1)
            hid_t = _released_conv(tw, nodes, wt, _gsmn_biases(t2i_state, "graph_convolution_3", k))
            t_sim = _gsmn_mlp(t2i_state, hid_t.view(g * n_word, -1)).view(g, -1).mean(dim=1)
            out[idx, c] = v_sim + t_sim
    return out
