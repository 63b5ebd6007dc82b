"""Tests of graphmatch.nn.functional.attention: the masked cross-attention the matchers share."""

from __future__ import annotations

import pytest
import torch

from graphmatch.nn.functional import (
    RAW_FEATURE_NORMS,
    aggregate,
    cosine_similarity,
    func_attention,
    masked_cross_attention,
    scan_i2t,
    scan_t2i,
)


def padded_sets(seed: int, n: int, slots: int, dim: int, lengths: list, junk: float = 1e3):
    """``n`` sets of ``slots`` vectors, the real ones at random positions, junk in the padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, slots, dim, generator=g, dtype=torch.float64)
    mask = torch.zeros(n, slots, dtype=torch.bool)
    for row, k in enumerate(lengths):
        mask[row, torch.randperm(slots, generator=g)[:k]] = True
    x = torch.where(mask.unsqueeze(-1), x, junk * torch.randn(x.shape, generator=g, dtype=torch.float64))
    return x, mask


def reference(query, context, smooth, raw_feature_norm, eps=1e-8):
    """The rule of the module docstring written out for one unpadded pair [Lq, D], [Lc, D]."""
    s = context @ query.t()  # [Lc, Lq]
    if raw_feature_norm in ("clipped_l2norm", "clipped"):
        s = torch.where(s >= 0, s, 0.1 * s)
    if raw_feature_norm in ("clipped_l2norm", "l2norm"):
        s = s / (s.norm(dim=1, keepdim=True) + eps)
    if raw_feature_norm == "softmax":
        s = torch.softmax(s, dim=1)
    w = torch.softmax(smooth * s.t(), dim=1)  # [Lq, Lc]
    return w @ context, w


# Hand-computed (see tests/graphmatch/nn/test_functional.py): words e1 = (1, 0), e2 = (-1, 2)
# attend over regions v1 = (1, 0), v2 = (0, 1) with smooth = 1.
def test_hand_computed_weights():
    words = torch.tensor([[1.0, 0.0], [-1.0, 2.0]], dtype=torch.float64)
    regions = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    attended, weights = masked_cross_attention(words, None, regions, None, smooth=1.0)
    expected = torch.tensor([[0.730082, 0.269918], [0.249833, 0.750167]], dtype=torch.float64)
    torch.testing.assert_close(weights, expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(attended, expected @ regions, atol=2e-6, rtol=0)


@pytest.mark.parametrize("raw_feature_norm", RAW_FEATURE_NORMS)
def test_unpadded_matches_the_rule(raw_feature_norm):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(5, 6, generator=g, dtype=torch.float64)
    k = torch.randn(4, 6, generator=g, dtype=torch.float64)
    attended, weights = masked_cross_attention(q, None, k, None, smooth=3.0, raw_feature_norm=raw_feature_norm)
    ref_a, ref_w = reference(q, k, 3.0, raw_feature_norm)
    assert attended.shape == (5, 6) and weights.shape == (5, 4)
    torch.testing.assert_close(attended, ref_a, atol=1e-12, rtol=0)
    torch.testing.assert_close(weights, ref_w, atol=1e-12, rtol=0)


def test_equals_scan_func_attention_without_masks():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(3, 7, 8, generator=g)
    k = torch.randn(3, 5, 8, generator=g)
    attended, weights = masked_cross_attention(q, None, k, None, smooth=9.0)
    torch.testing.assert_close(attended, func_attention(q, k, smooth=9.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7), atol=1e-6, rtol=0)


@pytest.mark.parametrize("raw_feature_norm", RAW_FEATURE_NORMS)
def test_padding_never_changes_real_outputs(raw_feature_norm):
    q, qm = padded_sets(2, 4, 6, 5, [1, 3, 6, 2])
    k, km = padded_sets(3, 4, 5, 5, [5, 1, 2, 4])
    attended, weights = masked_cross_attention(q, qm, k, km, smooth=4.0, raw_feature_norm=raw_feature_norm)
    assert attended.shape == (4, 6, 5) and weights.shape == (4, 6, 5)
    for b in range(4):
        a1, w1 = masked_cross_attention(
            q[b][qm[b]], None, k[b][km[b]], None, smooth=4.0, raw_feature_norm=raw_feature_norm
        )
        torch.testing.assert_close(attended[b][qm[b]], a1, atol=1e-12, rtol=0)
        torch.testing.assert_close(weights[b][qm[b]][:, km[b]], w1, atol=1e-12, rtol=0)
        # padded queries attend to nothing; padded context slots get no weight
        assert torch.equal(attended[b][~qm[b]], torch.zeros_like(attended[b][~qm[b]]))
        assert torch.equal(weights[b][~qm[b]], torch.zeros_like(weights[b][~qm[b]]))
        assert torch.equal(weights[b][:, ~km[b]], torch.zeros_like(weights[b][:, ~km[b]]))


def test_broadcast_attends_every_query_set_to_every_context_set():
    q, qm = padded_sets(4, 3, 5, 4, [2, 5, 1])
    k, km = padded_sets(5, 2, 6, 4, [6, 3])
    attended, weights = masked_cross_attention(
        q.unsqueeze(1), qm.unsqueeze(1), k.unsqueeze(0), km.unsqueeze(0), smooth=2.0
    )
    assert attended.shape == (3, 2, 5, 4) and weights.shape == (3, 2, 5, 6)
    for i in range(3):
        for j in range(2):
            a1, w1 = masked_cross_attention(q[i], qm[i], k[j], km[j], smooth=2.0)
            torch.testing.assert_close(attended[i, j], a1, atol=1e-12, rtol=0)
            torch.testing.assert_close(weights[i, j], w1, atol=1e-12, rtol=0)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_attention_cosine_and_aggregation_give_scan_scores(direction):
    """SCAN = masked cross-attention, cosine relevance, aggregation (the batched scorer never
    forms the attended vectors; both must agree)."""
    img, im = padded_sets(6, 3, 5, 6, [5, 2, 1])
    cap, cm = padded_sets(7, 4, 6, 6, [1, 6, 3, 4])
    lam, lam_lse = (9.0, 6.0) if direction == "t2i" else (4.0, 5.0)
    out = torch.empty(3, 4, dtype=torch.float64)
    for i in range(3):
        for c in range(4):
            if direction == "t2i":
                q, qm, k, km = cap[c], cm[c], img[i], im[i]
            else:
                q, qm, k, km = img[i], im[i], cap[c], cm[c]
            attended, _ = masked_cross_attention(q, qm, k, km, smooth=lam)
            rel = cosine_similarity(q, attended, dim=-1)
            out[i, c] = aggregate(rel, qm, "lse", lambda_lse=lam_lse)
    scorer = scan_t2i if direction == "t2i" else scan_i2t
    torch.testing.assert_close(scorer(img, im, cap, cm), out, atol=1e-10, rtol=0)


def test_context_without_real_slots_attends_to_nothing():
    q = torch.randn(2, 3, 4, requires_grad=True)
    k = torch.randn(2, 5, 4, requires_grad=True)
    km = torch.ones(2, 5, dtype=torch.bool)
    km[1] = False
    attended, weights = masked_cross_attention(q, None, k, km, smooth=9.0)
    assert torch.equal(attended[1], torch.zeros(3, 4)) and torch.equal(weights[1], torch.zeros(3, 5))
    attended.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()


def test_gradients_reach_real_slots_only():
    q, qm = padded_sets(8, 3, 4, 5, [1, 4, 2], junk=5.0)
    k, km = padded_sets(9, 3, 6, 5, [6, 2, 3], junk=5.0)
    q.requires_grad_()
    k.requires_grad_()
    attended, weights = masked_cross_attention(q, qm, k, km, smooth=5.0)
    (attended.sum() + weights.pow(2).sum()).backward()
    for x, m in ((q.grad, qm), (k.grad, km)):
        assert torch.isfinite(x).all()
        assert x[m].abs().sum() > 0
        assert torch.equal(x[~m], torch.zeros_like(x[~m]))


def test_gradcheck():
    q, qm = padded_sets(10, 2, 3, 4, [2, 3], junk=5.0)
    k, km = padded_sets(11, 2, 3, 4, [3, 1], junk=5.0)
    q.requires_grad_()
    k.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: masked_cross_attention(a, qm, b, km, smooth=2.0)[0], (q, k)
    )


def test_errors():
    q, k = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match="raw_feature_norm.*clipped_l2norm"):
        masked_cross_attention(q, None, k, None, smooth=1.0, raw_feature_norm="l1norm")
    with pytest.raises(ValueError, match="D=4.*D=6"):
        masked_cross_attention(q, None, torch.randn(2, 5, 6), None, smooth=1.0)
    with pytest.raises(ValueError, match="query_mask must be a bool"):
        masked_cross_attention(q, torch.ones(2, 3), k, None, smooth=1.0)
    with pytest.raises(ValueError, match=r"context_mask has shape \(2, 4\).*\(2, 5\)"):
        masked_cross_attention(q, None, k, torch.ones(2, 4, dtype=torch.bool), smooth=1.0)
    with pytest.raises(ValueError, match="query_mask has shape"):  # mask wider than the set
        masked_cross_attention(q[0], torch.ones(2, 3, dtype=torch.bool), k[0], None, smooth=1.0)
    with pytest.raises(ValueError, match="context must be a floating-point"):
        masked_cross_attention(q, None, torch.ones(2, 5, 4, dtype=torch.long), None, smooth=1.0)
