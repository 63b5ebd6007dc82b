r"""Ranking losses for image–sentence matching.

All losses take a batch similarity matrix ``sims`` of shape ``[n_images, n_captions]``
(``sims[i, c] = s(i, c)``) and an optional boolean ``positive_mask`` of the same shape that is
``True`` where image ``i`` and caption ``c`` match. Without a mask the matrix must be square and
the diagonal is positive. Every caption must match exactly one image of the batch; an image may
match several captions (a batch may hold several captions of one image), and those captions are
never treated as negatives of that image. An image may also match no caption (an extra negative).

Notation: ``p(c)`` is the image of caption ``c`` and ``P = {(p(c), c)}`` is the set of positive
pairs, one per caption.

Losses are registered in :data:`LOSSES` and selected by ``train.loss`` (``name`` plus the loss's
own keys, e.g. ``{name: contrastive, margin: 0.2, max_violation: true}`` or
``{name: infonce, temperature: 0.05}``); :func:`build_loss` builds one from that section.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from graphmatch.options import option
from graphmatch.registry import Registry

__all__ = ["LOSSES", "ContrastiveLoss", "InfoNCELoss", "build_loss", "validate_positive_mask"]

#: Training losses by name (``train.loss.name``).
LOSSES = Registry("loss", "losses")


def validate_positive_mask(
    sims: torch.Tensor, positive_mask: Optional[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``sims`` and ``positive_mask`` and return ``(mask, image_of_caption)``.

    Args:
        sims: ``[n_images, n_captions]`` similarity matrix.
        positive_mask: bool ``[n_images, n_captions]`` or ``None`` for the diagonal of a square
            ``sims``.

    Returns:
        The boolean mask on ``sims.device`` and a long tensor ``[n_captions]`` holding, for every
        caption, the index of its positive image.

    Raises:
        ValueError: ``sims`` is not a non-empty 2-D matrix; the mask is missing for a non-square
            matrix, has the wrong shape or dtype; a caption has zero or several positive images.
    """
    if not isinstance(sims, torch.Tensor) or sims.dim() != 2:
        shape = tuple(sims.shape) if isinstance(sims, torch.Tensor) else type(sims).__name__
        raise ValueError(f"sims must be a 2-D [n_images, n_captions] tensor, got {shape}")
    n_img, n_cap = sims.shape
    if n_img == 0 or n_cap == 0:
        raise ValueError(f"sims is empty (shape {tuple(sims.shape)}); a batch needs pairs")
    if positive_mask is None:
        if n_img != n_cap:
            raise ValueError(
                f"sims has shape {tuple(sims.shape)}; without positive_mask the matrix must be "
                f"square with matching pairs on the diagonal"
            )
        mask = torch.eye(n_img, dtype=torch.bool, device=sims.device)
        return mask, torch.arange(n_img, device=sims.device)
    if not isinstance(positive_mask, torch.Tensor) or positive_mask.dtype != torch.bool:
        kind = (
            positive_mask.dtype
            if isinstance(positive_mask, torch.Tensor)
            else type(positive_mask).__name__
        )
        raise ValueError(f"positive_mask must be a bool tensor, got {kind}")
    if positive_mask.shape != sims.shape:
        raise ValueError(
            f"positive_mask has shape {tuple(positive_mask.shape)} but sims has shape "
            f"{tuple(sims.shape)}"
        )
    mask = positive_mask.to(sims.device)
    n_pos = mask.sum(dim=0)
    bad = torch.nonzero(n_pos != 1).flatten()
    if bad.numel():
        shown = ", ".join(f"{int(c)} ({int(n_pos[c])} positives)" for c in bad[:5])
        more = f", ... ({bad.numel()} in total)" if bad.numel() > 5 else ""
        raise ValueError(
            "every caption needs exactly one positive image in positive_mask; "
            f"captions {shown}{more}"
        )
    image_of_caption = mask.to(torch.int8).argmax(dim=0)
    return mask, image_of_caption


@dataclass
class ContrastiveConfig:
    """Config keys of the ``contrastive`` loss (``train.loss``)."""

    margin: float = option(0.2, lo=0, note="0: a positive must only score above its negatives")
    max_violation: bool = True
    reduction: str = option("sum", choices=("sum", "mean"))
    warmup_epochs: int = option(0, lo=0, note="0: no warm-up")


@dataclass
class InfoNCEConfig:
    """Config keys of the ``infonce`` loss (``train.loss``)."""

    temperature: float = option(0.05, lo=0, lo_open=True)


@LOSSES.register("contrastive", config=ContrastiveConfig)
class ContrastiveLoss(nn.Module):
    r"""Hinge-based triplet ranking loss of VSE++ (Faghri et al., 2018) as used by SCAN.

    For every positive pair ``(i, c)`` with ``i = p(c)`` and margin ``m``:

    * caption-side terms, one per caption ``c'`` that does not match ``i``:
      ``[m + s(i, c') - s(i, c)]_+``
    * image-side terms, one per image ``i'`` that does not match ``c``:
      ``[m + s(i', c) - s(i, c)]_+``

    With ``max_violation=False`` (VSE0, "sum of violations") the loss of a pair is the sum of all
    its terms; with ``max_violation=True`` (VSE++, "hardest negatives") it is the largest
    caption-side term plus the largest image-side term (0 for a side without negatives)::

        L_sum(i, c) = sum_{c' !~ i} [m + s(i,c') - s(i,c)]_+
                    + sum_{i' != i} [m + s(i',c) - s(i,c)]_+
        L_max(i, c) = max_{c' !~ i} [m + s(i,c') - s(i,c)]_+
                    + max_{i' != i} [m + s(i',c) - s(i,c)]_+

    where ``c' !~ i`` ranges over the captions that do not match image ``i``.

    ``reduction="sum"`` (SCAN's default) sums over positive pairs; ``"mean"`` divides that sum by
    the number of positive pairs (= the number of captions). For a square matrix with the
    diagonal as positives this is exactly SCAN's ``ContrastiveLoss``.

    Warm-up (VSE∞, Chen et al., 2021): while ``epoch < warmup_epochs`` (set with
    :meth:`set_epoch`; the epoch starts at 0) the loss sums all violations; afterwards it uses
    ``max_violation`` as configured. :attr:`uses_max_violation` tells which one is active.

    Args:
        margin: the margin ``m`` (finite, >= 0; 0 asks only that a positive outscore its negatives).
        max_violation: use hardest negatives (after the warm-up).
        reduction: ``"sum"`` or ``"mean"``.
        warmup_epochs: number of initial epochs that use the sum of violations.
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        max_violation: bool = True,
        reduction: str = "sum",
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__()
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, int)
            or warmup_epochs < 0
        ):
            raise ValueError(f"warmup_epochs must be a non-negative int, got {warmup_epochs!r}")
        if not 0 <= float(margin) < float("inf"):  # a negative margin rewards ranking negatives first
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        self.margin = float(margin)
        self.max_violation = bool(max_violation)
        self.reduction = reduction
        self.warmup_epochs = warmup_epochs
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the current (0-based) epoch; controls the warm-up."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    @property
    def in_warmup(self) -> bool:
        """``True`` while ``epoch < warmup_epochs``."""
        return self.epoch < self.warmup_epochs

    @property
    def uses_max_violation(self) -> bool:
        """Whether the current epoch uses hardest negatives (``False`` during the warm-up)."""
        return self.max_violation and not self.in_warmup

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, max_violation={self.max_violation}, "
            f"reduction={self.reduction!r}, warmup_epochs={self.warmup_epochs}"
        )

    def forward(
        self, sims: torch.Tensor, positive_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Loss of a batch.

        Args:
            sims: ``[n_images, n_captions]`` similarities.
            positive_mask: bool ``[n_images, n_captions]``; ``None`` means the diagonal of a
                square ``sims``.

        Returns:
            A scalar tensor.
        """
        mask, img_of_cap = validate_positive_mask(sims, positive_mask)
        n_cap = sims.shape[1]
        cols = torch.arange(n_cap, device=sims.device)
        pos = sims[img_of_cap, cols]  # [n_cap]: s(p(c), c)

        # Caption side: row c holds the scores of image p(c) against every caption c'.
        cost_c = (self.margin + sims[img_of_cap] - pos[:, None]).clamp(min=0)  # [n_cap, n_cap]
        cost_c = cost_c.masked_fill(mask[img_of_cap], 0)  # captions of p(c) are not negatives
        # Image side: column c holds the scores of every image i' against caption c.
        cost_i = (self.margin + sims - pos[None, :]).clamp(min=0)  # [n_img, n_cap]
        cost_i = cost_i.masked_fill(mask, 0)  # p(c) is not a negative of c

        if self.uses_max_violation:
            per_pair = cost_c.max(dim=1).values + cost_i.max(dim=0).values
        else:
            per_pair = cost_c.sum(dim=1) + cost_i.sum(dim=0)
        total = per_pair.sum()
        return total / n_cap if self.reduction == "mean" else total


@LOSSES.register("infonce", config=InfoNCEConfig)
class InfoNCELoss(nn.Module):
    r"""Symmetric InfoNCE (cross-entropy) loss over a batch similarity matrix.

    With logits ``z = sims / T`` (temperature ``T``):

    * caption → image, one term per caption ``c``:
      ``l_t2i(c) = -log softmax_i(z[:, c])[p(c)]``
    * image → caption, one term per image ``i`` that has at least one caption in the batch, with
      ``C(i)`` the captions of ``i``: the mean log-likelihood over its positives,
      ``l_i2t(i) = -(1/|C(i)|) * sum_{c in C(i)} log softmax_c'(z[i, :])[c]``.
      The other positives of ``i`` stay in the softmax denominator. Images without a caption in
      the batch only act as negatives for the caption → image side.

    The loss is ``0.5 * (mean_c l_t2i(c) + mean_i l_i2t(i))``. With diagonal positives it is the
    usual symmetric (CLIP-style) cross-entropy.

    Args:
        temperature: the softmax temperature ``T`` (> 0).
    """

    def __init__(self, *, temperature: float = 0.05) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def set_epoch(self, epoch: int) -> None:
        """No-op; present so that training loops can treat all losses alike."""

    @property
    def uses_max_violation(self) -> bool:
        """Always ``False``; present so that training loops can log all losses alike."""
        return False

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

    def forward(
        self, sims: torch.Tensor, positive_mask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Loss of a batch (scalar tensor); arguments as in :meth:`ContrastiveLoss.forward`."""
        mask, img_of_cap = validate_positive_mask(sims, positive_mask)
        logits = sims / self.temperature
        n_cap = sims.shape[1]
        cols = torch.arange(n_cap, device=sims.device)

        # caption -> image: softmax over images (dim 0) for every caption.
        log_p_img = torch.log_softmax(logits, dim=0)
        loss_t2i = -log_p_img[img_of_cap, cols].mean()

        # image -> caption: softmax over captions (dim 1), mean over each image's positives.
        log_p_cap = torch.log_softmax(logits, dim=1)
        n_pos = mask.sum(dim=1)
        has_pos = n_pos > 0
        pos_ll = log_p_cap.masked_fill(~mask, 0).sum(dim=1)
        loss_i2t = -(pos_ll[has_pos] / n_pos[has_pos]).mean()
        return 0.5 * (loss_t2i + loss_i2t)


def build_loss(section: Any) -> nn.Module:
    """The loss named by a ``train.loss`` config section (``.name``, ``.kwargs()``)."""
    return LOSSES.resolve(section.name)(**section.kwargs())
