"""Tests for graphmatch.losses."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphmatch.losses import ContrastiveLoss, InfoNCELoss


# ------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------
def scan_contrastive(scores: torch.Tensor, margin: float, max_violation: bool) -> torch.Tensor:
    """Transcription of SCAN's ContrastiveLoss.forward (model.py), after the score computation."""
    diagonal = scores.diag().view(scores.size(0), 1)
    d1 = diagonal.expand_as(scores)
    d2 = diagonal.t().expand_as(scores)

    # compare every diagonal score to scores in its column
    # caption retrieval
    cost_s = (margin + scores - d1).clamp(min=0)
    # compare every diagonal score to scores in its row
    # image retrieval
    cost_im = (margin + scores - d2).clamp(min=0)

    # clear diagonals
    mask = torch.eye(scores.size(0)) > 0.5
    cost_s = cost_s.masked_fill_(mask, 0)
    cost_im = cost_im.masked_fill_(mask, 0)

    # keep the maximum violating negative for each query
    if max_violation:
        cost_s = cost_s.max(1)[0]
        cost_im = cost_im.max(0)[0]
    return cost_s.sum() + cost_im.sum()


def loop_contrastive(
    sims: torch.Tensor, positive_mask: torch.Tensor, margin: float, max_violation: bool
) -> float:
    """Pair-by-pair definition of the hinge loss with an explicit positive mask."""
    n_img, n_cap = sims.shape
    total = 0.0
    for c in range(n_cap):
        i = int(positive_mask[:, c].nonzero()[0, 0])
        pos = float(sims[i, c])
        cap_terms = [
            max(0.0, margin + float(sims[i, c2]) - pos)
            for c2 in range(n_cap)
            if not positive_mask[i, c2]
        ]
        img_terms = [
            max(0.0, margin + float(sims[i2, c]) - pos) for i2 in range(n_img) if i2 != i
        ]
        if max_violation:
            total += max(cap_terms, default=0.0) + max(img_terms, default=0.0)
        else:
            total += sum(cap_terms) + sum(img_terms)
    return total


def loop_infonce(sims: torch.Tensor, positive_mask: torch.Tensor, temperature: float) -> float:
    z = sims.double() / temperature
    n_img, n_cap = sims.shape
    t2i = []
    for c in range(n_cap):
        i = int(positive_mask[:, c].nonzero()[0, 0])
        t2i.append(float(z[i, c] - torch.logsumexp(z[:, c], 0)))
    i2t = []
    for i in range(n_img):
        caps = positive_mask[i].nonzero().flatten().tolist()
        if caps:
            lse = torch.logsumexp(z[i], 0)
            i2t.append(sum(float(z[i, c] - lse) for c in caps) / len(caps))
    return 0.5 * (-sum(t2i) / len(t2i) - sum(i2t) / len(i2t))


# ------------------------------------------------------------------------------------------
# Hand-computed cases
# ------------------------------------------------------------------------------------------
# margin 0.2, diagonal positives
HAND = torch.tensor(
    [
        #  c0    c1    c2
        [0.90, 0.80, 0.60],  # i0
        [0.70, 0.50, 0.40],  # i1
        [0.20, 0.45, 0.30],  # i2
    ],
    dtype=torch.float64,
)
# pair (i0, c0), pos 0.9: caption side c1: 0.2+0.8-0.9 = 0.1, c2: -0.1 -> 0
#                         image side   i1: 0.2+0.7-0.9 = 0.0, i2: -0.5 -> 0
#                         sum 0.1, max 0.1 + 0.0 = 0.1
# pair (i1, c1), pos 0.5: caption side c0: 0.2+0.7-0.5 = 0.4, c2: 0.2+0.4-0.5 = 0.1
#                         image side   i0: 0.2+0.8-0.5 = 0.5, i2: 0.2+0.45-0.5 = 0.15
#                         sum 1.15, max 0.4 + 0.5 = 0.9
# pair (i2, c2), pos 0.3: caption side c0: 0.2+0.2-0.3 = 0.1, c1: 0.2+0.45-0.3 = 0.35
#                         image side   i0: 0.2+0.6-0.3 = 0.5, i1: 0.2+0.4-0.3 = 0.3
#                         sum 1.25, max 0.35 + 0.5 = 0.85
HAND_SUM = 0.1 + 1.15 + 1.25  # 2.5
HAND_MAX = 0.1 + 0.9 + 0.85  # 1.85


def test_hand_computed_2x2() -> None:
    sims = torch.tensor([[0.8, 0.5], [0.3, 0.6]], dtype=torch.float64)
    # pair (0,0): c1: 0.2+0.5-0.8 < 0; i1: 0.2+0.3-0.8 < 0            -> 0
    # pair (1,1): c0: 0.2+0.3-0.6 < 0; i0: 0.2+0.5-0.6 = 0.1          -> 0.1
    for mv in (False, True):
        loss = ContrastiveLoss(margin=0.2, max_violation=mv)(sims)
        assert float(loss) == pytest.approx(0.1)


def test_hand_computed_3x3() -> None:
    assert float(ContrastiveLoss(max_violation=False)(HAND)) == pytest.approx(HAND_SUM)
    assert float(ContrastiveLoss(max_violation=True)(HAND)) == pytest.approx(HAND_MAX)
    mean_sum = ContrastiveLoss(max_violation=False, reduction="mean")(HAND)
    mean_max = ContrastiveLoss(max_violation=True, reduction="mean")(HAND)
    assert float(mean_sum) == pytest.approx(HAND_SUM / 3)
    assert float(mean_max) == pytest.approx(HAND_MAX / 3)
    # an explicit diagonal mask is the same as the default
    eye = torch.eye(3, dtype=torch.bool)
    assert float(ContrastiveLoss()(HAND, eye)) == pytest.approx(HAND_MAX)


@pytest.mark.parametrize("max_violation", [False, True])
@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5])
def test_equals_scan_transcription(max_violation: bool, margin: float) -> None:
    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 5, 16):
        sims = torch.randn(n, n, generator=gen)
        ours = ContrastiveLoss(margin=margin, max_violation=max_violation)(sims)
        ref = scan_contrastive(sims.clone(), margin, max_violation)
        torch.testing.assert_close(ours, ref)
        mean = ContrastiveLoss(margin=margin, max_violation=max_violation, reduction="mean")(sims)
        torch.testing.assert_close(mean, ref / n)


def test_gradient_matches_scan_transcription() -> None:
    sims = torch.randn(6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for mv in (False, True):
        a = sims.clone().requires_grad_(True)
        b = sims.clone().requires_grad_(True)
        ContrastiveLoss(max_violation=mv)(a).backward()
        scan_contrastive(b * 1.0, 0.2, mv).backward()
        torch.testing.assert_close(a.grad, b.grad)


# ------------------------------------------------------------------------------------------
# Several captions per image
# ------------------------------------------------------------------------------------------
def test_caption_of_same_image_is_not_a_negative() -> None:
    # captions c0, c1 -> image 0; c2 -> image 1. s(i0, c1) is high, but c1 is a positive of i0.
    sims = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.3, 0.8]])
    mask = torch.tensor([[True, True, False], [False, False, True]])
    # (i0, c0) pos 0.5: caption side c2: 0.2+0.1-0.5 < 0; image side i1: 0.2+0.2-0.5 < 0
    # (i0, c1) pos 0.9: caption side c2: < 0;              image side i1: 0.2+0.3-0.9 < 0
    # (i1, c2) pos 0.8: caption side c0, c1: 0.2+0.2-0.8, 0.2+0.3-0.8 < 0; image side i0: < 0
    for mv in (False, True):
        assert float(ContrastiveLoss(max_violation=mv)(sims, mask)) == 0.0
    # (treating c1 as a negative of (i0, c0) would add 0.2 + 0.9 - 0.5 = 0.6)


@pytest.mark.parametrize("max_violation", [False, True])
def test_positive_entries_only_act_as_positives(max_violation: bool) -> None:
    # A positive score can only enter the loss with a minus sign (as s(i, c) of its own pair),
    # never as a negative of another pair of the same image, so its gradient is <= 0.
    gen = torch.Generator().manual_seed(5)
    img_of_cap = torch.tensor([0, 0, 0, 1, 1, 2])
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[img_of_cap, torch.arange(6)] = True
    sims = (torch.randn(3, 6, generator=gen) * 0.3).requires_grad_(True)
    ContrastiveLoss(margin=1.0, max_violation=max_violation)(sims, mask).backward()
    assert (sims.grad[mask] <= 0).all()
    assert (sims.grad[~mask] >= 0).all()
    assert (sims.grad[mask] < 0).any()


@pytest.mark.parametrize("max_violation", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_positive_mask_matches_loop(max_violation: bool, reduction: str) -> None:
    gen = torch.Generator().manual_seed(2)
    # 5 images; image 3 has no caption in the batch (extra negative); 8 captions
    img_of_cap = torch.tensor([0, 0, 1, 2, 2, 2, 4, 1])
    mask = torch.zeros(5, 8, dtype=torch.bool)
    mask[img_of_cap, torch.arange(8)] = True
    sims = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    loss = ContrastiveLoss(margin=0.3, max_violation=max_violation, reduction=reduction)
    want = loop_contrastive(sims, mask, 0.3, max_violation)
    if reduction == "mean":
        want /= 8
    assert float(loss(sims, mask)) == pytest.approx(want)


def test_single_image_batch_has_no_caption_side_negatives() -> None:
    sims = torch.tensor([[0.1, 0.9], [0.8, 0.0]])
    mask = torch.tensor([[True, True], [False, False]])  # both captions belong to image 0
    # caption side: no negatives; image side: (i0,c0): 0.2+0.8-0.1 = 0.9; (i0,c1): 0.2+0.0-0.9 < 0
    for mv in (False, True):
        assert float(ContrastiveLoss(max_violation=mv)(sims, mask)) == pytest.approx(0.9)


# ------------------------------------------------------------------------------------------
# Warm-up, gradients, errors
# ------------------------------------------------------------------------------------------
def test_warmup_switches_to_max_violation() -> None:
    loss = ContrastiveLoss(max_violation=True, warmup_epochs=2)
    assert not loss.uses_max_violation
    assert float(loss(HAND)) == pytest.approx(HAND_SUM)
    loss.set_epoch(1)
    assert not loss.uses_max_violation
    assert float(loss(HAND)) == pytest.approx(HAND_SUM)
    loss.set_epoch(2)
    assert loss.uses_max_violation
    assert float(loss(HAND)) == pytest.approx(HAND_MAX)
    loss.set_epoch(7)
    assert float(loss(HAND)) == pytest.approx(HAND_MAX)

    never = ContrastiveLoss(max_violation=False, warmup_epochs=2)
    never.set_epoch(5)
    assert not never.uses_max_violation
    assert float(never(HAND)) == pytest.approx(HAND_SUM)
    assert ContrastiveLoss().uses_max_violation  # no warm-up by default


def test_gradient_flows() -> None:
    sims = HAND.clone().requires_grad_(True)
    ContrastiveLoss(max_violation=True)(sims).backward()
    g = sims.grad
    assert g is not None and torch.isfinite(g).all()
    # hardest negatives: (i0,c1) for pair 0 [caption side]; pair 1: c0 [row 1] and i0 [col 1];
    # pair 2: c1 [row 2] and i0 [col 2]. Pair 0's image-side max is exactly 0 (inactive hinge).
    assert g[0, 1] == pytest.approx(1.0 + 1.0)  # caption-side of pair 0, image-side of pair 1
    assert g[0, 2] == pytest.approx(1.0)
    assert g[1, 0] == pytest.approx(1.0)
    assert g[2, 1] == pytest.approx(1.0)
    assert g[1, 1] == pytest.approx(-2.0) and g[2, 2] == pytest.approx(-2.0)

    sims2 = torch.randn(4, 6, requires_grad=True)
    mask = torch.zeros(4, 6, dtype=torch.bool)
    mask[torch.tensor([0, 1, 1, 2, 3, 3]), torch.arange(6)] = True
    InfoNCELoss()(sims2, mask).backward()
    assert sims2.grad is not None and sims2.grad.abs().sum() > 0


def test_contrastive_errors() -> None:
    loss = ContrastiveLoss()
    with pytest.raises(ValueError, match="square"):
        loss(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="2-D"):
        loss(torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        loss(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="shape"):
        loss(torch.zeros(2, 3), torch.ones(3, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        loss(torch.zeros(2, 2), torch.eye(2))
    two = torch.tensor([[True, True], [True, False]])
    with pytest.raises(ValueError, match=r"exactly one positive.*captions 0 \(2 positives\)"):
        loss(torch.zeros(2, 2), two)
    none = torch.tensor([[True, False], [False, False]])
    with pytest.raises(ValueError, match=r"captions 1 \(0 positives\)"):
        loss(torch.zeros(2, 2), none)
    with pytest.raises(ValueError, match="reduction"):
        ContrastiveLoss(reduction="max")
    with pytest.raises(ValueError, match="warmup_epochs"):
        ContrastiveLoss(warmup_epochs=-1)


# ------------------------------------------------------------------------------------------
# InfoNCE
# ------------------------------------------------------------------------------------------
def test_infonce_diagonal_is_symmetric_cross_entropy() -> None:
    sims = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    t = 0.1
    target = torch.arange(6)
    want = 0.5 * (F.cross_entropy(sims / t, target) + F.cross_entropy(sims.t() / t, target))
    torch.testing.assert_close(InfoNCELoss(temperature=t)(sims), want)


def test_infonce_multiple_positives_matches_loop() -> None:
    gen = torch.Generator().manual_seed(4)
    img_of_cap = torch.tensor([0, 0, 1, 2, 2, 2, 4])  # image 3 has no caption
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[img_of_cap, torch.arange(7)] = True
    sims = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    got = InfoNCELoss(temperature=0.2)(sims, mask)
    assert float(got) == pytest.approx(loop_infonce(sims, mask, 0.2))


def test_infonce_errors_and_interface() -> None:
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0.0)
    with pytest.raises(ValueError, match="square"):
        InfoNCELoss()(torch.zeros(2, 3))
    loss = InfoNCELoss()
    loss.set_epoch(3)
    assert loss.uses_max_violation is False
