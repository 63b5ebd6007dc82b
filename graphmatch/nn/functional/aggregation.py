r"""Masked pooling of a set of values: mean, max, sum and LogSumExp.

A matcher scores a pair by pooling per-node relevances over the real nodes (SCAN's ``agg``), and a
global embedding pools node vectors over the real nodes. Both are one masked reduction::

    mean: sum_t m_t x_t / sum_t m_t        max: max_{t: m_t} x_t        sum: sum_t m_t x_t
    lse : log(sum_{t: m_t} exp(lambda_lse x_t)) / lambda_lse

``m_t`` is the mask (``True`` = real entry). Padding never changes the result. The LogSumExp uses
``torch.logsumexp`` (no overflow for large ``lambda_lse``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "AGGREGATIONS",
    "check_aggregation",
    "aggregate",
    "masked_mean",
    "masked_sum",
    "masked_max",
    "masked_logsumexp",
]

#: The aggregations :func:`aggregate` knows (SCAN's ``agg`` values).
AGGREGATIONS: tuple[str, ...] = ("lse", "mean", "max", "sum")


def check_aggregation(agg: str, lambda_lse: float) -> None:
    """Raise ``ValueError`` for an unknown ``agg`` or ``lambda_lse == 0`` with ``agg="lse"``."""
    if agg not in AGGREGATIONS:
        raise ValueError(f"agg must be one of {AGGREGATIONS}, got {agg!r}")
    if agg == "lse" and lambda_lse == 0:
        raise ValueError("lambda_lse must be non-zero for agg='lse'")


def _full_mask(x: Tensor, mask: Optional[Tensor]) -> Optional[Tensor]:
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    return mask if mask.shape == x.shape else mask.expand_as(x)


def masked_sum(x: Tensor, mask: Optional[Tensor], dim: int = -1) -> Tensor:
    """Sum of the real entries of ``x`` along ``dim`` (``mask`` broadcastable to ``x``)."""
    mask = _full_mask(x, mask)
    return (x if mask is None else x.masked_fill(~mask, 0.0)).sum(dim=dim)


def masked_mean(x: Tensor, mask: Optional[Tensor], dim: int = -1) -> Tensor:
    """Mean of the real entries of ``x`` along ``dim``. A slice without a real entry gives NaN
    (0 / 0): callers decide whether that is an error."""
    mask = _full_mask(x, mask)
    if mask is None:
        return x.mean(dim=dim)
    return x.masked_fill(~mask, 0.0).sum(dim=dim) / mask.sum(dim=dim).to(x.dtype)


def masked_max(x: Tensor, mask: Optional[Tensor], dim: int = -1) -> Tensor:
    """Maximum of the real entries of ``x`` along ``dim`` (``-inf`` for a slice without one)."""
    mask = _full_mask(x, mask)
    return (x if mask is None else x.masked_fill(~mask, float("-inf"))).amax(dim=dim)


def masked_logsumexp(x: Tensor, mask: Optional[Tensor], lambda_lse: float, dim: int = -1) -> Tensor:
    """``log(sum exp(lambda_lse * x)) / lambda_lse`` over the real entries of ``x`` along ``dim``
    (``-inf`` for a slice without one when ``lambda_lse > 0``)."""
    mask = _full_mask(x, mask)
    z = x * lambda_lse
    if mask is not None:
        z = z.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(z, dim=dim) / lambda_lse


def aggregate(
    x: Tensor, mask: Optional[Tensor], agg: str, *, lambda_lse: float = 6.0, dim: int = -1
) -> Tensor:
    """Pool ``x`` over the real entries of ``mask`` along ``dim`` with ``agg``.

    Args:
        x: Values, e.g. relevances ``[..., m]`` or node vectors ``[B, N, D]`` (with ``dim=1``).
        mask: Bool, broadcastable to ``x`` (``True`` = real entry; ``[B, N, 1]`` for node vectors),
            or ``None`` (every entry real).
        agg: One of :data:`AGGREGATIONS`.
        lambda_lse: LogSumExp sharpness, used when ``agg="lse"``; non-zero.
        dim: Dimension to pool over.

    Returns:
        ``x`` with ``dim`` reduced.

    Raises:
        ValueError: unknown ``agg``, ``lambda_lse == 0`` for ``"lse"``, a non-bool mask.
    """
    check_aggregation(agg, lambda_lse)
    if agg == "lse":
        return masked_logsumexp(x, mask, lambda_lse, dim=dim)
    if agg == "max":
        return masked_max(x, mask, dim=dim)
    if agg == "sum":
        return masked_sum(x, mask, dim=dim)
    return masked_mean(x, mask, dim=dim)
