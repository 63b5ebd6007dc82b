"""Matchers: one file per model, registered by name in :data:`graphmatch.registry.MATCHERS`."""
from __future__ import annotations

from typing import Any

from graphmatch.models.base import Matcher
from graphmatch.models.scan import SCAN
from graphmatch.registry import MATCHERS


def build_matcher(cfg: Any, *, img_dim: int, vocab: Any) -> Matcher:
    """Build the matcher named by ``cfg.matcher.name`` (a :class:`~graphmatch.config.ModelConfig`);
    Python callers may set ``cfg.matcher.name`` to a matcher class instead of a name."""
    cls = MATCHERS.resolve(cfg.matcher.name)
    return cls(**cls.from_config(cfg, img_dim=img_dim, vocab=vocab))


__all__ = ["Matcher", "SCAN", "build_matcher"]
