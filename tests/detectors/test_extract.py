"""The extraction job: walking, failures, resume (exception and SIGKILL), sharding + merge, CLI."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional

import numpy as np
import pytest
import torch

from detectors.cli import add_extract_arguments, run_extract
from detectors.extract import (
    ExtractionError, extract_images, image_id_for, list_images, merge_shards,
)
from detectors.store import RegionStore, StoreExistsError
from graphmatch.structures import Regions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_store import assert_stores_equal  # noqa: E402


class FakeExtractor:
    """Deterministic stand-in for a region extractor: a 2x2 grid of boxes, features = mean colour
    per box tiled twice (6-d); a uniform image has no detections -> one whole-image fallback box."""

    feature_dim = 6

    def __init__(self, fail_after: Optional[int] = None, delay: float = 0.0) -> None:
        self.fail_after = fail_after
        self.delay = delay
        self.n = 0
        self.options = SimpleNamespace(batch_size=2)

    def config(self) -> dict:
        return {"backend": "fake", "grid": 2, "options": {"batch_size": 2, "device": "cpu"}}

    def extract(self, images: List[np.ndarray]) -> List[Regions]:
        out = []
        for a in images:
            if self.fail_after is not None and self.n >= self.fail_after:
                raise RuntimeError(f"fake failure after {self.n} images")
            time.sleep(self.delay)
            h, w = a.shape[:2]
            if a.std() == 0:
                box = torch.tensor([[0.0, 0.0, w, h]])
                feat = torch.from_numpy(np.tile(a.reshape(-1, 3).mean(0), 2)).float()[None]
                out.append(Regions(box, feat, (w, h), labels=torch.zeros(1, dtype=torch.long),
                                   scores=torch.zeros(1), flags={"fallback_whole_image": True}))
            else:
                boxes, feats = [], []
                for y0, y1 in ((0, h // 2), (h // 2, h)):
                    for x0, x1 in ((0, w // 2), (w // 2, w)):
                        boxes.append([x0, y0, x1, y1])
                        feats.append(np.tile(a[y0:y1, x0:x1].reshape(-1, 3).mean(0), 2))
                out.append(Regions(torch.tensor(boxes, dtype=torch.float32),
                                   torch.tensor(np.array(feats), dtype=torch.float32), (w, h),
                                   labels=torch.arange(4), scores=torch.full((4,), 0.5),
                                   flags={"fallback_whole_image": False}))
            self.n += 1
        return out


def make_images(root: Path, n: int = 9, *, bad: bool = False) -> Path:
    """``n`` small PNG/JPEG images in two folders (+ a uniform one); with ``bad``: a truncated
    JPEG, a zero-byte .jpg and a .txt file."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 256, (24 + i, 32, 3), dtype=np.uint8)
        folder = root / "sub" if i % 3 == 0 else root
        Image.fromarray(arr).save(folder / f"img{i:02d}.png")
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(root / "uniform.png")
    if bad:
        buf = root / "broken.jpg"
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, quality=90)
        data = buf.read_bytes()
        buf.write_bytes(data[: len(data) // 2])
        (root / "empty.jpg").write_bytes(b"")
        (root / "notes.txt").write_text("not an image")
    return root


def test_listing_and_ids(tmp_path):
    root = make_images(tmp_path / "im", 4, bad=True)
    images, skipped = list_images(root)
    ids = [e.image_id for e in images]
    rels = [e.path.relative_to(root).as_posix() for e in images]
    assert rels == sorted(rels)  # sorted by relative path
    assert "sub/img00" in ids and "img01" in ids and "broken" in ids and skipped == ["notes.txt"]
    assert image_id_for("val/COCO_val2014_000000391895.jpg", True) == "391895"
    assert image_id_for("x/1000092795.jpg", True) == "1000092795"
    assert image_id_for("x/cat.jpg", True) == "cat" and image_id_for("x/cat.jpg") == "x/cat"
    (root / "img01.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="both have image id 'img01'"):
        list_images(root)


def test_extract_failures_skips_and_fallback(tmp_path, capsys):
    root = make_images(tmp_path / "im", 5, bad=True)
    out = tmp_path / "regions.h5"
    s = extract_images(root, out, FakeExtractor(), progress=False)
    assert (s.done, s.failed, s.skipped_non_image, s.skipped_existing) == (6, 2, ["notes.txt"], 0)
    lines = (tmp_path / "regions.h5.failures.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == [str(root / "broken.jpg"), str(root / "empty.jpg")]
    reasons = dict(line.split("\t") for line in lines)
    assert "truncated" in reasons[str(root / "broken.jpg")]
    assert "empty" in reasons[str(root / "empty.jpg")]
    with RegionStore(out) as st:
        assert len(st) == 6 and st.config == FakeExtractor().config()
        u = st.get("uniform")
        assert u.flags["fallback_whole_image"] is True and len(u) == 1
        assert u.image_size == (20, 20)
    with pytest.raises(StoreExistsError, match="pass --resume"):
        extract_images(root, out, FakeExtractor(), progress=False)
    # resume: nothing new; the two failures are retried and listed again
    s2 = extract_images(root, out, FakeExtractor(), resume=True, progress=False)
    assert (s2.done, s2.skipped_existing, s2.failed) == (0, 6, 2)
    assert len((tmp_path / "regions.h5.failures.tsv").read_text().splitlines()) == 2
    # fixing the broken file removes it from the failures list
    from PIL import Image
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "broken.jpg")
    (root / "empty.jpg").unlink()
    s3 = extract_images(root, out, FakeExtractor(), resume=True, progress=False)
    assert (s3.done, s3.failed) == (1, 0) and not (tmp_path / "regions.h5.failures.tsv").exists()
    assert "extracted 1 images" in s3.format()


def test_resume_after_exception_equals_uninterrupted(tmp_path):
    root = make_images(tmp_path / "im", 9)
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False, batch_size=2)
    out = tmp_path / "r.h5"
    with pytest.raises(ExtractionError, match="rerun with --resume"):
        extract_images(root, out, FakeExtractor(fail_after=5), progress=False, batch_size=2,
                       commit_every=3)
    with RegionStore(out) as st:  # the 4 images of the 2 finished batches are stored
        assert len(st) == 4
    assert not Path(str(out) + ".lock").exists()
    s = extract_images(root, out, FakeExtractor(), resume=True, progress=False, batch_size=2)
    assert (s.done, s.skipped_existing) == (6, 4)
    assert_stores_equal(out, ref)


_KILL_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_extract import FakeExtractor
    from detectors.extract import extract_images
    extract_images({root!r}, {out!r}, FakeExtractor(delay=0.15), progress=False, batch_size=1,
                   commit_every=2, commit_seconds=1000)
""")


def test_sigkill_mid_run_then_resume(tmp_path):
    root = make_images(tmp_path / "im", 14)
    out = tmp_path / "r.h5"
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False)
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).resolve().parent), root=str(root), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(Path(__file__).resolve().parents[2]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = Path(str(out) + ".parts")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and len([p for p in parts.iterdir() if p.name.startswith("seg-")]) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.17)  # land somewhere inside the next image / segment write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert Path(str(out) + ".lock").exists()  # left behind by the killed writer
    with RegionStore(out) as st, RegionStore(ref) as r:
        assert 6 <= len(st) < 15
        assert st.ids() == r.ids()[: len(st)]
        from test_store import assert_regions_equal
        for image_id, reg in st:
            assert_regions_equal(reg, r.get(image_id))
        n_stored = len(st)
    # resume: the stale lock of the dead pid is reclaimed; the result equals an uninterrupted run
    s = extract_images(root, out, FakeExtractor(), resume=True, progress=False)
    assert s.skipped_existing == n_stored and s.done == 15 - n_stored
    assert_stores_equal(out, ref)
    assert not parts.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_sharded_ranks_then_merge_equals_single_run(tmp_path):
    root = make_images(tmp_path / "im", 8, bad=True)
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False)
    out = tmp_path / "regions.h5"
    s1 = extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False)
    assert not s1.merged and s1.store == str(out) + ".rank1"
    assert Path(str(out) + ".rank1.done").exists()
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False)
    assert s0.merged and "merged 2 shards" in s0.merge_note
    assert s0.done + s1.done == 9 and s0.failed + s1.failed == 2
    assert_stores_equal(out, ref)
    assert sorted((tmp_path / "regions.h5.failures.tsv").read_text().splitlines()) == \
        sorted((tmp_path / "ref.h5.failures.tsv").read_text().splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["im", "ref.h5", "ref.h5.failures.tsv",
                                                          "regions.h5", "regions.h5.failures.tsv"]


def test_rank0_first_waits_then_manual_merge(tmp_path):
    root = make_images(tmp_path / "im", 5)
    out = tmp_path / "regions.h5"
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False)
    assert not s0.merged and "--merge-only" in s0.merge_note
    extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False, merge=False)
    order = [e.image_id for e in list_images(root)[0]]
    assert merge_shards(out, 2, order=order) == 6
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False)
    assert_stores_equal(out, ref)


def test_cli_arguments_and_errors(tmp_path, capsys):
    parser = add_extract_arguments(argparse.ArgumentParser(prog="graphmatch extract"))
    args = parser.parse_args(["--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o.h5"),
                              "--adaptive", "--random-weights", "--batch-size", "2", "--resume"])
    assert args.adaptive and args.num_regions is None and args.resume and args.batch_size == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x.h5", "--adaptive", "--num-regions", "36"])
    args = parser.parse_args(["--out", str(tmp_path / "o.h5"), "--merge-only", "--world-size", "2"])
    assert run_extract(args) == 2
    assert "rank(s) [0, 1] of 2 have not finished" in capsys.readouterr().err


def test_real_torchvision_extractor(tmp_path):
    """The full job with the real torchvision backend (random weights, tiny images)."""
    pytest.importorskip("torchvision")
    from detectors.extractor import build_extractor

    ext = build_extractor("torchvision", random_weights=True, min_size=160, max_size=200,
                          num_regions=10, batch_size=2)
    root = make_images(tmp_path / "im", 2, bad=True)
    out = tmp_path / "regions.h5"
    s = extract_images(root, out, ext, progress=False)
    assert (s.done, s.failed) == (3, 2)
    with RegionStore(out) as st:
        assert len(st) == 3 and st.feature_dim == ext.feature_dim
        assert st.config["backend"] == "torchvision"
        r = st.get("img01")
        assert 1 <= len(r) <= 10 and r.image_size == (32, 25) and r.labels is not None
        direct = ext.extract([str(root / "img01.png")])[0]  # alone, not batched: tiny float noise
        torch.testing.assert_close(r.boxes, direct.boxes, atol=1e-2, rtol=1e-3)
        torch.testing.assert_close(r.features, direct.features, atol=1e-3, rtol=1e-2)


def test_cli_end_to_end_with_torchvision(tmp_path, capsys):
    pytest.importorskip("torchvision")
    root = make_images(tmp_path / "im", 2, bad=True)
    out = tmp_path / "regions.h5"
    parser = add_extract_arguments(argparse.ArgumentParser(prog="graphmatch extract"))
    argv = ["--images", str(root), "--out", str(out), "--backend", "torchvision", "--random-weights",
            "--min-size", "160", "--max-size", "200", "--num-regions", "10", "--batch-size", "2",
            "--num-workers", "1", "--quiet", "--fp16"]
    assert run_extract(parser.parse_args(argv)) == 0
    text = capsys.readouterr().out
    assert "extracted 3 images" in text and "1 non-image files (notes.txt)" in text and "failed 2" in text
    with RegionStore(out) as st:
        assert len(st) == 3 and st.feature_dtype == "float16"
        assert st.config["options"]["num_regions"] == 10 and st.config["options"]["min_size"] == 160
        assert all(1 <= len(r) <= 10 for _, r in st)
    assert run_extract(parser.parse_args(argv)) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert run_extract(parser.parse_args(argv + ["--resume"])) == 0
    assert "skipped 3 already stored" in capsys.readouterr().out
    assert run_extract(parser.parse_args(argv[:4] + ["--backend", "nope", "--out", str(tmp_path / "x.h5")])) == 2
    assert "unknown region extractor 'nope'" in capsys.readouterr().err


def test_sharded_resume_after_merge_that_kept_shards(tmp_path):
    root = make_images(tmp_path / "im", 5)
    out = tmp_path / "regions.h5"
    extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False, keep_shards=True)
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False,
                        keep_shards=True)
    assert s0.merged and Path(str(out) + ".rank0").exists() and Path(str(out) + ".rank1").exists()
    assert not list(tmp_path.glob("*.done"))  # used by the merge: removed even with keep_shards
    from PIL import Image
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(
        root / "img99.png")
    # rank 0 first: rank 1 has not run yet, so nothing is merged (no stale marker is trusted)
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False,
                        resume=True, keep_shards=True)
    assert not s0.merged and "not merged" in s0.merge_note
    s1 = extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False,
                        resume=True, keep_shards=True)
    assert s0.done + s1.done == 1
    # ids of the kept shards are in out as well: merged, not refused
    order = [e.image_id for e in list_images(root)[0]]
    assert merge_shards(out, 2, order=order, keep_shards=True) == 7
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False)
    assert_stores_equal(out, ref)
    # once more, rank 1 first and rank 0 merging at its end
    extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False, resume=True)
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False, resume=True)
    assert s0.merged
    assert_stores_equal(out, ref)
    assert not Path(str(out) + ".rank1").exists()


def test_stale_done_marker_of_other_images_is_not_merged(tmp_path):
    root = make_images(tmp_path / "im", 5)
    out = tmp_path / "regions.h5"
    extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False, merge=False)
    marker = Path(str(out) + ".rank1.done")
    assert marker.exists()
    (root / "img04.png").unlink()  # the image list changes: rank 1's shard is of another run
    s0 = extract_images(root, out, FakeExtractor(), rank=0, world_size=2, progress=False)
    assert not s0.merged and not marker.exists()
    extract_images(root, out, FakeExtractor(), rank=1, world_size=2, progress=False, resume=True,
                   merge=False)
    order = [e.image_id for e in list_images(root)[0]]
    merge_shards(out, 2, order=order)
    with RegionStore(out) as st:  # img04 is still in rank 1's resumed shard; the rest agrees
        assert [i for i in st.ids() if i != "img04"] == order


def test_resolve_rank_takes_missing_values_from_the_environment(monkeypatch):
    from detectors.extract import resolve_rank

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_rank() == (0, 1, False)
    assert resolve_rank(1, 3) == (1, 3, False)
    assert resolve_rank(None, 3) == (0, 3, False)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_rank() == (2, 4, True)
    assert resolve_rank(None, 4) == (2, 4, True)  # torchrun ... --world-size 4
    assert resolve_rank(2, None) == (2, 4, True)
    assert resolve_rank(1, 2) == (1, 2, False)  # explicit values win
    with pytest.raises(ValueError, match="WORLD_SIZE=4"):
        resolve_rank(None, 3)
    monkeypatch.delenv("WORLD_SIZE")
    assert resolve_rank(None, 4) == (2, 4, False)
    with pytest.raises(ValueError, match="rank 2, world_size 1"):
        resolve_rank()


def _grid_extractor(weights: str, class_names: Optional[str] = None):
    """A real RegionExtractor (its own ``config()``) around FakeExtractor's regions."""
    from detectors.extractor import ExtractorOptions, RegionExtractor

    class GridExtractor(RegionExtractor):
        backend = "grid"

        def __init__(self, options):
            super().__init__(options)
            self._require_weights("")

        @property
        def feature_dim(self) -> int:
            return 6

        def _extract_loaded(self, images):
            return FakeExtractor().extract([li.array for li in images])

    return GridExtractor(ExtractorOptions(weights=weights, class_names=class_names, batch_size=2))


def test_resume_with_the_same_weights_under_another_path(tmp_path, monkeypatch):
    from detectors.class_names import default_class_names_path
    from detectors.store import StoreError

    monkeypatch.chdir(tmp_path)
    Path("w.safetensors").write_bytes(b"weights one")
    root = make_images(tmp_path / "im", 3)
    out = tmp_path / "r.h5"
    extract_images(root, out, _grid_extractor("./w.safetensors"), progress=False)
    extract_images(root, out, _grid_extractor("w.safetensors"), progress=False, resume=True)
    (tmp_path / "moved").mkdir()
    os.replace("w.safetensors", "moved/w.safetensors")
    vocab = tmp_path / "moved" / "classes.txt"
    vocab.write_bytes(Path(default_class_names_path()).read_bytes())
    s = extract_images(root, out, _grid_extractor(str(tmp_path / "moved" / "w.safetensors"),
                                                  str(vocab)), progress=False, resume=True)
    assert s.skipped_existing == 4
    Path("other.safetensors").write_bytes(b"weights two")
    with pytest.raises(StoreError, match=r"differs in: weights\.sha256"):
        extract_images(root, out, _grid_extractor("other.safetensors"), progress=False, resume=True)


def test_extract_command_comes_from_the_entry_point(capsys):
    """`graphmatch extract` is added by the detectors package's ``graphmatch.commands`` entry
    point: its help lists the job's options, and its handler is detectors.cli.run_extract."""
    from importlib.metadata import entry_points

    import detectors.cli
    from graphmatch.cli import build_parser, main

    (ep,) = [e for e in entry_points(group="graphmatch.commands") if e.name == "detectors"]
    assert ep.load() is detectors.cli.add_commands
    with pytest.raises(SystemExit) as ei:
        main(["extract", "-h"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: graphmatch extract") and "--merge-only" in out and "--images" in out
    args = build_parser().parse_args(["extract", "--out", "x.h5", "--adaptive"])
    assert args.func is detectors.cli.run_extract and args.adaptive and args.out == "x.h5"


def test_importing_the_command_line_of_detectors_is_light():
    """The graphmatch command imports detectors.cli to offer `extract`; that import (and that of
    the detectors package) loads neither torch nor numpy nor h5py."""
    code = ("import sys, detectors, detectors.cli; "
            "print(sorted(m for m in ('torch', 'numpy', 'h5py', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]", out.stderr
