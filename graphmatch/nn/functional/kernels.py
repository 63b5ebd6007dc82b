"""Gaussian kernels over polar pseudo-coordinates (MoNet, GSMN).

MoNet (Monti et al., CVPR 2017, https://arxiv.org/abs/1611.08402) weighs each neighbour ``j`` of a
node ``i`` by ``K`` Gaussian kernels of the pseudo-coordinates ``u_ij``; GSMN (Liu et al., CVPR
2020, https://arxiv.org/abs/2004.00277) uses polar coordinates ``u_ij = (rho, theta)`` of the
vector between two box centres, a diagonal Gaussian per kernel, and the shortest angular distance
for ``theta``::

    w_k(rho, theta) = exp(-(rho - mu_rho_k)^2 / (2 sigma_rho_k^2))
                    * exp(-d(theta, mu_theta_k)^2 / (2 sigma_theta_k^2)),
    d(a, b) = min(|a - b|, |2 pi - |a - b||)

and then normalises the ``K`` weights of each edge to sum to one over the kernels
(``normalize=True``). PyG's :class:`~torch_geometric.nn.conv.GMMConv` uses the same Gaussian with
a full (diagonal) precision over all coordinate dimensions, a plain difference for every dimension
(no wrap-around of angles) and no normalisation over kernels.

The released GSMN layer (``layers.py``) calls the kernel widths "precision" but divides by their
square (``sigma`` in the formula above): :func:`polar_gaussian_weights` takes them with that
meaning, under the name ``sigma``, so released parameters load unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["polar_gaussian_weights", "angular_distance"]


def angular_distance(a: Tensor, b: Tensor) -> Tensor:
    """``min(|a - b|, |2 pi - |a - b||)``: the shortest distance of two angles given in radians in
    ``[-pi, pi]`` (broadcasting)."""
    d = (a - b).abs()
    return torch.minimum(d, (2 * math.pi - d).abs())


def polar_gaussian_weights(rho: Tensor, theta: Tensor, mean_rho: Tensor, mean_theta: Tensor,
                           sigma_rho: Tensor, sigma_theta: Tensor, *, normalize: bool = True,
                           eps: float = 1e-14) -> Tensor:
    """Kernel weights ``[..., K]`` of polar pseudo-coordinates ``rho``, ``theta`` ``[...]``.

    Args:
        rho, theta: pseudo-coordinates of each edge (any shape ``[...]``; ``theta`` in radians).
        mean_rho, mean_theta, sigma_rho, sigma_theta: ``[K]`` kernel means and widths.
        normalize: divide each edge's weights by their sum over the ``K`` kernels (GSMN). An edge
            whose weights all underflow to zero gets zero weights, not NaN (the released layer
            replaces NaN by zero after the division for the same case).
        eps: added to ``sigma^2`` before dividing (as the released layer does).

    Shapes:
        rho, theta: ``[...]``; the kernel parameters: ``[K]``; output: ``[..., K]``.
    """
    if rho.shape != theta.shape:
        raise ValueError(f"polar_gaussian_weights: rho {tuple(rho.shape)} and theta {tuple(theta.shape)} differ")
    k = mean_rho.numel()
    for name, p in (("mean_theta", mean_theta), ("sigma_rho", sigma_rho), ("sigma_theta", sigma_theta)):
        if p.numel() != k:
            raise ValueError(f"polar_gaussian_weights: {name} has {p.numel()} values, mean_rho has {k}")
    r = rho.unsqueeze(-1)
    t = theta.unsqueeze(-1)
    w_rho = torch.exp(-0.5 * (r - mean_rho.reshape(-1)) ** 2 / (eps + sigma_rho.reshape(-1) ** 2))
    w_theta = torch.exp(-0.5 * angular_distance(t, mean_theta.reshape(-1)) ** 2 / (eps + sigma_theta.reshape(-1) ** 2))
    w = w_rho * w_theta
    if normalize:
        total = w.sum(-1, keepdim=True)
        w = torch.where(total > 0, w / total.clamp(min=torch.finfo(w.dtype).tiny), torch.zeros_like(w))
    return w
