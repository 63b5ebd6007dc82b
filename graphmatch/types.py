"""Small shared types."""
from __future__ import annotations

from typing import NamedTuple

import torch


class NodeEmb(NamedTuple):
    """Padded node embeddings of a batch of graphs: ``x`` [B, N_max, D] and ``mask`` [B, N_max]
    (True = real node). Padding rows of ``x`` are zeros and must never change a score."""

    x: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> "NodeEmb":
        return NodeEmb(self.x.to(device), self.mask.to(device))
