"""Faults of the ``graphmatch parse`` job: ``kill -9`` mid-run and a full disk.

Each fault is followed by a rerun that must give exactly the bytes of an uninterrupted run. The
real spaCy parser is used (loaded once in this process, once in the one killed subprocess). A
parse file is a header line and one record per caption line.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graphmatch.cli import main
from parsers.job import ParseOutputError, parse_file
from parsers.parser import make_parser

REPO = Path(__file__).resolve().parents[2]
GOLD = REPO / "tests" / "fixtures" / "factual_dev.jsonl"
N_CAPTIONS = 150


@pytest.fixture(scope="module")
def parser():
    return make_parser()


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    path = tmp_path_factory.mktemp("caps") / "captions.txt"
    lines = [json.loads(ln)["caption"] for ln in GOLD.read_text(encoding="utf-8").splitlines()[:N_CAPTIONS]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(parser, captions, tmp_path_factory):
    """The output of one uninterrupted run without a cache (default chunk size)."""
    ref = tmp_path_factory.mktemp("ref") / "graphs.jsonl"
    parse_file(captions, ref, parser=parser, cache=None, progress=False)
    data = ref.read_bytes()
    assert data.count(b"\n") == N_CAPTIONS + 1  # the header, then one record per caption
    return data


def children_of(pid: int) -> list:
    """Pids of the live processes whose parent is ``pid`` (read from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# The child runs the real CLI; its 5th write of the output (the header, then chunks) stops half way
# through the 4th chunk (a torn line on disk) and waits there to be killed, so the kill lands
# mid-write on any machine speed.
KILLED_CHILD = r"""
import os, sys, time
import parsers.job as c
real_write, calls = os.write, [0]
def write(fd, data):
    if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(sys.argv[2]):
        calls[0] += 1
        if calls[0] == 5:
            real_write(fd, bytes(data[: len(data) // 2]))
            os.fsync(fd)
            open(sys.argv[2] + ".ready", "w").close()
            time.sleep(3600)
    return real_write(fd, data)
c.os.write = write
from graphmatch.cli import main
sys.exit(main(["parse", sys.argv[1], "--out", sys.argv[2], "--cache", sys.argv[3], "--chunk-size", "10"]))
"""


def test_kill_9_mid_write_then_rerun_gives_the_uninterrupted_output(parser, captions, reference, tmp_path,
                                                                   monkeypatch, capsys):
    out, cache = tmp_path / "graphs.jsonl", tmp_path / "cache"
    ready = Path(str(out) + ".ready")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(captions), str(out), str(cache)],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), proc.communicate(timeout=30)
        kids = children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if alive(k)], "processes of the killed parse are left behind"

    torn = out.read_bytes()
    n_torn = torn.count(b"\n") - 1  # the header, 3 chunks of 10, then half a chunk: a few records and a torn line
    assert 30 <= n_torn < 40 and not torn.endswith(b"\n")
    assert reference.startswith(torn)
    assert Path(str(out) + ".lock").exists()  # the killed writer's lock file stays; the rerun takes it over

    # rerun the same command (in this process, with the parser already loaded)
    monkeypatch.setattr("parsers.parser.make_parser", lambda *a, **k: parser)
    rc = main(["parse", str(captions), "--out", str(out), "--cache", str(cache), "--chunk-size", "10",
               "--json", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed_from"] == n_torn and summary["written"] == N_CAPTIONS - n_torn
    assert summary["from_cache"] == 40 - n_torn  # the torn chunk was parsed and cached before the kill
    assert out.read_bytes() == reference
    assert not Path(str(out) + ".lock").exists()


def test_disk_full_on_the_output_write_is_one_clear_error_and_a_rerun_completes(parser, captions, reference,
                                                                               tmp_path, monkeypatch):
    """``OSError(ENOSPC)`` injected at the system call that writes the output."""
    out = tmp_path / "graphs.jsonl"
    real_write = os.write
    budget = len(reference) // 2  # the disk fills in the middle of a chunk
    used = [0]

    def full_disk(fd, data):
        if os.path.realpath(f"/proc/self/fd/{fd}") != str(out.resolve()):
            return real_write(fd, data)
        room = budget - used[0]
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:room]))
        used[0] += n
        return n

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(ParseOutputError) as e:
        parse_file(captions, out, parser=parser, cache=None, chunk_size=20, progress=False)
    monkeypatch.setattr(os, "write", real_write)
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError) and e.value.filename == str(out)
    assert msg.startswith(f"{out}: no space left on device while writing the records of lines ")
    kept = out.read_bytes()
    n_kept = kept.count(b"\n") - 1  # records after the header
    assert f"the {n_kept} complete records before them are kept" in msg
    assert n_kept % 20 == 0 and 0 < n_kept < N_CAPTIONS and reference.startswith(kept) and kept.endswith(b"\n")

    s = parse_file(captions, out, parser=parser, cache=None, chunk_size=20, progress=False)
    assert s["resumed_from"] == n_kept and out.read_bytes() == reference


def _mount_tmpfs(where: Path, size: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def test_disk_full_on_a_real_small_tmpfs(parser, captions, reference, tmp_path, capsys, monkeypatch):
    """A real full file system (a small tmpfs): one clear message naming the file, nothing complete
    lost, and the same command completes once space is freed."""
    mnt = tmp_path / "small"
    size = (2 * len(reference) // 4096 + 1) * 4096
    if not _mount_tmpfs(mnt, size):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # leave room for about half of the output
            f.write(b"\0" * (size - len(reference) // 2))
        out = mnt / "graphs.jsonl"
        monkeypatch.setattr("parsers.parser.make_parser", lambda *a, **k: parser)
        argv = ["parse", str(captions), "--out", str(out), "--no-cache", "--chunk-size", "20", "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("error") == 1 and "Traceback" not in err
        assert f"graphmatch parse: error: {out}: no space left on device while writing the records of lines" in err
        kept = out.read_bytes()
        assert kept.endswith(b"\n") and reference.startswith(kept) and (kept.count(b"\n") - 1) % 20 == 0
        filler.unlink()
        assert main(argv) == 0
        assert out.read_bytes() == reference
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
