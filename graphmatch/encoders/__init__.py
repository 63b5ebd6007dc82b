"""Encoders: image side (region features) and text side (word embeddings + RNN), registered in
:data:`ENCODERS`, and :func:`build_encoder`.

An encoder maps a PyG ``Batch`` of graphs to :class:`~graphmatch.structures.NodeEmb`. Its config
section is ``name`` plus its own keys; the builder passes what the data decides, to the encoders
whose ``__init__`` takes it: ``embed_dim``, ``img_dim`` (region feature size), ``vocab`` /
``vocab_size``. An encoder with a ``load_pretrained()`` method gets it called when a model is built
for training (word vectors, pretrained weights), not when a checkpoint is rebuilt.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from torch import nn

from graphmatch.encoders.image import PrecompRegionEncoder
from graphmatch.encoders.registry import ENCODERS
from graphmatch.encoders.text import BiGRUTextEncoder, load_word_vectors
from graphmatch.registry import accepted_kwargs

log = logging.getLogger(__name__)


def build_encoder(section: Any, *, embed_dim: int, img_dim: Optional[int] = None, vocab: Any = None,
                  pretrained: bool = True, gnn: Any = None, edge_dim: Optional[int] = None,
                  span_pool: Optional[str] = None) -> nn.Module:
    """The encoder named by ``section`` (a config component section: ``.name`` and ``.kwargs()``),
    followed by the GNN stack ``gnn`` (a ``model.*_gnn`` section) when given; the stack's output
    is l2-normalised when the encoder's is (:func:`normalizes`).

    ``span_pool`` (``"mean"`` / ``"attention"``): wrap the (word-level) encoder in a
    :class:`~graphmatch.encoders.span.SpanPoolEncoder`, which pools scene-graph node features from
    the word states of each node's span, before the GNN stack."""
    cls = ENCODERS.resolve(section.name)
    available = {"embed_dim": embed_dim}
    if img_dim is not None:
        available["img_dim"] = img_dim
    if vocab is not None:
        available.update(vocab=vocab, vocab_size=len(vocab))
    kwargs = section.kwargs()
    kwargs.update(accepted_kwargs(cls, available))
    enc = cls(**kwargs)
    if pretrained and hasattr(enc, "load_pretrained"):
        enc.load_pretrained()
    if span_pool is not None:
        from graphmatch.encoders.span import SpanPoolEncoder

        enc = SpanPoolEncoder(enc, dim=embed_dim, pool=span_pool)
    if gnn is not None:
        from graphmatch.encoders.graph import GraphEncoder, build_gnn_stack

        enc = GraphEncoder(enc, build_gnn_stack(gnn, dim=embed_dim, edge_dim=edge_dim), normalize=normalizes(enc))
    return enc


def normalizes(encoder: nn.Module) -> bool:
    """Whether ``encoder`` l2-normalises its node embeddings: its ``normalize`` attribute when it has
    one (span pooling), else not ``no_imgnorm`` / ``no_txtnorm`` (the region and word encoders);
    False for an encoder that says neither.

    A GNN stack after such an encoder l2-normalises its own output too, so the matcher sees nodes on
    the unit sphere with or without the stack (the residual sum of a stack is not normalised, and
    cosine-based attention with an inverse temperature of 9 saturates on unnormalised nodes)."""
    if isinstance(getattr(encoder, "normalize", None), bool):
        return encoder.normalize
    for flag in ("no_imgnorm", "no_txtnorm"):
        if isinstance(getattr(encoder, flag, None), bool):
            return not getattr(encoder, flag)
    return False


__all__ = ["ENCODERS", "PrecompRegionEncoder", "BiGRUTextEncoder", "load_word_vectors", "build_encoder"]
