"""GSMN's spatial graph convolution over polar pseudo-coordinates (``spatial_kernel``).

Liu et al., *Graph Structured Network for Image-Text Matching*, CVPR 2020
(https://arxiv.org/abs/2004.00277), section 3.3 (visual graph), after MoNet (Monti et al., CVPR
2017, https://arxiv.org/abs/1611.08402).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import add_self_loops, remove_self_loops

from graphmatch.nn.conv.registry import GNN_LAYERS
from graphmatch.nn.functional.kernels import polar_gaussian_weights
from graphmatch.options import option

__all__ = ["SpatialKernelConv", "SpatialKernelOptions"]


@dataclass
class SpatialKernelOptions:
    """Options of ``spatial_kernel`` (:class:`SpatialKernelConv`)."""

    num_kernels: int = option(8, lo=1, help="Gaussian kernels K; out_channels must be a multiple of K")
    self_loops: bool = option(True, help="each node is its own neighbour at u_ii = (0, 0)")
    bias: bool = option(False, help="a bias after the aggregation (the released layer has none)")


@GNN_LAYERS.register("spatial_kernel", config=SpatialKernelOptions)
class SpatialKernelConv(MessagePassing):
    r"""GSMN's spatial graph convolution: ``K`` Gaussian kernels over the polar pseudo-coordinates
    ``u_ij = (rho_ij, theta_ij)`` of each edge ``j -> i`` (the ``edge_attr`` of ``polar`` visual
    edges), one linear map per kernel, the ``K`` outputs concatenated:

    .. math::

        w_k(u) = \frac{g_k(u)}{\sum_{k'} g_{k'}(u)}, \qquad
        g_k(\rho, \theta) = \exp\Big(-\frac{(\rho - \mu^\rho_k)^2}{2 (\sigma^\rho_k)^2}\Big)
                            \exp\Big(-\frac{d(\theta, \mu^\theta_k)^2}{2 (\sigma^\theta_k)^2}\Big)

        \mathbf{x}_i' = \big\Vert_{k=1}^{K} \mathbf{W}_k \sum_{j \in \mathcal{N}(i)} w_k(u_{ij})\,
                        \mathbf{x}_j \;(+\, \mathbf{b})

    with ``d(a, b) = min(|a - b|, 2 pi - |a - b|)`` the angular distance,
    ``W_k`` of size ``(out_channels / K) x in_channels`` and ``||`` concatenation
    (:func:`graphmatch.nn.functional.polar_gaussian_weights` computes ``w_k``). The weights are
    normalised over the *kernels* of each edge (as GSMN does), not over the neighbours: the sum
    over ``j`` is a plain sum, so a node's output grows with its degree. With ``self_loops`` the
    neighbourhood includes ``i`` itself at ``u_ii = (0, 0)`` (any self-loop already in the graph is
    replaced by that one), as GSMN's neighbourhood of a region is every region of the image,
    itself included; without it an isolated node's output is zero (or the bias).

    Relation to PyG's :class:`~torch_geometric.nn.conv.GMMConv` (``gmm``), the MoNet layer:
    GMMConv computes ``x_i' = W_0 x_i + mean_j (1/K) sum_k g_k(u_ij) Theta_k x_j`` with a Gaussian
    over the plain difference ``u - mu_k`` of every coordinate (no wrap-around of the angle), no
    normalisation over kernels, one full ``in x out`` matrix ``Theta_k`` per kernel whose outputs
    are *summed*, a mean over neighbours, and a root weight; here the angle wraps, the kernel
    weights of an edge sum to one, each kernel has an ``out/K``-sized map and the ``K`` outputs
    are *concatenated* (the released layout), the neighbours are summed and there is no root
    weight (the node is its own neighbour instead).

    Relation to the released layer (``layers.py``, ``ImageQueryGraphConvolution``): the same
    maths over a sparse ``edge_index`` instead of a dense fixed-size neighbourhood, the per-kernel
    maps stored as one ``[out, in]`` matrix (rows ``k * out/K ... (k+1) * out/K - 1`` are kernel
    ``k``'s), applied to the nodes before the aggregation (the same result by linearity, with
    ``E x out`` instead of ``E x K x in`` memory); the bias, if any, is added after the
    aggregation (the released per-kernel biases, added after the weighted sum, are the same
    thing). Initialisation as released: means ``mu^rho ~ U(0, 1)``, ``mu^theta ~ U(-pi, pi)``, widths
    ``sigma ~ U(0, 1)``, the linear maps as ``torch.nn.Linear``.

    Args:
        in_channels: node feature size.
        out_channels: output size, a multiple of ``num_kernels``.
        edge_dim: edge feature size; must be 2, ``(rho, theta)`` with ``theta`` in radians.
        num_kernels: number of Gaussian kernels ``K`` (GSMN: 8).
        self_loops: add ``i`` to its own neighbourhood at ``u_ii = (0, 0)``.
        bias: add a learned bias ``b`` to the output.

    Shapes:
        x: ``[N, in_channels]``, edge_index: ``[2, E]``, edge_attr: ``[E, 2]`` ->
        ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, edge_dim: int, num_kernels: int = 8,
                 self_loops: bool = True, bias: bool = False) -> None:
        super().__init__(aggr="add")
        if edge_dim is None:
            raise ValueError("GNN layer 'spatial_kernel' needs polar pseudo-coordinates (rho, theta) as edge "
                             "features (edge_dim=2): use data.graph.visual_edges: polar with edge_features: true")
        if edge_dim != 2:
            raise ValueError(f"GNN layer 'spatial_kernel' takes edge features (rho, theta), edge_dim=2; got "
                             f"edge_dim={edge_dim} (use data.graph.visual_edges: polar)")
        if isinstance(num_kernels, bool) or not isinstance(num_kernels, int) or num_kernels < 1:
            raise ValueError(f"GNN layer 'spatial_kernel': num_kernels must be an int >= 1, got {num_kernels!r}")
        if out_channels % num_kernels:
            raise ValueError(f"GNN layer 'spatial_kernel': out_channels={out_channels} must be a multiple of "
                             f"num_kernels={num_kernels} (each kernel has out_channels / num_kernels outputs)")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.edge_dim, self.num_kernels, self.self_loops = edge_dim, num_kernels, self_loops
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.mean_rho = nn.Parameter(torch.empty(num_kernels))
        self.mean_theta = nn.Parameter(torch.empty(num_kernels))
        self.sigma_rho = nn.Parameter(torch.empty(num_kernels))
        self.sigma_theta = nn.Parameter(torch.empty(num_kernels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        with torch.no_grad():
            self.mean_rho.uniform_(0.0, 1.0)
            self.mean_theta.uniform_(-math.pi, math.pi)
            self.sigma_rho.uniform_(0.0, 1.0)
            self.sigma_theta.uniform_(0.0, 1.0)
            if self.bias is not None:  # as each released per-kernel nn.Linear's bias
                bound = 1.0 / math.sqrt(self.in_channels) if self.in_channels > 0 else 0.0
                self.bias.uniform_(-bound, bound)

    def kernel_weights(self, edge_attr: Tensor) -> Tensor:
        """``w_k(u)`` of each row ``u = (rho, theta)`` of ``edge_attr`` ``[E, 2]`` -> ``[E, K]``."""
        return polar_gaussian_weights(edge_attr[:, 0], edge_attr[:, 1], self.mean_rho, self.mean_theta,
                                      self.sigma_rho, self.sigma_theta, normalize=True)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Optional[Tensor] = None) -> Tensor:
        if edge_attr is None:
            raise ValueError("GNN layer 'spatial_kernel' needs edge_attr [E, 2] (rho, theta); the graph has none")
        if edge_attr.dim() != 2 or tuple(edge_attr.shape) != (edge_index.size(1), 2):
            raise ValueError(f"GNN layer 'spatial_kernel': edge_attr has shape {tuple(edge_attr.shape)}, expected "
                             f"({edge_index.size(1)}, 2) (rho, theta per edge)")
        edge_attr = edge_attr.to(x.dtype)
        if self.self_loops:
            edge_index, edge_attr = remove_self_loops(edge_index, edge_attr)
            edge_index, edge_attr = add_self_loops(edge_index, edge_attr, fill_value=0.0, num_nodes=x.size(0))
        w = self.kernel_weights(edge_attr)  # [E, K]
        h = self.lin(x)  # [N, out]: row block k is W_k x
        out = self.propagate(edge_index, h=h, w=w, size=(x.size(0), x.size(0)))
        if self.bias is not None:
            out = out + self.bias
        return out

    def message(self, h_j: Tensor, w: Tensor) -> Tensor:
        e = h_j.size(0)
        return (h_j.view(e, self.num_kernels, -1) * w.unsqueeze(-1)).view(e, self.out_channels)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"num_kernels={self.num_kernels}, self_loops={self.self_loops})")
