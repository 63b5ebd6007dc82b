"""Visual and textual graphs as PyG ``Data``; batching with PyG ``Batch``; dense padded views.

Field conventions (stable contract):

* ``x`` — node features (regions: float [N, D]; words: long token ids [N] before encoding).
* ``edge_index`` [2, E] / ``edge_attr`` [E, F] — edges and their features; ``edge_type`` [E] —
  an edge label (dependency label, scene-graph edge kind, relation predicate id).
* ``boxes`` [N, 4] — region boxes ``(x1, y1, x2, y2)`` in pixels. The name deliberately does not
  contain "index": PyG's ``Batch`` adds a node offset to every attribute whose name contains
  "index" (``__inc__``), which would corrupt coordinates.
* ``image_size`` [1, 2] — ``(width, height)``; batching stacks it to [B, 2].
* ``span`` [N, 2] — for text nodes, the ``[start, end)`` token offsets in the caption that feed the
  node, so node features can be pooled from a (contextual) text encoder's word states. Offsets are
  caption-local and are not shifted by batching.
* ``item`` [1] — the image / caption number in its data split.

Builders: :mod:`graphmatch.graphs.edges` (visual graphs) and :mod:`graphmatch.graphs.text` (caption
graphs).

:func:`to_dense` turns a batched node field into ``(x[B, N_max, ...], mask[B, N_max])``, the
padded form the matchers consume. Scene text graphs have no ``x``: ask for ``"words"`` (token ids,
batched with ``follow_batch=["words"]``) or a node field (``"node_type"``, ``"span"``); asking for a
field a batch does not have raises :class:`GraphFieldError` naming the fields it has.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

__all__ = ["GraphFieldError", "VisualGraph", "TextGraph", "collate_graphs", "to_dense"]


class GraphFieldError(KeyError, ValueError):
    """A graph or batch has no such field, or the field does not fit its assignment vector."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class VisualGraph(Data):
    """A graph over the regions of one image (see the module docstring for the fields)."""


class TextGraph(Data):
    """A graph over the words (or scene-graph nodes) of one caption (see module docstring)."""


def collate_graphs(graphs: Sequence[Data], follow_batch: Optional[Sequence[str]] = None) -> Batch:
    """Batch graphs with PyG (node offsets on ``edge_index``, ``batch`` vector, stacked fields).

    ``follow_batch`` names extra per-graph sequences (e.g. ``["words"]`` for scene graphs) that get
    their own ``<name>_batch`` vector.
    """
    return Batch.from_data_list(list(graphs), follow_batch=list(follow_batch) if follow_batch else None)


def to_dense(
    batch: Batch, key: str = "x", *, fill_value: float = 0.0, max_num_nodes: Optional[int] = None,
    x: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(values[B, N_max, ...], mask[B, N_max])`` of a node field of a PyG ``Batch``.

    ``x`` overrides the field (e.g. encoded node states aligned with ``batch.batch``). A field
    batched with ``follow_batch`` (``"words"`` of scene graphs) uses its ``<key>_batch`` vector; a
    plain ``Data`` is one graph. Graphs with zero nodes give an all-False mask row.

    Scene text graphs (:func:`~graphmatch.graphs.text.build_scene_graph_graph`) have no ``x`` before encoding: their
    token ids are ``to_dense(batch, "words")`` (``[B, max words]``) and their nodes
    ``to_dense(batch, "node_type")`` / ``to_dense(batch, "span")``.

    Raises:
        GraphFieldError: the batch has no field ``key`` (the message names the fields to ask for),
            or the field's rows do not match its assignment vector (e.g. ``"words"`` batched
            without ``follow_batch=["words"]``).
    """
    if x is None and key not in batch:
        raise GraphFieldError(_missing_field_message(batch, key))
    values = batch[key] if x is None else x
    # a field batched with follow_batch (e.g. "words") has its own assignment vector
    batch_vec = getattr(batch, f"{key}_batch", None) if x is None else None
    if batch_vec is None:
        batch_vec = getattr(batch, "batch", None)
    if batch_vec is None:  # a single graph (plain Data)
        batch_vec = torch.zeros(values.size(0), dtype=torch.long, device=values.device)
    if values.size(0) != batch_vec.size(0):
        hint = (f"; batch these graphs with collate_graphs(graphs, follow_batch=[{key!r}])"
                if x is None and f"{key}_batch" not in batch else "")
        raise GraphFieldError(f"to_dense: {'x' if x is not None else repr(key)} has {values.size(0)} rows but the "
                              f"assignment vector has {batch_vec.size(0)}{hint}")
    out, mask = to_dense_batch(
        values, batch_vec, fill_value=fill_value, max_num_nodes=max_num_nodes,
        batch_size=getattr(batch, "num_graphs", 1),
    )
    return out, mask


def _missing_field_message(batch: Data, key: str) -> str:
    fields = sorted(k for k in batch.keys() if not k.endswith("_batch") and k not in ("batch", "ptr"))
    msg = f"to_dense: the graph batch has no field {key!r} (its fields: {', '.join(fields) or 'none'})"
    if "words" in batch and "node_type" in batch:
        msg += ("; scene text graphs carry their token ids in 'words' (to_dense(batch, 'words'), batched with "
                "follow_batch=['words']) and their nodes in 'node_type' / 'span' (to_dense(batch, 'node_type'))")
    return msg
