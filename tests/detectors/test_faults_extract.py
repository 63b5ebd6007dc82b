"""Fault injection for region extraction: a killed ``graphmatch extract`` with its decoding
workers alive, a full disk under the store, an image the model cannot take, and early errors.

Each fault is followed by a ``--resume`` that must give exactly the store of an uninterrupted run,
and no process of the faulted run may be left behind.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Dict, List, Set

import numpy as np
import pytest
import torch

from detectors.extract import ExtractionError, extract_images
from detectors.store import (
    RegionStore, RegionStoreWriter, StoreDiskFullError, StoreError, StoreLockedError,
)
from graphmatch.structures import Regions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_extract import FakeExtractor, make_images  # noqa: E402
from test_store import assert_stores_equal  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GRAPHMATCH = [sys.executable, "-m", "graphmatch.cli"]
# small model inputs: the images are resized to at most 96 px, 5 regions each
MODEL_ARGS = ["--random-weights", "--min-size", "64", "--max-size", "96", "--num-regions", "5",
              "--batch-size", "1"]
MODEL_OPTS = dict(random_weights=True, min_size=64, max_size=96, num_regions=5, batch_size=1)
N_IMAGES = 5


# ----------------------------------------------------------------------------- process helpers
def _state(pid: int) -> str:
    """The /proc state letter of ``pid`` ('' if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2:][:1]


def _alive(pid: int) -> bool:
    return _state(pid) not in ("", "Z", "X")


def _children(pid: int) -> Set[int]:
    """The live direct children of ``pid``."""
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and _alive(int(name)):
                out.add(int(name))
    return out


def _tagged(tag: str) -> Set[int]:
    """Live processes whose environment carries ``GM_FAULT_TAG=tag`` (the run and its workers)."""
    needle = f"GM_FAULT_TAG={tag}".encode()
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                env = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0") and _alive(int(name)):
                out.add(int(name))
    return out


def _wait_until(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def _kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _segments(store: Path) -> List[Path]:
    parts = Path(str(store) + ".parts")
    return sorted(parts.glob("seg-*.h5")) if parts.is_dir() else []


# ------------------------------------------------------------------------------------ fixtures
def _noise_images(root: Path, n: int) -> Path:
    """``n`` noise PNGs of 200x160: a decoded image (96 KB) is larger than a pipe's buffer, so
    decoding workers that outlive their parent block on the result queue, as with real photos."""
    from PIL import Image

    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)).save(root / f"p{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """A folder of N_IMAGES images, the random-weights torchvision extractor of ``MODEL_OPTS`` and the
    store of an uninterrupted run over the folder."""
    pytest.importorskip("torchvision")
    from detectors.extractor import build_extractor

    base = tmp_path_factory.mktemp("extract_faults")
    root = _noise_images(base / "im", N_IMAGES)
    ext = build_extractor("torchvision", **MODEL_OPTS)
    ref = base / "ref.h5"
    extract_images(root, ref, ext, progress=False, num_workers=0)
    return root, ext, ref


# ---------------------------------------------------------------------- killed with workers alive
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill9", "sigterm"])
def test_killed_extract_with_workers_leaves_no_process_and_resume_is_exact(tmp_path, model_run, sig):
    root, ext, ref = model_run
    out = tmp_path / "s.h5"
    tag = uuid.uuid4().hex
    env = {**os.environ, "GM_FAULT_TAG": tag, "PYTHONUNBUFFERED": "1"}
    cmd = GRAPHMATCH + ["extract", "--images", str(root), "--out", str(out), *MODEL_ARGS,
                        "--num-workers", "2", "--commit-every", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen: Set[int] = set()
    try:
        # in progress: one image committed, and both decoding workers running
        assert _wait_until(lambda: proc.poll() is not None or (
            len(_segments(out)) >= 1 and len(_children(proc.pid)) >= 2), 240), "no progress"
        assert proc.poll() is None, proc.communicate()
        seen = _tagged(tag)
        workers = _children(proc.pid)
        assert len(workers) >= 2 and workers <= seen
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if sig == signal.SIGTERM:
            assert proc.returncode == 128 + signal.SIGTERM, err
            assert "terminated (SIGTERM)" in err and "--resume" in err and "Traceback" not in err
        else:
            assert proc.returncode == -signal.SIGKILL
        # no process of the run is left (the workers end with their parent)
        left = lambda: {p for p in seen | _tagged(tag) if _alive(p)}  # noqa: E731
        assert _wait_until(lambda: not left(), 60, 0.2), f"left behind: {sorted(left())}"
        with RegionStore(out) as st, RegionStore(ref) as r:
            n_stored = len(st)
            assert 1 <= n_stored < N_IMAGES and st.ids() == r.ids()[:n_stored]
        # the store is not blocked: resume at once, and the result equals the uninterrupted run
        s = extract_images(root, out, ext, resume=True, progress=False, num_workers=0)
        assert (s.skipped_existing, s.done, s.failed) == (n_stored, N_IMAGES - n_stored, 0)
        assert_stores_equal(out, ref)
        assert not Path(str(out) + ".parts").exists() and not Path(str(out) + ".lock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_all(seen | _tagged(tag))


_WORKER_HOLDS_LOCK = textwrap.dedent("""
    import fcntl, json, os, sys, time
    lock = sys.argv[1]
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, json.dumps({"pid": int(sys.argv[2]), "host": os.uname().nodename,
                              "created": "x", "argv": ["dead-writer"]}).encode(), 0)
    print("locked", flush=True)
    time.sleep(120)
""")


def test_lock_message_names_the_live_holder_when_the_recorded_writer_is_dead(tmp_path):
    """A lock kept by a process that is not the recorded (dead) writer: the error says the
    recorded writer is gone and names the live process that holds the lock."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    store = tmp_path / "r.h5"
    holder = subprocess.Popen([sys.executable, "-c", _WORKER_HOLDS_LOCK, str(store) + ".lock",
                               dead.stdout.strip()], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError) as ei:
            RegionStoreWriter(store, config={"backend": "fake"})
        msg = str(ei.value)
        assert f"pid {holder.pid} " in msg and "still running" in msg
        assert f"pid {dead.stdout.strip()} " in msg and "no longer running" in msg
    finally:
        holder.kill()
        holder.wait()
    with RegionStoreWriter(store, config={"backend": "fake"}):
        pass


def test_forked_child_does_not_hold_the_store_lock(tmp_path):
    """A process forked by a writer (as a DataLoader worker is) and still running after the
    writer was killed does not block the store."""
    script = textwrap.dedent("""
        import os, sys, time
        from detectors.store import RegionStoreWriter
        w = RegionStoreWriter(sys.argv[1], config={"backend": "fake"})
        child = os.fork()
        if child == 0:
            time.sleep(120)
            os._exit(0)
        print(child, flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "r.h5")], cwd=str(REPO),
                            stdout=subprocess.PIPE, text=True)
    child = None
    try:
        child = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _alive(child)
        with RegionStoreWriter(tmp_path / "r.h5", config={"backend": "fake"}, resume=True):
            pass
    finally:
        _kill_all([proc.pid] + ([child] if child else []))
        proc.wait()


# ------------------------------------------------------------------------- one extreme image
def test_extreme_image_fails_alone_and_the_rest_of_its_batch_is_stored(tmp_path, model_run):
    from PIL import Image

    root0, ext, ref = model_run
    root = tmp_path / "im"
    shutil.copytree(root0, root)
    # 20000 x 8: resized to a height of zero rows, which the model cannot take
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (8, 20000, 3), dtype=np.uint8)).save(
        root / "p01x.png")
    out = tmp_path / "s.h5"
    s = extract_images(root, out, ext, progress=False, num_workers=0, batch_size=4)
    assert (s.done, s.failed) == (N_IMAGES, 1)
    failures = Path(str(out) + ".failures.tsv").read_text().splitlines()
    assert len(failures) == 1
    path, reason = failures[0].split("\t")
    assert path == str(root / "p01x.png") and "extractor failed on this image" in reason
    assert "RuntimeError" in reason
    assert_stores_equal(out, ref)  # the other images of its batch are stored, as by a clean run
    s = extract_images(root, out, ext, resume=True, progress=False, num_workers=0, batch_size=4)
    assert (s.done, s.failed, s.skipped_existing) == (0, 1, N_IMAGES)  # resume goes on; retried, listed
    assert len(Path(str(out) + ".failures.tsv").read_text().splitlines()) == 1


class _AlwaysFails(FakeExtractor):
    def extract(self, images):
        raise RuntimeError("weights on the wrong device")


def test_the_same_error_on_image_after_image_stops_the_run(tmp_path):
    root = make_images(tmp_path / "im", 6)
    out = tmp_path / "s.h5"
    with pytest.raises(ExtractionError, match=r"failed on 2 images in a row with RuntimeError.*"
                                              r"model or the device.*--resume"):
        extract_images(root, out, _AlwaysFails(), progress=False, batch_size=2)
    assert len(Path(str(out) + ".failures.tsv").read_text().splitlines()) == 2
    s = extract_images(root, out, _AlwaysFails(), resume=True, progress=False, batch_size=2,
                       max_failures_in_a_row=0)  # never stop: every image is a failure
    assert (s.done, s.failed) == (0, 7)


# -------------------------------------------------------------------------------- disk full
class _BigFake(FakeExtractor):
    """36 regions of 2048-d features (about 300 KB per image), to fill a small disk quickly."""

    def extract(self, images):
        out = []
        for a in images:
            g = torch.Generator().manual_seed(int(a.sum()) % (2 ** 31))
            h, w = a.shape[:2]
            out.append(Regions(torch.tensor([[0.0, 0.0, w, h]] * 36), torch.randn(36, 2048, generator=g),
                               (w, h), flags={"fallback_whole_image": False}))
        return out

    def config(self):
        return {"backend": "bigfake", "options": {"batch_size": 2}}


def test_disk_full_injected_at_segment_write_is_one_error_and_resume_is_exact(tmp_path, monkeypatch):
    import detectors.store as store_mod

    root = make_images(tmp_path / "im", 9)
    ref = tmp_path / "ref.h5"
    extract_images(root, ref, FakeExtractor(), progress=False)
    out = tmp_path / "s.h5"
    real = store_mod._Appender.append_records
    calls = [0]

    def full_disk(self, records):
        calls[0] += 1
        if calls[0] >= 3:  # the third segment write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, records)

    monkeypatch.setattr(store_mod._Appender, "append_records", full_disk)
    with pytest.raises(StoreDiskFullError) as ei:
        extract_images(root, out, FakeExtractor(), progress=False, batch_size=2, commit_every=2)
    msg = str(ei.value)
    assert f"region store {out}" in msg and "no space left" in msg and "4 images committed" in msg
    assert "--resume" in msg
    assert not any(p.name.endswith(".tmp") for p in Path(str(out) + ".parts").iterdir())
    with RegionStore(out) as st:  # the committed images are intact
        assert len(st) == 4
    assert not Path(str(out) + ".lock").exists()
    monkeypatch.setattr(store_mod._Appender, "append_records", real)
    s = extract_images(root, out, FakeExtractor(), resume=True, progress=False)
    assert (s.skipped_existing, s.done) == (4, 6)
    assert_stores_equal(out, ref)


_FULL_DISK_SCRIPT = textwrap.dedent("""
    import sys, warnings
    # as the graphmatch command does: torch-geometric's import-time warning is not actionable
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    sys.path.insert(0, {tests!r})
    from test_faults_extract import _BigFake
    from detectors import EXTRACTORS
    EXTRACTORS.register("bigfake")(lambda options=None: _BigFake())
    from detectors.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_disk_full_on_a_small_tmpfs_is_one_clear_message(tmp_path):
    """A real full disk (a 2 MB tmpfs) under a CLI run with decoding workers: one error line,
    no HDF5 tracebacks, no crash; once there is space, resume completes the store exactly."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")
    try:
        root = make_images(tmp_path / "im", 13)
        ref = tmp_path / "ref.h5"
        extract_images(root, ref, _BigFake(), progress=False)
        out = mnt / "s.h5"
        script = _FULL_DISK_SCRIPT.format(tests=str(Path(__file__).resolve().parent))
        argv = ["--images", str(root), "--out", str(out), "--backend", "bigfake", "--batch-size", "2",
                "--commit-every", "2", "--num-workers", "2", "--quiet"]
        p = subprocess.run([sys.executable, "-c", script, *argv], cwd=str(REPO),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, p.stderr
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("graphmatch extract: error: disk full"), p.stderr
        assert str(out) in lines[0] and "--resume" in lines[0]
        with RegionStore(out) as st:
            n = len(st)
            assert n >= 2
        subprocess.run(["mount", "-o", "remount,size=64M", str(mnt)], check=True)
        p = subprocess.run([sys.executable, "-c", script, *argv, "--resume"], cwd=str(REPO),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert f"skipped {n} already stored" in p.stdout
        assert_stores_equal(out, ref)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------------- early errors
def _cli(argv: List[str]) -> subprocess.CompletedProcess:
    return subprocess.run(GRAPHMATCH + argv, cwd=str(REPO), capture_output=True, text=True,
                          timeout=300)


def test_out_that_is_a_folder_fails_before_any_work(tmp_path, monkeypatch, capsys):
    root = make_images(tmp_path / "im", 3)
    folder = tmp_path / "existing"
    folder.mkdir()
    built = []
    import detectors.extractor

    monkeypatch.setattr(detectors.extractor, "build_extractor", lambda *a, **k: built.append(1))
    from graphmatch.cli import main

    assert main(["extract", "--images", str(root), "--out", str(folder), "--random-weights",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {folder} is a folder" in err
    assert not built  # no model was built
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "im"]  # no .parts, no .lock
    with pytest.raises(StoreError, match="is a folder"):
        extract_images(root, folder, FakeExtractor(), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "im"]


def test_missing_backend_and_unknown_option_are_one_line_errors(tmp_path):
    root = make_images(tmp_path / "im", 1)
    out = str(tmp_path / "o.h5")
    p = _cli(["extract", "--images", str(root), "--out", out, "--random-weights",
              "--option", "num_proposal=10", "--quiet"])
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().count("\n") == 0
    assert "unknown option 'num_proposal'" in p.stderr and "did you mean num_proposals" in p.stderr
    try:
        import detectron2  # noqa: F401
        has_d2 = True
    except ImportError:
        has_d2 = False
    if not has_d2:
        p = _cli(["extract", "--images", str(root), "--out", out, "--backend", "detectron2",
                  "--random-weights", "--quiet"])
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.strip().count("\n") == 0 and "needs detectron2" in p.stderr
    assert not any(p.name.startswith("o.h5") for p in tmp_path.iterdir())
