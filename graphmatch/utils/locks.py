"""One exclusive writer lock for files that a single process at a time may write.

A :class:`WriterLock` on a target ``out`` holds ``flock(LOCK_EX | LOCK_NB)`` on the lock file
``out.lock`` for as long as the writer runs::

    from graphmatch.utils.locks import LockedError, WriterLock

    with WriterLock(out, what="region store"):
        ...  # only this process writes ``out`` now

    try:
        lock = WriterLock(out).acquire()
    except LockedError as e:
        print(e)  # names the lock file and the live process that holds it

Guarantees:

* **A dead writer never blocks the next one.** The kernel drops a ``flock`` when the holding
  process exits or is killed (``kill -9`` included), so a lock file left behind, whatever it
  contains (a holder record, nothing, garbage), is simply taken over.
* **The lock is the holder's process alone.** Its descriptor is opened with ``O_CLOEXEC`` (closed
  by ``exec``) and closed in every child forked from the holder (``os.register_at_fork``), so a
  forked process (e.g. a ``DataLoader`` worker) that outlives a killed writer does not keep the
  target locked.
* **A busy lock names its holder.** The lock file records JSON ``{"pid", "host", "created",
  "argv"}`` of the holder; the :class:`LockedError` of a second writer names the recorded holder if
  it is running, else the live process found holding the file (from ``/proc``, e.g. a leftover
  child of a dead writer), or says that none could be identified.
* **At most one holder at any time**, also across two lock objects of one process and under
  contention: :meth:`WriterLock.release` removes the file while still holding it, and a process
  that opened the removed file meanwhile notices and retries.
* The target path is resolved (``Path.resolve()``) before the lock path is derived from it, so a
  target reached through a symbolic link has the same lock.

The lock is advisory: it excludes other writers that use it, not arbitrary programs. File
systems without ``flock`` support (some network file systems) raise :class:`LockError`.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import socket
import sys
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Type, Union

__all__ = ["LockError", "LockedError", "WriterLock", "pid_alive", "processes_holding"]

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class LockError(RuntimeError):
    """A writer lock cannot be taken at all (e.g. the file system does not support ``flock``)."""


class LockedError(LockError):
    """Another live process holds the writer lock; the message names the lock file and holder."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class WriterLock:
    """An exclusive, non-blocking writer lock on ``<target><suffix>`` (default ``<target>.lock``).

    Use it as a context manager or with :meth:`acquire` / :meth:`release`. Acquiring never waits:
    when another process (or another :class:`WriterLock` object of this process) holds the lock,
    it raises ``locked_error`` at once.

    Args:
        target: the file (or folder) the lock protects; resolved, so a symbolic link to it has
            the same lock.
        what: how error messages call the target, e.g. ``"region store"`` or ``"parse output"``.
        suffix: appended to the resolved target path to give the lock file's path.
        locked_error: the exception type raised when another writer holds the lock (a subclass
            of :class:`LockedError`, e.g. a package's own "store is locked" error).
        error: the exception type raised when the lock cannot be taken at all (no ``flock`` on
            the file system); :class:`LockError` by default.

    Attributes:
        target: the resolved target path.
        path: the lock file's path.
    """

    def __init__(self, target: PathLike, *, what: str = "file", suffix: str = ".lock",
                 locked_error: Type[LockedError] = LockedError,
                 error: Type[Exception] = LockError) -> None:
        if not suffix:
            raise ValueError("WriterLock: suffix must not be empty (the lock file is removed "
                             "on release, so it cannot be the target itself)")
        self.target = Path(target).resolve()
        self.path = Path(str(self.target) + suffix)
        self.what = what
        self.locked_error = locked_error
        self.error = error
        self._fd: Optional[int] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.target)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    # ----------------------------------------------------------------------- holder records
    @staticmethod
    def _record(fd: int) -> Optional[Dict[str, Any]]:
        """The holder record in the lock file, or None if it is empty or unreadable."""
        try:
            raw = os.pread(fd, 1 << 16, 0).decode("utf-8", errors="replace")
            info = json.loads(raw) if raw.strip() else None
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    @staticmethod
    def _describe(info: Optional[Dict[str, Any]]) -> str:
        if info is None:
            return "a writer that has not written its holder record yet"
        argv = info.get("argv")
        cmd = " ".join(map(str, argv)) if isinstance(argv, list) else "?"
        return (f"pid {info.get('pid')} on host {info.get('host')!r} since {info.get('created')} "
                f"(command: {cmd[:200]})")

    def _describe_busy(self, fd: int) -> str:
        """Who holds the lock: the recorded holder if it runs, else the live process(es) that
        hold the file open, found under ``/proc``."""
        info = self._record(fd)
        pid = info.get("pid") if info is not None else None
        host = info.get("host") if info is not None else None
        recorded = self._describe(info)
        if isinstance(pid, int) and host == socket.gethostname():
            if pid_alive(pid):
                return f"{recorded}, which is running"
            holders = [h for h in processes_holding(fd) if h[0] != os.getpid()]
            if holders:
                who = "; ".join(f"pid {p} (command: {c[:200]})" for p, c in holders[:5])
                return (f"{who}, still running: the recorded writer, {recorded}, is no longer "
                        f"running and its lock was inherited by that process (e.g. a leftover "
                        f"worker of the dead writer); stop it to free the {self.what}")
            return (f"a process that is not the recorded writer ({recorded}, no longer running): "
                    f"presumably a process it started that inherited the lock; find it with "
                    f"`fuser -v {self.path}`")
        if isinstance(pid, int) and host is not None:
            return f"{recorded} (another host: whether it still runs cannot be checked from here)"
        holders = [h for h in processes_holding(fd) if h[0] != os.getpid()]
        if holders:
            return "; ".join(f"pid {p} (command: {c[:200]})" for p, c in holders[:5])
        return recorded

    def holder(self) -> Optional[Dict[str, Any]]:
        """The holder record now in the lock file (``{"pid", "host", "created", "argv"}``), or
        None if there is no file or it holds no readable record. The record of a writer that
        has died stays until the next writer takes the lock over, so this says who wrote the
        file last, not that it still runs."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            return self._record(fd)
        finally:
            os.close(fd)

    # ---------------------------------------------------------------------- taking the lock
    def _try_lock(self) -> Optional[int]:
        """Open the lock file and take the flock; the fd, or None if the file was replaced
        meanwhile (retry). Raises ``locked_error`` if another writer holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as e:
            raise self.error(f"cannot create the lock file {self.path} of {self.what} "
                             f"{self.target}: {e.strerror or e}") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self.locked_error(
                    f"{self.what} {self.target} is locked by another writer: lock file "
                    f"{self.path} is held by {self._describe_busy(fd)}; wait for that "
                    "writer to finish, or stop it (the lock is released when its process "
                    "ends)") from None
            except OSError as e:
                raise self.error(f"cannot lock {self.path}: the file system does not support "
                                 f"flock ({e}); write the {self.what} on a local file "
                                 "system") from e
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if not same:  # the holder released (removed) the file after we opened it
            os.close(fd)
            return None
        return fd

    def acquire(self) -> "WriterLock":
        """Take the lock (creating the lock file's folder if needed) and record this process as
        its holder; returns ``self``. A no-op if this object holds it already.

        Raises:
            locked_error: another writer holds the lock (the message names the lock file and
                the holder).
            error: the lock file cannot be created or locked.
        """
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = self._try_lock()
            if fd is None:
                continue
            try:
                old = self._record(fd)
                if old is not None:
                    log.info("taking over lock file %s: its previous holder (%s) is gone",
                             self.path, self._describe(old))
                me = {"pid": os.getpid(), "host": socket.gethostname(), "created": _now(),
                      "argv": sys.argv}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            _HELD_LOCKS.add(self)
            return self
        raise self.locked_error(f"could not take the lock {self.path} (it keeps changing hands)")

    def release(self) -> None:
        """Remove the lock file and drop the lock, if this object holds it (else a no-op)."""
        fd, self._fd = self._fd, None
        _HELD_LOCKS.discard(self)
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


#: locks held by this process; a forked child closes their descriptors at once
_HELD_LOCKS: "weakref.WeakSet[WriterLock]" = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    """In a freshly forked child: close the inherited lock descriptors, so the lock stays the
    parent's alone (a ``flock`` is shared by every process holding its open file)."""
    for lock in list(_HELD_LOCKS):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")
    return True


def processes_holding(fd: int) -> List[Tuple[int, str]]:
    """``(pid, command line)`` of the live processes that have the file of ``fd`` open (Linux
    ``/proc``; processes this user may not inspect are not seen). Empty where unsupported."""
    try:
        st = os.fstat(fd)
        pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return []
    found: List[Tuple[int, str]] = []
    for pid in sorted(pids):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for name in fds:
            try:
                other = os.stat(f"/proc/{pid}/fd/{name}")
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    cmd = " ".join(x.decode("utf-8", "replace") for x in raw.split(b"\0") if x)
                except OSError:
                    cmd = "?"
                if pid_alive(pid):
                    found.append((pid, cmd or "?"))
                break
    return found
