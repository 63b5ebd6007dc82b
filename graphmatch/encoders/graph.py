"""Graph encoders: a base encoder followed by a stack of GNN layers over the batch's edges.

:class:`GNNStack` applies one registered GNN layer (:data:`graphmatch.nn.conv.GNN_LAYERS`)
``num_layers`` times to node features ``[N, dim]``, as PyG's ``BasicGNN`` builds a stack by name;
each layer is a block::

    h = dropout(act(norm(layer(x, edge_index[, edge_attr][, edge_type]))))
    x = x + h      (residual, where the block's in and out sizes agree)      or      x = h

With ``hidden_channels`` = H the sizes are ``dim -> H -> ... -> H -> dim`` (first layer
``dim -> H``, the middle ones ``H -> H``, the last ``H -> dim``); with ``H != dim`` the first and
last blocks change the size and have no residual, the middle ones keep it.

:class:`GraphEncoder` runs a base encoder (region features or words -> padded
:class:`~graphmatch.structures.NodeEmb`), takes the real nodes in the order of the PyG batch,
applies the stack with the batch's ``edge_index`` (and ``edge_attr``, ``edge_type``) and pads the result back to
the same ``[B, N]`` layout, padding rows zero. Padding never reaches a layer, so it never changes
a real node's output; normalisation layers (``norm: batch``) see real nodes only.

:func:`build_gnn_stack` builds a stack from a config section (``model.image_gnn`` /
``model.text_gnn``: the layer's ``name`` and options plus the stack keys of
:class:`~graphmatch.config.GNNStackConfig`) or from plain keyword arguments.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from graphmatch.nn.conv import (GNN_LAYERS, build_gnn_layer, layer_name, needs_edge_features, takes_edge_features,
                                takes_edge_types)
from graphmatch.nn.functional import l2norm
from graphmatch.structures import NodeEmb

__all__ = ["GNNStack", "GraphEncoder", "build_gnn_stack", "NORMS", "ACTIVATIONS", "STACK_KEYS"]

#: The ``norm`` values of a stack.
NORMS: Tuple[str, ...] = ("none", "layer", "batch")
#: The ``activation`` values of a stack.
ACTIVATIONS: Tuple[str, ...] = ("relu", "gelu", "elu", "none")


def _make_norm(norm: str, dim: int) -> nn.Module:
    if norm == "layer":
        return nn.LayerNorm(dim)
    if norm == "batch":
        return nn.BatchNorm1d(dim)
    return nn.Identity()


def _make_activation(activation: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "none": nn.Identity}[activation]()


class GNNStack(nn.Module):
    """``num_layers`` copies (separate weights) of one GNN layer on node features of size ``dim``.

    Args:
        layer: a name registered in :data:`~graphmatch.nn.conv.GNN_LAYERS`, or a layer class /
            factory taking ``in_channels`` and ``out_channels``.
        dim: node feature size, in and out of the stack.
        num_layers: number of layers (>= 1).
        residual: add each block's output to its input, in the blocks whose input and output sizes
            agree (all of them unless ``hidden_channels`` differs from ``dim``; then all but the
            first and the last).
        dropout: dropout probability after each block's activation (0 <= p < 1).
        norm: ``"none"``, ``"layer"`` (LayerNorm) or ``"batch"`` (BatchNorm1d over the nodes of
            the batch) after each layer.
        edge_features: give the layers the graph's ``edge_attr`` when they take edge features.
        activation: ``"relu"``, ``"gelu"``, ``"elu"`` or ``"none"`` after each norm.
        hidden_channels: the size between layers (None: ``dim``); the first layer maps ``dim ->
            hidden_channels``, the last ``hidden_channels -> dim`` (a single layer maps
            ``dim -> dim`` and does not use it). Norms have the size of their layer's output.
        edge_dim: edge feature size. Edge features reach a layer only when this is set,
            ``edge_features`` is true and the layer's ``forward`` takes ``edge_attr``; such a layer
            is built with ``edge_dim`` and every batch must then carry ``edge_attr`` ``[E, edge_dim]``.
            A layer that needs edge features (:func:`~graphmatch.nn.conv.needs_edge_features`)
            cannot be built without them.
        layer_options: the layer's own options (keyword arguments of :func:`build_gnn_layer`).

    Layers whose ``forward`` takes ``edge_type`` (``rgcn``) get the graph's edge types; the batch
    must then carry ``edge_type`` ``[E]`` (integers).

    Shapes:
        x: ``[N, dim]``, edge_index: ``[2, E]``, edge_attr: ``[E, edge_dim]`` or None,
        edge_type: ``[E]`` or None -> ``[N, dim]``.
    """

    def __init__(self, layer: Any, dim: int, *, num_layers: int = 1, residual: bool = True,
                 dropout: float = 0.0, norm: str = "none", edge_features: bool = True,
                 activation: str = "relu", hidden_channels: Optional[int] = None, edge_dim: Optional[int] = None,
                 layer_options: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"GNNStack: dim must be a positive int, got {dim!r}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"GNNStack: num_layers must be an int >= 1, got {num_layers!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"GNNStack: dropout must be in [0, 1), got {dropout!r}")
        if norm not in NORMS:
            raise ValueError(f"GNNStack: norm must be one of {NORMS}, got {norm!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"GNNStack: activation must be one of {ACTIVATIONS}, got {activation!r}")
        if edge_dim is not None and (isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1):
            raise ValueError(f"GNNStack: edge_dim must be a positive int or None, got {edge_dim!r}")
        if hidden_channels is not None and (isinstance(hidden_channels, bool) or not isinstance(hidden_channels, int)
                                            or hidden_channels < 1):
            raise ValueError(f"GNNStack: hidden_channels must be a positive int or None, got {hidden_channels!r}")
        self.layer_name = layer_name(layer)
        self.dim, self.num_layers, self.residual = dim, num_layers, residual
        self.hidden_channels = hidden_channels
        self.norm_kind, self.activation_kind, self.dropout_p = norm, activation, float(dropout)
        self.edge_features = edge_features
        self.edge_dim = edge_dim if edge_features else None
        if self.edge_dim is None and needs_edge_features(layer):
            why = ("the stack has edge_features: false" if edge_dim is not None
                   else "the graphs carry no edge features (edge_dim is None)")
            raise ValueError(
                f"GNN layer {self.layer_name!r} needs edge features but {why}; use visual edges that carry "
                "features (e.g. data.graph.visual_edges: polar) with edge_features: true, or a layer without them")
        hidden = dim if hidden_channels is None else hidden_channels
        #: node feature size before each layer and after the last: dim, hidden, ..., hidden, dim
        self.sizes = [dim] + [hidden] * (num_layers - 1) + [dim]
        self.layers = nn.ModuleList(
            build_gnn_layer(layer, in_channels=self.sizes[i], out_channels=self.sizes[i + 1], edge_dim=self.edge_dim,
                            **(layer_options or {}))
            for i in range(num_layers)
        )
        self.norms = nn.ModuleList(_make_norm(norm, self.sizes[i + 1]) for i in range(num_layers))
        self.act = _make_activation(activation)
        self.dropout = nn.Dropout(self.dropout_p)
        #: per layer: does it receive edge_attr?
        self.uses_edge_attr = [self.edge_dim is not None and takes_edge_features(m) for m in self.layers]
        #: per layer: does it receive edge_type?
        self.uses_edge_type = [takes_edge_types(m) for m in self.layers]
        #: per layer: is its block residual (residual and equal in and out sizes)?
        self.residual_blocks = [residual and self.sizes[i] == self.sizes[i + 1] for i in range(num_layers)]

    def reset_parameters(self) -> None:
        for m in list(self.layers) + list(self.norms):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def _edge_attr(self, edge_attr: Optional[Tensor], num_edges: int) -> Tensor:
        if edge_attr is None:
            raise ValueError(
                f"GNN stack of {self.layer_name!r} layers was built for edge features of size {self.edge_dim} "
                "(edge_dim) but the batch has no edge_attr; use visual edges that carry features, or set "
                "edge_features: false in the GNN section")
        if edge_attr.dim() == 1:
            edge_attr = edge_attr.unsqueeze(-1)
        if tuple(edge_attr.shape) != (num_edges, self.edge_dim):
            raise ValueError(
                f"GNN stack of {self.layer_name!r} layers: edge_attr has shape {tuple(edge_attr.shape)}, "
                f"expected ({num_edges}, {self.edge_dim}) (one row of edge_dim={self.edge_dim} per edge)")
        return edge_attr if edge_attr.is_floating_point() else edge_attr.float()

    def _edge_type(self, edge_type: Optional[Tensor], num_edges: int) -> Tensor:
        if edge_type is None:
            raise ValueError(
                f"GNN stack of {self.layer_name!r} layers needs edge types (edge_type [E]) but the batch has none; "
                "use typed graphs (text graphs dependency or scene, visual_edges: relations) or a layer without "
                "edge types")
        if edge_type.dim() != 1 or edge_type.numel() != num_edges:
            raise ValueError(f"GNN stack of {self.layer_name!r} layers: edge_type has shape {tuple(edge_type.shape)}, "
                             f"expected ({num_edges},) (one type per edge)")
        if edge_type.is_floating_point() or edge_type.dtype == torch.bool:
            raise ValueError(f"GNN stack of {self.layer_name!r} layers: edge_type must hold integers, "
                             f"got {edge_type.dtype}")
        return edge_type.long()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                edge_type: Optional[Tensor] = None) -> Tensor:
        if x.dim() != 2 or x.size(-1) != self.dim:
            raise ValueError(f"GNN stack of {self.layer_name!r} layers takes node features [N, {self.dim}], "
                             f"got {tuple(x.shape)}")
        ea = self._edge_attr(edge_attr, edge_index.size(1)) if any(self.uses_edge_attr) else None
        et = self._edge_type(edge_type, edge_index.size(1)) if any(self.uses_edge_type) else None
        for i, (conv, norm) in enumerate(zip(self.layers, self.norms)):
            kwargs: Dict[str, Tensor] = {}
            if self.uses_edge_attr[i]:
                kwargs["edge_attr"] = ea
            if self.uses_edge_type[i]:
                kwargs["edge_type"] = et
            h = conv(x, edge_index, **kwargs)
            expected = (x.size(0), self.sizes[i + 1])
            if not isinstance(h, Tensor) or tuple(h.shape) != expected:
                got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
                raise ValueError(f"GNN layer {self.layer_name!r} (layer {i} of the stack) returned {got}; "
                                 f"expected {expected}")
            h = self.dropout(self.act(norm(h)))
            x = x + h if self.residual_blocks[i] else h
        return x

    def extra_repr(self) -> str:
        parts = [repr(self.layer_name), str(self.dim), f"num_layers={self.num_layers}",
                 f"residual={self.residual}", f"norm={self.norm_kind!r}", f"activation={self.activation_kind!r}",
                 f"dropout={self.dropout_p:g}"]
        if self.hidden_channels is not None:
            parts.append(f"hidden_channels={self.hidden_channels}")
        if self.edge_dim is not None:
            parts.append(f"edge_dim={self.edge_dim}")
        return ", ".join(parts)


#: The keyword arguments of :class:`GNNStack` that are the stack's own (the common keys of a GNN
#: config section); the other keys of a section are the layer's options.
STACK_KEYS: Tuple[str, ...] = tuple(
    p.name for p in inspect.signature(GNNStack.__init__).parameters.values()
    if p.kind is p.KEYWORD_ONLY and p.name not in ("edge_dim", "layer_options")
)


class GraphEncoder(nn.Module):
    """A base encoder followed by a :class:`GNNStack` over the batch's graph.

    Args:
        base_encoder: a module mapping a PyG ``Batch`` to :class:`~graphmatch.structures.NodeEmb`
            (``x`` [B, N, dim], ``mask`` [B, N]) whose real nodes are the batch's nodes: graph ``b``'s
            nodes, in order, at the True positions of ``mask[b]`` (as ``to_dense_batch`` lays them out).
        stack: the GNN stack (its ``dim`` equals the base encoder's output size).
        normalize: l2-normalise each node's output (as the base encoders do by default).

    Shapes:
        input: ``Batch`` with ``edge_index`` [2, E] (and ``edge_attr`` [E, F] for stacks with
        edge features, ``edge_type`` [E] for layers over typed edges); output: ``NodeEmb`` with ``x`` [B, N, dim] (padding rows zero) and the
        base encoder's ``mask``.
    """

    def __init__(self, base_encoder: nn.Module, stack: GNNStack, *, normalize: bool = False) -> None:
        super().__init__()
        self.base, self.stack, self.normalize = base_encoder, stack, normalize

    def forward(self, graphs: Batch) -> NodeEmb:
        emb = self.base(graphs)
        x, mask = emb.x, emb.mask
        nodes = x[mask]  # [sum of real nodes, dim], graph by graph in node order
        n = graphs.num_nodes
        if nodes.size(0) != n:
            raise ValueError(
                f"GraphEncoder: the base encoder {type(self.base).__name__} gave {nodes.size(0)} real nodes for a "
                f"batch of {n} graph nodes; a GNN stack needs one embedding per graph node")
        edge_index = getattr(graphs, "edge_index", None)
        if edge_index is None:
            edge_index = torch.zeros(2, 0, dtype=torch.long, device=x.device)
        h = self.stack(nodes, edge_index, getattr(graphs, "edge_attr", None), getattr(graphs, "edge_type", None))
        if self.normalize:
            h = l2norm(h, dim=-1)
        out = x.new_zeros(x.shape[:2] + (h.size(-1),)).index_put((mask,), h)
        return NodeEmb(out, mask, node_type=emb.node_type)

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}"


def _split(layer: Any, keys: Dict[str, Any], stack: Dict[str, Any], options: Dict[str, Any]) -> None:
    """Sort ``keys`` into stack keys and layer options as the config loader does: a key that is
    one of the layer's options is the layer's, else a stack key is the stack's."""
    own = {f.name for f in dataclasses.fields(GNN_LAYERS.options(layer))}
    for k, v in keys.items():
        (stack if k in STACK_KEYS and k not in own else options)[k] = v


def _section_parts(section: Any) -> Tuple[Any, Dict[str, Any], Dict[str, Any]]:
    """(layer, stack keys, layer options) of a config section, a mapping or a layer name/class."""
    if isinstance(section, dict):
        raw = dict(section)
        if "name" not in raw:
            raise ValueError(f"build_gnn_stack: a mapping needs 'name' (a GNN layer), got keys {sorted(raw)}")
        layer = raw.pop("name")
        stack: Dict[str, Any] = {}
        options: Dict[str, Any] = {}
        _split(layer, raw, stack, options)
        return layer, stack, options
    if hasattr(section, "name") and callable(getattr(section, "kwargs", None)):  # a config Component
        common = getattr(section, "common", None)
        stack = ({f.name: getattr(common, f.name) for f in dataclasses.fields(common)}
                 if common is not None and dataclasses.is_dataclass(common) else {})
        return section.name, stack, dict(section.kwargs())
    return section, {}, {}


def build_gnn_stack(section: Any, *, dim: int, edge_dim: Optional[int] = None, **overrides: Any) -> GNNStack:
    """A :class:`GNNStack` from a GNN config section or from plain arguments.

    Args:
        section: a config section (``model.image_gnn``: ``.name`` = the layer, ``.kwargs()`` = its
            options, ``.common`` = the stack keys of :class:`~graphmatch.config.GNNStackConfig`);
            a mapping ``{"name": ..., **keys}``; or a layer name / class.
        dim: node feature size (the encoder's output size).
        edge_dim: edge feature size of the graphs, or None when they carry none.
        **overrides: stack keys (``num_layers``, ``residual``, ``dropout``, ``norm``,
            ``edge_features``, ``activation``, ``hidden_channels``) and layer options, over the section's (a key that is
            both, e.g. a layer's own ``dropout``, is the layer's, as in a config file).

    Example::

        build_gnn_stack("gat", dim=256, num_layers=2, heads=4)
        build_gnn_stack(cfg.model.image_gnn, dim=cfg.model.embed_dim, edge_dim=5)
    """
    layer, stack, options = _section_parts(section)
    _split(layer, overrides, stack, options)
    return GNNStack(layer, dim, edge_dim=edge_dim, layer_options=options, **stack)
