r"""Masked cross-attention of a set of queries over a set of context vectors.

The attention step that SCAN, IMRAM, SGRAF and GSMN share (SCAN's released ``func_attention``),
with padding expressed by boolean masks. For queries ``q_1..q_m`` and context ``k_1..k_n``::

    s[j, t]     = k_j . q_t                                   raw dot products
    sbar[j, t]  = norm_t(s[j, t])                             over the QUERIES (raw_feature_norm)
    alpha[t, j] = softmax_j(smooth * sbar[j, t])              over the real CONTEXT slots
    a_t         = sum_j alpha[t, j] k_j                       attended context

``raw_feature_norm`` (the released code's option of the same name) chooses ``norm_t``:

* ``"clipped_l2norm"`` (default): ``LeakyReLU_0.1`` then l2-normalise over the real queries;
* ``"l2norm"``: l2-normalise over the real queries;
* ``"softmax"``: softmax over the real queries;
* ``"clipped"``: ``LeakyReLU_0.1`` only;
* ``"no_norm"``: identity.

:func:`masked_cross_attention` returns both the attended vectors and the weights (IMRAM's memory
update and SGRAF's similarity vectors use the attended vectors; GSMN and visualisations use the
weights). :func:`func_attention` is SCAN's unmasked form, kept as the reference of the SCAN scorers.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from graphmatch.nn.functional.norms import LEAKY_SLOPE, clipped_l2norm, l2norm

__all__ = ["RAW_FEATURE_NORMS", "masked_cross_attention", "func_attention"]

#: The ``raw_feature_norm`` values :func:`masked_cross_attention` knows.
RAW_FEATURE_NORMS: tuple[str, ...] = ("clipped_l2norm", "l2norm", "softmax", "clipped", "no_norm")


def _check_mask(mask: Optional[Tensor], x: Tensor, name: str, x_name: str) -> None:
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor, got {got}")
    slots = tuple(x.shape[:-1])
    try:
        ok = tuple(torch.broadcast_shapes(tuple(mask.shape), slots)) == slots
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)}, which does not broadcast to {x_name}'s "
            f"slots {slots}"
        )


def _normalise_over_queries(
    s: Tensor, query_mask: Optional[Tensor], raw_feature_norm: str, eps: float
) -> Tensor:
    """``s`` [..., Lc, Lq] normalised over the last (query) axis, padded queries excluded."""
    qm = None if query_mask is None else query_mask.unsqueeze(-2)  # [..., 1, Lq]
    if raw_feature_norm == "clipped_l2norm":
        return clipped_l2norm(s, dim=-1, mask=qm, eps=eps)
    if raw_feature_norm == "l2norm":
        return l2norm(s if qm is None else s.masked_fill(~qm, 0.0), dim=-1, eps=eps)
    if raw_feature_norm == "softmax":
        if qm is None:
            return torch.softmax(s, dim=-1)
        return torch.softmax(s.masked_fill(~qm, torch.finfo(s.dtype).min), dim=-1).masked_fill(~qm, 0.0)
    if raw_feature_norm == "clipped":
        s = F.leaky_relu(s, LEAKY_SLOPE)
    return s if qm is None else s.masked_fill(~qm, 0.0)  # "clipped" and "no_norm"


def masked_cross_attention(
    query: Tensor,
    query_mask: Optional[Tensor],
    context: Tensor,
    context_mask: Optional[Tensor],
    *,
    smooth: float,
    raw_feature_norm: str = "clipped_l2norm",
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """Attend every query to the real context slots (see the module docstring for the rule).

    Leading dimensions broadcast as in :func:`torch.matmul`, so one call can attend every query
    set to every context set (``query`` ``[Nq, 1, Lq, D]`` with ``context`` ``[1, Nc, Lc, D]``).
    Padded query slots get zero weights and a zero attended vector; padded context slots get
    zero weight. A query set whose context has no real slot attends to nothing (zero weights,
    zero vector), without NaN.

    Args:
        query: ``[..., Lq, D]``.
        query_mask: Bool ``[..., Lq]`` (``True`` = real query) or ``None`` (all real).
        context: ``[..., Lc, D]``.
        context_mask: Bool ``[..., Lc]`` (``True`` = real context slot) or ``None``.
        smooth: Inverse temperature of the softmax over the context (``lambda_softmax``).
        raw_feature_norm: Normalisation of the raw scores over the queries, one of
            :data:`RAW_FEATURE_NORMS`.
        eps: Norm epsilon.

    Returns:
        ``(attended [..., Lq, D], weights [..., Lq, Lc])``; each real query's weights over the
        real context sum to 1.

    Raises:
        ValueError: unknown ``raw_feature_norm``, mismatched feature sizes, masks that are not
            bool or do not broadcast to their slots.
    """
    if raw_feature_norm not in RAW_FEATURE_NORMS:
        raise ValueError(f"raw_feature_norm must be one of {RAW_FEATURE_NORMS}, got {raw_feature_norm!r}")
    for t, name in ((query, "query"), (context, "context")):
        if not isinstance(t, Tensor) or t.dim() < 2 or not t.is_floating_point():
            desc = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a floating-point tensor [..., L, D], got {desc}")
    if query.shape[-1] != context.shape[-1]:
        raise ValueError(
            f"feature dimension mismatch: query has D={query.shape[-1]}, context has D={context.shape[-1]}"
        )
    _check_mask(query_mask, query, "query_mask", "query")
    _check_mask(context_mask, context, "context_mask", "context")
    if query_mask is not None:
        query = query.masked_fill(~query_mask.unsqueeze(-1), 0.0)
    if context_mask is not None:
        context = context.masked_fill(~context_mask.unsqueeze(-1), 0.0)
    s = torch.matmul(context, query.transpose(-1, -2))  # [..., Lc, Lq]
    s = _normalise_over_queries(s, query_mask, raw_feature_norm, eps)
    logits = s.transpose(-1, -2) * smooth  # [..., Lq, Lc]
    if context_mask is None:
        weights = torch.softmax(logits, dim=-1)
    else:
        cm = context_mask.unsqueeze(-2)  # [..., 1, Lc]
        # finfo.min, not -inf: a context without real slots gives a uniform row, zeroed below.
        weights = torch.softmax(logits.masked_fill(~cm, torch.finfo(logits.dtype).min), dim=-1)
        weights = weights.masked_fill(~cm, 0.0)
    if query_mask is not None:
        weights = weights.masked_fill(~query_mask.unsqueeze(-1), 0.0)
    return torch.matmul(weights, context), weights


def func_attention(query: Tensor, context: Tensor, *, smooth: float, eps: float = 1e-8) -> Tensor:
    """Attend each query to the context (released ``func_attention``, clipped_l2norm).

    ``attn = context @ query^T``; ``LeakyReLU(0.1)``; l2norm over the query
    axis; transpose; softmax over the context axis of ``smooth * attn``;
    weighted sum of the context vectors. Equal to the attended vectors of
    :func:`masked_cross_attention` without masks; kept in the released
    operation order as the reference of the SCAN scorers.

    Args:
        query: ``[B, Lq, D]`` (no padding).
        context: ``[B, Lc, D]`` (no padding).
        smooth: Inverse temperature of the softmax (``lambda_softmax``).
        eps: Norm epsilon.

    Returns:
        Attended context ``[B, Lq, D]``.
    """
    attn = torch.bmm(context, query.transpose(1, 2))  # [B, Lc, Lq]
    attn = clipped_l2norm(attn, dim=2, eps=eps)  # over queries
    attn = attn.transpose(1, 2)  # [B, Lq, Lc]
    attn = torch.softmax(attn * smooth, dim=2)  # over context
    return torch.bmm(attn, context)  # [B, Lq, D]
