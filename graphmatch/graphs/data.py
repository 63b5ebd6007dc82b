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

Text graphs come in three kinds (:func:`build_text_graph`):

* ``"words"`` — nodes are the caption's words (``x`` = token ids), no edges or all pairs
  (``"full"``: GSMN's dense word graph);
* ``"dependency"`` — nodes are words, edges follow the dependency parse in both directions
  (GSMN's sparse graph), ``edge_type`` = index of the dependency label in :data:`DEP_LABELS`;
* ``"scene"`` — nodes are the scene graph's objects, attributes and relations (``node_type``
  0 / 1 / 2), edges attribute→object (``edge_type`` 0), subject→relation (1) and relation→object
  (2); ``span`` says which words feed each node and the caption's token ids travel in ``words``
  (batched with ``follow_batch=["words"]``, giving ``words_batch``). A caption with no object falls
  back to word nodes (``node_type`` 3), so every caption gives a valid graph.

:func:`to_dense` turns a batched node field into ``(x[B, N_max, ...], mask[B, N_max])``, the
padded form the matchers consume. Scene text graphs have no ``x``: ask for ``"words"`` (token ids,
batched with ``follow_batch=["words"]``) or a node field (``"node_type"``, ``"span"``); asking for a
field a batch does not have raises :class:`GraphFieldError` naming the fields it has.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

from graphmatch.structures import Regions, SceneGraph
from graphmatch.visual_graphs import VISUAL_EDGES, full_edges

EDGE_MODES = ("none", "full")
TEXT_GRAPH_KINDS = ("words", "full", "dependency", "scene")
NODE_OBJECT, NODE_ATTRIBUTE, NODE_RELATION, NODE_WORD = 0, 1, 2, 3
EDGE_ATTRIBUTE_OF, EDGE_SUBJECT, EDGE_OBJECT = 0, 1, 2
#: Dependency labels of spaCy's English models (ClearNLP style); anything else maps to "dep".
DEP_LABELS = (
    "ROOT", "acl", "acomp", "advcl", "advmod", "agent", "amod", "appos", "attr", "aux", "auxpass", "case", "cc",
    "ccomp", "compound", "conj", "csubj", "csubjpass", "dative", "dep", "det", "dobj", "expl", "intj", "mark",
    "meta", "neg", "nmod", "npadvmod", "nsubj", "nsubjpass", "nummod", "oprd", "parataxis", "pcomp", "pobj",
    "poss", "preconj", "predet", "prep", "prt", "punct", "quantmod", "relcl", "xcomp",
)
_DEP_INDEX = {d: i for i, d in enumerate(DEP_LABELS)}


class GraphFieldError(KeyError, ValueError):
    """A graph or batch has no such field, or the field does not fit its assignment vector."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class VisualGraph(Data):
    """A graph over the regions of one image (see module docstring for the fields)."""


class TextGraph(Data):
    """A graph over the words (or scene-graph nodes) of one caption (see module docstring)."""


def _edges(n: int, mode: str) -> torch.Tensor:
    if mode == "none":
        return torch.empty(2, 0, dtype=torch.long)
    if mode == "full":
        return full_edges(n)
    raise ValueError(f"unknown edge mode {mode!r}; expected one of {EDGE_MODES}")


def build_visual_graph(
    regions: Union[Regions, torch.Tensor],
    *,
    boxes: Optional[torch.Tensor] = None,
    image_size: Optional[Tuple[float, float]] = None,
    item: int = -1,
    edges: str = "none",
    **edge_options: object,
) -> VisualGraph:
    """A :class:`VisualGraph` from :class:`~graphmatch.structures.Regions` or a feature tensor.

    Args:
        regions: ``Regions`` or float [N, D] region features.
        boxes, image_size: used when ``regions`` is a tensor; optional for ``"none"`` / ``"full"``.
        item: the image's number in its split.
        edges: ``"none"`` (nodes only, what SCAN needs), ``"full"`` (every ordered pair, no edge
            features), or a builder registered in :data:`graphmatch.visual_graphs.VISUAL_EDGES`
            (``"polar"``, ``"knn"``, ``"iou"``, ``"relations"``, ...), which sets ``edge_attr`` and,
            for ``"relations"``, ``edge_type``.
        edge_options: passed to the edge builder (``k=8``, ``iou_threshold=0.0``, ``relations=[...]``).
    """
    if isinstance(regions, Regions):
        x, boxes, image_size = regions.features, regions.boxes, regions.image_size
    else:
        x = torch.as_tensor(regions)
    if x.dim() != 2:
        raise ValueError(f"region features must be [N, D], got {tuple(x.shape)}")
    data = VisualGraph(x=x, item=torch.tensor([item]))
    if boxes is not None:
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.shape != (x.size(0), 4):
            raise ValueError(f"boxes must be [{x.size(0)}, 4], got {tuple(boxes.shape)}")
        data.boxes = boxes
    if image_size is not None:
        data.image_size = torch.tensor([list(image_size)], dtype=torch.float32)
    if edges in EDGE_MODES:
        if edge_options:
            raise ValueError(f"edge mode {edges!r} takes no options, got {sorted(edge_options)}")
        data.edge_index = _edges(x.size(0), edges)
        return data
    builder = VISUAL_EDGES.get(edges)
    if boxes is None:
        raise ValueError(f"edges={edges!r} needs region boxes")
    if "relations" in edge_options:  # read once: an iterator would be empty the second time
        edge_options["relations"] = [tuple(r) for r in edge_options["relations"]]  # type: ignore[union-attr]
    data.edge_index, data.edge_attr = builder(boxes, image_size, **edge_options)
    if edges == "relations":
        rel = torch.as_tensor(edge_options.get("relations", []), dtype=torch.long).reshape(-1, 3)
        data.edge_type = rel[:, 1]
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


def build_dependency_graph(scene_graph: SceneGraph, token_ids: Sequence[int], *, item: int = -1) -> TextGraph:
    """Word nodes with edges head↔dependent from ``scene_graph.heads`` / ``deps``.

    Both directions of every arc are edges (messages flow up and down the tree); ``edge_type`` is
    the label's index in :data:`DEP_LABELS`. Roots (head = itself) and punctuation arcs give no edge.
    """
    n = len(scene_graph.tokens)
    if len(token_ids) != n:
        raise ValueError(f"{len(token_ids)} token ids for {n} tokens")
    if scene_graph.heads is None or scene_graph.deps is None:
        raise ValueError("the scene graph has no dependency parse (heads / deps are None)")
    src, dst, typ = [], [], []
    for i, (h, d) in enumerate(zip(scene_graph.heads, scene_graph.deps)):
        if h == i or d == "punct":
            continue
        t = _DEP_INDEX.get(d, _DEP_INDEX["dep"])
        src += [h, i]
        dst += [i, h]
        typ += [t, t]
    g = build_word_graph(token_ids, item=item)
    g.edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    g.edge_type = torch.tensor(typ, dtype=torch.long)
    return g


def build_scene_graph_graph(scene_graph: SceneGraph, token_ids: Sequence[int], *, item: int = -1) -> TextGraph:
    """Object / attribute / relation nodes of a parsed caption (see module docstring).

    Each node keeps the ``span`` of the words that name it, so its feature can be pooled from the
    text encoder's word states. With no object, the words themselves are the nodes.
    """
    n_tok = len(scene_graph.tokens)
    if len(token_ids) != n_tok:
        raise ValueError(f"{len(token_ids)} token ids for {n_tok} tokens")
    words = torch.as_tensor(list(token_ids), dtype=torch.long)
    if not scene_graph.objects:
        spans = [(i, i + 1) for i in range(n_tok)]
        types = [NODE_WORD] * n_tok
        edges: list = []
        etypes: list = []
    else:
        objs, attrs, rels = scene_graph.objects, scene_graph.attributes, scene_graph.relations
        spans = [o.span for o in objs] + [a.span for a in attrs] + [r.span for r in rels]
        types = [NODE_OBJECT] * len(objs) + [NODE_ATTRIBUTE] * len(attrs) + [NODE_RELATION] * len(rels)
        edges, etypes = [], []
        for j, a in enumerate(attrs):
            edges.append((len(objs) + j, a.object))
            etypes.append(EDGE_ATTRIBUTE_OF)
        base = len(objs) + len(attrs)
        for k, r in enumerate(rels):
            edges += [(r.subject, base + k), (base + k, r.object)]
            etypes += [EDGE_SUBJECT, EDGE_OBJECT]
    return TextGraph(
        words=words,
        num_words=torch.tensor([n_tok]),
        span=torch.tensor(spans, dtype=torch.long).reshape(-1, 2),
        node_type=torch.tensor(types, dtype=torch.long),
        edge_index=torch.tensor(edges, dtype=torch.long).t().reshape(2, -1),
        edge_type=torch.tensor(etypes, dtype=torch.long),
        item=torch.tensor([item]),
        num_nodes=len(types),
    )


def build_text_graph(kind: str, scene_graph: SceneGraph, token_ids: Sequence[int], *, item: int = -1) -> TextGraph:
    """A text graph of ``kind`` (one of :data:`TEXT_GRAPH_KINDS`) from a parsed caption.

    ``token_ids`` are the vocabulary ids of ``scene_graph.tokens`` (one per token).
    """
    if kind == "words":
        return build_word_graph(token_ids, item=item)
    if kind == "full":
        return build_word_graph(token_ids, item=item, edges="full")
    if kind == "dependency":
        return build_dependency_graph(scene_graph, token_ids, item=item)
    if kind == "scene":
        return build_scene_graph_graph(scene_graph, token_ids, item=item)
    raise ValueError(f"unknown text graph kind {kind!r}; expected one of {TEXT_GRAPH_KINDS}")


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

    Scene text graphs (:func:`build_scene_graph_graph`) have no ``x`` before encoding: their
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
