"""Encoders: image side (region features) and text side (word embeddings + RNN).

``build_image_encoder`` / ``build_text_encoder`` turn a :class:`~graphmatch.config.ModelConfig`
into encoder modules; the classes themselves take plain keyword arguments.
"""
from __future__ import annotations

import logging
from typing import Any

from torch import nn

from graphmatch.encoders.image import PrecompRegionEncoder
from graphmatch.encoders.text import BiGRUTextEncoder, load_word_vectors
from graphmatch.registry import ENCODERS

log = logging.getLogger(__name__)


def build_image_encoder(cfg: Any, *, img_dim: int) -> nn.Module:
    """Image encoder named by ``cfg.image.name`` for features of size ``img_dim``."""
    c = cfg.image
    return ENCODERS.resolve(c.name)(img_dim=img_dim, embed_dim=cfg.embed_dim, no_imgnorm=c.no_imgnorm)


def build_text_encoder(cfg: Any, *, vocab: Any) -> nn.Module:
    """Text encoder named by ``cfg.text.name``; loads ``cfg.text.word_vectors`` when set."""
    c = cfg.text
    enc = ENCODERS.resolve(c.name)(
        vocab_size=len(vocab), word_dim=c.word_dim, embed_dim=cfg.embed_dim, num_layers=c.num_layers,
        bidirectional=c.bidirectional, dropout=c.dropout, no_txtnorm=c.no_txtnorm,
    )
    if c.word_vectors:
        vectors, found = load_word_vectors(c.word_vectors, vocab.words, dim=c.word_dim)
        n = enc.init_word_vectors(vectors, found, freeze=c.freeze_word_vectors)
        log.info("word vectors: %d of %d vocabulary words found in %s", n, len(vocab), c.word_vectors)
    return enc


__all__ = [
    "PrecompRegionEncoder", "BiGRUTextEncoder", "load_word_vectors", "build_image_encoder", "build_text_encoder",
]
