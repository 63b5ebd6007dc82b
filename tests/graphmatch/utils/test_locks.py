"""graphmatch.utils.locks.WriterLock: one writer at a time, a dead writer never blocks, a forked
child never keeps the lock, a busy lock names its live holder."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphmatch.utils import locks as locks_mod
from graphmatch.utils.locks import LockError, LockedError, WriterLock

REPO = Path(__file__).resolve().parents[3]

# a writer in another process: takes the lock on argv[1], optionally forks a child that keeps
# running (and reports whether it holds the lock), then waits to be killed
_HOLDER = textwrap.dedent("""
    import os, sys, time
    from graphmatch.utils.locks import WriterLock
    lock = WriterLock(sys.argv[1], what="parse output").acquire()
    if sys.argv[2] == "fork":
        child = os.fork()
        if child == 0:  # one write per line: the two processes share the pipe
            os.write(1, f"child {os.getpid()} {lock.held}\\n".encode())
            time.sleep(120)
            os._exit(0)
    os.write(1, b"locked\\n")
    time.sleep(120)
""")


def _start_holder(target: Path, mode: str = "plain") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(target), mode], cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    return proc


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_second_writer_in_this_process_is_refused_until_release(tmp_path):
    target = tmp_path / "out.jsonl"
    a, b = WriterLock(target, what="parse output"), WriterLock(target, what="parse output")
    with a:
        assert a.held and a.path == tmp_path / "out.jsonl.lock" and a.path.is_file()
        with pytest.raises(LockedError) as ei:
            b.acquire()
        msg = str(ei.value)
        assert msg.startswith(f"parse output {target} is locked by another writer: lock file {a.path}")
        assert f"pid {os.getpid()} on host {socket.gethostname()!r}" in msg and "which is running" in msg
        assert not b.held
        assert a.holder()["pid"] == os.getpid() and a.holder()["argv"] == sys.argv
        assert a.acquire() is a  # taking a held lock again is a no-op
    assert not a.held and not a.path.exists()  # released: the lock file is removed
    with b:
        assert b.held
    b.release()  # releasing twice is harmless
    assert b.holder() is None


def test_writer_in_another_process_is_named_and_its_kill_frees_the_lock(tmp_path):
    target = tmp_path / "store.h5"
    proc = _start_holder(target)
    try:
        assert proc.stdout.readline().strip() == "locked", proc.stderr.read()
        with pytest.raises(LockedError, match=rf"store\.h5\.lock is held by pid {proc.pid} on host"):
            WriterLock(target).acquire()
    finally:
        _kill(proc.pid)
        proc.wait()
    lock = WriterLock(target)
    assert lock.holder()["pid"] == proc.pid  # its record is left behind, but it no longer locks
    with lock:
        assert lock.holder()["pid"] == os.getpid()


@pytest.mark.parametrize("content", [b"", b"not json", b'{"pid": 1, "host": "elsewhere"}', b"[1, 2]"])
def test_stale_lock_files_never_block(tmp_path, content):
    target = tmp_path / "t"
    (tmp_path / "t.lock").write_bytes(content)
    with WriterLock(target) as lock:
        assert lock.holder()["pid"] == os.getpid()


def test_forked_child_of_a_killed_writer_does_not_keep_the_lock(tmp_path):
    target = tmp_path / "store.h5"
    proc = _start_holder(target, "fork")
    child = None
    try:
        lines = [proc.stdout.readline().split() for _ in range(2)]
        info = next(line for line in lines if line[0] == "child")
        child = int(info[1])
        assert info[2] == "False"  # the child's copy of the lock object holds nothing
        assert ["locked"] in lines
        with pytest.raises(LockedError):
            WriterLock(target).acquire()
        _kill(proc.pid)
        proc.wait()
        assert locks_mod.pid_alive(child)  # the child still runs ...
        with WriterLock(target) as lock:  # ... and the lock is free
            assert lock.held
    finally:
        _kill(proc.pid)
        proc.wait()
        if child is not None:
            _kill(child)


def test_lock_inherited_by_a_live_process_names_it(tmp_path):
    """A lock file held by a process that is not the recorded (dead) writer: the error says the
    recorded writer is gone and names the live process."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    script = textwrap.dedent("""
        import fcntl, json, os, socket, sys, time
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, json.dumps({"pid": int(sys.argv[2]), "host": socket.gethostname(),
                                  "created": "x", "argv": ["dead-writer"]}).encode(), 0)
        print("locked", flush=True)
        time.sleep(120)
    """)
    target = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", script, str(target) + ".lock", dead],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError) as ei:
            WriterLock(target, what="region store").acquire()
        msg = str(ei.value)
        assert f"pid {holder.pid} " in msg and "still running" in msg
        assert f"pid {dead} " in msg and "no longer running" in msg and "free the region store" in msg
    finally:
        _kill(holder.pid)
        holder.wait()


def test_own_error_types_symlinks_and_suffix(tmp_path):
    class MyLocked(LockedError):
        pass

    real, link = tmp_path / "real.h5", tmp_path / "link.h5"
    link.symlink_to(real)
    with WriterLock(link, locked_error=MyLocked):
        with pytest.raises(MyLocked, match=r"real\.h5\.lock"):
            WriterLock(real, locked_error=MyLocked).acquire()
    assert not (tmp_path / "real.h5.lock").exists() and not (tmp_path / "link.h5.lock").exists()
    with WriterLock(tmp_path / "x", suffix=".writer") as lock:
        assert lock.path == tmp_path / "x.writer"
        assert WriterLock(tmp_path / "x").acquire().held  # another lock file, another lock
    with pytest.raises(ValueError, match="suffix"):
        WriterLock(tmp_path / "x", suffix="")
    nested = WriterLock(tmp_path / "new" / "dir" / "out")
    with nested:  # the folder of the lock file is created
        assert nested.path.parent.is_dir()


def test_file_system_without_flock_is_a_clear_error(tmp_path, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks_mod.fcntl, "flock", no_flock)
    with pytest.raises(LockError, match=r"cannot lock .*out\.lock: the file system does not support flock") as ei:
        WriterLock(tmp_path / "out", what="parse output").acquire()
    assert not isinstance(ei.value, LockedError) and "write the parse output on a local file system" in str(ei.value)

    class MyError(RuntimeError):
        pass

    with pytest.raises(MyError):
        WriterLock(tmp_path / "out", error=MyError).acquire()


def test_lock_is_exclusive_across_processes_under_contention(tmp_path):
    """Several processes take and release the lock in a loop; a counter file that each holder
    increments non-atomically (read, pause, write) ends exact only if no two ever held it."""
    counter = tmp_path / "count"
    counter.write_text("0")
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from graphmatch.utils.locks import LockedError, WriterLock
        target, counter, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
        done = 0
        while done < rounds:
            lock = WriterLock(target)
            try:
                lock.acquire()
            except LockedError:
                time.sleep(0.0005)
                continue
            n = int(counter.read_text())
            time.sleep(0.0005)
            counter.write_text(str(n + 1))
            lock.release()
            done += 1
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "t"), str(counter), "40"],
                              cwd=str(REPO), env=dict(os.environ, PYTHONPATH=str(REPO)))
             for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=240) == 0
    assert counter.read_text() == str(4 * 40)
    assert not (tmp_path / "t.lock").exists()
