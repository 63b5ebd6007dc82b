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
* ``gine`` — :class:`~torch_geometric.nn.conv.GINEConv` around a two-layer MLP (Hu et al. 2020);
  needs edge features (``edge_dim``);
* ``transformer`` — :class:`~torch_geometric.nn.conv.TransformerConv` (Shi et al. 2021); edge
  features with ``edge_dim``;
* ``graph`` — :class:`~torch_geometric.nn.conv.GraphConv` (Morris et al. 2019); no edge features;
* ``gated`` — :class:`~torch_geometric.nn.conv.GatedGraphConv` (Li et al. 2016); no edge features;
* ``rgcn`` — :class:`~torch_geometric.nn.conv.RGCNConv` (Schlichtkrull et al. 2018); typed edges
  (``edge_type``: dependency labels of dependency text graphs, the three edge kinds of scene graphs,
  predicate ids of ``relations`` visual edges);
* ``gmm`` — :class:`~torch_geometric.nn.conv.GMMConv` (MoNet, Monti et al. 2017); needs edge
  features, which are its pseudo-coordinates (``dim = edge_dim``).

A layer that cannot run without edge features takes ``edge_dim`` without a default and raises a
:class:`ValueError` when it is None (:func:`graphmatch.nn.conv.needs_edge_features`); a layer
whose ``forward`` takes ``edge_type`` is given the graph's edge types by the stack.

The attention layers' own dropout (on the attention coefficients) is the key
``attention_dropout``: ``dropout`` is the stack's key (:class:`~graphmatch.config.GNNStackConfig`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn import (GATConv, GATv2Conv, GCNConv, GINConv, GINEConv, GMMConv, GatedGraphConv,
                                GraphConv, TransformerConv)
from torch_geometric.nn import RGCNConv as _PygRGCNConv

from graphmatch.nn.conv.registry import GNN_LAYERS
from graphmatch.options import option

__all__ = [
    "GCNOptions", "GATOptions", "GATv2Options", "GINOptions", "GINEOptions", "TransformerOptions",
    "GraphConvOptions", "GatedOptions", "RGCNOptions", "GMMOptions",
    "gcn", "gat", "gatv2", "gin", "gine", "transformer", "graph", "gated", "rgcn", "gmm",
    "ProjectedGatedGraphConv", "CheckedRGCNConv", "check_edge_type", "require_edge_dim",
]

_FILL_VALUES = ("mean", "add", "max", "min", "mul")


def require_edge_dim(name: str, edge_dim: Optional[int], what: str = "edge features") -> int:
    """``edge_dim`` of a layer that needs edge features; a :class:`ValueError` naming the fix when
    it is None or not a positive int."""
    if edge_dim is None:
        raise ValueError(
            f"GNN layer {name!r} needs {what} (edge_dim): build it with edge_dim, i.e. on graphs whose "
            "edges carry features (e.g. data.graph.visual_edges: polar) with edge_features: true")
    if isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1:
        raise ValueError(f"GNN layer {name!r}: edge_dim must be a positive int, got {edge_dim!r}")
    return edge_dim


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
    ``Linear(in, mlp) -> ReLU -> Linear(mlp, out)`` (https://arxiv.org/abs/1810.00826).

    The MLP's hidden size is ``mlp_channels`` (not ``hidden_channels``, which is the stack's key:
    the hidden size between the layers of a :class:`~graphmatch.encoders.graph.GNNStack`)."""

    eps: float = 0.0
    train_eps: bool = option(False, help="learn eps")
    mlp_channels: Optional[int] = option(None, lo=1, help="hidden size of the MLP", note="null: out_channels")


@GNN_LAYERS.register("gin", config=GINOptions)
def gin(in_channels: int, out_channels: int, **options: Any) -> GINConv:
    """:class:`~torch_geometric.nn.conv.GINConv` around a two-layer MLP (:class:`GINOptions`)."""
    o = GINOptions(**options)
    return GINConv(_mlp(in_channels, o.mlp_channels or out_channels, out_channels), eps=o.eps, train_eps=o.train_eps)


def _mlp(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(), nn.Linear(hidden, out_channels))


@dataclass
class GINEOptions(GINOptions):
    """``gine``: ``x_i' = MLP((1 + eps) x_i + sum_j ReLU(x_j + W_e e_ij))``, the MLP as ``gin``'s
    (https://arxiv.org/abs/1905.12265). ``W_e`` maps the edge features to ``in_channels``."""


@GNN_LAYERS.register("gine", config=GINEOptions)
def gine(in_channels: int, out_channels: int, *, edge_dim: int, **options: Any) -> GINEConv:
    """:class:`~torch_geometric.nn.conv.GINEConv` around a two-layer MLP (:class:`GINEOptions`);
    needs edge features (``gin`` is the same layer without them)."""
    edge_dim = require_edge_dim("gine", edge_dim)
    o = GINEOptions(**options)
    return GINEConv(_mlp(in_channels, o.mlp_channels or out_channels, out_channels), eps=o.eps,
                    train_eps=o.train_eps, edge_dim=edge_dim)


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


# ---------------------------------------------------------------------------------------- gated
@dataclass
class GatedOptions:
    """``gated``: ``num_steps`` steps of ``m_i = aggr_j W^(t) h_j``, ``h_i = GRU(m_i, h_i)``
    from ``h_i = [x_i, 0]`` (the input zero-padded to ``out_channels``;
    https://arxiv.org/abs/1511.05493). ``W^(t)`` is a separate matrix per step, the GRU is shared."""

    num_steps: int = option(3, lo=1, help="propagation steps (PyG's num_layers)")
    aggr: str = option("add", choices=("add", "mean", "max"))
    bias: bool = True


class ProjectedGatedGraphConv(GatedGraphConv):
    """:class:`~torch_geometric.nn.conv.GatedGraphConv` after a linear map ``in -> out`` (no
    bias): the ``gated`` layer when ``in_channels > out_channels``, which zero-padding cannot serve
    (e.g. the last layer of a stack whose ``hidden_channels`` exceed its ``dim``).

    Shapes: x ``[N, in_channels]``, edge_index ``[2, E]`` -> ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, aggr: str = "add",
                 bias: bool = True) -> None:
        super().__init__(out_channels, num_layers, aggr=aggr, bias=bias)
        self.in_channels = in_channels
        self.proj = nn.Linear(in_channels, out_channels, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, "proj"):  # GatedGraphConv.__init__ resets before proj exists
            self.proj.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        return super().forward(self.proj(x), edge_index, edge_weight)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, num_layers={self.num_layers})"


@GNN_LAYERS.register("gated", config=GatedOptions)
def gated(in_channels: int, out_channels: int, **options: Any) -> GatedGraphConv:
    """:class:`~torch_geometric.nn.conv.GatedGraphConv` with :class:`GatedOptions`.

    GatedGraphConv zero-pads its input to ``out_channels``, so it needs ``in_channels <=
    out_channels``; for ``in_channels > out_channels`` the input is first mapped to
    ``out_channels`` by a learned linear map (:class:`ProjectedGatedGraphConv`)."""
    o = GatedOptions(**options)
    if in_channels > out_channels:
        return ProjectedGatedGraphConv(in_channels, out_channels, o.num_steps, aggr=o.aggr, bias=o.bias)
    return GatedGraphConv(out_channels, o.num_steps, aggr=o.aggr, bias=o.bias)


# ----------------------------------------------------------------------------------------- rgcn
@dataclass
class RGCNOptions:
    """``rgcn``: ``x_i' = W_0 x_i + sum_r aggr_{j in N_r(i)} W_r x_j`` over the relation types
    ``r = edge_type`` (https://arxiv.org/abs/1703.06103); with ``num_bases`` = B,
    ``W_r = sum_b a_rb V_b`` (basis decomposition).

    ``num_relations`` must exceed every edge type of the graphs: 45 dependency labels
    (``graphmatch.graphs.text.DEP_LABELS``), 3 scene-graph edge kinds, or the predicate ids of
    ``relations`` visual edges. Without ``num_bases`` the layer holds ``num_relations`` full
    ``in x out`` matrices (64 x 1024 x 1024 = 67 M parameters at dim 1024): set ``num_bases`` for
    large ``dim``."""

    num_relations: int = option(64, lo=1, help="number of edge types; every edge_type must be below it")
    num_bases: Optional[int] = option(None, lo=1, help="basis decomposition", note="null: a full matrix per relation")
    aggr: str = option("mean", choices=("add", "mean", "max"))
    root_weight: bool = option(True, help="add W_0 x_i")
    bias: bool = True


class CheckedRGCNConv(_PygRGCNConv):
    """:class:`torch_geometric.nn.conv.RGCNConv` that checks its ``edge_type`` first: one integer
    type per edge in ``[0, num_relations)``, else a :class:`ValueError` naming the bad value (PyG's
    layer fails with an index error, or reads a wrong weight, on an out-of-range type).

    Shapes: x ``[N, in_channels]``, edge_index ``[2, E]``, edge_type ``[E]`` -> ``[N, out_channels]``.
    """

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Optional[Tensor] = None) -> Tensor:
        check_edge_type(edge_type, edge_index.size(1), self.num_relations, "rgcn")
        return super().forward(x, edge_index, edge_type)


def check_edge_type(edge_type: Optional[Tensor], num_edges: int, num_relations: int, name: str) -> None:
    """A :class:`ValueError` unless ``edge_type`` is ``[num_edges]`` integers in ``[0, num_relations)``."""
    if edge_type is None:
        raise ValueError(f"GNN layer {name!r} needs edge types (edge_type [E]); the graph has none")
    if edge_type.dim() != 1 or edge_type.numel() != num_edges:
        raise ValueError(f"GNN layer {name!r}: edge_type has shape {tuple(edge_type.shape)}, expected ({num_edges},)")
    if edge_type.is_floating_point() or edge_type.dtype == torch.bool:
        raise ValueError(f"GNN layer {name!r}: edge_type must be integer, got {edge_type.dtype}")
    if num_edges:
        lo, hi = int(edge_type.min()), int(edge_type.max())
        if lo < 0 or hi >= num_relations:
            bad = lo if lo < 0 else hi
            raise ValueError(f"GNN layer {name!r}: edge_type {bad} is out of range for num_relations={num_relations} "
                             f"(types must be in [0, {num_relations})); raise num_relations")


@GNN_LAYERS.register("rgcn", config=RGCNOptions)
def rgcn(in_channels: int, out_channels: int, **options: Any) -> CheckedRGCNConv:
    """:class:`CheckedRGCNConv` (PyG's RGCNConv, its edge types checked) with :class:`RGCNOptions`."""
    return CheckedRGCNConv(in_channels, out_channels, **asdict(RGCNOptions(**options)))


# ------------------------------------------------------------------------------------------ gmm
@dataclass
class GMMOptions:
    """``gmm``: ``x_i' = W_0 x_i + mean_j (1/K) sum_k w_k(e_ij) W_k x_j`` with Gaussian kernels
    ``w_k(e) = exp(-1/2 (e - mu_k)^T diag(sigma_k)^-2 (e - mu_k))`` of the edge features, the
    pseudo-coordinates ``e_ij`` (``dim = edge_dim``; MoNet, https://arxiv.org/abs/1611.08402).
    With ``separate_gaussians`` each (kernel, input channel) pair has its own Gaussian. No
    wrap-around of angles and no normalisation over kernels: ``spatial_kernel`` is GSMN's variant
    for polar coordinates."""

    kernel_size: int = option(8, lo=1, help="number of Gaussian kernels K")
    separate_gaussians: bool = False
    aggr: str = option("mean", choices=("add", "mean", "max"))
    root_weight: bool = option(True, help="add W_0 x_i")
    bias: bool = True


@GNN_LAYERS.register("gmm", config=GMMOptions)
def gmm(in_channels: int, out_channels: int, *, edge_dim: int, **options: Any) -> GMMConv:
    """:class:`~torch_geometric.nn.conv.GMMConv` with :class:`GMMOptions`; the edge features are
    its pseudo-coordinates."""
    edge_dim = require_edge_dim("gmm", edge_dim, "pseudo-coordinates as edge features")
    return GMMConv(in_channels, out_channels, dim=edge_dim, **asdict(GMMOptions(**options)))
