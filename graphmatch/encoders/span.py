"""Scene-graph node features pooled from the contextual word states of their spans.

Scene text graphs (:func:`~graphmatch.graphs.text.build_scene_graph_graph`) have no ``x``: their
nodes (objects, attributes, relations, or word nodes for a caption without objects) name the
words they come from by a caption-local span ``[s, e)``, and the caption's token ids travel in
``words`` (batched with ``follow_batch=["words"]``, giving ``words_batch``). :class:`SpanPoolEncoder`
runs any word-level text encoder (one that reads ``x`` = token ids and gives one state per word,
e.g. ``bigru``) on a word-level view of the batch, then pools each node's feature from the states
``h_1 .. h_L`` of its caption's words:

* ``mean``: the masked mean over the span,
  ``v_n = (1 / |S_n|) sum_{t in S_n} h_t`` with ``S_n = {t : s_n <= t < e_n, t < L}``;
* ``attention``: a softmax over the span's words with a learned scoring vector per node type
  ``w_k`` (``k = node_type[n]``: objects, attributes, relations and word nodes attend to their
  words differently, e.g. to the head noun of a compound),
  ``a_nt = softmax_{t in S_n}(w_{k(n)} . h_t)``, ``v_n = sum_{t in S_n} a_nt h_t``. The vectors
  start at zero, so attention starts as the mean.

Then ``v_n`` is l2-normalised (as the word encoders normalise their states; an encoder built with
``normalize=False`` keeps the pooled vector as it is). A node whose span holds no word (the
alignment of a parse to the core tokens keeps empty spans, see
:func:`~graphmatch.graphs.align_scene_graph`) gets the zero vector: it carries no text evidence,
so every cosine with it is 0 and a GNN stack after the pooler fills it from its neighbours only.

The output is a :class:`~graphmatch.structures.NodeEmb` over the scene-graph nodes, one row per
graph node in the order of the PyG batch, so a :class:`~graphmatch.encoders.graph.GraphEncoder`
(GNN stack) can follow it; its ``node_type`` holds the nodes' types (-1 at padding) for matchers
that treat node kinds apart (SGM).

Configured by the model key ``model.text_pool`` (``mean`` | ``attention``,
:class:`~graphmatch.config.ModelConfig`): :func:`graphmatch.models.build_matcher` puts a pooler
around the text encoder when the graph recipe's text graph is ``scene`` or the matcher accepts only
scene graphs. A batch without ``words`` / ``span`` (word graphs) goes to the word encoder as it is.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from graphmatch.graphs import to_dense
from graphmatch.nn.functional import l2norm
from graphmatch.structures import NODE_TYPE_PAD, NodeEmb

__all__ = ["SpanPoolEncoder", "SPAN_POOLS", "is_span_batch", "word_view", "span_mask", "span_pool"]

#: The pooling modes (``model.text_pool``).
SPAN_POOLS: Tuple[str, ...] = ("mean", "attention")
#: Node types with their own attention vector (object, attribute, relation, word).
NUM_NODE_TYPES = 4


def is_span_batch(graphs: Batch) -> bool:
    """Whether ``graphs`` is a batch of span graphs (scene text graphs): it has ``words`` and ``span``
    and no ``x``."""
    return "words" in graphs and "span" in graphs and "x" not in graphs


def word_view(graphs: Batch) -> Batch:
    """A word-level view of a batch of scene text graphs: one node per caption word, ``x`` = its
    token id, ``batch`` = ``words_batch``; what a word-level text encoder reads.

    Raises:
        ValueError: the batch has no ``words`` or was batched without ``follow_batch=["words"]``.
    """
    if "words" not in graphs:
        raise ValueError("span pooling needs the caption's token ids in 'words' (scene text graphs); "
                         f"the batch has fields {sorted(graphs.keys())}")
    words = graphs.words
    num_graphs = int(getattr(graphs, "num_graphs", 1))
    wb = getattr(graphs, "words_batch", None)
    if wb is None:
        if num_graphs != 1 or isinstance(graphs, Batch):
            raise ValueError("span pooling: the batch has 'words' but no 'words_batch'; batch scene graphs with "
                             "collate_graphs(graphs, follow_batch=['words'])")
        wb = torch.zeros(words.size(0), dtype=torch.long, device=words.device)
    if wb.numel() != words.numel():
        raise ValueError(f"span pooling: 'words' has {words.numel()} entries but 'words_batch' {wb.numel()}")
    counts = torch.bincount(wb, minlength=num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    view = Batch(x=words, batch=wb, ptr=ptr)
    view._num_graphs = num_graphs
    return view


def span_mask(span: Tensor, node_mask: Tensor, word_mask: Tensor) -> Tensor:
    """Which words feed which node: ``M[b, n, t]`` = word ``t`` of caption ``b`` lies in the span of
    node ``n`` (``s <= t < e``), is a real word and ``n`` a real node.

    Shapes:
        span: long ``[B, N, 2]``, node_mask: bool ``[B, N]``, word_mask: bool ``[B, L]``
        -> bool ``[B, N, L]``.
    """
    t = torch.arange(word_mask.size(1), device=span.device)
    inside = (t >= span[..., :1]) & (t < span[..., 1:])  # [B, N, L]
    return inside & node_mask.unsqueeze(-1) & word_mask.unsqueeze(1)


def span_pool(states: Tensor, mask: Tensor, scores: Tensor = None) -> Tensor:
    """Pool word states into node vectors over the span mask (the maths of :class:`SpanPoolEncoder`).

    ``scores=None``: masked mean; else a softmax of ``scores`` over each node's span words. A node
    with no word in its span gets the zero vector.

    Shapes:
        states: ``[B, L, D]``, mask: bool ``[B, N, L]``, scores: ``[B, N, L]`` or None -> ``[B, N, D]``.
    """
    if scores is None:
        w = mask.to(states.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(1.0)
    else:
        w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        w = torch.nan_to_num(w, nan=0.0) * mask  # an empty span: all -inf -> NaN -> 0
    return torch.bmm(w, states)


class SpanPoolEncoder(nn.Module):
    """A word-level text encoder whose word states are pooled into scene-graph node features.

    Args:
        word_encoder: a text encoder mapping a batch of word graphs (``x`` = token ids) to
            :class:`~graphmatch.structures.NodeEmb` ``[B, L, D]`` (one state per word).
        dim: its output size ``D`` (needed by ``attention``).
        pool: ``"mean"`` or ``"attention"`` (see the module docstring).
        normalize: l2-normalise the pooled vectors.

    Shapes:
        input: a ``Batch`` of scene text graphs: ``words`` [sum L_b] with ``words_batch``,
        ``span`` [sum N_b, 2], ``node_type`` [sum N_b]; output: ``NodeEmb`` with ``x`` [B, N, D]
        (padding rows zero), ``mask`` [B, N], ``node_type`` [B, N] (-1 at padding). A batch that is
        not made of span graphs (it has ``x``, or no ``words``) is passed to ``word_encoder`` as it is.
    """

    def __init__(self, word_encoder: nn.Module, *, dim: int, pool: str = "mean", normalize: bool = True) -> None:
        super().__init__()
        if pool not in SPAN_POOLS:
            raise ValueError(f"SpanPoolEncoder: pool must be one of {SPAN_POOLS}, got {pool!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"SpanPoolEncoder: dim must be a positive int, got {dim!r}")
        self.word_encoder, self.dim, self.pool, self.normalize = word_encoder, dim, pool, normalize
        # one scoring vector per node type, zero at the start (attention = mean)
        self.score_vectors = nn.Parameter(torch.zeros(NUM_NODE_TYPES, dim)) if pool == "attention" else None

    def reset_parameters(self) -> None:
        if self.score_vectors is not None:
            nn.init.zeros_(self.score_vectors)

    def forward(self, graphs: Batch) -> NodeEmb:
        if not is_span_batch(graphs):
            return self.word_encoder(graphs)
        words = self.word_encoder(word_view(graphs))
        states, word_mask = words.x, words.mask  # [B, L, D], [B, L]
        if states.size(-1) != self.dim:
            raise ValueError(f"SpanPoolEncoder: the word encoder gave states of size {states.size(-1)}, "
                             f"the pooler was built for dim={self.dim}")
        span, node_mask = to_dense(graphs, "span")  # [B, N, 2]
        if "node_type" in graphs:
            types, _ = to_dense(graphs, "node_type", fill_value=NODE_TYPE_PAD)
        else:
            types = torch.full(node_mask.shape, 3, dtype=torch.long, device=node_mask.device)
            types = types.masked_fill(~node_mask, NODE_TYPE_PAD)
        mask = span_mask(span.to(states.device), node_mask.to(states.device), word_mask)
        scores = None
        if self.pool == "attention":
            if types.max() >= NUM_NODE_TYPES:
                raise ValueError(f"SpanPoolEncoder: node_type values must be in 0..{NUM_NODE_TYPES - 1}, "
                                 f"got {int(types.max())}")
            w = self.score_vectors[types.clamp_min(0)]  # [B, N, D]
            scores = torch.bmm(w, states.transpose(1, 2))  # [B, N, L]
        out = span_pool(states, mask, scores)
        if self.normalize:
            out = l2norm(out, dim=-1)
        out = out * node_mask.unsqueeze(-1).to(out.dtype)
        return NodeEmb(out, node_mask, node_type=types)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, pool={self.pool!r}, normalize={self.normalize}"
