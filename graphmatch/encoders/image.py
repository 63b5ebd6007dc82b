"""Image-side encoders: region features → node embeddings."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch_geometric.data import Batch

from graphmatch.graphs import to_dense
from graphmatch.nn.functional import l2norm
from graphmatch.encoders.registry import ENCODERS
from graphmatch.structures import NodeEmb


@ENCODERS.register("precomp_fc")
class PrecompRegionEncoder(nn.Module):
    """SCAN's ``EncoderImagePrecomp``: one linear layer on precomputed region features, then l2-norm.

    The weights get SCAN's Xavier-uniform initialisation (``r = sqrt(6) / sqrt(in + out)``, bias 0).

    Args:
        img_dim: region feature size (2048 for bottom-up attention).
        embed_dim: joint embedding size D.
        no_imgnorm: skip the final l2 normalisation.

    Shapes:
        input: a PyG ``Batch`` of ``VisualGraph`` with ``x`` [sum N_i, img_dim];
        output: :class:`~graphmatch.structures.NodeEmb` ``x`` [B, N_max, D], ``mask`` [B, N_max].
    """

    def __init__(self, *, img_dim: int, embed_dim: int, no_imgnorm: bool = False) -> None:
        super().__init__()
        self.img_dim, self.embed_dim, self.no_imgnorm = img_dim, embed_dim, no_imgnorm
        self.fc = nn.Linear(img_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = math.sqrt(6.0) / math.sqrt(self.fc.in_features + self.fc.out_features)
        nn.init.uniform_(self.fc.weight, -r, r)
        nn.init.zeros_(self.fc.bias)

    def encode_nodes(self, x: torch.Tensor) -> torch.Tensor:
        """Per-node embedding of flat node features [N, img_dim] → [N, D]."""
        if x.size(-1) != self.img_dim:
            raise ValueError(f"region features have size {x.size(-1)}, the encoder expects {self.img_dim}")
        h = self.fc(x.float())
        return h if self.no_imgnorm else l2norm(h, dim=-1)

    def forward(self, graphs: Batch) -> NodeEmb:
        h = self.encode_nodes(graphs.x)
        x, mask = to_dense(graphs, x=h)
        return NodeEmb(x, mask)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.img_dim}, {self.embed_dim}, no_imgnorm={self.no_imgnorm})"
