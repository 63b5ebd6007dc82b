"""Region store: round trip, segments and compaction, resume, locking, merging."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from detectors.store import (
    RegionStore, RegionStoreWriter, StoreError, StoreExistsError, StoreLock, StoreLockedError,
    compatible_configs, merge_stores,
)
from graphmatch.structures import Regions

CONFIG = {"backend": "fake", "options": {"num_regions": 3, "batch_size": 2, "device": "cpu"}}


def make_regions(i: int, n: int = 3, dim: int = 5, *, labels: bool = True, attrs: bool = False) -> Regions:
    g = torch.Generator().manual_seed(i)
    return Regions(
        boxes=(torch.rand(n, 2, 2, generator=g) * 50).sort(dim=1).values.reshape(n, 4),  # x1 <= x2, y1 <= y2
        features=torch.randn(n, dim, generator=g),
        image_size=(60 + i, 40 + i),
        labels=torch.randint(0, 9, (n,), generator=g) if labels else None,
        scores=torch.rand(n, generator=g) if labels else None,
        attr_labels=torch.randint(0, 4, (n, 2), generator=g) if attrs else None,
        attr_scores=torch.rand(n, 2, generator=g) if attrs else None,
        flags={"i": i, "fallback_whole_image": n == 1},
    )


def assert_regions_equal(a: Regions, b: Regions, *, atol: float = 0.0) -> None:
    assert a.image_size == b.image_size
    assert a.flags == b.flags
    torch.testing.assert_close(a.boxes, b.boxes, atol=0, rtol=0)
    torch.testing.assert_close(a.features.float(), b.features.float(), atol=atol, rtol=0 if atol == 0 else 1e-3)
    for name in ("labels", "scores", "attr_labels", "attr_scores"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def assert_stores_equal(p1, p2) -> None:
    with RegionStore(p1) as a, RegionStore(p2) as b:
        assert a.ids() == b.ids()
        assert compatible_configs(a.config, b.config) == []
        for (ia, ra), (ib, rb) in zip(a, b):
            assert ia == ib
            assert_regions_equal(ra, rb)


def test_round_trip_mixed_fields(tmp_path):
    path = tmp_path / "r.h5"
    recs = {
        "a/1": make_regions(1),
        "b": make_regions(2, n=0),                  # no regions at all
        "c": make_regions(3, n=1, labels=False),    # optional fields absent for one image
        "d": make_regions(4, n=4, attrs=True),
    }
    with RegionStoreWriter(path, config=CONFIG, commit_every=2) as w:
        for k, r in recs.items():
            w.add(k, r)
    assert not (tmp_path / "r.h5.parts").exists() and not (tmp_path / "r.h5.lock").exists()
    with RegionStore(path) as s:
        assert s.ids() == list(recs) and len(s) == 4 and "c" in s and "z" not in s
        assert s.files == [path]
        assert s.config == CONFIG and s.feature_dim == 5
        for k, r in recs.items():
            got = s.get(k)
            assert_regions_equal(got, r)
            assert got.features.dtype == torch.float32 and got.boxes.shape == (len(r), 4)
        assert [k for k, _ in s] == list(recs)
        with pytest.raises(KeyError, match="'zz' is not in region store"):
            s.get("zz")
    import h5py
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "graphmatch-regions" and int(f.attrs["format_version"]) == 1
        assert json.loads(f.attrs["extractor_config"]) == CONFIG and f.attrs["created"]


def test_float16_and_empty_store(tmp_path):
    with RegionStoreWriter(tmp_path / "h.h5", config=CONFIG, feature_dtype="float16") as w:
        w.add("x", make_regions(0))
    with RegionStore(tmp_path / "h.h5") as s:
        assert s.feature_dtype == "float16" and s.get("x").features.dtype == torch.float16
        assert_regions_equal(s.get("x"), make_regions(0), atol=1e-2)
    with RegionStoreWriter(tmp_path / "e.h5", config=CONFIG):
        pass
    with RegionStore(tmp_path / "e.h5") as s:
        assert len(s) == 0 and s.ids() == [] and list(s) == []


def test_uncompacted_segments_are_readable_and_resume(tmp_path):
    path = tmp_path / "r.h5"
    w = RegionStoreWriter(path, config=CONFIG, commit_every=2)
    for i in range(5):
        w.add(f"im{i}", make_regions(i))
    # 4 committed (2 segments), 1 buffered: a reader sees the committed ones
    with RegionStore(path) as s:
        assert s.ids() == ["im0", "im1", "im2", "im3"] and len(s.files) == 2
    w.abort()  # e.g. an exception: commit the buffer, no compaction, release the lock
    with pytest.raises(StoreExistsError, match="pass --resume"):
        RegionStoreWriter(path, config=CONFIG)
    with pytest.raises(StoreError, match="differs in: options.num_regions"):
        RegionStoreWriter(path, config={**CONFIG, "options": {"num_regions": 4}}, resume=True)
    with RegionStoreWriter(path, config={**CONFIG, "options": {**CONFIG["options"], "device": "cuda"}},
                           resume=True) as w2:  # run-only keys do not matter
        assert "im4" in w2 and len(w2) == 5
        with pytest.raises(StoreError, match="already in region store"):
            w2.add("im0", make_regions(0))
        w2.add("im5", make_regions(5))
    ref = tmp_path / "ref.h5"
    with RegionStoreWriter(ref, config=CONFIG) as w3:
        for i in range(6):
            w3.add(f"im{i}", make_regions(i))
    assert_stores_equal(path, ref)
    assert not (tmp_path / "r.h5.parts").exists()


def test_feature_dim_mismatch(tmp_path):
    with RegionStoreWriter(tmp_path / "r.h5", config=CONFIG) as w:
        w.add("a", make_regions(0, dim=5))
        with pytest.raises(StoreError, match="8-d features"):
            w.add("b", make_regions(1, dim=8))


def test_second_writer_gets_clear_error(tmp_path):
    path = tmp_path / "r.h5"
    with RegionStoreWriter(path, config=CONFIG):
        with pytest.raises(StoreLockedError) as ei:
            RegionStoreWriter(path, config=CONFIG, resume=True)
        msg = str(ei.value)
        assert str(path) + ".lock" in msg and f"pid {os.getpid()}" in msg and socket.gethostname() in msg
        with pytest.raises(StoreLockedError):
            merge_stores([path], path)
    # released after close
    with RegionStoreWriter(path, config=CONFIG, resume=True):
        pass


def test_two_lock_objects_in_one_process(tmp_path):
    a, b = StoreLock(tmp_path / "r.h5"), StoreLock(tmp_path / "r.h5")
    a.acquire()
    try:
        with pytest.raises(StoreLockedError, match=r"r\.h5\.lock is held by pid \d+"):
            b.acquire()
        assert a.held and not b.held
    finally:
        a.release()
    with b:
        assert b.held
    assert not (tmp_path / "r.h5.lock").exists()


_HOLD_LOCK = """
import sys, time
from detectors.store import RegionStoreWriter
w = RegionStoreWriter(sys.argv[1], config={"backend": "fake"})
print("locked", flush=True)
time.sleep(120)
"""


def test_killed_writer_lock_is_taken_over(tmp_path):
    path = tmp_path / "r.h5"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        with pytest.raises(StoreLockedError, match=f"pid {proc.pid} on host"):
            RegionStoreWriter(path, config={"backend": "fake"})
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lock = tmp_path / "r.h5.lock"
    assert json.loads(lock.read_text())["pid"] == proc.pid  # left behind, but no longer locked
    with RegionStoreWriter(path, config={"backend": "fake"}, resume=True) as w:
        w.add("a", make_regions(0))
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_file_without_a_live_holder_does_not_block(tmp_path):
    path = tmp_path / "r.h5"
    lock = tmp_path / "r.h5.lock"
    lock.write_bytes(b"")  # a writer killed between creating the file and writing its record
    with RegionStoreWriter(path, config=CONFIG) as w:
        w.add("a", make_regions(0))
    for record in ({"pid": 1, "host": "some-other-host", "created": "x"}, "not json"):
        lock.write_text(record if isinstance(record, str) else json.dumps(record))
        with RegionStoreWriter(path, config=CONFIG, resume=True):
            assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_symlinked_store_path_shares_the_lock(tmp_path):
    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    link.symlink_to(real)  # dangling until the store is written
    with RegionStoreWriter(link, config=CONFIG, commit_every=1, compact=False) as w:
        w.add("a", make_regions(0))
        with pytest.raises(StoreLockedError, match=r"real\.h5\.lock"):
            RegionStoreWriter(real, config=CONFIG, resume=True)
        assert (tmp_path / "real.h5.parts").is_dir() and not (tmp_path / "link.h5.parts").exists()
    (tmp_path / "dir").mkdir()
    (tmp_path / "dirlink").symlink_to(tmp_path / "dir", target_is_directory=True)
    with RegionStoreWriter(tmp_path / "dir" / "s.h5", config=CONFIG):
        with pytest.raises(StoreLockedError):
            RegionStoreWriter(tmp_path / "dirlink" / "s.h5", config=CONFIG, resume=True)
    with RegionStoreWriter(real, config=CONFIG, resume=True) as w:
        w.add("b", make_regions(1))
    assert link.is_symlink() and real.is_file() and not (tmp_path / "real.h5.lock").exists()
    with RegionStore(link) as s:
        assert s.ids() == ["a", "b"]


def test_lock_is_never_held_twice_under_contention(tmp_path):
    path = tmp_path / "r.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "r.h5.lock").write_text(json.dumps({"pid": int(dead.stdout), "created": "x",
                                                    "host": socket.gethostname()}))
    holders, overlaps, taken, errors = [0], [0], [0], []
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(150):
            lock = StoreLock(path)
            try:
                lock.acquire()
            except StoreLockedError:
                continue
            except Exception as e:  # noqa: BLE001 - any other error fails the test
                errors.append(e)
                return
            with guard:
                holders[0] += 1
                taken[0] += 1
                overlaps[0] += holders[0] > 1
            time.sleep(0.0005)
            with guard:
                holders[0] -= 1
            lock.release()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and overlaps[0] == 0 and taken[0] > 0


def test_merge_stores(tmp_path):
    a, b, out = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "m.h5"
    with RegionStoreWriter(a, config=CONFIG) as w:
        for i in (0, 2, 4):
            w.add(f"im{i}", make_regions(i))
    with RegionStoreWriter(b, config={**CONFIG, "options": {**CONFIG["options"], "device": "cuda:1"}},
                           commit_every=1, compact=False) as w:  # b stays as segments only
        for i in (1, 3):
            w.add(f"im{i}", make_regions(i, attrs=True))
    assert not b.exists()
    n = merge_stores([a, b], out, order=[f"im{i}" for i in range(5)])
    assert n == 5
    with RegionStore(out) as m:
        assert m.ids() == [f"im{i}" for i in range(5)] and m.files == [out]
        for i in range(5):
            assert_regions_equal(m.get(f"im{i}"), make_regions(i, attrs=i % 2 == 1))
    with pytest.raises(StoreExistsError):
        merge_stores([a], out)
    with pytest.raises(StoreError, match="'im0' is in both"):
        merge_stores([a, out], tmp_path / "x.h5")
    assert merge_stores([a, out], tmp_path / "y.h5", on_duplicate="last") == 5
    other = tmp_path / "o.h5"
    with RegionStoreWriter(other, config={"backend": "other"}) as w:
        w.add("q", make_regions(9))
    with pytest.raises(StoreError, match="configs differ"):
        merge_stores([a, other], tmp_path / "z.h5")


def test_merge_stores_on_duplicate_first_and_last(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    with RegionStoreWriter(a, config=CONFIG) as w:
        for i in (0, 1):
            w.add(f"im{i}", make_regions(i))
    with RegionStoreWriter(b, config=CONFIG) as w:
        w.add("im2", make_regions(2))
        w.add("im1", make_regions(101))  # another record of im1
    assert merge_stores([a, b], tmp_path / "f.h5", on_duplicate="first") == 3
    assert merge_stores([a, b], tmp_path / "l.h5", on_duplicate="last") == 3
    with RegionStore(tmp_path / "f.h5") as f, RegionStore(tmp_path / "l.h5") as last:
        assert f.ids() == ["im0", "im1", "im2"]
        assert_regions_equal(f.get("im1"), make_regions(1))
        assert_regions_equal(last.get("im1"), make_regions(101))
        assert_regions_equal(f.get("im2"), make_regions(2))
        assert_regions_equal(f.get("im0"), last.get("im0"))
    with pytest.raises(ValueError, match="on_duplicate"):
        merge_stores([a, b], tmp_path / "x.h5", on_duplicate="newest")


def test_configs_compare_files_by_content_not_path():
    base = {"backend": "torchvision", "options": {"weights": "./w.safetensors", "class_names": None},
            "weights": {"path": "/a/w.safetensors", "sha256": "11"},
            "class_names": {"path": "/a/v.txt", "sha256": "22", "count": 5}}
    moved = {"backend": "torchvision", "options": {"weights": "w.safetensors", "class_names": "v.txt"},
             "weights": {"path": "/b/w.safetensors", "sha256": "11"},
             "class_names": {"path": "/b/v.txt", "sha256": "22", "count": 5}}
    assert compatible_configs(base, moved) == []
    other = json.loads(json.dumps(moved))
    other["weights"]["sha256"] = "33"
    other["class_names"]["sha256"] = "44"
    assert compatible_configs(base, other) == ["class_names.sha256", "weights.sha256"]
