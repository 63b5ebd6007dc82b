"""Vector norms and similarities as the SCAN lineage defines them.

Three functions shared by the encoders (l2-normalised embeddings), the attention functions and the
reference scorers:

* :func:`l2norm` — ``x / (||x|| + eps)`` (``eps`` added, not clamped, as in the released code);
* :func:`clipped_l2norm` — ``LeakyReLU(0.1)`` then :func:`l2norm` (SCAN's ``clipped_l2norm``
  normalisation of raw attention scores);
* :func:`cosine_similarity` — ``<x1, x2> / clamp(||x1|| ||x2||, min=eps)``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LEAKY_SLOPE", "l2norm", "clipped_l2norm", "cosine_similarity"]

#: Negative slope of the LeakyReLU in :func:`clipped_l2norm` (the released code's 0.1).
LEAKY_SLOPE = 0.1


def l2norm(x: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """L2-normalise ``x`` along ``dim`` as SCAN does: ``x / (||x|| + eps)``.

    A zero vector gives a zero vector with a zero gradient (the square root is never taken of
    zero, whose derivative is infinite), so no NaN appears in the forward or backward pass.

    Args:
        x: Input tensor of any shape.
        dim: Dimension to normalise over.
        eps: Added to the norm (not clamped), matching the released code.

    Returns:
        Tensor of the same shape as ``x``.
    """
    sq = x.pow(2).sum(dim=dim, keepdim=True)
    nonzero = sq > 0
    norm = torch.where(nonzero, sq, torch.ones_like(sq)).sqrt() + eps
    return torch.where(nonzero, x / norm, torch.zeros_like(x))


def clipped_l2norm(
    x: Tensor, dim: int, mask: Optional[Tensor] = None, eps: float = 1e-8
) -> Tensor:
    """``LeakyReLU(0.1)`` followed by :func:`l2norm` over ``dim``.

    Args:
        x: Input tensor.
        dim: Dimension to normalise over.
        mask: Optional boolean tensor broadcastable to ``x``; entries where it
            is ``False`` are set to zero before the activation, so they take no
            part in the norm, and are zero in the output.
        eps: Added to the norm.

    Returns:
        Tensor of the same shape as ``x``.
    """
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
        x = x.masked_fill(~mask, 0.0)
    return l2norm(F.leaky_relu(x, LEAKY_SLOPE), dim=dim, eps=eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """SCAN's cosine: ``<x1, x2> / clamp(||x1|| ||x2||, min=eps)`` along ``dim``.

    Args:
        x1, x2: Tensors of broadcast-compatible shapes.
        dim: Feature dimension.
        eps: Lower bound of the denominator.

    Returns:
        Tensor with ``dim`` reduced.
    """
    w12 = (x1 * x2).sum(dim)
    w1 = torch.linalg.vector_norm(x1, 2, dim=dim)
    w2 = torch.linalg.vector_norm(x2, 2, dim=dim)
    return w12 / (w1 * w2).clamp(min=eps)
