"""SGM: scene-graph matching of object nodes and relation (triple) nodes.

Wang, Liu, Zhu, Yang, Chen, Huang. "Cross-modal Scene Graph Matching for Relationship-aware
Image-Text Retrieval", WACV 2020, https://arxiv.org/abs/1910.05134.

Both sides are scene graphs with two levels of nodes, matched level by level.

**Image side** (a visual graph whose edges ``s -> o`` are relations, from the ``relations`` visual
edges or a human-annotated scene graph; edge features ``e_so`` from ``NodeEmb.edge_attr``):

* object nodes: the encoded regions / objects ``v_i`` (image encoder, optionally a GNN stack);
* relation nodes: one per edge ``s -> o``, ``u_so = l2norm(f_v([v_s; e_so; v_o]))`` with ``f_v`` a
  two-layer MLP (``Linear(2D + F, H) -> ReLU -> Linear(H, D)``). Relation nodes are read off the
  dense adjacency, so repeated edges ``s -> o`` (two predicates between the same pair) give one
  relation node whose edge feature is the sum of theirs.

**Text side** (a ``scene`` text graph; node features pooled from the word states of their spans,
:mod:`graphmatch.encoders.span`; ``node_type`` 0 object, 1 attribute, 2 relation, 3 word):

* object nodes ``t_k`` (type 0; a caption without objects has word nodes, type 3, matched as
  objects);
* attributes (type 1), ``attributes="nodes"`` (default): each attribute ``a`` of object ``o`` is an
  object-level node ``l2norm(f_a([t_a; t_o]))`` (the paper's attribute-object path, e.g. "red mat",
  matched against image objects); ``attributes="fold"``: no attribute nodes, each object becomes
  ``l2norm(t_o + mean_{a of o} t_a)``;
* relation nodes (type 2): a relation ``r`` with subject ``s`` and object ``o`` (the scene graph's
  edges ``s -> r -> o``, read from ``NodeEmb.adj``) is ``l2norm(f_t([t_s; t_r; t_o]))``, the triple
  ``(subject, predicate, object)``.

**Matching** (text to image, the paper's direction): with ``c(a, b)`` the cosine,

    S_obj(I, T) = mean_{k in objects(T)} max_{i in objects(I)} c(t_k, v_i)
    S_rel(I, T) = mean_{r in relations(T)} max_{q in relations(I)} c(t_r, u_q)
    S(I, T)     = S_obj + rel_weight * S_rel

``direction="i2t"`` takes the mean over the image's nodes of the max over the caption's, and
``"both"`` averages the two. A caption (or, for ``i2t``, an image) with no relation node has
``S_rel = 0``; a maximum over an empty set of nodes (an image without relations for a caption
that has some) is 0, "no match". Padding never changes a score; every pair is scored in one batched
product (no loop over pairs); :func:`graphmatch.testing.reference.sgm_score_loop` is the per-pair
loop it is tested against.

Deviations from the paper: the paper's image side comes from a scene-graph generator (Neural
Motifs) whose relation nodes carry union-box features of the predicate; here a relation node is
composed from its subject, its object and the edge feature of the graph (geometry for the
``relations`` edges, predicate features for annotated graphs). The paper encodes textual
object / attribute / relation nodes with a word-level GRU and path-level GRUs over the
attribute-object and subject-predicate-object paths; here the nodes are pooled from one contextual
text encoder (``model.text_pool``) and the paths are the MLPs ``f_a`` / ``f_t`` above. The paper's
score is text to image only (``direction="t2i"``, the default); ``i2t`` / ``both`` are additions.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import to_dense_batch

from graphmatch.graphs import GraphNeeds, to_dense
from graphmatch.models.base import Matcher, attach_dense_graph
from graphmatch.models.registry import MATCHERS
from graphmatch.nn.functional import l2norm
from graphmatch.options import option
from graphmatch.structures import NODE_TYPE_PAD, NodeEmb

__all__ = ["SGM", "SGMConfig", "sgm_similarity", "level_nodes", "OBJECT", "ATTRIBUTE", "RELATION", "WORD"]

OBJECT, ATTRIBUTE, RELATION, WORD = 0, 1, 2, 3
DIRECTIONS = ("t2i", "i2t", "both")
ATTRIBUTE_MODES = ("nodes", "fold")


@dataclass
class SGMConfig:
    """SGM's config keys (``model.matcher``)."""

    rel_weight: float = option(1.0, lo=0, help="weight of the relation-level score (0: objects only)")
    direction: str = option("t2i", choices=DIRECTIONS,
                            help="t2i (paper: each caption node takes its best image node) | i2t | both (mean)")
    attributes: str = option("nodes", choices=ATTRIBUTE_MODES,
                             help="nodes: attribute-object nodes matched at the object level | fold: "
                                  "attributes added to their object")
    hidden_dim: int = option(0, lo=0, note="0: embed_dim", help="hidden size of the triple MLPs")


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=False), nn.Linear(hidden, d_out))


def level_nodes(x: Tensor, keep: Tensor) -> Tuple[Tensor, Tensor]:
    """The nodes where ``keep`` is True, packed to the front of each row.

    Shapes:
        x: ``[B, N, D]``, keep: bool ``[B, N]`` -> (``[B, K, D]``, mask ``[B, K]``), ``K`` = the
        largest count of a row (at least 1; a row with none has an all-False mask).
    """
    b = x.size(0)
    rows = torch.arange(b, device=x.device).unsqueeze(1).expand_as(keep)[keep]
    out, mask = to_dense_batch(x[keep], rows, batch_size=b)
    if out.size(1) == 0:
        out, mask = x.new_zeros(b, 1, x.size(-1)), keep.new_zeros(b, 1)
    return out, mask


def _max_mean(sim: Tensor, query_mask: Tensor, key_mask: Tensor) -> Tensor:
    """``mean_q max_k sim`` per pair, masked (a query node with no key node scores 0; a side with no
    query node scores 0).

    Shapes:
        sim: ``[A, Q, B, K]`` (query side ``A`` with nodes ``Q``, key side ``B`` with nodes ``K``),
        query_mask: ``[A, Q]``, key_mask: ``[B, K]`` -> ``[A, B]``.
    """
    sim = sim.masked_fill(~key_mask.view(1, 1, *key_mask.shape), float("-inf"))
    best = sim.amax(dim=-1)  # [A, Q, B]
    best = torch.where(torch.isfinite(best), best, torch.zeros_like(best))  # no key node: 0
    q = query_mask.to(best.dtype).unsqueeze(-1)  # [A, Q, 1]
    return (best * q).sum(1) / q.sum(1).clamp_min(1.0)


def _level_similarity(img: Tensor, img_mask: Tensor, cap: Tensor, cap_mask: Tensor, direction: str) -> Tensor:
    """One level's ``[n_img, n_cap]`` score (see the module docstring); inputs l2-normalised."""
    sim = torch.einsum("iad,cbd->iacb", img, cap)  # [I, Ni, C, Nc]
    out = []
    if direction in ("t2i", "both"):
        out.append(_max_mean(sim.permute(2, 3, 0, 1), cap_mask, img_mask).t())
    if direction in ("i2t", "both"):
        out.append(_max_mean(sim, img_mask, cap_mask))
    return out[0] if len(out) == 1 else (out[0] + out[1]) / 2


def sgm_similarity(img_x: Tensor, img_type: Tensor, cap_x: Tensor, cap_type: Tensor, *,
                   rel_weight: float = 1.0, direction: str = "t2i", object_types: Tuple[int, ...] = (0, 1, 3)
                   ) -> Tensor:
    """SGM's score of every image with every caption from their level-typed nodes.

    Args:
        img_x, cap_x: node vectors (l2-normalised: the products are cosines) ``[I, Ni, D]`` / ``[C, Nc, D]``.
        img_type, cap_type: long ``[I, Ni]`` / ``[C, Nc]``: :data:`RELATION` (2) for relation
            nodes, a type in ``object_types`` for object-level nodes, anything else (-1 padding)
            for nodes left out.
        rel_weight: weight of the relation level. direction: ``t2i`` | ``i2t`` | ``both``.
        object_types: the node types matched at the object level.

    Returns:
        ``[I, C]``: ``S_obj + rel_weight * S_rel``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"SGM direction must be one of {DIRECTIONS}, got {direction!r}")
    ot = torch.tensor(object_types, device=img_type.device)
    i_obj, i_om = level_nodes(img_x, torch.isin(img_type, ot))
    c_obj, c_om = level_nodes(cap_x, torch.isin(cap_type, ot.to(cap_type.device)))
    score = _level_similarity(i_obj, i_om, c_obj, c_om, direction)
    if rel_weight != 0:
        i_rel, i_rm = level_nodes(img_x, img_type == RELATION)
        c_rel, c_rm = level_nodes(cap_x, cap_type == RELATION)
        score = score + rel_weight * _level_similarity(i_rel, i_rm, c_rel, c_rm, direction)
    return score


@MATCHERS.register("sgm", config=SGMConfig)
class SGM(Matcher):
    """SGM matcher (see the module docstring for the equations).

    Args:
        image_encoder: visual graph batch -> :class:`NodeEmb` (object nodes).
        text_encoder: scene text graph batch -> :class:`NodeEmb` over the scene-graph nodes (the
            builder wraps a word encoder in :class:`~graphmatch.encoders.span.SpanPoolEncoder`).
        embed_dim: node size ``D``.
        edge_dim: visual edge feature size ``F`` (passed by the builder from the graph recipe);
            None: relation nodes from ``[v_s; v_o]`` only, and images must carry no edge features.
        rel_weight, direction, attributes, hidden_dim: :class:`SGMConfig`.

    Shapes:
        ``encode_images`` gives ``NodeEmb`` with ``x`` ``[B, N + R, D]``: each image's object nodes
        then its relation nodes (``node_type`` 0 / 2, -1 at padding), no ``adj``;
        ``encode_captions`` gives the scene-graph nodes with relation / attribute nodes composed
        (``node_type`` as in the text graph); ``score`` -> ``[n_images, n_captions]``.
    """

    graph_needs = GraphNeeds(text_graphs=("scene",), edge_attr=True)
    dense_graph = True

    def __init__(self, *, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int,
                 edge_dim: Optional[int] = None, rel_weight: float = 1.0, direction: str = "t2i",
                 attributes: str = "nodes", hidden_dim: int = 0) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"SGM direction must be one of {DIRECTIONS}, got {direction!r}")
        if attributes not in ATTRIBUTE_MODES:
            raise ValueError(f"SGM attributes must be one of {ATTRIBUTE_MODES}, got {attributes!r}")
        if rel_weight < 0:
            raise ValueError(f"SGM rel_weight must be >= 0, got {rel_weight!r}")
        if edge_dim is not None and (isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1):
            raise ValueError(f"SGM edge_dim must be a positive int or None, got {edge_dim!r}")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.embed_dim, self.edge_dim = embed_dim, edge_dim
        self.rel_weight, self.direction, self.attributes = float(rel_weight), direction, attributes
        h = hidden_dim or embed_dim
        self.image_triple = _mlp(2 * embed_dim + (edge_dim or 0), h, embed_dim)  # f_v
        self.text_triple = _mlp(3 * embed_dim, h, embed_dim)  # f_t
        self.attribute_path = _mlp(2 * embed_dim, h, embed_dim) if attributes == "nodes" else None  # f_a

    # ----------------------------------------------------------------------------- image side
    def image_relations(self, emb: NodeEmb) -> Tuple[Tensor, Tensor]:
        """Relation nodes ``u_so`` of every edge ``s -> o`` of ``emb.adj``, with the image each
        belongs to. Returns ``(u [R, D], image [R])`` in (image, object, subject) order."""
        if emb.adj is None:
            raise ValueError("SGM: the image node embeddings carry no adjacency (NodeEmb.adj)")
        b, o, s = torch.nonzero(emb.adj, as_tuple=True)  # adj[b, o, s] != 0: edge s -> o
        parts = [emb.x[b, s], emb.x[b, o]]
        if self.edge_dim is not None:
            if emb.edge_attr is None:
                if b.numel():
                    raise ValueError(f"SGM was built for visual edge features of size {self.edge_dim}, but the "
                                     "images carry no edge_attr; use visual edges with features "
                                     "(data.graph.visual_edges: relations)")
                ea = emb.x.new_zeros(0, self.edge_dim)
            else:
                ea = emb.edge_attr[b, o, s]
                if ea.size(-1) != self.edge_dim:
                    raise ValueError(f"SGM: visual edge features have size {ea.size(-1)}, the matcher was built "
                                     f"for edge_dim={self.edge_dim}")
            parts.insert(1, ea.to(emb.x.dtype))
        elif emb.edge_attr is not None:
            raise ValueError(f"SGM was built without edge features (edge_dim=None) but the images carry "
                             f"edge_attr of size {emb.edge_attr.size(-1)}; build it with build_matcher(..., "
                             "recipe=cfg.data.graph) or SGM(edge_dim=F)")
        return l2norm(self.image_triple(torch.cat(parts, dim=-1)), dim=-1), b

    def image_nodes(self, emb: NodeEmb) -> NodeEmb:
        """Object nodes followed by relation nodes, per image (see the class docstring)."""
        x, mask = emb.x, emb.mask
        nb = x.size(0)
        u, ub = self.image_relations(emb)
        rows = torch.arange(nb, device=x.device).unsqueeze(1).expand_as(mask)[mask]
        nodes = torch.cat([l2norm(x[mask], dim=-1), u])
        which = torch.cat([rows, ub])
        types = torch.cat([torch.full_like(rows, OBJECT), torch.full_like(ub, RELATION)])
        order = torch.argsort(which, stable=True)  # objects of image b, then its relations
        out, out_mask = to_dense_batch(nodes[order], which[order], batch_size=nb)
        t, _ = to_dense_batch(types[order], which[order], fill_value=NODE_TYPE_PAD, batch_size=nb)
        if out.size(1) == 0:
            return NodeEmb(x.new_zeros(nb, 1, x.size(-1)), mask.new_zeros(nb, 1),
                           node_type=torch.full((nb, 1), NODE_TYPE_PAD, dtype=torch.long, device=x.device))
        return NodeEmb(out, out_mask, pooled=emb.pooled, node_type=t)

    def encode_images(self, graphs: Batch) -> NodeEmb:
        return self.image_nodes(attach_dense_graph(self.image_encoder(graphs), graphs))

    # ------------------------------------------------------------------------------ text side
    def caption_nodes(self, emb: NodeEmb) -> NodeEmb:
        """Scene-graph nodes with relation (and attribute) nodes composed with their objects."""
        if emb.node_type is None:
            raise ValueError("SGM: the caption node embeddings carry no node_type; SGM reads scene text graphs "
                             "(data.graph.text_graph: scene)")
        if emb.adj is None:
            raise ValueError("SGM: the caption node embeddings carry no adjacency (NodeEmb.adj)")
        x, adj, types = emb.x, emb.adj, emb.node_type
        is_obj = (types == OBJECT).to(x.dtype).unsqueeze(1)  # [B, 1, N]
        # adj[b, i, j] != 0 for the edge j -> i: a relation r's subject s has s -> r, its object o r -> o
        subj = torch.bmm((adj != 0).to(x.dtype) * is_obj, x)  # row r: its subject
        obj = torch.bmm((adj.transpose(1, 2) != 0).to(x.dtype) * is_obj, x)  # row r: its object
        rel = l2norm(self.text_triple(torch.cat([subj, x, obj], dim=-1)), dim=-1)
        out = torch.where((types == RELATION).unsqueeze(-1), rel, l2norm(x, dim=-1))
        is_attr = (types == ATTRIBUTE).unsqueeze(-1)
        if self.attributes == "nodes":
            attr = l2norm(self.attribute_path(torch.cat([x, obj], dim=-1)), dim=-1)  # row a: a -> its object
            out = torch.where(is_attr, attr, out)
        else:  # fold: t_o + mean of its attributes
            into = (adj != 0).to(x.dtype) * is_attr.transpose(1, 2).to(x.dtype)  # [b, o, a]: a -> o
            count = into.sum(-1, keepdim=True)
            folded = l2norm(x + torch.bmm(into, x) / count.clamp_min(1.0), dim=-1)
            out = torch.where((types == OBJECT).unsqueeze(-1) & (count > 0), folded, out)
        out = out * emb.mask.unsqueeze(-1).to(out.dtype)
        return NodeEmb(out, emb.mask, pooled=emb.pooled, node_type=types)

    def encode_captions(self, graphs: Batch) -> NodeEmb:
        emb = self.text_encoder(graphs)
        if emb.node_type is None and "node_type" in graphs:  # e.g. a GNN stack after the pooler
            types, _ = to_dense(graphs, "node_type", fill_value=NODE_TYPE_PAD, max_num_nodes=emb.num_nodes)
            emb = replace(emb, node_type=types.to(emb.mask.device))
        dense = attach_dense_graph(emb, graphs)
        return self.caption_nodes(replace(dense, node_type=emb.node_type))

    # ------------------------------------------------------------------------------ matching
    @property
    def object_types(self) -> Tuple[int, ...]:
        """Caption node types matched at the object level."""
        return (OBJECT, ATTRIBUTE, WORD) if self.attributes == "nodes" else (OBJECT, WORD)

    def score(self, img: NodeEmb, cap: NodeEmb) -> Tensor:
        for side, e in (("image", img), ("caption", cap)):
            if e.node_type is None:
                raise ValueError(f"SGM.score: the {side} nodes carry no node_type; encode them with "
                                 f"SGM.encode_{'images' if side == 'image' else 'captions'}")
        img_type = img.node_type.masked_fill(~img.mask, NODE_TYPE_PAD)
        cap_type = cap.node_type.masked_fill(~cap.mask, NODE_TYPE_PAD)
        return sgm_similarity(img.x, img_type, cap.x, cap_type, rel_weight=self.rel_weight,
                              direction=self.direction, object_types=self.object_types)

    def extra_repr(self) -> str:
        return (f"edge_dim={self.edge_dim}, rel_weight={self.rel_weight:g}, direction={self.direction!r}, "
                f"attributes={self.attributes!r}")
