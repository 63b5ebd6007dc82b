"""SGM's triple convolution over (subject, predicate, object) (``triple``).

Wang et al., *Cross-modal Scene Graph Matching for Relationship-aware Image-Text Retrieval*,
WACV 2020 (https://arxiv.org/abs/1910.05134), section 3 (the object and relation encoders of the
visual and textual scene graphs), whose triple update follows the scene-graph convolution of
Johnson et al., *Image Generation from Scene Graphs*, CVPR 2018 (https://arxiv.org/abs/1804.01622).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import degree

from graphmatch.nn.conv.registry import GNN_LAYERS
from graphmatch.options import option

__all__ = ["TripleConv", "TripleOptions"]


@dataclass
class TripleOptions:
    """Options of ``triple`` (:class:`TripleConv`)."""

    mlp_channels: Optional[int] = option(None, lo=1, help="hidden size of the two triple MLPs",
                                         note="null: out_channels")
    bias: bool = option(True, help="bias of the root map")


def _triple_mlp(in_size: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_size, hidden), nn.ReLU(), nn.Linear(hidden, out))


@GNN_LAYERS.register("triple", config=TripleOptions)
class TripleConv(MessagePassing):
    r"""Triple convolution: every edge ``s -> o`` with predicate features ``e_so`` (its
    ``edge_attr``) is a triple (subject, predicate, object); two MLPs of the concatenated triple
    give a message to the object and one to the subject, and each node averages the messages of
    all triples it takes part in (as subject or object), plus a root map of its own features:

    .. math::

        \mathbf{t}_{so} = [\mathbf{x}_s \,\Vert\, \mathbf{e}_{so} \,\Vert\, \mathbf{x}_o]

        \mathbf{x}_i' = \mathbf{W}_0 \mathbf{x}_i (+\, \mathbf{b}) + \frac{1}{d_i}\Big(
            \sum_{(s, i) \in E} \mathrm{MLP}_o(\mathbf{t}_{si})
            + \sum_{(i, o) \in E} \mathrm{MLP}_s(\mathbf{t}_{io})\Big)

    with ``d_i`` the number of edges at ``i`` (in plus out; the fraction is 0 when ``d_i = 0``),
    ``MLP = Linear(2 in + edge_dim, mlp) -> ReLU -> Linear(mlp, out)``. A self-loop ``i -> i`` is
    one triple that sends both messages to ``i`` (``d_i`` counts it twice). An isolated node keeps
    ``W_0 x_i (+ b)``.

    How it maps to SGM: SGM encodes each relation triple of a scene graph from the
    concatenation of its subject, predicate and object features and refines the object nodes from
    the triples they take part in, following Johnson et al.'s scene-graph convolution, in which
    one network of the triple gives new subject, predicate and object vectors and each object
    averages its candidate vectors over all its triples. Here the subject and object outputs
    are two MLPs (separate weights) and are averaged in the same way; the predicate output is not
    computed (a PyG layer returns node features: the predicate features ``e_so`` stay the edge's
    input in every layer); ``W_0 x_i`` is ours, so that the node's own features pass even through
    a layer in which it has no triple (Johnson et al. add an ``in_image`` relation to every object
    for the same purpose).

    Args:
        in_channels: node feature size.
        out_channels: output size.
        edge_dim: predicate feature size (required: the triples need their predicates).
        mlp_channels: hidden size of the two MLPs (default ``out_channels``).
        bias: bias of the root map ``W_0``.

    Shapes:
        x: ``[N, in_channels]``, edge_index: ``[2, E]`` (row 0 subjects, row 1 objects),
        edge_attr: ``[E, edge_dim]`` -> ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, edge_dim: int, mlp_channels: Optional[int] = None,
                 bias: bool = True) -> None:
        super().__init__(aggr="add")
        if edge_dim is None:
            raise ValueError("GNN layer 'triple' needs predicate features as edge features (edge_dim): use "
                             "graphs whose edges carry features with edge_features: true")
        if isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1:
            raise ValueError(f"GNN layer 'triple': edge_dim must be a positive int, got {edge_dim!r}")
        hidden = out_channels if mlp_channels is None else mlp_channels
        self.in_channels, self.out_channels, self.edge_dim, self.mlp_channels = (
            in_channels, out_channels, edge_dim, hidden)
        size = 2 * in_channels + edge_dim
        self.mlp_subject = _triple_mlp(size, hidden, out_channels)
        self.mlp_object = _triple_mlp(size, hidden, out_channels)
        self.lin_root = nn.Linear(in_channels, out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mlp in (self.mlp_subject, self.mlp_object):
            for m in mlp:
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        self.lin_root.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None) -> Tensor:
        if edge_attr is None:
            raise ValueError(f"GNN layer 'triple' needs edge_attr [E, {self.edge_dim}] (predicate features); "
                             "the graph has none")
        if edge_attr.dim() == 1:
            edge_attr = edge_attr.unsqueeze(-1)
        if tuple(edge_attr.shape) != (edge_index.size(1), self.edge_dim):
            raise ValueError(f"GNN layer 'triple': edge_attr has shape {tuple(edge_attr.shape)}, expected "
                             f"({edge_index.size(1)}, {self.edge_dim})")
        n = x.size(0)
        src, dst = edge_index
        t = torch.cat([x[src], edge_attr.to(x.dtype), x[dst]], dim=-1)  # [E, 2 in + edge_dim]
        to_object = self.propagate(edge_index, m=self.mlp_object(t), size=(n, n))
        to_subject = self.propagate(edge_index.flip(0), m=self.mlp_subject(t), size=(n, n))
        count = (degree(dst, n, dtype=x.dtype) + degree(src, n, dtype=x.dtype)).clamp(min=1).unsqueeze(-1)
        return self.lin_root(x) + (to_object + to_subject) / count

    def message(self, m: Tensor) -> Tensor:
        return m

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"edge_dim={self.edge_dim})")
