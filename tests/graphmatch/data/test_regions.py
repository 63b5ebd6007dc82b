"""Readers of precomputed regions: BUTD TSV, precomp .npy layout, HDF5 store; open_regions."""
from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from detectors.readers import (
    ButdTsvReader, PrecompReader, RegionFormatError, open_regions, write_butd_tsv,
)
from detectors.store import RegionStore, RegionStoreWriter
from graphmatch.data.precomp import write_precomp
from graphmatch.structures import Regions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_store import assert_regions_equal  # noqa: E402


def ordered_boxes(b):
    """Random (x1, y1, x2, y2) made valid: x1 <= x2 and y1 <= y2 (Regions rejects inverted boxes)."""
    return torch.cat([torch.minimum(b[:, :2], b[:, 2:]), torch.maximum(b[:, :2], b[:, 2:])], dim=1)


def butd_regions(i: int, n: int, dim: int = 8) -> Regions:
    g = torch.Generator().manual_seed(i)
    return Regions(boxes=ordered_boxes(torch.rand(n, 4, generator=g) * 90), features=torch.rand(n, dim, generator=g),
                   image_size=(100 + i, 80 + i))


def test_tsv_round_trip_fixed_and_adaptive(tmp_path):
    fixed = [(str(391895 + i), butd_regions(i, 36)) for i in range(3)]
    adaptive = [(f"img{i}", butd_regions(10 + i, n)) for i, n in enumerate((10, 57, 100))]
    for name, recs in (("fixed.tsv", fixed), ("adaptive.tsv", adaptive)):
        path = tmp_path / name
        assert write_butd_tsv(path, recs) == 3
        assert path.read_text().splitlines()[0].split("\t")[:4] == \
            [recs[0][0], str(recs[0][1].image_size[0]), str(recs[0][1].image_size[1]), str(len(recs[0][1]))]
        reader = open_regions(path)
        assert isinstance(reader, ButdTsvReader)
        got = list(reader)
        assert [k for k, _ in got] == [k for k, _ in recs]
        for (_, a), (_, b) in zip(got, recs):
            assert_regions_equal(a, b)
        # random access by id
        assert reader.ids() == [k for k, _ in recs] and len(reader) == 3 and recs[1][0] in reader
        assert_regions_equal(reader.get(recs[2][0]), recs[2][1])
        with pytest.raises(KeyError):
            reader.get("nope")
    # several files as one collection
    both = ButdTsvReader([tmp_path / "fixed.tsv", tmp_path / "adaptive.tsv"], feature_dim=None)
    assert len(both) == 6 and both.get("img1").features.shape == (57, 8)


def test_tsv_with_classes_and_python3_bytes_literals(tmp_path):
    r = Regions(boxes=ordered_boxes(torch.rand(5, 4) * 10), features=torch.rand(5, 6), image_size=(40, 30),
                labels=torch.arange(5), scores=torch.rand(5), attr_labels=torch.arange(5) + 1,
                attr_scores=torch.rand(5))
    write_butd_tsv(tmp_path / "c.tsv", [("a", r)], with_classes=True)
    (k, got), = list(ButdTsvReader(tmp_path / "c.tsv"))
    assert k == "a" and got.image_size == (40, 30)
    assert_regions_equal(got, r)
    # b'...' wrapped base64 fields, as written by careless Python 3 ports
    line = (tmp_path / "c.tsv").read_text().rstrip("\n").split("\t")
    line[-1] = f"b'{line[-1]}'"
    (tmp_path / "d.tsv").write_text("\t".join(line) + "\n")
    torch.testing.assert_close(ButdTsvReader(tmp_path / "d.tsv").get("a").features, r.features)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.asarray(a, np.float32).tobytes()).decode()


def test_malformed_tsv_errors_name_line_and_record(tmp_path):
    good = ["7", "50", "40", "2", _b64(np.zeros((2, 4))), _b64(np.ones((2, 3)))]
    cases = {
        "bad base64": (good[:4] + ["@@not base64@@", good[5]], r"line 2 \(image_id 9\): field boxes is not valid base64"),
        "byte count": (good[:3] + ["3", good[4], good[5]], r"line 2 \(image_id 9\): field boxes has 32 bytes; expected num_boxes \(3\)"),
        "feature dim": (good[:4] + [good[4], _b64(np.ones((2, 4)))], r"line 2 \(image_id 9\): field features has 32 bytes = num_boxes \(2\) x 4"),
        "not multiple": (good[:4] + [good[4], _b64(np.ones(5))], r"line 2 \(image_id 9\): field features has 20 bytes, not a multiple of num_boxes \(2\)"),
        "missing field": (good[:5], r"line 2: 5 tab-separated fields; expected 6"),
        "bad number": (good[:1] + ["wide"] + good[2:], r"line 2 \(image_id 9\): field image_w is not a number"),
    }
    for name, (row, pattern) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.tsv"
        row = ["9"] + row[1:]
        path.write_text("\t".join(["7"] + good[1:]) + "\n" + "\t".join(row) + "\n")
        with pytest.raises(RegionFormatError, match=pattern) as ei:
            list(ButdTsvReader(path))
        assert str(path) in str(ei.value), name


def test_precomp_reader(tmp_path):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((3, 4, 6)).astype(np.float32)
    boxes = np.sort(rng.uniform(0, 50, (3, 4, 2, 2)), axis=2).reshape(3, 4, 4).astype(np.float32)  # x1 <= x2, y1 <= y2
    sizes = np.array([[64, 48], [50, 50], [80, 60]], np.float32)
    write_precomp(tmp_path / "data", "test", feats, ["a cat", "a dog", "two birds"],
                  image_ids=["x1", "x2", "x3"], boxes=boxes, image_sizes=sizes)
    for reader in (open_regions(tmp_path / "data"), open_regions(tmp_path / "data" / "test_ims.npy"),
                   PrecompReader(tmp_path / "data", "test")):
        assert isinstance(reader, PrecompReader)
        assert reader.ids() == ["x1", "x2", "x3"] and len(reader) == 3 and "x2" in reader
        for i, (k, r) in enumerate(reader):
            assert k == f"x{i + 1}" and r.image_size == tuple(int(v) for v in sizes[i])
            np.testing.assert_array_equal(r.features.numpy(), feats[i])
            np.testing.assert_array_equal(r.boxes.numpy(), boxes[i])
        np.testing.assert_array_equal(reader.get("x3").features.numpy(), feats[2])
    # no boxes / sizes: zeros and flags
    write_precomp(tmp_path / "bare", "dev", feats, ["a", "b", "c"])
    r = open_regions(tmp_path / "bare").get("1")
    assert r.flags == {"boxes_missing": True, "image_size_estimated": True} and r.image_size == (1, 1)
    write_precomp(tmp_path / "bare", "train", feats, ["a", "b", "c"])
    with pytest.raises(RegionFormatError, match="several precomp splits"):
        open_regions(tmp_path / "bare")


def test_hdf5_and_format_detection(tmp_path):
    recs = [(f"i{i}", butd_regions(i, 3 + i)) for i in range(3)]
    with RegionStoreWriter(tmp_path / "s.h5", config={"backend": "x"}) as w:
        w.add_many(recs)
    reader = open_regions(tmp_path / "s.h5")
    assert isinstance(reader, RegionStore)
    for (k, a), (k2, b) in zip(reader, recs):
        assert k == k2
        assert_regions_equal(a, b)
    # HDF5 by signature whatever the name; TSV by content
    (tmp_path / "s.h5").rename(tmp_path / "store.bin")
    assert isinstance(open_regions(tmp_path / "store.bin"), RegionStore)
    write_butd_tsv(tmp_path / "feat.dat", recs)
    tsv = open_regions(tmp_path / "feat.dat")
    assert isinstance(tsv, ButdTsvReader) and tsv.ids() == ["i0", "i1", "i2"]
    (tmp_path / "junk.bin").write_bytes(b"hello")
    with pytest.raises(RegionFormatError, match="unknown region format"):
        open_regions(tmp_path / "junk.bin")


def test_tsv_with_classes_label_ids_are_zero_based_in_the_file(tmp_path):
    """A row as the bottom-up-attention / LXMERT scripts write it: ``objects_id`` and ``attrs_id``
    are argmax over the class / attribute columns without background, i.e. 0-based over the
    vocabulary lines; ``Regions`` ids are ``line + 1``."""
    from detectors.base import load_class_names

    def enc(a, dtype):
        return base64.b64encode(np.asarray(a, dtype).tobytes()).decode()

    objects_id, attrs_id = [0, 5, 1599], [0, 2, 399]
    boxes = np.array([[1, 2, 10, 12], [0, 0, 5, 5], [3, 3, 39, 29]], np.float32)
    feats = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    header = "\t".join(["img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id",
                        "attrs_conf", "num_boxes", "boxes", "features"])
    row = "\t".join(["COCO_val2014_000000000042", "30", "40", enc(objects_id, np.int64),
                     enc([0.9, 0.5, 0.2], np.float32), enc(attrs_id, np.int64),
                     enc([0.3, 0.2, 0.1], np.float32), "3", enc(boxes, np.float32),
                     enc(feats, np.float32)])
    for name, text in (("h.tsv", header + "\n" + row + "\n"), ("n.tsv", row + "\n")):
        (tmp_path / name).write_text(text)
        (k, r), = list(ButdTsvReader(tmp_path / name))
        assert k == "COCO_val2014_000000000042" and r.image_size == (40, 30)
        assert r.labels.tolist() == [1, 6, 1600] and r.attr_labels.tolist() == [1, 3, 400]
        np.testing.assert_array_equal(r.boxes.numpy(), boxes)
    names = load_class_names()
    assert [names[i - 1] for i in r.labels.tolist()] == [names[i] for i in objects_id]
    # writing gives back the file's 0-based ids; background (0) is written as -1
    write_butd_tsv(tmp_path / "w.tsv", [("42", r)], with_classes=True)
    fields = (tmp_path / "w.tsv").read_text().rstrip("\n").split("\t")
    assert np.frombuffer(base64.b64decode(fields[3]), np.int64).tolist() == objects_id
    assert np.frombuffer(base64.b64decode(fields[5]), np.int64).tolist() == attrs_id
    bg = Regions(boxes=torch.zeros(1, 4), features=torch.zeros(1, 4), image_size=(4, 4),
                 labels=torch.zeros(1, dtype=torch.long), scores=torch.zeros(1))
    write_butd_tsv(tmp_path / "bg.tsv", [("bg", bg)], with_classes=True)
    fields = (tmp_path / "bg.tsv").read_text().rstrip("\n").split("\t")
    assert np.frombuffer(base64.b64decode(fields[3]), np.int64).tolist() == [-1]
    assert ButdTsvReader(tmp_path / "bg.tsv").get("bg").labels.tolist() == [0]
