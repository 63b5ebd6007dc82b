"""The matcher interface.

A matcher turns a batch of visual graphs and a batch of textual graphs into a similarity matrix
``[n_images, n_captions]``. It is split in two so evaluation can encode every image and caption
once and score all pairs in chunks (:func:`graphmatch.engine.scoring.chunked_similarity`):

* ``encode_images(Batch) -> NodeEmb`` and ``encode_captions(Batch) -> NodeEmb`` give padded node
  embeddings ``x[B, N, D]`` with ``mask[B, N]``;
* ``score(img_x, img_mask, cap_x, cap_mask) -> [n_images, n_captions]`` aligns them.

Padding must never change a score. A new matcher is one file that subclasses :class:`Matcher`,
registers itself with ``@MATCHERS.register("name")``, takes keyword-only constructor arguments and
provides ``from_config`` (config → keyword arguments), so the class is usable without any config.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn
from torch_geometric.data import Batch

from graphmatch.types import NodeEmb


class Matcher(nn.Module):
    """Base class of image–sentence matchers (see module docstring)."""

    def encode_images(self, graphs: Batch) -> NodeEmb:
        raise NotImplementedError

    def encode_captions(self, graphs: Batch) -> NodeEmb:
        raise NotImplementedError

    def score(
        self, img_x: torch.Tensor, img_mask: torch.Tensor, cap_x: torch.Tensor, cap_mask: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: Batch, captions: Batch) -> torch.Tensor:
        img = self.encode_images(images)
        cap = self.encode_captions(captions)
        return self.score(img.x, img.mask, cap.x, cap.mask)

    @classmethod
    def from_config(cls, cfg: Any, *, img_dim: int, vocab: Any) -> Dict[str, Any]:
        """Keyword arguments of ``__init__`` from a :class:`~graphmatch.config.ModelConfig`."""
        raise NotImplementedError
