"""graphmatch.data.regions: the BUTD TSV, precomp .npy and HDF5 region-store readers; open_regions."""
from __future__ import annotations

import base64
import json

import h5py
import numpy as np
import pytest
import torch

from graphmatch.data.precomp import write_precomp
from graphmatch.data.regions import (
    STORE_FORMAT, ButdTsvReader, PrecompReader, RegionFormatError, RegionStore, StoreError,
    open_regions, store_exists, write_butd_tsv,
)
from graphmatch.structures import Regions


def assert_regions_equal(a: Regions, b: Regions) -> None:
    assert a.image_size == b.image_size and a.flags == b.flags
    torch.testing.assert_close(a.boxes, b.boxes, atol=0, rtol=0)
    torch.testing.assert_close(a.features.float(), b.features.float(), atol=0, rtol=0)
    for name in ("labels", "scores", "attr_labels", "attr_scores"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def write_store_by_hand(path, records, *, version=1, labels_of=()):
    """A region-store file in the layout documented in graphmatch.data.regions, written with
    h5py alone (no store writer): the reader is tested against the format, not the writer.
    Images whose index is in ``labels_of`` carry labels (bit 1 of ``present``)."""
    counts = [len(r) for _, r in records]
    rows = sum(counts)
    with h5py.File(path, "w") as h5:
        h5.attrs.update(format=STORE_FORMAT, format_version=version, created="2024-01-01T00:00:00+00:00",
                        extractor_config=json.dumps({"backend": "by-hand"}),
                        feature_dim=records[0][1].features.shape[1], feature_dtype="float32")
        text = h5py.string_dtype("utf-8")
        h5.create_dataset("ids", data=[k for k, _ in records], dtype=text)
        h5.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        h5.create_dataset("image_size", data=np.array([r.image_size for _, r in records], np.int64))
        h5.create_dataset("flags", data=[json.dumps(r.flags) if r.flags else "" for _, r in records], dtype=text)
        h5.create_dataset("present", data=np.array([1 if i in labels_of else 0 for i in range(len(records))],
                                                   np.uint8))
        h5.create_dataset("boxes", data=torch.cat([r.boxes for _, r in records]).numpy())
        h5.create_dataset("features", data=torch.cat([r.features for _, r in records]).numpy())
        h5.create_dataset("labels", data=np.arange(rows, dtype=np.int64) % 7 + 1)


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
    # zero-padding rows (fewer regions than the array holds) are left out, as in training
    padded = feats.copy()
    padded[1, 2:] = 0
    write_precomp(tmp_path / "padded", "test", padded, ["a", "b", "c"], boxes=boxes, image_sizes=sizes)
    r = PrecompReader(tmp_path / "padded", "test").get("1")
    np.testing.assert_array_equal(r.features.numpy(), feats[1, :2])
    np.testing.assert_array_equal(r.boxes.numpy(), boxes[1, :2])
    # no boxes / sizes: zeros and flags
    write_precomp(tmp_path / "bare", "dev", feats, ["a", "b", "c"])
    r = open_regions(tmp_path / "bare").get("1")
    assert r.flags == {"boxes_missing": True, "image_size_estimated": True} and r.image_size == (1, 1)
    write_precomp(tmp_path / "bare", "train", feats, ["a", "b", "c"])
    with pytest.raises(RegionFormatError, match="several precomp splits"):
        open_regions(tmp_path / "bare")


def test_hdf5_and_format_detection(tmp_path):
    recs = [(f"i{i}", butd_regions(i, 3 + i)) for i in range(3)]
    write_store_by_hand(tmp_path / "s.h5", recs, labels_of={1})
    reader = open_regions(tmp_path / "s.h5")
    assert isinstance(reader, RegionStore) and len(reader) == 3 and "i1" in reader
    assert reader.feature_dim == 8 and reader.config == {"backend": "by-hand"}
    for (k, a), (k2, b) in zip(reader, recs):
        assert k == k2
        if k == "i1":  # rows 3..6 of the ragged labels column, marked present for this image only
            assert a.labels.tolist() == [4, 5, 6, 7]
            a.labels = None
        assert_regions_equal(a, b)
    reader.close()
    # HDF5 by signature whatever the name; TSV by content
    (tmp_path / "s.h5").rename(tmp_path / "store.bin")
    assert isinstance(open_regions(tmp_path / "store.bin"), RegionStore)
    write_butd_tsv(tmp_path / "feat.dat", recs)
    tsv = open_regions(tmp_path / "feat.dat")
    assert isinstance(tsv, ButdTsvReader) and tsv.ids() == ["i0", "i1", "i2"]
    (tmp_path / "junk.bin").write_bytes(b"hello")
    with pytest.raises(RegionFormatError, match="unknown region format"):
        open_regions(tmp_path / "junk.bin")


def test_store_segments_are_read_after_the_main_file(tmp_path):
    """A store is its main file plus the committed segments in <store>.parts/ (commit order);
    a later record of an id wins; a store with segments only exists and opens."""
    path = tmp_path / "r.h5"
    parts = tmp_path / "r.h5.parts"
    parts.mkdir()
    first, second = butd_regions(0, 2), butd_regions(1, 4)
    write_store_by_hand(parts / "seg-00000000.h5", [("a", first), ("b", first)])
    (parts / "seg-00000001.h5.tmp").write_bytes(b"an unfinished segment is not read")
    assert store_exists(path) and not path.exists()
    with open_regions(path) as store:
        assert store.ids() == ["a", "b"] and len(store.files) == 1
    write_store_by_hand(parts / "seg-00000001.h5", [("b", second), ("c", second)])
    write_store_by_hand(path, [("a", second)])
    with RegionStore(path) as store:
        assert store.files == [path, parts / "seg-00000000.h5", parts / "seg-00000001.h5"]
        assert store.ids() == ["a", "b", "c"] and store.n_regions == 4 + 4 + 8
        assert_regions_equal(store.get("a"), first)  # the segment after the main file wins
        assert_regions_equal(store.get("b"), second)
        with pytest.raises(KeyError, match=r"'zz' is not in region store .*r\.h5 \(3 images\)"):
            store.get("zz")


def test_store_format_errors_name_the_file(tmp_path):
    with pytest.raises(StoreError, match=r"region store not found: .*none\.h5"):
        RegionStore(tmp_path / "none.h5")
    write_store_by_hand(tmp_path / "new.h5", [("a", butd_regions(0, 2))], version=99)
    with pytest.raises(StoreError, match=r"new\.h5: store format version 99 is newer"):
        RegionStore(tmp_path / "new.h5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.attrs["format"] = "something-else"
    with pytest.raises(StoreError, match=r"other\.h5: not a region store \(format attribute 'something-else'"):
        open_regions(tmp_path / "other.h5")
    (tmp_path / "cut.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(StoreError, match=r"cut\.h5: cannot open as an HDF5 region store"):
        open_regions(tmp_path / "cut.h5")


def test_tsv_with_classes_label_ids_are_zero_based_in_the_file(tmp_path):
    """A row as the bottom-up-attention / LXMERT scripts write it: ``objects_id`` and ``attrs_id``
    are argmax over the class / attribute columns without background, i.e. 0-based over the
    vocabulary lines; ``Regions`` ids are ``line + 1``."""
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
