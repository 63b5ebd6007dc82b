"""Visual and textual graphs as PyG ``Data``; batching with PyG ``Batch``; dense padded views.

Field conventions (stable contract):

* ``x`` — node features (regions: float [N, D]; words: long token ids [N] before encoding).
* ``edge_index`` [2, E] / ``edge_attr`` [E, F] — edges and their features.
* ``boxes`` [N, 4] — region boxes ``(x1, y1, x2, y2)`` in pixels. The name deliberately does not
  contain "index": PyG's ``Batch`` adds a node offset to every attribute whose name contains
  "index" (``__inc__``), which would corrupt coordinates.
* ``image_size`` [1, 2] — ``(width, height)``; batching stacks it to [B, 2].
* ``span`` [N, 2] — for text nodes, the ``[start, end)`` token offsets in the caption that feed the
  node, so node features can be pooled from a (contextual) text encoder's word states. Offsets are
  caption-local and are not shifted by batching.
* ``item`` [1] — the image / caption number in its data split.

:func:`to_dense` turns a batched node field into ``(x[B, N_max, ...], mask[B, N_max])``, the
padded form the matchers consume.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

from graphmatch.structures import Regions

EDGE_MODES = ("none", "full")


class VisualGraph(Data):
    """A graph over the regions of one image (see module docstring for the fields)."""


class TextGraph(Data):
    """A graph over the words (or scene-graph nodes) of one caption (see module docstring)."""


def _full_edges(n: int) -> torch.Tensor:
    """All ordered pairs ``i != j`` of ``n`` nodes, [2, n(n-1)]."""
    if n < 2:
        return torch.empty(2, 0, dtype=torch.long)
    idx = torch.arange(n)
    src = idx.repeat_interleave(n)
    dst = idx.repeat(n)
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


def _edges(n: int, mode: str) -> torch.Tensor:
    if mode == "none":
        return torch.empty(2, 0, dtype=torch.long)
    if mode == "full":
        return _full_edges(n)
    raise ValueError(f"unknown edge mode {mode!r}; expected one of {EDGE_MODES}")


def build_visual_graph(
    regions: Union[Regions, torch.Tensor],
    *,
    boxes: Optional[torch.Tensor] = None,
    image_size: Optional[Tuple[float, float]] = None,
    item: int = -1,
    edges: str = "none",
) -> VisualGraph:
    """A :class:`VisualGraph` from :class:`~graphmatch.structures.Regions` or a feature tensor.

    Args:
        regions: ``Regions`` or float [N, D] region features.
        boxes, image_size: used when ``regions`` is a tensor; optional.
        item: the image's number in its split.
        edges: ``"none"`` (nodes only, what SCAN needs) or ``"full"`` (every ordered pair).
    """
    if isinstance(regions, Regions):
        x, boxes, image_size = regions.features, regions.boxes, regions.image_size
    else:
        x = torch.as_tensor(regions)
    if x.dim() != 2:
        raise ValueError(f"region features must be [N, D], got {tuple(x.shape)}")
    data = VisualGraph(x=x, edge_index=_edges(x.size(0), edges), item=torch.tensor([item]))
    if boxes is not None:
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.shape != (x.size(0), 4):
            raise ValueError(f"boxes must be [{x.size(0)}, 4], got {tuple(boxes.shape)}")
        data.boxes = boxes
    if image_size is not None:
        data.image_size = torch.tensor([list(image_size)], dtype=torch.float32)
    return data


def build_word_graph(
    token_ids: Union[Sequence[int], torch.Tensor], *, item: int = -1, edges: str = "none"
) -> TextGraph:
    """A :class:`TextGraph` whose nodes are the words of a caption (``x`` = token ids).

    ``span[i] = (i, i + 1)``. ``edges``: ``"none"`` or ``"full"`` (GSMN-dense word graph).
    """
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    n = ids.numel()
    span = torch.stack([torch.arange(n), torch.arange(1, n + 1)], dim=1) if n else torch.empty(0, 2, dtype=torch.long)
    return TextGraph(x=ids, edge_index=_edges(n, edges), span=span, item=torch.tensor([item]), num_nodes=n)


def collate_graphs(graphs: Sequence[Data]) -> Batch:
    """Batch graphs with PyG (node offsets on ``edge_index``, ``batch`` vector, stacked fields)."""
    return Batch.from_data_list(list(graphs))


def to_dense(
    batch: Batch, key: str = "x", *, fill_value: float = 0.0, max_num_nodes: Optional[int] = None,
    x: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(values[B, N_max, ...], mask[B, N_max])`` of a node field of a PyG ``Batch``.

    ``x`` overrides the field (e.g. encoded node states aligned with ``batch.batch``). Graphs with
    zero nodes give an all-False mask row.
    """
    values = batch[key] if x is None else x
    batch_vec = batch.batch
    if batch_vec is None:
        batch_vec = torch.zeros(values.size(0), dtype=torch.long, device=values.device)
    out, mask = to_dense_batch(
        values, batch_vec, fill_value=fill_value, max_num_nodes=max_num_nodes, batch_size=batch.num_graphs
    )
    return out, mask
