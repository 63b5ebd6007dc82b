"""Tests of the SCAN scorers of graphmatch.nn.functional against the equations written out,
hand-computed cases and the released per-caption loops (graphmatch.testing)."""

from __future__ import annotations

import math

import pytest
import torch

import graphmatch.nn.functional as gf
import graphmatch.nn.functional.scan as scan_module
from graphmatch.nn.functional import clipped_l2norm, l2norm, scan_i2t, scan_t2i
from graphmatch.testing import scan_i2t_loop, scan_t2i_loop

AGGS = ("lse", "mean", "max", "sum")
SCORERS = {"t2i": scan_t2i, "i2t": scan_i2t}
LOOPS = {"t2i": scan_t2i_loop, "i2t": scan_i2t_loop}
DEFAULTS = {"t2i": (9.0, 6.0), "i2t": (4.0, 5.0)}  # (lambda_softmax, lambda_lse)


# ---------------------------------------------------------------------------
# Independent per-pair reference: the equations written out with loops.
# ---------------------------------------------------------------------------
def _leaky(x: float) -> float:
    return x if x >= 0 else 0.1 * x


def reference_pair(
    regions: torch.Tensor,
    words: torch.Tensor,
    direction: str,
    lambda_softmax: float,
    agg: str,
    lambda_lse: float,
    eps: float = 1e-8,
) -> float:
    """Score of one (image, caption) pair; ``regions`` [R, D] and ``words`` [L, D]
    hold real slots only.  float64, one query and one context slot at a time."""
    regions, words = regions.double(), words.double()
    if direction == "t2i":
        queries, context = words, regions
    else:
        queries, context = regions, words
    nq, nk = queries.shape[0], context.shape[0]
    # s[j][t] = context_j . query_t, clipped (LeakyReLU 0.1)
    s = [[_leaky(float(context[j] @ queries[t])) for t in range(nq)] for j in range(nk)]
    # l2-normalise each context row over the queries
    sbar = []
    for j in range(nk):
        norm = math.sqrt(sum(v * v for v in s[j])) + eps
        sbar.append([v / norm for v in s[j]])
    rel = []
    for t in range(nq):
        logits = [lambda_softmax * sbar[j][t] for j in range(nk)]
        top = max(logits)
        weights = [math.exp(z - top) for z in logits]
        total = sum(weights)
        attended = sum((weights[j] / total) * context[j] for j in range(nk))
        num = float(queries[t] @ attended)
        den = float(torch.linalg.vector_norm(queries[t]))
        den *= float(torch.linalg.vector_norm(attended))
        rel.append(num / max(den, eps))
    if agg == "lse":
        return math.log(sum(math.exp(lambda_lse * r) for r in rel)) / lambda_lse
    if agg == "mean":
        return sum(rel) / len(rel)
    if agg == "max":
        return max(rel)
    return sum(rel)


def reference_matrix(images, image_mask, words, word_mask, direction, agg, **kw):
    lam, lam_lse = DEFAULTS[direction]
    lam = kw.get("lambda_softmax", lam)
    lam_lse = kw.get("lambda_lse", lam_lse)
    out = torch.empty(images.shape[0], words.shape[0], dtype=torch.float64)
    for i in range(images.shape[0]):
        for c in range(words.shape[0]):
            out[i, c] = reference_pair(
                images[i][image_mask[i]], words[c][word_mask[c]], direction, lam, agg, lam_lse
            )
    return out


# ---------------------------------------------------------------------------
# Data helpers
# ---------------------------------------------------------------------------
def random_mask(n: int, slots: int, lengths: list[int], gen: torch.Generator, prefix: bool):
    mask = torch.zeros(n, slots, dtype=torch.bool)
    for row, k in enumerate(lengths):
        pos = torch.arange(k) if prefix else torch.randperm(slots, generator=gen)[:k]
        mask[row, pos] = True
    return mask


def make_batch(
    seed: int = 0,
    n_img: int = 4,
    n_cap: int = 5,
    regions: int = 5,
    words: int = 6,
    dim: int = 7,
    dtype=torch.float64,
    normalise: bool = False,
    prefix: bool = False,
    junk: float = 1e3,
):
    """Padded batch with varied lengths (including 1 region / 1 word) and junk padding."""
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n_img, regions, dim, generator=g, dtype=torch.float64)
    cap = torch.randn(n_cap, words, dim, generator=g, dtype=torch.float64)
    if normalise:
        img, cap = l2norm(img), l2norm(cap)
    r_len = [1] + torch.randint(1, regions + 1, (n_img - 1,), generator=g).tolist()
    r_len[-1] = regions
    w_len = [1] + torch.randint(1, words + 1, (n_cap - 1,), generator=g).tolist()
    w_len[-1] = words
    img_mask = random_mask(n_img, regions, r_len, g, prefix)
    cap_mask = random_mask(n_cap, words, w_len, g, prefix)
    img_junk = junk * torch.randn(img.shape, generator=g, dtype=torch.float64)
    cap_junk = junk * torch.randn(cap.shape, generator=g, dtype=torch.float64)
    img = torch.where(img_mask.unsqueeze(-1), img, img_junk)
    cap = torch.where(cap_mask.unsqueeze(-1), cap, cap_junk)
    return img.to(dtype), img_mask, cap.to(dtype), cap_mask


# ---------------------------------------------------------------------------
# Elementary functions
# ---------------------------------------------------------------------------
def test_l2norm_matches_definition():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    out = l2norm(x, dim=-1, eps=1e-8)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.8]), atol=1e-7)
    assert torch.equal(out[1], torch.zeros(2))  # 0 / (0 + eps)


def test_clipped_l2norm_leaky_and_mask():
    x = torch.tensor([[3.0, -40.0, 4.0, 1e6]])
    mask = torch.tensor([[True, True, True, False]])
    out = clipped_l2norm(x, dim=1, mask=mask)
    # LeakyReLU -> [3, -4, 4], norm sqrt(41); masked entry excluded and zero.
    expected = torch.tensor([[3.0, -4.0, 4.0, 0.0]]) / math.sqrt(41.0)
    assert torch.allclose(out, expected, atol=1e-7)
    assert torch.allclose(clipped_l2norm(x[:, :3], dim=1), expected[:, :3], atol=1e-7)


# ---------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------
# One image with regions v1 = (1, 0), v2 = (0, 1); one caption with words
# e1 = (1, 0), e2 = (-1, 2); lambda_softmax = 1.
#
# t2i: S[r, l] = v_r . e_l = [[1, -1], [0, 2]]; LeakyReLU -> [[1, -0.1], [0, 2]];
#   l2norm over words: row 1 / sqrt(1.01) = [0.995037, -0.099504], row 2 = [0, 1].
#   word 1: softmax([0.995037, 0]) = (0.730082, 0.269918) = a1,
#           R1 = 0.730082 / |a1| = 0.937950.
#   word 2: softmax([-0.099504, 1]) = (0.249833, 0.750167) = a2,
#           R2 = (-0.249833 + 2 * 0.750167) / (sqrt(5) |a2|) = 0.707296.
#   mean = 0.822623, sum = 1.645246, max = 0.937950,
#   lse(lambda 6) = log(e^{6 R1} + e^{6 R2}) / 6 = 0.975220.
#
# i2t: attn[l, r] = e_l . v_r = [[1, 0], [-1, 2]]; LeakyReLU -> [[1, 0], [-0.1, 2]];
#   l2norm over regions: row 1 = [1, 0], row 2 / sqrt(4.01) = [-0.049938, 0.998752].
#   region 1: softmax over words([1, -0.049938]) = (0.740763, 0.259237),
#             a1 = 0.740763 e1 + 0.259237 e2 = (0.481526, 0.518474), R1 = 0.680516.
#   region 2: softmax([0, 0.998752]) = (0.269187, 0.730813),
#             a2 = (-0.461627, 1.461626), R2 = 0.953571.
#   mean = 0.817044, lse(lambda 5) = 0.999048.
HAND_IMG = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
HAND_CAP = torch.tensor([[[1.0, 0.0], [-1.0, 2.0]]])


@pytest.mark.parametrize(
    "agg,expected", [("mean", 0.822623), ("sum", 1.645246), ("max", 0.937950), ("lse", 0.975220)]
)
def test_hand_computed_t2i(agg, expected):
    for dtype in (torch.float32, torch.float64):
        args = (HAND_IMG.to(dtype), None, HAND_CAP.to(dtype), None)
        for fn in (scan_t2i, scan_t2i_loop):
            out = fn(*args, lambda_softmax=1.0, agg=agg, lambda_lse=6.0)
            assert out.shape == (1, 1)
            assert out.item() == pytest.approx(expected, abs=2e-6)


@pytest.mark.parametrize("agg,expected", [("mean", 0.817044), ("max", 0.953571), ("lse", 0.999048)])
def test_hand_computed_i2t(agg, expected):
    for fn in (scan_i2t, scan_i2t_loop):
        out = fn(HAND_IMG, None, HAND_CAP, None, lambda_softmax=1.0, agg=agg, lambda_lse=5.0)
        assert out.item() == pytest.approx(expected, abs=2e-6)


def test_hand_computed_single_word():
    # Regions v1 = (1, 0), v2 = (0, 1); one word e = (1, -1); lambda = 1.
    # S = [1, -1] -> LeakyReLU [1, -0.1] -> each region's single entry
    # normalised over the (one) word to +-1 -> softmax([1, -1]) = (s, 1 - s)
    # with s = sigmoid(2) = 0.880797; a = (s, 1 - s), |a| = 0.888826;
    # R = (s - (1 - s)) / (sqrt(2) |a|) = 0.761594 / 1.256992 = 0.605887.
    lam = 1.0
    s = 1.0 / (1.0 + math.exp(-2.0 * lam))
    expected = (2 * s - 1) / (math.sqrt(2.0) * math.hypot(s, 1 - s))
    cap = torch.tensor([[[1.0, -1.0]]])
    out = scan_t2i(HAND_IMG, None, cap, None, lambda_softmax=lam, agg="mean")
    assert out.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.605887, abs=1e-6)


# ---------------------------------------------------------------------------
# Agreement with the independent reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("agg", AGGS)
def test_batched_matches_reference_float64(direction, agg):
    img, im, cap, cm = make_batch(seed=1, prefix=False)
    ref = reference_matrix(img, im, cap, cm, direction, agg)
    out = SCORERS[direction](img, im, cap, cm, agg=agg)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9)
    loop = LOOPS[direction](img, im, cap, cm, agg=agg)
    torch.testing.assert_close(loop, ref, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("agg", AGGS)
def test_batched_matches_reference_float32(direction, agg):
    img, im, cap, cm = make_batch(seed=2, dtype=torch.float32, normalise=True, prefix=True)
    ref = reference_matrix(img, im, cap, cm, direction, agg)
    with torch.no_grad():  # fast path (in place, oneDNN where available)
        fast = SCORERS[direction](img, im, cap, cm, agg=agg, chunk=2)
    slow = SCORERS[direction](img.requires_grad_(), im, cap, cm, agg=agg).detach()
    for out in (fast, slow):
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("lambda_softmax", [2.5, 20.0, 60.0])  # 60: softmax fallback
def test_custom_lambdas(direction, lambda_softmax):
    kw = dict(lambda_softmax=lambda_softmax, lambda_lse=0.7)
    img, im, cap, cm = make_batch(seed=3)
    ref = reference_matrix(img, im, cap, cm, direction, "lse", **kw)
    out = SCORERS[direction](img, im, cap, cm, agg="lse", **kw)
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9)
    img, im, cap, cm = make_batch(seed=3, dtype=torch.float32, normalise=True)
    ref = reference_matrix(img, im, cap, cm, direction, "lse", **kw)
    with torch.no_grad():
        out = SCORERS[direction](img, im, cap, cm, agg="lse", **kw)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_loop_equals_batched_unpadded_float32(direction):
    g = torch.Generator().manual_seed(4)
    img = l2norm(torch.randn(6, 9, 32, generator=g))
    cap = l2norm(torch.randn(7, 11, 32, generator=g))
    with torch.no_grad():
        a = SCORERS[direction](img, None, cap, None)
        b = LOOPS[direction](img, None, cap, None)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("chunk", [1, 2, 3, 100, None])
def test_chunk_does_not_change_scores(chunk):
    img, im, cap, cm = make_batch(seed=5, n_cap=7)
    full = scan_t2i(img, im, cap, cm, chunk=10**6)
    torch.testing.assert_close(scan_t2i(img, im, cap, cm, chunk=chunk), full, atol=1e-12, rtol=0)
    full = scan_i2t(img, im, cap, cm, chunk=10**6)
    torch.testing.assert_close(scan_i2t(img, im, cap, cm, chunk=chunk), full, atol=1e-12, rtol=0)


def spy_matmul(monkeypatch) -> list:
    """Record, for every matrix product of the batched scorers, which path computed it:
    ``"onednn"`` (a oneDNN tensor, and oneDNN returned the product) or ``"mm"``."""
    paths = []
    real_dots, real_onednn_dots = scan_module._dots, scan_module._onednn_dots
    taken = {}

    def onednn_dots(x_onednn, y):
        out = real_onednn_dots(x_onednn, y)
        taken["onednn"] = x_onednn.is_mkldnn and out is not None
        return out

    def dots(x, y, x_onednn):
        taken.clear()
        out = real_dots(x, y, x_onednn)
        paths.append("onednn" if taken.get("onednn") else "mm")
        return out

    monkeypatch.setattr(scan_module, "_dots", dots)
    monkeypatch.setattr(scan_module, "_onednn_dots", onednn_dots)
    return paths


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN (mkldnn)"
)
def test_onednn_path_is_taken_and_matches_mm(monkeypatch):
    img, im, cap, cm = make_batch(seed=6, dtype=torch.float32, normalise=True)
    paths = spy_matmul(monkeypatch)
    with torch.no_grad():
        on = scan_t2i(img, im, cap, cm, chunk=2), scan_i2t(img, im, cap, cm, chunk=2)
    # t2i: 3 caption blocks; i2t: 3 blocks; every product went through oneDNN
    assert paths == ["onednn"] * 6
    paths.clear()
    monkeypatch.setattr(gf, "ONEDNN_MATMUL", False)  # the package flag is the scan module's flag
    assert scan_module.ONEDNN_MATMUL is False
    with torch.no_grad():
        off = scan_t2i(img, im, cap, cm, chunk=2), scan_i2t(img, im, cap, cm, chunk=2)
    assert paths == ["mm"] * 6
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_onednn_path_not_taken_with_gradients_or_float64(monkeypatch):
    img, im, cap, cm = make_batch(seed=6, dtype=torch.float32, normalise=True)
    paths = spy_matmul(monkeypatch)
    scan_t2i(img.requires_grad_(), im, cap, cm, chunk=2)  # autograd needs torch.mm
    with torch.no_grad():
        scan_i2t(img.double(), im, cap.double(), cm, chunk=2)  # oneDNN takes float32 only
    assert paths == ["mm"] * 6


# ---------------------------------------------------------------------------
# Padding invariance
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("agg", AGGS)
def test_padded_equals_unpadded_per_pair(direction, agg):
    img, im, cap, cm = make_batch(seed=7, prefix=False)
    out = SCORERS[direction](img, im, cap, cm, agg=agg)
    for i in range(img.shape[0]):
        for c in range(cap.shape[0]):
            single = SCORERS[direction](
                img[i][im[i]].unsqueeze(0), None, cap[c][cm[c]].unsqueeze(0), None, agg=agg
            )
            assert out[i, c].item() == pytest.approx(single.item(), abs=1e-12)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_appending_padded_slots_changes_nothing(direction):
    img, im, cap, cm = make_batch(seed=8, dtype=torch.float32, normalise=True)
    g = torch.Generator().manual_seed(9)
    img2 = torch.cat([img, 1e4 * torch.randn(img.shape[0], 3, img.shape[2], generator=g)], dim=1)
    cap2 = torch.cat([1e4 * torch.randn(cap.shape[0], 2, cap.shape[2], generator=g), cap], dim=1)
    im2 = torch.cat([im, torch.zeros(im.shape[0], 3, dtype=torch.bool)], dim=1)
    cm2 = torch.cat([torch.zeros(cm.shape[0], 2, dtype=torch.bool), cm], dim=1)
    fn = SCORERS[direction]
    for agg in AGGS:
        torch.testing.assert_close(
            fn(img2, im2, cap2, cm2, agg=agg), fn(img, im, cap, cm, agg=agg), atol=1e-6, rtol=0
        )


def test_none_mask_equals_all_true_mask():
    img, _, cap, _ = make_batch(seed=10)
    im = torch.ones(img.shape[:2], dtype=torch.bool)
    cm = torch.ones(cap.shape[:2], dtype=torch.bool)
    for fn in (scan_t2i, scan_i2t):
        torch.testing.assert_close(fn(img, None, cap, None), fn(img, im, cap, cm), atol=0, rtol=0)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("agg", ["lse", "mean"])
def test_gradcheck(direction, agg):
    img, im, cap, cm = make_batch(seed=11, n_img=2, n_cap=3, regions=3, words=3, dim=4, junk=5.0)
    img.requires_grad_()
    cap.requires_grad_()
    fn = SCORERS[direction]
    assert torch.autograd.gradcheck(
        lambda a, b: fn(a, im, b, cm, agg=agg, lambda_softmax=2.0), (img, cap)
    )


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_gradients_reach_both_inputs_and_skip_padding(direction):
    img, im, cap, cm = make_batch(seed=12, dtype=torch.float32, normalise=True, junk=1e3)
    img.requires_grad_()
    cap.requires_grad_()
    SCORERS[direction](img, im, cap, cm).sum().backward()
    for x, mask in ((img.grad, im), (cap.grad, cm)):
        assert torch.isfinite(x).all()
        assert x[mask].abs().sum() > 0
        assert torch.equal(x[~mask], torch.zeros_like(x[~mask]))


# ---------------------------------------------------------------------------
# Errors and degenerate sizes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [scan_t2i, scan_i2t, scan_t2i_loop, scan_i2t_loop])
def test_empty_caption_raises_with_index(fn):
    img, im, cap, cm = make_batch(seed=13)
    cm = cm.clone()
    cm[2] = False
    cm[4] = False
    with pytest.raises(ValueError, match=r"caption.*\[2, 4\]"):
        fn(img, im, cap, cm)


@pytest.mark.parametrize("fn", [scan_t2i, scan_i2t, scan_t2i_loop, scan_i2t_loop])
def test_empty_image_raises_with_index(fn):
    img, im, cap, cm = make_batch(seed=14)
    im = im.clone()
    im[1] = False
    with pytest.raises(ValueError, match=r"image.*\[1\]"):
        fn(img, im, cap, cm)


@pytest.mark.parametrize("fn", [scan_t2i, scan_i2t, scan_t2i_loop, scan_i2t_loop])
def test_bad_agg(fn):
    img, im, cap, cm = make_batch(seed=15)
    with pytest.raises(ValueError, match="lse.*mean.*max.*sum"):
        fn(img, im, cap, cm, agg="median")
    with pytest.raises(ValueError, match="lambda_lse"):
        fn(img, im, cap, cm, agg="lse", lambda_lse=0.0)


def test_shape_and_dtype_errors():
    img = torch.randn(2, 3, 4)
    cap = torch.randn(3, 5, 4)
    with pytest.raises(ValueError, match="D=4.*D=6|dimension"):
        scan_t2i(img, None, torch.randn(3, 5, 6), None)
    with pytest.raises(ValueError, match="image_mask"):
        scan_t2i(img, torch.ones(2, 4, dtype=torch.bool), cap, None)
    with pytest.raises(ValueError, match="word_mask"):
        scan_i2t(img, None, cap, torch.ones(3, 5))  # not bool
    with pytest.raises(ValueError, match="dtype"):
        scan_t2i(img, None, cap.double(), None)
    with pytest.raises(ValueError, match="images"):
        scan_t2i(torch.randn(2, 4), None, cap, None)
    with pytest.raises(ValueError, match="chunk"):
        scan_t2i(img, None, cap, None, chunk=0)


@pytest.mark.parametrize("fn", [scan_t2i, scan_i2t, scan_t2i_loop, scan_i2t_loop])
def test_zero_images_or_captions(fn):
    img = torch.randn(3, 4, 5)
    cap = torch.randn(2, 6, 5)
    assert fn(img[:0], None, cap, None).shape == (0, 2)
    assert fn(img, None, cap[:0], None).shape == (3, 0)
