"""The matcher interface.

A matcher turns a batch of visual graphs and a batch of textual graphs into a similarity matrix
``[n_images, n_captions]``. It is split in two so evaluation can encode every image and caption
once and score all pairs in chunks (:func:`graphmatch.engine.scoring.chunked_similarity`):

* ``encode_images(Batch) -> NodeEmb`` and ``encode_captions(Batch) -> NodeEmb`` give padded node
  embeddings (:class:`~graphmatch.structures.NodeEmb`: ``x[B, N, D]``, ``mask[B, N]`` and, where
  the matcher asks for them, dense adjacency, edge features and a pooled vector);
* ``score(img: NodeEmb, cap: NodeEmb) -> [n_images, n_captions]`` aligns them;
* ``global_embedding(emb) -> [B, D] | None``: a global vector for VSE-style scoring and the first
  stage of two-stage retrieval (None when the matcher has none).

Padding must never change a score. A matcher declares what its graphs need in ``graph_needs``
(:class:`~graphmatch.graphs.GraphNeeds`, e.g. polar visual edges and dependency text graphs); a
config whose graph recipe does not give it is an error when the model is built
(:func:`graphmatch.models.build_matcher`). ``dense_graph`` set to True makes the base class attach
each batch's dense adjacency (and edge features, if the graphs have them) to the node embeddings.

A new matcher is one file: subclass :class:`Matcher`, give keyword-only ``__init__`` arguments
(``image_encoder`` and ``text_encoder`` are passed by the builder; every argument with a default
is a config key) or an options dataclass, and register it with ``@MATCHERS.register("name")``.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from torch_geometric.data import Batch

from graphmatch.structures import NodeEmb


class Matcher(nn.Module):
    """Base class of image–sentence matchers (see module docstring).

    Subclasses that keep ``image_encoder`` / ``text_encoder`` attributes get ``encode_images`` /
    ``encode_captions`` for free.
    """

    #: What the graphs of a batch must carry (checked against the config's graph recipe).
    graph_needs: Any = None
    #: Attach the dense adjacency / edge features of each batch to the node embeddings.
    dense_graph: bool = False

    def encode_images(self, graphs: Batch) -> NodeEmb:
        emb = self.image_encoder(graphs)
        return attach_dense_graph(emb, graphs) if self.dense_graph else emb

    def encode_captions(self, graphs: Batch) -> NodeEmb:
        emb = self.text_encoder(graphs)
        return attach_dense_graph(emb, graphs) if self.dense_graph else emb

    def score(self, img: NodeEmb, cap: NodeEmb) -> torch.Tensor:
        """Similarity ``[len(img), len(cap)]`` of every image with every caption."""
        raise NotImplementedError

    def global_embedding(self, emb: NodeEmb) -> Optional[torch.Tensor]:
        """A global vector per graph (``emb.pooled`` when the encoder gave one), or None."""
        return emb.pooled

    def forward(self, images: Batch, captions: Batch) -> torch.Tensor:
        return self.score(self.encode_images(images), self.encode_captions(captions))


def attach_dense_graph(emb: NodeEmb, graphs: Batch) -> NodeEmb:
    """``emb`` with the dense adjacency ``[B, N, N]`` of ``graphs`` (``adj[b, i, j] = 1`` for an edge
    ``j -> i``) and, when the graphs have ``edge_attr``, the dense edge features ``[B, N, N, F]``."""
    from torch_geometric.utils import to_dense_adj

    b, n = emb.mask.shape
    ei = getattr(graphs, "edge_index", None)
    batch = getattr(graphs, "batch", None)
    if ei is None:
        adj = emb.x.new_zeros(b, n, n)
        return NodeEmb(emb.x, emb.mask, adj, None, emb.pooled, emb.node_type)
    flip = ei.flip(0)  # to_dense_adj puts edge (src, dst) at [src, dst]; NodeEmb.adj is [dst, src]
    adj = to_dense_adj(flip, batch, max_num_nodes=n, batch_size=b).to(emb.x.dtype)
    edge_attr = None
    ea = getattr(graphs, "edge_attr", None)
    if ea is not None and ea.numel():
        edge_attr = to_dense_adj(flip, batch, edge_attr=ea.to(emb.x.dtype), max_num_nodes=n, batch_size=b)
    return NodeEmb(emb.x, emb.mask, adj, edge_attr, emb.pooled, emb.node_type)
