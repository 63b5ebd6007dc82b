"""A GNN layer as a plug-in that lives outside the package: each node adds the mean of its
neighbours' projected features, weighted by ``mix``::

    x_i' = W x_i + mix * mean_{j in N(i)} W x_j

(GraphSAGE's mean aggregator with one shared weight, Hamilton et al., NeurIPS 2017,
https://arxiv.org/abs/1706.02216). A node without neighbours keeps ``W x_i``.

Use it with ``graphmatch train config.yaml`` (the config's ``imports:`` names this file) or
``--import experiments/projects/mean_conv/mean_conv.py --set model.image_gnn.name=mean_conv``.
Importing the file registers the layer and its config key ``mix``; the GNN stack keys
(``num_layers``, ``residual``, ``norm``, ``dropout``, ``activation``) come with every GNN section.

Args:
    in_channels, out_channels: node feature sizes (passed by the GNN stack).
    mix: weight of the neighbour mean.

Shapes:
    ``forward(x [N, in_channels], edge_index [2, E]) -> [N, out_channels]``.
"""
from __future__ import annotations

import torch
from torch_geometric.nn import MessagePassing

from graphmatch.nn.conv import GNN_LAYERS


@GNN_LAYERS.register("mean_conv")
class MeanConv(MessagePassing):
    def __init__(self, in_channels: int, out_channels: int, *, mix: float = 0.5) -> None:
        super().__init__(aggr="mean")
        self.in_channels, self.out_channels, self.mix = in_channels, out_channels, float(mix)
        self.lin = torch.nn.Linear(in_channels, out_channels)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        return h + self.mix * self.propagate(edge_index, x=h)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, mix={self.mix})"
