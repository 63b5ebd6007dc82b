"""Tests for graphmatch.metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from graphmatch import metrics as M
from graphmatch.metrics import (
    METRIC_KEYS,
    captions_of_image,
    format_metrics_table,
    i2t_ranks,
    retrieval_metrics,
    retrieval_metrics_folds,
    t2i_ranks,
)


# ------------------------------------------------------------------------------------------
# Slow, obviously-correct references (argsort per query, as in SCAN's evaluation.py)
# ------------------------------------------------------------------------------------------
def slow_i2t_ranks(sims: np.ndarray, img_of_caption: np.ndarray) -> np.ndarray:
    ranks = np.zeros(sims.shape[0])
    for i in range(sims.shape[0]):
        inds = np.argsort(sims[i])[::-1]
        rank = 1e20
        for c in np.flatnonzero(img_of_caption == i):
            tmp = np.where(inds == c)[0][0]
            rank = min(rank, tmp)
        ranks[i] = rank
    return ranks


def slow_t2i_ranks(sims: np.ndarray, img_of_caption: np.ndarray) -> np.ndarray:
    ranks = np.zeros(sims.shape[1])
    for c in range(sims.shape[1]):
        inds = np.argsort(sims[:, c])[::-1]
        ranks[c] = np.where(inds == img_of_caption[c])[0][0]
    return ranks


def slow_metrics(sims: np.ndarray, img_of_caption: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, ranks in (
        ("i2t", slow_i2t_ranks(sims, img_of_caption)),
        ("t2i", slow_t2i_ranks(sims, img_of_caption)),
    ):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * len(np.where(ranks < k)[0]) / len(ranks)
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
        out[f"{name}_meanr"] = ranks.mean() + 1
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return out


def assert_metrics_close(got: dict, want: dict) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


# ------------------------------------------------------------------------------------------
# Hand-computed case
# ------------------------------------------------------------------------------------------
# 3 images, 6 captions, non-uniform:
# image 0 -> captions {0, 1, 2}, image 1 -> {3}, image 2 -> {4, 5}.
HAND_SIMS = np.array(
    [
        #  c0    c1    c2    c3    c4    c5
        [0.90, 0.10, 0.20, 0.80, 0.30, 0.00],  # i0
        [0.50, 0.60, 0.70, 0.40, 0.20, 0.10],  # i1
        [0.30, 0.50, 0.60, 0.20, 0.10, 0.05],  # i2
    ]
)
HAND_IMG = np.array([0, 0, 0, 1, 2, 2])
# i2t (row-wise; rank = non-matching captions scoring >= best matching caption):
#   i0: best of {c0,c1,c2} = 0.9; others {0.8, 0.3, 0.0} -> none >= 0.9        -> rank 0
#   i1: best of {c3} = 0.4; others {0.5, 0.6, 0.7, 0.2, 0.1} -> 3 >= 0.4         -> rank 3
#   i2: best of {c4,c5} = 0.1; others {0.3, 0.5, 0.6, 0.2} -> 4 >= 0.1           -> rank 4
#   ranks [0, 3, 4]: R@1 = 100/3, R@5 = R@10 = 100, medr = floor(3) + 1 = 4, meanr = 7/3 + 1
HAND_I2T = [0, 3, 4]
# t2i (column-wise; rank = other images scoring >= the caption's own image):
#   c0 (i0): [0.9, 0.5, 0.3]  own 0.9  -> 0
#   c1 (i0): [0.1, 0.6, 0.5]  own 0.1  -> 2
#   c2 (i0): [0.2, 0.7, 0.6]  own 0.2  -> 2
#   c3 (i1): [0.8, 0.4, 0.2]  own 0.4  -> 1
#   c4 (i2): [0.3, 0.2, 0.1]  own 0.1  -> 2
#   c5 (i2): [0.0, 0.1, 0.05] own 0.05 -> 1
#   ranks [0, 2, 2, 1, 2, 1]: R@1 = 100/6, R@5 = R@10 = 100,
#   median([0, 1, 1, 2, 2, 2]) = 1.5 -> medr = floor(1.5) + 1 = 2, meanr = 8/6 + 1
HAND_T2I = [0, 2, 2, 1, 2, 1]
HAND_EXPECTED = {
    "i2t_r1": 100.0 / 3,
    "i2t_r5": 100.0,
    "i2t_r10": 100.0,
    "t2i_r1": 100.0 / 6,
    "t2i_r5": 100.0,
    "t2i_r10": 100.0,
    "rsum": 100.0 / 3 + 100.0 / 6 + 400.0,
    "i2t_medr": 4.0,
    "i2t_meanr": 7.0 / 3 + 1,
    "t2i_medr": 2.0,
    "t2i_meanr": 8.0 / 6 + 1,
}


def test_hand_computed_ranks() -> None:
    np.testing.assert_array_equal(i2t_ranks(HAND_SIMS, HAND_IMG), HAND_I2T)
    np.testing.assert_array_equal(t2i_ranks(HAND_SIMS, HAND_IMG), HAND_T2I)


def test_hand_computed_metrics() -> None:
    m = retrieval_metrics(HAND_SIMS, HAND_IMG)
    assert set(METRIC_KEYS) <= set(m)
    assert_metrics_close(m, HAND_EXPECTED)
    assert m["n_images"] == 3 and m["n_captions"] == 6
    assert isinstance(m["n_images"], int) and isinstance(m["i2t_r1"], float)
    # the slow reference agrees (no ties in this matrix)
    assert_metrics_close(m, slow_metrics(HAND_SIMS, HAND_IMG))


def test_caption_order_is_irrelevant() -> None:
    perm = np.array([4, 0, 3, 5, 2, 1])
    m = retrieval_metrics(HAND_SIMS[:, perm], HAND_IMG[perm])
    assert_metrics_close(m, HAND_EXPECTED)


def test_torch_input() -> None:
    m = retrieval_metrics(torch.tensor(HAND_SIMS, dtype=torch.float64), torch.tensor(HAND_IMG))
    assert_metrics_close(m, HAND_EXPECTED)
    m32 = retrieval_metrics(torch.tensor(HAND_SIMS, dtype=torch.float32), HAND_IMG.tolist())
    assert_metrics_close(m32, HAND_EXPECTED)
    # bfloat16 is converted; ranks may change by rounding, but it must run
    mb = retrieval_metrics(torch.tensor(HAND_SIMS, dtype=torch.bfloat16), HAND_IMG)
    assert 0.0 <= mb["rsum"] <= 600.0


# ------------------------------------------------------------------------------------------
# Ties
# ------------------------------------------------------------------------------------------
def test_constant_matrix_gets_worst_ranks() -> None:
    img = np.array([0, 0, 1, 1, 2, 2])
    sims = np.ones((3, 6))
    np.testing.assert_array_equal(i2t_ranks(sims, img), [4, 4, 4])  # 4 non-matching captions
    np.testing.assert_array_equal(t2i_ranks(sims, img), [2] * 6)  # 2 other images
    m = retrieval_metrics(sims, img)
    assert m["i2t_r1"] == 0.0 and m["t2i_r1"] == 0.0
    assert m["i2t_r5"] == 100.0 and m["t2i_r5"] == 100.0  # ranks 4 and 2 are < 5
    assert m["i2t_medr"] == 5.0 and m["i2t_meanr"] == 5.0
    assert m["t2i_medr"] == 3.0 and m["t2i_meanr"] == 3.0


def test_partial_tie_is_pessimistic() -> None:
    # image 0: its caption c0 ties with the non-matching c1 -> rank 1 (not 0).
    # caption c1 (image 1): image 0 ties with image 1 -> rank 1.
    sims = np.array([[0.5, 0.5], [0.1, 0.5]])
    img = np.array([0, 1])
    np.testing.assert_array_equal(i2t_ranks(sims, img), [1, 0])
    np.testing.assert_array_equal(t2i_ranks(sims, img), [0, 1])
    # ties among the captions of the same image do not count against it
    sims2 = np.array([[0.7, 0.7, 0.2], [0.1, 0.1, 0.9]])
    np.testing.assert_array_equal(i2t_ranks(sims2, np.array([0, 0, 1])), [0, 0])


# ------------------------------------------------------------------------------------------
# Against the slow reference on random data
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("uniform", [True, False])
def test_matches_slow_reference_random(uniform: bool) -> None:
    rng = np.random.default_rng(0 if uniform else 1)
    n_images = 40
    if uniform:
        img = np.repeat(np.arange(n_images), 5)
    else:
        counts = rng.integers(1, 8, size=n_images)
        img = np.repeat(np.arange(n_images), counts)
    img = rng.permutation(img)
    # add signal so that the recalls are not trivially 0 or 100
    sims = rng.standard_normal((n_images, len(img)))
    sims[img, np.arange(len(img))] += 1.5
    got = retrieval_metrics(sims, img)
    assert_metrics_close(got, slow_metrics(sims, img))
    np.testing.assert_array_equal(i2t_ranks(sims, img), slow_i2t_ranks(sims, img))
    np.testing.assert_array_equal(t2i_ranks(sims, img), slow_t2i_ranks(sims, img))


def test_chunking_gives_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    img = rng.permutation(np.repeat(np.arange(30), 3))
    sims = rng.standard_normal((30, 90)).astype(np.float32)
    full = retrieval_metrics(sims, img)
    monkeypatch.setattr(M, "_CHUNK_ELEMENTS", 7 * 90 + 3)  # 7 image rows per chunk, ragged end
    assert retrieval_metrics(sims, img) == full
    monkeypatch.setattr(M, "_CHUNK_ELEMENTS", 1)  # one row per chunk
    assert retrieval_metrics(sims, img) == full


# ------------------------------------------------------------------------------------------
# Folds
# ------------------------------------------------------------------------------------------
def test_folds_hand_computed() -> None:
    # 4 images, 2 folds: fold 0 = images {0, 1}, fold 1 = images {2, 3}.
    # Captions interleaved: c0->i2, c1->i0, c2->i1, c3->i3, c4->i0.
    img = np.array([2, 0, 1, 3, 0])
    sims = np.full((4, 5), 10.0)  # cross-fold entries are huge: they must be ignored
    # fold 0 (images 0, 1; captions c1, c2, c4):
    sims[0, 1], sims[0, 2], sims[0, 4] = 0.9, 0.8, 0.1
    sims[1, 1], sims[1, 2], sims[1, 4] = 0.2, 0.3, 0.5
    #   i2t: i0 best 0.9 vs {c2: 0.8} -> 0;  i1 own c2 = 0.3 vs {0.2, 0.5} -> 1  => ranks [0, 1]
    #   t2i: c1 (i0) 0.9 vs 0.2 -> 0; c2 (i1) 0.3 vs 0.8 -> 1; c4 (i0) 0.1 vs 0.5 -> 1
    # fold 1 (images 2, 3; captions c0, c3):
    sims[2, 0], sims[2, 3] = 0.4, 0.6
    sims[3, 0], sims[3, 3] = 0.7, 0.1
    #   i2t: i2 own c0 = 0.4 vs {c3: 0.6} -> 1;  i3 own c3 = 0.1 vs {c0: 0.7} -> 1  => [1, 1]
    #   t2i: c0 (i2) 0.4 vs 0.7 -> 1; c3 (i3) 0.1 vs 0.6 -> 1                      => [1, 1]
    res = retrieval_metrics_folds(sims, img, n_folds=2)
    f0, f1 = res["folds"]
    assert f0["n_images"] == 2 and f0["n_captions"] == 3
    assert f1["n_images"] == 2 and f1["n_captions"] == 2
    assert f0["i2t_r1"] == 50.0 and f0["i2t_medr"] == 1.0 and f0["i2t_meanr"] == 1.5
    assert f0["t2i_r1"] == pytest.approx(100 / 3) and f0["t2i_medr"] == 2.0
    assert f0["t2i_meanr"] == pytest.approx(2 / 3 + 1)
    assert f1["i2t_r1"] == 0.0 and f1["i2t_medr"] == 2.0 and f1["t2i_meanr"] == 2.0
    assert res["i2t_r1"] == 25.0
    assert res["i2t_medr"] == 1.5  # mean of per-fold medr, as in SCAN
    assert res["t2i_r1"] == pytest.approx(100 / 6)
    assert res["n_images"] == 4 and res["n_captions"] == 5 and res["n_folds"] == 2
    for key in METRIC_KEYS:
        assert res[key] == pytest.approx((f0[key] + f1[key]) / 2)


def test_folds_equal_blockwise_metrics() -> None:
    rng = np.random.default_rng(3)
    img = np.repeat(np.arange(20), 5)
    sims = rng.standard_normal((20, 100))
    res = retrieval_metrics_folds(sims, img, n_folds=5)
    assert len(res["folds"]) == 5
    for f, fold in enumerate(res["folds"]):
        block = retrieval_metrics(sims[4 * f : 4 * f + 4, 20 * f : 20 * f + 20], img[:20])
        assert_metrics_close(fold, {k: block[k] for k in METRIC_KEYS})
    one = retrieval_metrics_folds(sims, img, n_folds=1)
    assert_metrics_close(one, {k: retrieval_metrics(sims, img)[k] for k in METRIC_KEYS})


def test_folds_errors() -> None:
    img = np.repeat(np.arange(6), 2)
    sims = np.zeros((6, 12))
    with pytest.raises(ValueError, match="divisible"):
        retrieval_metrics_folds(sims, img, n_folds=4)
    with pytest.raises(ValueError, match="positive integer"):
        retrieval_metrics_folds(sims, img, n_folds=0)


def test_fold_protocol_names_the_real_fold_size() -> None:
    """``--fold5`` on fewer than 5,000 images is not "5-fold 1K"."""
    assert M.fold_protocol(5000, 5) == ("5-fold 1K", None)
    label, warning = M.fold_protocol(1000, 5)
    assert label == "5-fold 200"
    assert "folds of 200 images" in warning and "not comparable" in warning
    with pytest.raises(ValueError, match=r"12 images are not divisible into 5 equal folds.*first 10 images"):
        M.fold_protocol(12, 5)
    with pytest.raises(ValueError, match="3 images are not divisible into 5"):
        M.check_folds(3, 5)
    img = np.repeat(np.arange(10), 2)
    res = retrieval_metrics_folds(np.random.default_rng(0).random((10, 20)), img, n_folds=5)
    assert res["fold_size"] == 2
    assert "mean over 5 folds of 2 images" in format_metrics_table(res)


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------
def test_errors() -> None:
    img = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(4), img)
    with pytest.raises(ValueError, match="4 entries but sims has 5"):
        retrieval_metrics(np.zeros((2, 5)), img)
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(np.zeros((2, 4)), np.array([0, 0, 2, 1]))
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(np.zeros((2, 4)), np.array([0, -1, 1, 1]))
    with pytest.raises(ValueError, match=r"no caption.*images 1, 3"):
        retrieval_metrics(np.zeros((4, 4)), np.array([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="integer"):
        retrieval_metrics(np.zeros((2, 4)), np.array([0.0, 0.0, 1.0, 1.0]))
    sims = np.zeros((2, 4))
    sims[1, 2] = np.nan
    sims[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"2 NaN.*image 1, caption 2"):
        retrieval_metrics(sims, img)
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(torch.tensor(sims), img)
    with pytest.raises(ValueError, match="no images"):
        retrieval_metrics(np.zeros((0, 0)), np.zeros(0, dtype=int))


def test_captions_of_image() -> None:
    groups = captions_of_image(np.array([2, 0, 2, 1, 0]), 4)
    assert [g.tolist() for g in groups] == [[1, 4], [3], [0, 2], []]


def test_format_metrics_table() -> None:
    m = retrieval_metrics(HAND_SIMS, HAND_IMG)
    table = format_metrics_table(m)
    lines = table.splitlines()
    assert any(line.split()[:3] == ["R@1", "R@5", "R@10"] for line in lines)
    i2t = next(line for line in lines if line.startswith("i2t")).split()
    assert i2t == ["i2t", "33.33", "100.00", "100.00", "4.00", "3.33"]
    t2i = next(line for line in lines if line.startswith("t2i")).split()
    assert t2i == ["t2i", "16.67", "100.00", "100.00", "2.00", "2.33"]
    assert next(line for line in lines if line.startswith("rsum")).split() == ["rsum", "450.00"]
    folds_table = format_metrics_table(retrieval_metrics_folds(HAND_SIMS, HAND_IMG, n_folds=1))
    assert "i2t" in folds_table and "folds" in folds_table
    assert "-" in format_metrics_table({"i2t_r1": 1.0})
