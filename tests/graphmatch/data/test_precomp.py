"""Tests for graphmatch.data.precomp: the precomp layout reader / writer and its error messages."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from graphmatch.data import precomp
from graphmatch.data.precomp import DataError, PrecompSplit, load_precomp, write_precomp

N, K, R, D = 4, 2, 3, 5


def _features(n: int = N, r: int = R, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, r, d), dtype=np.float32)


def _captions(n: int = N, k: int = K) -> list[str]:
    return [f"image {i} caption {j}" for i in range(n) for j in range(k)]


def _boxes(n: int = N, r: int = R) -> np.ndarray:
    b = np.random.default_rng(1).uniform(0, 100, (n, r, 2))
    return np.concatenate([b, b + 10], axis=2).astype(np.float32)


def _write(root: Path, **kw) -> None:
    args = dict(features=_features(), captions=_captions())
    args.update(kw)
    write_precomp(root, "train", **args)


def _err(root: Path, split: str = "train", **kw) -> str:
    with pytest.raises(DataError) as info:
        load_precomp(root, split, **kw)
    return str(info.value)


# ------------------------------------------------------------------------- round trips
def test_round_trip_contiguous_without_ids(tmp_path) -> None:
    feats = _features()
    write_precomp(tmp_path, "train", feats, _captions())
    assert not (tmp_path / "train_ids.txt").exists()
    s = load_precomp(tmp_path, "train")
    assert isinstance(s, PrecompSplit)
    assert isinstance(s.features, np.memmap)
    np.testing.assert_array_equal(np.asarray(s.features), feats)
    assert (s.n_images, s.n_captions, s.n_regions, s.feature_dim) == (N, N * K, R, D)
    assert s.captions == _captions()
    assert s.img_of_caption.dtype == np.int64
    assert s.img_of_caption.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [c.tolist() for c in s.captions_of_image] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert s.image_ids == ["0", "1", "2", "3"]
    assert s.captions_per_image == K
    assert s.boxes is None and s.image_sizes is None
    m = load_precomp(tmp_path, "train", mmap=False)
    assert not isinstance(m.features, np.memmap)


def test_round_trip_per_image_ids_boxes_sizes(tmp_path) -> None:
    ids = ["img_a", "img_b", "img_c", "img_d"]
    sizes = np.array([[640, 480], [500, 375], [320, 240], [800, 600]])
    _write(tmp_path, image_ids=ids, boxes=_boxes(), image_sizes=sizes)
    lines = (tmp_path / "train_ids.txt").read_text().splitlines()
    assert lines == ids
    s = load_precomp(tmp_path, "train")
    assert s.image_ids == ids
    assert s.img_of_caption.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    np.testing.assert_allclose(s.boxes, _boxes())
    assert s.image_sizes.dtype == np.float32
    np.testing.assert_array_equal(s.image_sizes, sizes)


def test_round_trip_per_caption_ids(tmp_path) -> None:
    caps = ["a b", "c d", "e f", "g h", "i j", "k l", "m n"]
    img = [0, 0, 1, 2, 2, 2, 3]
    _write(tmp_path, captions=caps, img_of_caption=img, image_ids=["w", "x", "y", "z"])
    assert (tmp_path / "train_ids.txt").read_text().splitlines() == \
        ["w", "w", "x", "y", "y", "y", "z"]
    s = load_precomp(tmp_path, "train")
    assert s.img_of_caption.tolist() == img
    assert s.image_ids == ["w", "x", "y", "z"]
    assert [c.tolist() for c in s.captions_of_image] == [[0, 1], [2], [3, 4, 5], [6]]
    assert s.captions_per_image is None


def test_per_caption_ids_out_of_row_order_is_an_error(tmp_path) -> None:
    # interleaved ids: the rows of such a file cannot be known, so it names the first line out of order
    write_precomp(tmp_path, "val", _features(n=3), ["one", "two", "three", "four", "five", "six"])
    (tmp_path / "val_ids.txt").write_text("b\na\nb\nc\na\nc\n", encoding="utf-8")
    msg = _err(tmp_path, "val")
    assert "val_ids.txt: line 3" in msg and "'b' reappears" in msg and "contiguous block" in msg
    # blocks in row order are fine
    (tmp_path / "val_ids.txt").write_text("b\nb\na\nc\nc\nc\n", encoding="utf-8")
    s = load_precomp(tmp_path, "val")
    assert s.image_ids == ["b", "a", "c"] and s.img_of_caption.tolist() == [0, 0, 1, 2, 2, 2]


def test_shuffled_per_caption_ids_are_caught(tmp_path) -> None:
    # 120 images x 5 captions, caption and id lines shuffled together: accepted before, with few
    # captions on their image; now an error naming the file and the first line out of order
    n, k = 120, 5
    caps = [f"image {i} caption {j}" for i in range(n) for j in range(k)]
    ids = [f"img{i:04d}" for i in range(n) for _ in range(k)]
    order = np.random.default_rng(0).permutation(n * k)
    write_precomp(tmp_path, "train", _features(n=n), [caps[j] for j in order])
    (tmp_path / "train_ids.txt").write_text("".join(ids[j] + "\n" for j in order), encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_precomp(tmp_path, "train")
    assert info.value.code == "ids_order" and info.value.path.endswith("train_ids.txt")
    assert re.search(r"train_ids.txt: line \d+: image id 'img\d{4}' reappears", str(info.value))
    # with the id of each feature row given, the same shuffled file is an explicit map
    (tmp_path / "train_ims_ids.txt").write_text("".join(f"img{i:04d}\n" for i in range(n)), encoding="utf-8")
    s = load_precomp(tmp_path, "train")
    assert all(s.captions[c].startswith(f"image {i} ") for i in range(n) for c in s.captions_of_image[i])
    assert s.image_ids[7] == "img0007" and s.captions_per_image == k
    # an id the rows do not know, and a row without a caption, are named
    (tmp_path / "train_ims_ids.txt").write_text("".join(f"img{i:04d}\n" for i in range(1, n + 1)), encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_ids.txt: line" in msg and "is not in train_ims_ids.txt" in msg


def test_per_caption_ids_default_names(tmp_path) -> None:
    _write(tmp_path, captions=["a", "b", "c", "d", "e"], img_of_caption=[0, 1, 1, 2, 3])
    s = load_precomp(tmp_path, "train")
    assert s.image_ids == ["0", "1", "2", "3"]
    assert s.img_of_caption.tolist() == [0, 1, 1, 2, 3]


def test_boxes_without_sizes(tmp_path) -> None:
    _write(tmp_path, boxes=_boxes())
    s = load_precomp(tmp_path, "train")
    assert s.boxes.shape == (N, R, 4) and s.image_sizes is None


def test_legacy_dict_sizes(tmp_path) -> None:
    _write(tmp_path, boxes=_boxes())
    recs = np.array([{"image_w": 640, "image_h": 480}, {"image_w": 500, "image_h": 375},
                     {"image_w": 320, "image_h": 240}, {"image_w": 800, "image_h": 600}],
                    dtype=object)
    np.save(tmp_path / "train_ims_size.npy", recs, allow_pickle=True)
    s = load_precomp(tmp_path, "train")
    np.testing.assert_array_equal(s.image_sizes,
                                  [[640, 480], [500, 375], [320, 240], [800, 600]])
    assert s.image_sizes.dtype == np.float32


def test_crlf_and_trailing_whitespace_are_tolerated(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_bytes(
        b"\xef\xbb\xbfa b\r\nc d \r\ne f\r\ng h\r\ni j\r\nk l\r\nm n\r\no p")  # BOM, no final \n
    s = load_precomp(tmp_path, "train")
    assert s.captions[:2] == ["a b", "c d"] and s.n_captions == 8


def test_write_removes_stale_optional_files(tmp_path) -> None:
    _write(tmp_path, image_ids=list("abcd"), boxes=_boxes(), image_sizes=np.ones((N, 2)))
    _write(tmp_path)
    assert not (tmp_path / "train_ids.txt").exists()
    assert not (tmp_path / "train_ims_bbx.npy").exists()
    assert not (tmp_path / "train_ims_size.npy").exists()
    assert load_precomp(tmp_path, "train").image_ids == ["0", "1", "2", "3"]


@pytest.mark.parametrize("kw, message", [
    (dict(features=np.zeros((4, 5))), "float array"),
    (dict(features=np.zeros((4, 3, 5), np.int32)), "float array"),
    (dict(captions=["a\nb"] * 8), "line break"),
    (dict(captions=["!!"] * 8), "no word token"),
    (dict(captions=["a"] * 7), "multiple"),
    (dict(image_ids=["a", "b", "c"]), "3 image ids"),
    (dict(image_ids=["a", "a", "b", "c"]), "not distinct"),
    (dict(image_ids=["a", " b", "c", "d"]), "whitespace"),
    (dict(img_of_caption=[1, 0, 1, 1, 2, 2, 3, 3]), "increasing order"),
    (dict(img_of_caption=[0, 0, 0, 0, 1, 1, 2, 2]), "every image"),
    (dict(boxes=np.zeros((4, 3, 5))), "boxes"),
    (dict(image_sizes=np.zeros((4, 3))), "image_sizes"),
])
def test_write_rejects_bad_arguments(tmp_path, kw, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _write(tmp_path, **kw)


# ------------------------------------------------------------------------- subsets
def test_subset_images(tmp_path) -> None:
    _write(tmp_path, image_ids=list("abcd"), boxes=_boxes(),
           image_sizes=np.arange(8).reshape(4, 2) + 1)
    s = load_precomp(tmp_path, "train")
    t = s.subset_images([2, 0])
    assert t.n_images == 2 and t.n_captions == 4
    assert t.image_ids == ["c", "a"]
    assert t.captions == ["image 2 caption 0", "image 2 caption 1",
                          "image 0 caption 0", "image 0 caption 1"]
    assert t.img_of_caption.tolist() == [0, 0, 1, 1]
    assert [c.tolist() for c in t.captions_of_image] == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(t.features, np.asarray(s.features)[[2, 0]])
    np.testing.assert_array_equal(t.boxes, s.boxes[[2, 0]])
    np.testing.assert_array_equal(t.image_sizes, s.image_sizes[[2, 0]])
    assert t.root == s.root and t.split == s.split
    by_mask = s.subset_images(np.array([False, True, True, False]))
    assert by_mask.image_ids == ["b", "c"] and by_mask.n_captions == 4
    assert s.subset_images([]).n_captions == 0
    assert s.subset_images([-1]).image_ids == ["d"]
    with pytest.raises(ValueError, match="duplicates"):
        s.subset_images([1, 1])
    with pytest.raises(IndexError):
        s.subset_images([4])


def test_subset_images_uneven_groups(tmp_path) -> None:
    _write(tmp_path, captions=["a", "b", "c", "d", "e"], img_of_caption=[0, 1, 1, 2, 3])
    t = load_precomp(tmp_path, "train").subset_images([3, 1])
    assert t.captions == ["e", "b", "c"]
    assert t.img_of_caption.tolist() == [0, 1, 1]


# ------------------------------------------------------------------------- errors
def test_missing_folder(tmp_path) -> None:
    msg = _err(tmp_path / "absent")
    assert "absent" in msg and "not found" in msg and "train_ims.npy" in msg


def test_missing_features_file(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ims.npy").unlink()
    msg = _err(tmp_path)
    assert str(tmp_path / "train_ims.npy") in msg and "expected layout" in msg


def test_missing_captions_file(tmp_path) -> None:
    _write(tmp_path)
    msg = _err(tmp_path, split="dev")
    assert str(tmp_path / "dev_ims.npy") in msg
    (tmp_path / "train_caps.txt").unlink()
    msg = _err(tmp_path)
    assert str(tmp_path / "train_caps.txt") in msg and "captions" in msg


def test_features_not_3d(tmp_path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train_ims.npy", np.zeros((4, 15), np.float32))
    msg = _err(tmp_path)
    assert "train_ims.npy" in msg and "3-D" in msg and "(4, 15)" in msg


def test_features_not_float(tmp_path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train_ims.npy", np.zeros((4, 3, 5), np.int64))
    msg = _err(tmp_path)
    assert "train_ims.npy" in msg and "float" in msg and "int64" in msg


def test_features_not_npy(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ims.npy").write_bytes(b"not an npy file")
    msg = _err(tmp_path)
    assert "train_ims.npy" in msg and "npy" in msg


def test_features_empty(tmp_path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train_ims.npy", np.zeros((0, 3, 5), np.float32))
    assert "empty" in _err(tmp_path)


def test_boxes_wrong_shape(tmp_path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train_ims_bbx.npy", np.zeros((4, 3, 2), np.float32))
    msg = _err(tmp_path)
    assert "train_ims_bbx.npy" in msg and "(4, 3, 2)" in msg and "(4, 3, 4)" in msg


def test_boxes_not_finite(tmp_path) -> None:
    b = _boxes()
    b[2, 1, 0] = np.nan
    _write(tmp_path, boxes=b)
    msg = _err(tmp_path)
    assert "train_ims_bbx.npy" in msg and "image row 2 region 1" in msg and "not finite" in msg


def test_sizes_wrong_shape(tmp_path) -> None:
    _write(tmp_path)
    np.save(tmp_path / "train_ims_size.npy", np.ones((4, 3), np.float32))
    msg = _err(tmp_path)
    assert "train_ims_size.npy" in msg and "(4, 3)" in msg and "(4, 2)" in msg
    np.save(tmp_path / "train_ims_size.npy", np.ones((5, 2), np.float32))
    assert "(5, 2)" in _err(tmp_path)


def test_sizes_not_positive(tmp_path) -> None:
    sizes = np.ones((4, 2))
    sizes[3, 1] = 0
    _write(tmp_path, image_sizes=sizes)
    msg = _err(tmp_path)
    assert "train_ims_size.npy" in msg and "record(s) 3" in msg


def test_legacy_sizes_bad_record(tmp_path) -> None:
    _write(tmp_path)
    recs = np.array([{"image_w": 1, "image_h": 2}, {"image_w": 3}, {}, {}], dtype=object)
    np.save(tmp_path / "train_ims_size.npy", recs, allow_pickle=True)
    msg = _err(tmp_path)
    assert "train_ims_size.npy" in msg and "record 1" in msg and "'image_h'" in msg
    recs = np.array([{"image_w": 1, "image_h": 2}, [3, 4], {}, {}], dtype=object)
    np.save(tmp_path / "train_ims_size.npy", recs, allow_pickle=True)
    assert "record 1 is a list" in _err(tmp_path)
    recs = np.array([{"image_w": 1, "image_h": 2}] * 3, dtype=object)
    np.save(tmp_path / "train_ims_size.npy", recs, allow_pickle=True)
    assert "(3,)" in _err(tmp_path)


def test_caption_count_not_multiple(tmp_path) -> None:
    _write(tmp_path)
    with open(tmp_path / "train_caps.txt", "a", encoding="utf-8") as f:
        f.write("one caption too many\n")
    msg = _err(tmp_path)
    assert "train_caps.txt" in msg and "train_ims.npy" in msg
    assert "9 captions" in msg and "4 images" in msg


def test_caption_count_not_multiple_with_per_image_ids(tmp_path) -> None:
    _write(tmp_path, image_ids=list("abcd"))
    with open(tmp_path / "train_caps.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    msg = _err(tmp_path)
    assert "9 captions" in msg and "4 images" in msg and "train_ids.txt" in msg


def test_nan_features(tmp_path, monkeypatch) -> None:
    feats = _features(n=10)
    feats[3, 1, 2] = np.nan
    feats[7, 0, 0] = np.inf
    feats[8, 2, 4] = -np.inf
    write_precomp(tmp_path, "train", feats, [f"cap {i}" for i in range(10)])
    msg = _err(tmp_path)
    assert "train_ims.npy" in msg and "first bad image row 3" in msg and "3 of 10" in msg
    # chunked scan (one row per chunk) reports the same
    monkeypatch.setattr(precomp, "_FINITE_CHUNK_BYTES", 1)
    assert "first bad image row 3" in _err(tmp_path) and "3 of 10" in _err(tmp_path)
    s = load_precomp(tmp_path, "train", check_finite=False)
    assert s.n_images == 10


@pytest.mark.parametrize("content, line, what", [
    ("a b\nc d\n\ne f\ng h\ni j\nk l\nm n\n", "3", "empty or whitespace-only"),
    ("a b\nc d\ne f\n   \t \ng h\ni j\nk l\nm n\n", "4", "empty or whitespace-only"),
    ("a b\nc d\ne f\ng h\ni j\n... !!\nk l\nm n\n", "6", "no word token"),
    ("a b\nc d\ne f\ng h\ni j\nk l\nm n\n\n", "8", "empty or whitespace-only"),
])
def test_bad_captions(tmp_path, content: str, line: str, what: str) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_text(content, encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_caps.txt" in msg and what in msg
    assert re.search(rf"line\(s\) {line}\b", msg)


def test_many_empty_captions_are_summarised(tmp_path) -> None:
    _write(tmp_path, captions=["x"] * 40)
    (tmp_path / "train_caps.txt").write_text("\n" * 40, encoding="utf-8")
    msg = _err(tmp_path)
    assert "line(s) 1, 2, 3, 4, 5, ... (40 in all)" in msg


def test_empty_captions_file(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_bytes(b"")
    assert "no captions" in _err(tmp_path)


def test_caption_not_utf8(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_bytes(b"a b\nc d\ncaf\xe9 au lait\ng h\ni j\nk l\n"
                                              b"m n\no p\n")
    msg = _err(tmp_path)
    assert "train_caps.txt" in msg and "line 3" in msg and "UTF-8" in msg


def test_ids_wrong_line_count(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ids.txt").write_text("a\nb\nc\n", encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_ids.txt" in msg and "3 lines" in msg and "4" in msg and "8" in msg


def test_ids_per_caption_wrong_distinct_count(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ids.txt").write_text("a\na\nb\nb\nc\nc\nc\nc\n", encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_ids.txt" in msg and "3 distinct" in msg and "4 images" in msg


def test_ids_per_image_duplicate(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ids.txt").write_text("a\nb\na\nc\n", encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_ids.txt" in msg and "line 3" in msg and "repeats line 1" in msg


def test_ids_empty_line(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ids.txt").write_text("a\n\nc\nd\n", encoding="utf-8")
    msg = _err(tmp_path)
    assert "train_ids.txt" in msg and "line(s) 2" in msg


def test_ids_not_utf8(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_ids.txt").write_bytes(b"a\nb\n\xff\nd\n")
    msg = _err(tmp_path)
    assert "train_ids.txt" in msg and "line 3" in msg


# ------------------------------------------------------------------------- encodings, line ends
def test_utf16_captions_are_named(tmp_path) -> None:
    _write(tmp_path)
    text = "".join(c + "\n" for c in _captions())
    caps = tmp_path / "train_caps.txt"
    caps.write_bytes(text.encode("utf-16"))  # with a byte-order mark
    with pytest.raises(DataError) as info:
        load_precomp(tmp_path, "train")
    assert "train_caps.txt" in str(info.value) and "UTF-16 LE" in str(info.value)
    assert info.value.code == "encoding"
    caps.write_bytes(text.encode("utf-16-le"))  # no byte-order mark: NUL bytes
    msg = _err(tmp_path)
    assert "train_caps.txt" in msg and "NUL bytes" in msg and "UTF-16 LE without a byte-order mark" in msg


def test_cr_only_captions_are_read_as_lines(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_bytes("".join(c + "\r" for c in _captions()).encode())
    s = load_precomp(tmp_path, "train")
    assert s.captions == _captions() and s.captions_per_image == K
    lines, info = precomp.read_text_lines(tmp_path / "train_caps.txt")
    assert info["line_endings"] == "CR" and len(lines) == N * K


def test_lone_cr_in_lf_file_is_named(tmp_path) -> None:
    _write(tmp_path)
    caps = _captions()
    (tmp_path / "train_caps.txt").write_bytes(("\n".join(caps[:3]) + "\n" + caps[3] + "\r" + caps[4] + "\n"
                                               + "\n".join(caps[5:]) + "\n").encode())
    msg = _err(tmp_path)
    assert "train_caps.txt: line 4" in msg and "carriage return" in msg


def test_utf8_bom_is_dropped(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "train_caps.txt").write_bytes(b"\xef\xbb\xbf" + "".join(c + "\n" for c in _captions()).encode())
    assert load_precomp(tmp_path, "train").captions[0] == _captions()[0]


# ------------------------------------------------------------------------- zero padding
def test_image_with_only_zero_rows_is_named(tmp_path) -> None:
    feats = _features()
    feats[2] = 0.0
    _write(tmp_path, features=feats)
    msg = _err(tmp_path)
    assert "train_ims.npy: image row 2 has only all-zero region features" in msg


def test_zero_rows_are_masked_out_of_image_graphs(tmp_path) -> None:
    from graphmatch.data.dataset import MatchingData
    from graphmatch.data.vocab import Vocabulary
    from graphmatch.graphs import to_dense

    feats = _features()
    feats[1, 1:] = 0.0  # image 1 has one region and two padding rows
    b = _boxes()
    b[1, 1:] = 0.0
    _write(tmp_path, features=feats, boxes=b)
    s = load_precomp(tmp_path, "train")
    data = MatchingData(s, Vocabulary.build(s.captions))
    g = data.image_graph(1)
    assert g.x.shape == (1, D) and g.boxes.shape == (1, 4)
    _, mask = to_dense(data.pair_batch([0, 2]).images)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    # a hand-built split with an all-zero image fails when its graph is built, naming file and row
    s.features = np.zeros_like(feats)
    with pytest.raises(DataError, match=r"train_ims.npy: image row 0 has only all-zero"):
        MatchingData(s, Vocabulary.build(s.captions)).image_graph(0)


def test_l2norm_of_zero_vectors_has_no_nan():
    import torch

    from graphmatch.nn.functional import l2norm

    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    y = l2norm(x)
    assert y.flatten().tolist() == pytest.approx([0.6, 0.8, 0.0, 0.0])
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[1].tolist() == [0.0, 0.0]


def test_training_on_zero_padded_regions_has_finite_loss(tiny_synthetic, tmp_path, monkeypatch) -> None:
    import math

    from graphmatch.config import load_config
    from graphmatch.engine.train import train_experiment

    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "padded"
    for split in ("train", "dev"):
        s = load_precomp(tiny_synthetic, split)
        feats = np.array(s.features)
        feats[:, 5:] = 0.0  # the last 3 of 8 regions of every image are zero padding
        boxes = np.array(s.boxes)
        boxes[:, 5:] = 0.0
        write_precomp(root, split, feats, s.captions, image_ids=s.image_ids, boxes=boxes,
                      image_sizes=s.image_sizes)
    cfg = load_config(None, [
        f"data.root={root}", f"output_dir={tmp_path / 'run'}", "model.embed_dim=16", "model.text.word_dim=8",
        "train.batch_size=16", "train.epochs=1", "train.max_steps_per_epoch=3", "train.device=cpu",
        "train.log_every=0", "eval.batch_size=64", "data.max_val_images=10"])
    summary = train_experiment(cfg, progress=False)
    assert summary["history"] and all(math.isfinite(h["loss"]) for h in summary["history"])
