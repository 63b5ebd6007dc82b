"""torch-geometric layers registered under short names, each with its options as a schema.

PyG's constructors take ``**kwargs``, so each layer is registered through a small factory with an
options dataclass (the keys of its config section, with their ranges and choices). The factories
fix what a node-refining stack needs: multi-head layers average their heads (``concat=False``), so
the output size is ``out_channels`` whatever ``heads`` is.

* ``gcn`` — :class:`~torch_geometric.nn.conv.GCNConv` (Kipf & Welling 2017); no edge features;
* ``gat`` — :class:`~torch_geometric.nn.conv.GATConv` (Velickovic et al. 2018); edge features with
  ``edge_dim``;
* ``gatv2`` — :class:`~torch_geometric.nn.conv.GATv2Conv` (Brody et al. 2022); edge features with
  ``edge_dim``;
* ``gin`` — :class:`~torch_geometric.nn.conv.GINConv` around a two-layer MLP (Xu et al. 2019); no
  edge features;
* ``transformer`` — :class:`~torch_geometric.nn.conv.TransformerConv` (Shi et al. 2021); edge
  features with ``edge_dim``;
* ``graph`` — :class:`~torch_geometric.nn.conv.GraphConv` (Morris et al. 2019); no edge features.

The attention layers' own dropout (on the attention coefficients) is the key
``attention_dropout``: ``dropout`` is the stack's key (:class:`~graphmatch.config.GNNStackConfig`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from torch import nn
from torch_geometric.nn import GATConv, GATv2Conv, GCNConv, GINConv, GraphConv, TransformerConv

from graphmatch.nn.conv.registry import GNN_LAYERS
from graphmatch.options import option

__all__ = [
    "GCNOptions", "GATOptions", "GATv2Options", "GINOptions", "TransformerOptions", "GraphConvOptions",
    "gcn", "gat", "gatv2", "gin", "transformer", "graph",
]

_FILL_VALUES = ("mean", "add", "max", "min", "mul")


# ------------------------------------------------------------------------------------------ gcn
@dataclass
class GCNOptions:
    """``gcn``: ``X' = D^-1/2 (A + I) D^-1/2 X W`` (https://arxiv.org/abs/1609.02907)."""

    improved: bool = option(False, help="2 I instead of I on the diagonal")
    add_self_loops: bool = True
    normalize: bool = option(True, help="symmetric degree normalisation")
    bias: bool = True


@GNN_LAYERS.register("gcn", config=GCNOptions)
def gcn(in_channels: int, out_channels: int, **options: Any) -> GCNConv:
    """:class:`~torch_geometric.nn.conv.GCNConv` with :class:`GCNOptions` (no caching: every
    batch is a new graph)."""
    return GCNConv(in_channels, out_channels, cached=False, **asdict(GCNOptions(**options)))


# ------------------------------------------------------------------------------------------ gat
@dataclass
class GATOptions:
    """``gat``: ``x_i' = mean_h sum_j alpha^h_ij W^h x_j`` with
    ``alpha^h_ij = softmax_j(LeakyReLU(a^h . [W^h x_i, W^h x_j, W_e e_ij]))``
    (https://arxiv.org/abs/1710.10903)."""

    heads: int = option(1, lo=1, help="attention heads, averaged")
    negative_slope: float = option(0.2, lo=0)
    attention_dropout: float = option(0.0, lo=0, hi=1, hi_open=True, help="dropout of the attention coefficients")
    add_self_loops: bool = True
    fill_value: str = option("mean", choices=_FILL_VALUES, help="edge features of the added self-loops")
    bias: bool = True


def _gat_kwargs(o: Any) -> dict:
    kw = asdict(o)
    kw["dropout"] = kw.pop("attention_dropout")
    return kw


@GNN_LAYERS.register("gat", config=GATOptions)
def gat(in_channels: int, out_channels: int, *, edge_dim: Optional[int] = None, **options: Any) -> GATConv:
    """:class:`~torch_geometric.nn.conv.GATConv` with :class:`GATOptions`, heads averaged."""
    return GATConv(in_channels, out_channels, concat=False, edge_dim=edge_dim,
                   **_gat_kwargs(GATOptions(**options)))


@dataclass
class GATv2Options(GATOptions):
    """``gatv2``: as ``gat`` with ``alpha^h_ij = softmax_j(a^h . LeakyReLU(W^h [x_i, x_j, e_ij]))``
    (https://arxiv.org/abs/2105.14491)."""

    share_weights: bool = option(False, help="one weight matrix for source and target nodes")


@GNN_LAYERS.register("gatv2", config=GATv2Options)
def gatv2(in_channels: int, out_channels: int, *, edge_dim: Optional[int] = None, **options: Any) -> GATv2Conv:
    """:class:`~torch_geometric.nn.conv.GATv2Conv` with :class:`GATv2Options`, heads averaged."""
    return GATv2Conv(in_channels, out_channels, concat=False, edge_dim=edge_dim,
                     **_gat_kwargs(GATv2Options(**options)))


# ------------------------------------------------------------------------------------------ gin
@dataclass
class GINOptions:
    """``gin``: ``x_i' = MLP((1 + eps) x_i + sum_j x_j)`` with a two-layer MLP
    ``Linear(in, hidden) -> ReLU -> Linear(hidden, out)`` (https://arxiv.org/abs/1810.00826)."""

    eps: float = 0.0
    train_eps: bool = option(False, help="learn eps")
    hidden_channels: Optional[int] = option(None, lo=1, note="null: out_channels")


@GNN_LAYERS.register("gin", config=GINOptions)
def gin(in_channels: int, out_channels: int, **options: Any) -> GINConv:
    """:class:`~torch_geometric.nn.conv.GINConv` around a two-layer MLP (:class:`GINOptions`)."""
    o = GINOptions(**options)
    hidden = o.hidden_channels or out_channels
    mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, out_channels))
    return GINConv(mlp, eps=o.eps, train_eps=o.train_eps)


# ---------------------------------------------------------------------------------- transformer
@dataclass
class TransformerOptions:
    """``transformer``: ``x_i' = W_1 x_i + mean_h sum_j alpha^h_ij (W^h_2 x_j + W_e e_ij)`` with
    scaled dot-product attention ``alpha^h_ij = softmax_j((W^h_3 x_i) . (W^h_4 x_j + W_e e_ij) / sqrt(d))``
    (https://arxiv.org/abs/2009.03509)."""

    heads: int = option(1, lo=1, help="attention heads, averaged")
    beta: bool = option(False, help="gated root connection")
    attention_dropout: float = option(0.0, lo=0, hi=1, hi_open=True, help="dropout of the attention coefficients")
    root_weight: bool = option(True, help="add W_1 x_i")
    bias: bool = True


@GNN_LAYERS.register("transformer", config=TransformerOptions)
def transformer(in_channels: int, out_channels: int, *, edge_dim: Optional[int] = None,
                **options: Any) -> TransformerConv:
    """:class:`~torch_geometric.nn.conv.TransformerConv` with :class:`TransformerOptions`, heads
    averaged."""
    kw = asdict(TransformerOptions(**options))
    kw["dropout"] = kw.pop("attention_dropout")
    return TransformerConv(in_channels, out_channels, concat=False, edge_dim=edge_dim, **kw)


# ---------------------------------------------------------------------------------------- graph
@dataclass
class GraphConvOptions:
    """``graph``: ``x_i' = W_1 x_i + W_2 aggr_j x_j`` (https://arxiv.org/abs/1810.02244)."""

    aggr: str = option("add", choices=("add", "mean", "max"))
    bias: bool = True


@GNN_LAYERS.register("graph", config=GraphConvOptions)
def graph(in_channels: int, out_channels: int, **options: Any) -> GraphConv:
    """:class:`~torch_geometric.nn.conv.GraphConv` with :class:`GraphConvOptions`."""
    return GraphConv(in_channels, out_channels, **asdict(GraphConvOptions(**options)))
