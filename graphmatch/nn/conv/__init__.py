"""GNN layers: the :data:`GNN_LAYERS` registry, :func:`build_gnn_layer` and the built-in layers.

A GNN layer is a ``torch_geometric.nn.MessagePassing`` module (or any module with the same call,
``layer(x [N, in], edge_index [2, E]) -> [N, out]``, and optionally ``edge_attr [E, F]``) whose
constructor takes ``in_channels`` and ``out_channels`` and, when it uses edge features,
``edge_dim``. Its other constructor keywords are its options, the keys of its config section
(``model.image_gnn: {name: gat, heads: 4}``), read from its signature or from ``config=`` at
registration.

A layer that cannot run without edge features takes ``edge_dim`` without a default and raises
when it is None (:func:`needs_edge_features`); a layer whose ``forward`` takes ``edge_type`` gets
the graph's edge types ``[E]`` (:func:`takes_edge_types`).

Built in (:mod:`graphmatch.nn.conv.pyg`): ``gcn``, ``gat``, ``gatv2``, ``gin``, ``gine``,
``transformer``, ``graph``, ``gated``, ``rgcn``, ``gmm``. Layers of our own go one per file in
this package, each registered with ``@GNN_LAYERS.register("name")`` and imported below:

* ``spatial_kernel`` (:mod:`~graphmatch.nn.conv.spatial_kernel`) — GSMN's spatial graph
  convolution over polar pseudo-coordinates;
* ``rs_gcn`` (:mod:`~graphmatch.nn.conv.rs_gcn`) — VSRN's region relation reasoning;
* ``triple`` (:mod:`~graphmatch.nn.conv.triple`) — SGM's triple convolution over
  (subject, predicate, object).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
from typing import Any, Optional

from torch import nn

from graphmatch.nn.conv import pyg  # noqa: F401  (registers the torch-geometric layers)
from graphmatch.nn.conv import rs_gcn, spatial_kernel, triple  # noqa: F401  (register our layers)
from graphmatch.nn.conv.registry import GNN_LAYERS

__all__ = ["GNN_LAYERS", "build_gnn_layer", "takes_edge_features", "takes_edge_types", "needs_edge_features",
           "layer_name"]


def _named_parameters(factory: Any) -> set:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def layer_name(name_or_cls: Any) -> str:
    """``name_or_cls`` for messages: its registered name, else its qualified name."""
    if isinstance(name_or_cls, str):
        return name_or_cls
    return GNN_LAYERS.name_of(name_or_cls) or getattr(name_or_cls, "__qualname__", repr(name_or_cls))


def build_gnn_layer(name_or_cls: Any, *, in_channels: int, out_channels: int,
                    edge_dim: Optional[int] = None, **options: Any) -> nn.Module:
    """Construct a GNN layer.

    Args:
        name_or_cls: a name registered in :data:`GNN_LAYERS`, or a layer class / factory.
        in_channels, out_channels: node feature sizes before and after the layer.
        edge_dim: edge feature size; passed only to layers whose constructor names an
            ``edge_dim`` parameter (others never see edge features).
        **options: the layer's own options (the keys of its config section).

    Raises:
        ValueError: an option the layer does not have (with the closest names), or a layer whose
            constructor does not take ``in_channels`` and ``out_channels``.
        graphmatch.registry.UnknownNameError: an unknown name (lists the registered ones).
    """
    factory = GNN_LAYERS.resolve(name_or_cls)
    label = layer_name(name_or_cls)
    known = [f.name for f in dataclasses.fields(GNN_LAYERS.options(name_or_cls))]
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"GNN layer {label!r} has no option {key!r}{hint}; "
                             f"its options: {', '.join(known) or '(none)'}")
    params = _named_parameters(factory)
    missing = [p for p in ("in_channels", "out_channels") if p not in params]
    if missing:
        raise ValueError(f"GNN layer {label!r} must take in_channels and out_channels; its constructor "
                         f"lacks {', '.join(missing)}")
    kwargs = dict(options, in_channels=in_channels, out_channels=out_channels)
    if "edge_dim" in params:
        kwargs["edge_dim"] = edge_dim
    return factory(**kwargs)


def takes_edge_features(layer: nn.Module) -> bool:
    """Whether ``layer``'s ``forward`` takes an ``edge_attr`` argument."""
    try:
        return "edge_attr" in inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return False


def takes_edge_types(layer: nn.Module) -> bool:
    """Whether ``layer``'s ``forward`` takes an ``edge_type`` argument (typed edges, e.g. ``rgcn``)."""
    try:
        return "edge_type" in inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return False


def needs_edge_features(name_or_cls: Any) -> bool:
    """Whether a layer cannot be built without edge features: its constructor (or factory) takes
    ``edge_dim`` with no default."""
    factory = GNN_LAYERS.resolve(name_or_cls)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        p = inspect.signature(target).parameters.get("edge_dim")
    except (TypeError, ValueError):
        return False
    return p is not None and p.default is inspect.Parameter.empty
