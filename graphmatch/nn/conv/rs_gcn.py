"""VSRN's region relation reasoning (``rs_gcn``).

Li et al., *Visual Semantic Reasoning for Image-Text Matching*, ICCV 2019
(https://arxiv.org/abs/1909.02701), section 3.2 ("Region relationship reasoning", the released
``Rs_GCN`` module).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor, nn
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.utils import add_self_loops, degree, remove_self_loops, softmax

from graphmatch.nn.conv.registry import GNN_LAYERS
from graphmatch.options import option

__all__ = ["RsGCN", "RsGCNOptions", "NORMALIZATIONS"]

#: The ``normalize`` values of :class:`RsGCN`.
NORMALIZATIONS = ("count", "softmax", "none")


@dataclass
class RsGCNOptions:
    """Options of ``rs_gcn`` (:class:`RsGCN`)."""

    inter_channels: Optional[int] = option(None, lo=1, help="size of the affinity and g projections",
                                           note="null: in_channels (as VSRN)")
    normalize: str = option("count", choices=NORMALIZATIONS,
                            help="affinities of a node's neighbours: divided by their number (VSRN), "
                                 "softmax, or raw")
    self_loops: bool = option(True, help="each node is its own neighbour (VSRN's R has a diagonal)")


@GNN_LAYERS.register("rs_gcn", config=RsGCNOptions)
class RsGCN(MessagePassing):
    r"""VSRN's region relation reasoning over the edges of a graph: an affinity from two
    projections, a weighted sum of projected neighbours, an output map through a BatchNorm
    initialised to zero, and a residual:

    .. math::

        R_{ij} = (\mathbf{W}_\varphi \mathbf{x}_i + \mathbf{b}_\varphi)^\top
                 (\mathbf{W}_\psi \mathbf{x}_j + \mathbf{b}_\psi), \qquad j \in \mathcal{N}(i)

        \mathbf{y}_i = \sum_{j \in \mathcal{N}(i)} \hat{R}_{ij}\, (\mathbf{W}_g \mathbf{x}_j + \mathbf{b}_g)

        \mathbf{x}_i' = \mathrm{BN}(\mathbf{W}_r \mathbf{y}_i + \mathbf{b}_r) + \mathbf{P} \mathbf{x}_i

    with ``R_hat_ij = R_ij / |N(i)|`` (``normalize="count"``), ``softmax_j R_ij`` (``"softmax"``) or
    ``R_ij`` (``"none"``); ``N(i)`` are the sources of the edges into ``i`` (and ``i`` itself with
    ``self_loops``). ``P`` is the identity when ``in_channels == out_channels``, else a learned
    linear map (no bias). The BatchNorm's scale and shift start at zero, so at initialisation
    ``x_i' = P x_i``: the block starts as the identity.

    VSRN's released ``Rs_GCN`` works on a dense ``[B, D, N]`` tensor of all ``N`` regions of an
    image: ``R = theta(v)^T phi(v)`` over every pair (the diagonal included), divided by ``N``,
    ``y = (R / N) g(v)``, ``v* = W(y) + v`` with ``W`` a 1x1 convolution then a BatchNorm whose
    weight and bias are zero. On a fully connected graph with ``self_loops`` and
    ``normalize="count"`` this layer computes exactly that (``|N(i)| = N``), and the 1x1
    convolutions are the linear maps here; on a sparse graph the affinity is restricted to the
    edges (the ``E`` pairs of the graph, never a dense ``N x N``) and ``"count"`` divides by the
    node's own number of neighbours. The BatchNorm normalises over all nodes of the batch, as
    VSRN's over the batch and its regions (it needs two or more nodes in training mode).

    Residual: the layer's own residual ``P x_i`` is VSRN's. A
    :class:`~graphmatch.encoders.graph.GNNStack` with ``residual: true`` adds the block's input
    once more (``x + act(norm(x + BN(...)))``, about ``2 x`` at initialisation); to stack layers as
    VSRN does (four ``Rs_GCN`` in a row, nothing between) use ``residual: false``,
    ``activation: none`` and ``norm: none``.

    Args:
        in_channels: node feature size.
        out_channels: output size.
        inter_channels: size of ``W_phi``, ``W_psi``, ``W_g`` outputs (default: ``in_channels``;
            VSRN uses the embedding size for both).
        normalize: ``"count"``, ``"softmax"`` or ``"none"`` (above).
        self_loops: ``i`` is a neighbour of itself (any self-loop in the graph counts once).

    Shapes:
        x: ``[N, in_channels]``, edge_index: ``[2, E]`` -> ``[N, out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, inter_channels: Optional[int] = None,
                 normalize: str = "count", self_loops: bool = True) -> None:
        super().__init__(aggr="add")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"GNN layer 'rs_gcn': normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        inter = in_channels if inter_channels is None else inter_channels
        if isinstance(inter, bool) or not isinstance(inter, int) or inter < 1:
            raise ValueError(f"GNN layer 'rs_gcn': inter_channels must be a positive int, got {inter_channels!r}")
        self.in_channels, self.out_channels, self.inter_channels = in_channels, out_channels, inter
        self.normalize, self.self_loops = normalize, self_loops
        self.lin_phi = nn.Linear(in_channels, inter)
        self.lin_psi = nn.Linear(in_channels, inter)
        self.lin_g = nn.Linear(in_channels, inter)
        self.lin_r = nn.Linear(inter, out_channels)
        self.bn = nn.BatchNorm1d(out_channels)
        self.res = nn.Identity() if in_channels == out_channels else nn.Linear(in_channels, out_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.lin_phi, self.lin_psi, self.lin_g, self.lin_r, self.bn):
            m.reset_parameters()
        if isinstance(self.res, nn.Linear):
            self.res.reset_parameters()
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def affinity(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``R_hat`` of each edge ``j -> i`` of ``edge_index`` (self-loops already in it) ``-> [E]``."""
        src, dst = edge_index
        r = (self.lin_phi(x)[dst] * self.lin_psi(x)[src]).sum(-1)
        if self.normalize == "count":
            count = degree(dst, x.size(0), dtype=r.dtype)
            r = r / count[dst]
        elif self.normalize == "softmax":
            r = softmax(r, dst, num_nodes=x.size(0))
        return r

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n = x.size(0)
        if self.self_loops:
            edge_index, _ = remove_self_loops(edge_index)
            edge_index, _ = add_self_loops(edge_index, num_nodes=n)
        r = self.affinity(x, edge_index)
        y = self.propagate(edge_index, g=self.lin_g(x), r=r, size=(n, n))
        return self.bn(self.lin_r(y)) + self.res(x)

    def message(self, g_j: Tensor, r: Tensor) -> Tensor:
        return r.unsqueeze(-1) * g_j

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"inter_channels={self.inter_channels}, normalize={self.normalize!r})")
