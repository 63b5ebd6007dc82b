"""HDF5 region store: :class:`Regions` of many images, keyed by image id.

Layout
------
A store at ``regions.h5`` is one HDF5 file (the *main* file) plus, while a writer is running or
after it was interrupted, a folder ``regions.h5.parts/`` of complete *segment* files. Main file
and segments have the same ragged layout (all regions of all images concatenated):

=================  ==========================  ====================================================
dataset            shape / dtype               meaning
=================  ==========================  ====================================================
``ids``            [n] utf-8 str               image ids, in the order written
``offsets``        [n + 1] int64               image ``i`` owns region rows ``offsets[i]:offsets[i+1]``
``image_size``     [n, 2] int64                ``(width, height)`` of each image
``flags``          [n] utf-8 str               the JSON of ``Regions.flags``
``present``        [n] uint8                   bit mask: which optional fields image ``i`` has
``boxes``          [rows, 4] float32           ``(x1, y1, x2, y2)`` in pixels
``features``       [rows, D] float32|float16   pooled region features
``labels``         [rows] int64                optional class ids (bit 1 of ``present``)
``scores``         [rows] float32              optional class scores (bit 2)
``attr_labels``    [rows] or [rows, K] int64   optional attribute ids (bit 4)
``attr_scores``    [rows] or [rows, K] float32 optional attribute scores (bit 8)
=================  ==========================  ====================================================

File attributes: ``format`` (``"graphmatch-regions"``), ``format_version``, ``created``,
``modified`` (ISO 8601 UTC), ``extractor_config`` (the extractor's ``config()`` as JSON),
``feature_dim`` and ``feature_dtype``.

Crash safety
------------
The writer never modifies a file that holds finished images: every ``commit_every`` images (or
``commit_seconds``) it writes the buffered images into a new segment file under a temporary name,
``fsync``\\ s it and renames it to ``seg-XXXXXXXX.h5`` (an atomic ``os.replace``), so a segment is
either complete or absent; at a clean ``close()`` the main file and all segments are merged into a
temporary file that atomically replaces the main file, and only then are the segments deleted.
A reader sees the main file plus every complete segment (a later record of an id wins), so a
``kill -9`` at any moment loses at most the images not yet committed, and ``resume=True`` picks up
from exactly what was stored.

Writers are exclusive: a writer holds ``flock(LOCK_EX)`` on the lock file ``regions.h5.lock``
for its lifetime (the file also records the pid, host and command line of the writer), and a
second writer fails with :class:`StoreLockedError` naming the lock file and the live process that
holds it. The kernel drops the lock when the holding process exits or is killed, so a lock file
left behind by a dead writer (even an empty one) never blocks the next writer. The lock belongs to
the writer's process alone: its descriptor is closed on ``exec`` (``O_CLOEXEC``) and in every
process forked from the writer (``os.register_at_fork``), so a child that outlives a killed writer
(e.g. a ``DataLoader`` worker) does not keep the store locked.

Write errors
------------
A full disk (``ENOSPC`` / ``EDQUOT``) while committing or compacting raises one
:class:`StoreDiskFullError` naming the store and the file being written; nothing committed is
touched, the temporary file is removed, HDF5's own error reports of the failed file are not
printed, and ``resume=True`` continues once there is space. An output path that is a folder, or
whose parent is not a writable folder, is a :class:`StoreError` raised before anything is written
(:func:`check_store_path`). The store path is resolved
(``Path.resolve()``) before ``.lock`` and ``.parts`` are derived from it, so a store reached through
a symbolic link is the same store with the same lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import gc
import json
import logging
import os
import re
import socket
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from graphmatch.structures import Regions
from graphmatch.utils.io import NO_SPACE_ERRNOS, atomic_path, fsync_dir, write_bytes

PathLike = Union[str, os.PathLike]

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "StoreError", "StoreExistsError", "StoreLockedError",
    "StoreDiskFullError", "check_store_path", "RegionStore", "RegionStoreWriter", "StoreLock", "merge_stores", "store_exists",
    "compatible_configs", "RUN_ONLY_CONFIG_KEYS", "RUN_ONLY_CONFIG_PATHS",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "graphmatch-regions"
FORMAT_VERSION = 1

#: extractor-config keys (at any nesting level) ignored when checking that two configs agree:
#: they describe the run or the environment, not the features
RUN_ONLY_CONFIG_KEYS = frozenset({"batch_size", "device", "num_workers", "progress", "versions"})
#: extractor-config entries (dotted paths from the top) ignored as well: where files were found.
#: The files themselves are compared by content (``weights.sha256``, ``class_names.sha256``;
#: detectron2's config file by ``detectron2_config``), so the same weights reached through
#: another path, or moved, do not make two configs differ.
RUN_ONLY_CONFIG_PATHS = frozenset({"options.weights", "options.class_names", "weights.path",
                                   "class_names.path", "config_file"})

# optional per-region fields: name -> (present bit, dtype, fill value)
_OPTIONAL: Dict[str, Tuple[int, Any, Any]] = {
    "labels": (1, np.int64, -1),
    "scores": (2, np.float32, np.nan),
    "attr_labels": (4, np.int64, -1),
    "attr_scores": (8, np.float32, np.nan),
}
_SEGMENT_RE = re.compile(r"^seg-(\d{8})\.h5$")
_STR = h5py.string_dtype("utf-8")
_COPY_IMAGES = 128  # images per bulk copy when merging files


class StoreError(RuntimeError):
    """A region store is missing, malformed, incompatible or busy; the message names the file."""


class StoreExistsError(StoreError):
    """The store already exists and the writer was not asked to resume it."""


class StoreLockedError(StoreError):
    """Another writer holds the store's lock file."""


class StoreDiskFullError(StoreError):
    """A store file could not be written for lack of space; what was committed before is intact."""


def _is_no_space(e: BaseException) -> bool:
    """An ``OSError`` of a full disk, or an h5py error whose message reports one."""
    if isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS:
        return True
    text = str(e)
    return isinstance(e, (OSError, RuntimeError)) and (
        "No space left on device" in text or f"errno = {errno.ENOSPC}," in text
        or "Disk quota exceeded" in text)


@contextlib.contextmanager
def _quiet_h5py() -> Iterator[None]:
    """Swallow the tracebacks that the objects of an HDF5 file whose write failed print to
    ``sys.stderr`` when they are freed ("Exception ignored in h5py._objects.ObjectID.__dealloc__");
    the failure itself is raised normally. Anything else written to ``sys.stderr`` meanwhile is
    passed on when the block ends."""
    import io

    previous_hook, previous_err = sys.unraisablehook, sys.stderr
    captured = io.StringIO()

    def hook(unraisable: Any) -> None:
        obj = getattr(unraisable, "object", None)
        where = f"{getattr(obj, '__module__', '')} {getattr(obj, '__qualname__', '')} {obj!r}"
        if "h5py" not in where:
            previous_hook(unraisable)

    sys.unraisablehook = hook
    sys.stderr = captured
    try:
        yield
    finally:
        try:
            gc.collect()  # free the failed file's objects while their reports are swallowed
        finally:
            sys.unraisablehook, sys.stderr = previous_hook, previous_err
        text = captured.getvalue()
        if text and "h5py" not in text:
            previous_err.write(text)
        elif text:
            log.debug("HDF5 reports of a failed write, not shown: %s", text[:2000])


def check_store_path(path: PathLike) -> Path:
    """Check that ``path`` can be a region store before any work is done; return it resolved.

    Raises :class:`StoreError` naming the path when it is a folder, when its parent exists but is
    not a folder, or when the parent folder is not writable (a missing parent is created later).
    """
    given = Path(path)
    p = given.resolve()
    if p.is_dir():
        raise StoreError(f"--out {given} is a folder; a region store is a file path such as "
                         f"{given / 'regions.h5'}")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise StoreError(f"cannot write region store {given}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write region store {given}: folder {parent} is not writable")
    return p


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _parts_dir(path: Path) -> Path:
    return Path(str(Path(path).resolve()) + ".parts")


def _segments(path: Path) -> List[Path]:
    """Complete segment files of the store at ``path``, in commit order."""
    parts = _parts_dir(path)
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if _SEGMENT_RE.match(p.name))


def store_exists(path: PathLike) -> bool:
    """True if ``path`` has a main file or at least one committed segment."""
    path = Path(path).resolve()
    return path.is_file() or bool(_segments(path))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _comparable(config: Any, prefix: str = "") -> Any:
    if isinstance(config, Mapping):
        return {k: _comparable(v, f"{prefix}{k}.") for k, v in config.items()
                if k not in RUN_ONLY_CONFIG_KEYS and f"{prefix}{k}" not in RUN_ONLY_CONFIG_PATHS}
    return config


def compatible_configs(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[str]:
    """Keys (dotted paths) whose values differ between two extractor configs; keys in
    :data:`RUN_ONLY_CONFIG_KEYS` are ignored at every level, and the entries of
    :data:`RUN_ONLY_CONFIG_PATHS` (file locations). An empty list means they agree."""
    out: List[str] = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k, "<missing>"), y.get(k, "<missing>"), f"{prefix}{k}.")
        elif x != y:
            out.append(prefix[:-1] or "<config>")

    walk(_comparable(a), _comparable(b), "")
    return out


# ------------------------------------------------------------------------------------ locking
class StoreLock:
    """An exclusive writer lock on ``<store>.lock``, held with ``flock(LOCK_EX | LOCK_NB)``.

    The lock file is opened (created if absent) and kept open for as long as the lock is held;
    the kernel drops the ``flock`` when the file is closed or the holding process dies, so a lock
    of a killed writer never blocks the next one, whatever the file still contains. The file
    holds JSON ``{"pid", "host", "created", "argv"}`` of the holder, used only to name the
    holder in the :class:`StoreLockedError` of a second writer; a file that is empty or
    unreadable (a writer killed before writing it) does not matter. The store path is resolved
    (``Path.resolve()``) first, so a store reached through a symbolic link has the same lock.

    ``release`` removes the file while still holding the lock, then closes it; a process that
    opened the old file meanwhile notices (the path no longer names the file it locked) and
    retries, so at most one writer holds the lock at any time.

    The lock is the holder's alone: the descriptor is opened with ``O_CLOEXEC`` (closed by
    ``exec``) and closed in every child forked from the holder (``os.register_at_fork``), so a
    forked process (e.g. a ``DataLoader`` decoding worker) never keeps it after the holder has
    exited or been killed. When the lock is busy, the error names the process that holds it: the
    recorded holder if it is alive, else the live process found holding the file (from
    ``/proc``), or says that none could be identified.
    """

    def __init__(self, store_path: PathLike) -> None:
        self.store_path = Path(store_path).resolve()
        self.path = Path(str(self.store_path) + ".lock")
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

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
            if _pid_alive(pid):
                return f"{recorded}, which is running"
            holders = [h for h in _processes_holding(fd) if h[0] != os.getpid()]
            if holders:
                who = "; ".join(f"pid {p} (command: {c[:200]})" for p, c in holders[:5])
                return (f"{who}, still running: the recorded writer, {recorded}, is no longer "
                        f"running and its lock was inherited by that process (e.g. a leftover "
                        f"worker of the dead writer); stop it to free the store")
            return (f"a process that is not the recorded writer ({recorded}, no longer running): "
                    f"presumably a process it started that inherited the lock; find it with "
                    f"`fuser -v {self.path}`")
        if isinstance(pid, int) and host is not None:
            return f"{recorded} (another host: whether it still runs cannot be checked from here)"
        holders = [h for h in _processes_holding(fd) if h[0] != os.getpid()]
        if holders:
            return "; ".join(f"pid {p} (command: {c[:200]})" for p, c in holders[:5])
        return recorded

    def _try_lock(self) -> Optional[int]:
        """Open the lock file and take the flock; the fd, or None if the file was replaced
        meanwhile (retry). Raises :class:`StoreLockedError` if another writer holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreLockedError(
                    f"region store {self.store_path} is locked by another writer: lock file "
                    f"{self.path} is held by {self._describe_busy(fd)}; wait for that "
                    "writer to finish, or stop it (the lock is released when its process "
                    "ends)") from None
            except OSError as e:
                raise StoreError(f"cannot lock {self.path}: the file system does not support "
                                 f"flock ({e}); write the store on a local file system") from e
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

    def acquire(self) -> "StoreLock":
        """Take the lock or raise :class:`StoreLockedError` naming the lock file and its holder."""
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
        raise StoreLockedError(f"could not take the lock {self.path} (it keeps changing hands)")

    def release(self) -> None:
        """Remove the lock file and drop the lock, if this object holds it."""
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

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


#: locks held by this process; a forked child closes their descriptors at once (see StoreLock)
_HELD_LOCKS: "weakref.WeakSet[StoreLock]" = weakref.WeakSet()


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


def _pid_alive(pid: int) -> bool:
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


def _processes_holding(fd: int) -> List[Tuple[int, str]]:
    """``(pid, command line)`` of the processes that have the file of ``fd`` open (Linux
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
                if _pid_alive(pid):
                    found.append((pid, cmd or "?"))
                break
    return found


# ------------------------------------------------------------------------------ file reading
class _StoreFile:
    """One HDF5 file of the ragged layout, opened read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.h5 = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path}: cannot open as an HDF5 region store ({e})") from e
        try:
            a = self.h5.attrs
            fmt = a.get("format")
            if fmt != FORMAT_NAME:
                raise StoreError(f"{path}: not a region store (format attribute {fmt!r}, "
                                 f"expected {FORMAT_NAME!r})")
            ver = int(a.get("format_version", -1))
            if ver > FORMAT_VERSION:
                raise StoreError(f"{path}: store format version {ver} is newer than this "
                                 f"reader ({FORMAT_VERSION}); upgrade graphmatch")
            self.config: Dict[str, Any] = json.loads(a.get("extractor_config", "{}"))
            self.feature_dim = int(a.get("feature_dim", 0))
            self.feature_dtype = str(a.get("feature_dtype", "float32"))
            self.created = str(a.get("created", ""))
            if "ids" in self.h5:
                self.ids: List[str] = [str(s) for s in self.h5["ids"].asstr()[()]]
                self.offsets = np.asarray(self.h5["offsets"][()], dtype=np.int64)
                self.sizes = np.asarray(self.h5["image_size"][()], dtype=np.int64)
                self.flags = [str(s) for s in self.h5["flags"].asstr()[()]]
                self.present = np.asarray(self.h5["present"][()], dtype=np.uint8)
            else:
                self.ids, self.flags = [], []
                self.offsets = np.zeros(1, np.int64)
                self.sizes = np.zeros((0, 2), np.int64)
                self.present = np.zeros(0, np.uint8)
            n = len(self.ids)
            if self.offsets.shape != (n + 1,) or self.sizes.shape != (n, 2) or len(self.flags) != n:
                raise StoreError(f"{path}: index datasets disagree on the number of images ({n})")
        except StoreError:
            self.h5.close()
            raise
        except (KeyError, ValueError, OSError) as e:
            self.h5.close()
            raise StoreError(f"{path}: malformed region store ({type(e).__name__}: {e})") from e

    def __len__(self) -> int:
        return len(self.ids)

    def regions(self, i: int) -> Regions:
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        h5 = self.h5
        bits = int(self.present[i])
        opt: Dict[str, Optional[torch.Tensor]] = {}
        for name, (bit, _, _) in _OPTIONAL.items():
            opt[name] = torch.from_numpy(np.asarray(h5[name][s:e])) if bits & bit and name in h5 else None
        if "features" in h5:
            feats = np.asarray(h5["features"][s:e])
            boxes = np.asarray(h5["boxes"][s:e])
        else:
            feats = np.zeros((0, self.feature_dim), np.float32)
            boxes = np.zeros((0, 4), np.float32)
        return Regions(boxes=torch.from_numpy(boxes), features=torch.from_numpy(feats),
                       image_size=(int(self.sizes[i, 0]), int(self.sizes[i, 1])),
                       flags=json.loads(self.flags[i]) if self.flags[i] else {}, **opt)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.h5.close()


class RegionStore:
    """Read access to a region store: ``get(image_id) -> Regions``, ``ids()``, ``len``, ``in``.

    Iterating yields ``(image_id, Regions)`` pairs in storage order (as every reader in
    :mod:`detectors.readers` does). The store is the main file plus every committed segment of
    an unfinished or interrupted writer (see the module docstring); a later record of an id
    overrides an earlier one. Opening does not take the writer lock.

    Args:
        path: the store path, e.g. ``regions.h5``.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        for attempt in range(2):
            try:
                self._open()
                break
            except FileNotFoundError:
                # a writer compacted (deleted segments) between listing and opening: list again
                self.close()
                if attempt:
                    raise

    def _open(self) -> None:
        self._files: List[_StoreFile] = []
        paths = ([self.path] if self.path.is_file() else []) + _segments(self.path)
        if not paths:
            raise StoreError(f"region store not found: {self.path} (no such file and no "
                             f"committed segments in {_parts_dir(self.path)})")
        for p in paths:
            try:
                self._files.append(_StoreFile(p))
            except StoreError:
                if not p.exists():
                    raise FileNotFoundError(p) from None
                raise
        self._index: Dict[str, Tuple[int, int]] = {}
        for fi, f in enumerate(self._files):
            for ii, image_id in enumerate(f.ids):
                self._index[image_id] = (fi, ii)
        dims = {f.feature_dim for f in self._files if f.offsets[-1] > 0}
        if len(dims) > 1:
            raise StoreError(f"{self.path}: files of the store disagree on the feature dimension "
                             f"({sorted(dims)})")
        first = self._files[0]
        self.config: Dict[str, Any] = first.config
        self.created: str = first.created
        self.feature_dim: int = dims.pop() if dims else max(f.feature_dim for f in self._files)
        self.n_regions: int = sum(int(f.offsets[-1]) for f in self._files)
        self.feature_dtype: str = first.feature_dtype

    @property
    def files(self) -> List[Path]:
        """The files the store is read from: the main file, then committed segments."""
        return [f.path for f in self._files]

    def ids(self) -> List[str]:
        """Image ids in storage order."""
        return list(self._index)

    def get(self, image_id: str) -> Regions:
        """The regions of ``image_id``; ``KeyError`` naming the store if absent."""
        try:
            fi, ii = self._index[str(image_id)]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in region store {self.path} "
                           f"({len(self)} images)") from None
        return self._files[fi].regions(ii)

    __getitem__ = get

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[Tuple[str, Regions]]:
        for image_id, (fi, ii) in self._index.items():
            yield image_id, self._files[fi].regions(ii)

    items = __iter__

    def close(self) -> None:
        """Close the HDF5 files."""
        for f in getattr(self, "_files", []):
            f.close()
        self._files = []

    def __enter__(self) -> "RegionStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RegionStore({str(self.path)!r}, images={len(self)}, feature_dim={self.feature_dim}, "
                f"dtype={self.feature_dtype}, files={len(self._files)})")


# ------------------------------------------------------------------------------ file writing
class _Appender:
    """Appends images to an HDF5 file of the ragged layout (resizable, chunked datasets)."""

    def __init__(self, h5: h5py.File, *, config: Mapping[str, Any], feature_dtype: str,
                 compression: Optional[str], created: Optional[str] = None) -> None:
        self.h5 = h5
        self.feature_dtype = np.dtype(feature_dtype)
        self.compression = compression
        self.n_images = 0
        self.n_rows = 0
        self.dim: Optional[int] = None
        self.attr_tail: Dict[str, Tuple[int, ...]] = {}
        a = h5.attrs
        a["format"] = FORMAT_NAME
        a["format_version"] = FORMAT_VERSION
        a["created"] = created or _now()
        a["modified"] = _now()
        a["extractor_config"] = json.dumps(dict(config), sort_keys=True)
        a["feature_dtype"] = self.feature_dtype.name
        a["feature_dim"] = 0
        self._index_ds()

    def _ds(self, name: str, tail: Tuple[int, ...], dtype: Any, rows: int, fill: Any = None,
            chunk_rows: int = 4096) -> h5py.Dataset:
        kw: Dict[str, Any] = {}
        if fill is not None:
            kw["fillvalue"] = fill
        if self.compression:
            kw["compression"] = self.compression
        return self.h5.create_dataset(name, shape=(rows,) + tail, maxshape=(None,) + tail,
                                      dtype=dtype, chunks=(chunk_rows,) + tail, **kw)

    def _index_ds(self) -> None:
        self._ds("ids", (), _STR, 0)
        off = self._ds("offsets", (), np.int64, 1)
        off[0] = 0
        self._ds("image_size", (2,), np.int64, 0)
        self._ds("flags", (), _STR, 0)
        self._ds("present", (), np.uint8, 0)

    def _ensure_region_ds(self, dim: int) -> None:
        if self.dim is None:
            self.dim = dim
            self.h5.attrs["feature_dim"] = dim
            chunk = max(16, min(4096, (1 << 20) // max(1, dim * self.feature_dtype.itemsize)))
            self._ds("boxes", (4,), np.float32, 0)
            self._ds("features", (dim,), self.feature_dtype, 0, chunk_rows=chunk)
        elif dim != self.dim:
            raise StoreError(f"{self.h5.filename}: feature dimension {dim} differs from the "
                             f"store's {self.dim}")

    def _ensure_opt(self, name: str, tail: Tuple[int, ...]) -> None:
        if name in self.h5:
            if self.attr_tail.get(name, ()) != tail:
                raise StoreError(f"{self.h5.filename}: {name} rows have shape {tail}, the store's "
                                 f"have {self.attr_tail.get(name, ())}")
            return
        _, dtype, fill = _OPTIONAL[name]
        self._ds(name, tail, dtype, self.n_rows, fill=fill)
        self.attr_tail[name] = tail

    @staticmethod
    def _grow(ds: h5py.Dataset, data: Any, start: int) -> None:
        n = len(data)
        if ds.shape[0] < start + n:
            ds.resize(start + n, axis=0)
        if n:
            ds[start:start + n] = data

    def append(self, ids: Sequence[str], counts: np.ndarray, sizes: np.ndarray,
               flags: Sequence[str], present: np.ndarray, boxes: np.ndarray, features: np.ndarray,
               optional: Mapping[str, Optional[np.ndarray]]) -> None:
        """Append ``len(ids)`` images whose regions are the concatenated rows given."""
        k = len(ids)
        if k == 0:
            return
        rows = int(counts.sum())
        if rows == 0 and self.dim is not None:
            features = features.reshape(0, self.dim)
        if rows > 0 or features.shape[1] > 0:
            self._ensure_region_ds(int(features.shape[1]))
        for name, arr in optional.items():
            if arr is not None:
                self._ensure_opt(name, tuple(arr.shape[1:]))
        h5, n, r = self.h5, self.n_images, self.n_rows
        self._grow(h5["ids"], np.array(list(ids), dtype=object), n)
        self._grow(h5["offsets"], r + np.cumsum(counts, dtype=np.int64), n + 1)
        self._grow(h5["image_size"], sizes.astype(np.int64), n)
        self._grow(h5["flags"], np.array(list(flags), dtype=object), n)
        self._grow(h5["present"], present.astype(np.uint8), n)
        if "features" in h5:
            self._grow(h5["boxes"], boxes.astype(np.float32, copy=False), r)
            self._grow(h5["features"], features.astype(self.feature_dtype, copy=False), r)
        for name in _OPTIONAL:
            if name not in h5:
                continue
            arr = optional.get(name)
            if arr is None:
                h5[name].resize(r + rows, axis=0)  # fill value for the new rows
            else:
                self._grow(h5[name], arr.astype(_OPTIONAL[name][1], copy=False), r)
        self.n_images += k
        self.n_rows += rows

    def append_records(self, records: Sequence[Tuple[str, Regions]]) -> None:
        """Append ``(image_id, Regions)`` pairs."""
        if not records:
            return
        dim = self.dim
        if dim is None:
            dim = next((int(reg.features.shape[1]) for _, reg in records if len(reg)),
                       int(records[0][1].features.shape[1]))
        counts = np.array([len(reg) for _, reg in records], dtype=np.int64)
        sizes = np.array([reg.image_size for _, reg in records], dtype=np.int64).reshape(-1, 2)
        flags = [json.dumps(reg.flags, sort_keys=True, default=str) for _, reg in records]
        present = np.zeros(len(records), np.uint8)
        boxes, feats = [], []
        for _, reg in records:
            f = reg.features.detach().cpu()
            if len(reg) == 0:
                f = f.reshape(0, dim)
            if f.shape[1] != dim:
                raise StoreError(f"{self.h5.filename}: feature dimension {f.shape[1]} differs "
                                 f"from the store's {dim}")
            boxes.append(reg.boxes.detach().cpu().numpy())
            feats.append(f.float().numpy() if f.dtype == torch.bfloat16 else f.numpy())
        optional: Dict[str, Optional[np.ndarray]] = {}
        for name, (bit, dtype, fill) in _OPTIONAL.items():
            vals = [getattr(reg, name) for _, reg in records]
            if all(v is None for v in vals):
                optional[name] = None
                continue
            tail = next(tuple(v.shape[1:]) for v in vals if v is not None)
            parts = []
            for j, (v, (_, reg)) in enumerate(zip(vals, records)):
                if v is None:
                    parts.append(np.full((len(reg),) + tail, fill, dtype))
                else:
                    if tuple(v.shape[1:]) != tail:
                        raise StoreError(f"{name} of image {records[j][0]!r} has rows of shape "
                                         f"{tuple(v.shape[1:])}, others have {tail}")
                    parts.append(v.detach().cpu().numpy().astype(dtype, copy=False))
                    present[j] |= bit
            optional[name] = np.concatenate(parts)
        self.append([i for i, _ in records], counts, sizes, flags, present,
                     np.concatenate(boxes).reshape(-1, 4), np.concatenate(feats).reshape(-1, dim),
                     optional)

    def append_from(self, src: _StoreFile, indices: Sequence[int]) -> None:
        """Bulk-copy images ``indices`` of ``src`` (contiguous runs are read in one slice)."""
        idx = list(indices)
        start = 0
        while start < len(idx):
            end = start + 1
            while end < len(idx) and end - start < _COPY_IMAGES and idx[end] == idx[end - 1] + 1:
                end += 1
            a, b = idx[start], idx[end - 1] + 1
            s, e = int(src.offsets[a]), int(src.offsets[b])
            h = src.h5
            if "features" in h:
                feats, boxes = np.asarray(h["features"][s:e]), np.asarray(h["boxes"][s:e])
            else:
                feats = np.zeros((0, self.dim or src.feature_dim), np.float32)
                boxes = np.zeros((0, 4), np.float32)
            optional = {name: (np.asarray(h[name][s:e]) if name in h else None) for name in _OPTIONAL}
            self.append(src.ids[a:b], np.diff(src.offsets[a:b + 1]), src.sizes[a:b],
                        src.flags[a:b], src.present[a:b], boxes, feats, optional)
            start = end


def _write_file(path: Path, *, config: Mapping[str, Any], feature_dtype: str,
                compression: Optional[str], created: Optional[str] = None,
                records: Sequence[Tuple[str, Regions]] = (),
                sources: Sequence[Tuple[_StoreFile, Sequence[int]]] = (),
                in_memory: bool = False) -> None:
    """Write a complete store file at ``path`` (not atomic by itself) and fsync it.

    HDF5 never sees a failed write: with ``in_memory`` (segments) the file is built in memory and
    then written with plain writes; otherwise it is written through a :class:`_GuardedFile`
    that keeps the first write error and drops later writes. A failed write raises ``OSError``
    (``ENOSPC`` naming ``path`` for a full disk); the caller removes the partial file."""

    def fill(h5: h5py.File) -> None:
        app = _Appender(h5, config=config, feature_dtype=feature_dtype,
                        compression=compression, created=created)
        for src, indices in sources:
            app.append_from(src, indices)
        app.append_records(records)

    def build(target: Any) -> None:
        with _quiet_h5py():
            with h5py.File(target, "w") as h5:
                fill(h5)

    try:
        if in_memory:  # HDF5's core driver: the file image lives in memory only
            with h5py.File(str(path), "w", driver="core", backing_store=False) as h5:
                fill(h5)
                h5.flush()
                image = h5.id.get_file_image()
            write_bytes(path, image, mode=0o644)
        else:
            guard = _GuardedFile(path)
            try:
                build(guard)
            finally:
                guard.close()
            if guard.error is not None:
                raise guard.error
    except (OSError, RuntimeError) as e:
        if _is_no_space(e):
            raise OSError(errno.ENOSPC, f"cannot write {path}: no space left on device") from None
        raise


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`StoreDiskFullError` before writing ``needed`` bytes into ``folder`` when its
    file system has clearly less room (``statvfs``; skipped where unsupported)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise StoreDiskFullError(
            f"disk full: {what} needs about {needed / 2**20:.1f} MiB in {folder}, which has "
            f"{free / 2**20:.1f} MiB free; nothing was written")


def _size_of(files: Sequence[Path]) -> int:
    total = 0
    for p in files:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total + (1 << 20)


class _GuardedFile:
    """The file object HDF5 writes a large store file through (h5py's ``fileobj`` driver).

    Writes are complete or fail; the first failure (e.g. a full disk) is kept in :attr:`error`
    and from then on nothing more goes to disk: small writes (HDF5's metadata, at most 64 KiB)
    are kept in memory so that HDF5 reads back what it wrote, larger ones are dropped. HDF5 thus
    sees no failure and closes the file normally (after a failed write, HDF5 with its default
    driver can leave the file half-closed and crash when it is closed later); the caller checks
    :attr:`error` and discards the file.
    """

    _KEEP = 64 << 10

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self.error: Optional[OSError] = None
        self._pos = 0
        self._kept: List[Tuple[int, bytes]] = []

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.error is None:
            self._pos = self.raw.seek(offset, whence)
        elif whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = max([self.raw.seek(0, 2)] + [o + len(b) for o, b in self._kept]) + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if self.error is None:
            data = self.raw.read(n)
            self._pos += len(data)
            return data
        self.raw.seek(self._pos)
        data = bytearray(self.raw.read(n))
        if n is not None and n >= 0 and len(data) < n:
            data.extend(bytes(n - len(data)))
        start = self._pos
        for off, blob in self._kept:  # later writes win
            lo, hi = max(off, start), min(off + len(blob), start + len(data))
            if lo < hi:
                data[lo - start:hi - start] = blob[lo - off:hi - off]
        self._pos += len(data)
        return bytes(data)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            done = 0
            try:
                while done < len(view):
                    n = self.raw.write(view[done:])
                    if not n:
                        raise OSError(errno.EIO, f"cannot write {self.path}: short write")
                    done += n
            except OSError as e:
                self.error = e
            else:
                self._pos += len(view)
                return len(view)
        if len(view) <= self._KEEP:
            self._kept.append((self._pos, bytes(view)))
        self._pos += len(view)
        return len(view)

    def truncate(self, size: Optional[int] = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                return self.raw.truncate(size)
            except OSError as e:
                self.error = e
        return size

    def flush(self) -> None:
        pass  # unbuffered

    def close(self) -> None:
        """fsync (unless a write failed) and close the file."""
        try:
            if self.error is None:
                try:
                    os.fsync(self.raw.fileno())
                except OSError as e:
                    self.error = e
        finally:
            self.raw.close()


def _plan(files: Sequence[_StoreFile], order: Optional[Sequence[str]] = None,
          ) -> List[Tuple[_StoreFile, List[int]]]:
    """Which images of which files to copy (last record of an id wins), as runs per file.

    Without ``order`` ids keep their first-appearance order; with it, ids in ``order`` come
    first in that order, then the remaining ids in first-appearance order.
    """
    where: Dict[str, Tuple[int, int]] = {}
    for fi, f in enumerate(files):
        for ii, image_id in enumerate(f.ids):
            where[image_id] = (fi, ii)
    ids = list(where)
    if order is not None:
        rank = {image_id: k for k, image_id in enumerate(order)}
        ids.sort(key=lambda i: (0, rank[i]) if i in rank else (1, 0))  # stable for the rest
    plan: List[Tuple[_StoreFile, List[int]]] = []
    for image_id in ids:
        fi, ii = where[image_id]
        if plan and plan[-1][0] is files[fi]:
            plan[-1][1].append(ii)
        else:
            plan.append((files[fi], [ii]))
    return plan


class RegionStoreWriter:
    """Exclusive, crash-safe writer of a region store (see the module docstring).

    Args:
        path: store path, e.g. ``regions.h5``.
        config: the extractor's ``config()`` (JSON-serialisable); stored as a file attribute.
            When resuming, it must agree with the stored config (keys in
            :data:`RUN_ONLY_CONFIG_KEYS` aside), otherwise :class:`StoreError`.
        feature_dtype: ``"float32"`` or ``"float16"``; default: the existing store's, or float32.
        resume: continue an existing store; without it an existing store raises
            :class:`StoreExistsError`.
        commit_every: images buffered in memory before they are committed as a segment.
        commit_seconds: also commit when the oldest buffered image is this old.
        compression: HDF5 compression filter of the datasets (``None``, ``"gzip"``, ``"lzf"``).
        compact: at ``close()``, merge the segments into the main file.

    Use it as a context manager: on a clean exit it commits, compacts and releases the lock; on
    an exception it commits the finished images it buffered (unless a write has just failed for
    lack of space) and releases the lock, leaving the segments for the next (resuming) writer to
    compact.
    """

    def __init__(self, path: PathLike, *, config: Optional[Mapping[str, Any]] = None,
                 feature_dtype: Optional[str] = None, resume: bool = False,
                 commit_every: int = 256, commit_seconds: float = 60.0,
                 compression: Optional[str] = None, compact: bool = True) -> None:
        self.path = Path(path).resolve()  # a symlinked path is the same store (and lock)
        self.config: Dict[str, Any] = json.loads(json.dumps(dict(config or {})))
        self.commit_every = max(1, int(commit_every))
        self.commit_seconds = float(commit_seconds)
        self.compression = compression
        self.compact_on_close = compact
        if feature_dtype is not None and np.dtype(feature_dtype).name not in ("float32", "float16"):
            raise ValueError(f"feature_dtype must be float32 or float16, got {feature_dtype!r}")
        check_store_path(path)
        self._write_failed = False
        self.lock = StoreLock(self.path).acquire()
        try:
            self._cleanup_temporaries()
            self._done: set = set()
            self.created: Optional[str] = None
            self.feature_dim: Optional[int] = None
            if store_exists(self.path):
                if not resume:
                    raise StoreExistsError(
                        f"region store {self.path} already exists; pass --resume (resume=True) "
                        "to continue it, or choose another path")
                with RegionStore(self.path) as old:
                    diff = compatible_configs(old.config, self.config) if self.config else []
                    if diff:
                        raise StoreError(
                            f"region store {self.path} was written with a different extractor "
                            f"config (differs in: {', '.join(diff)}); stored: "
                            f"{json.dumps(_comparable(old.config), sort_keys=True)}; "
                            "choose another output path")
                    if not self.config:
                        self.config = old.config
                    if feature_dtype is not None and np.dtype(feature_dtype).name != old.feature_dtype:
                        raise StoreError(f"region store {self.path} holds {old.feature_dtype} "
                                         f"features; cannot resume with {feature_dtype}")
                    feature_dtype = old.feature_dtype
                    self._done = set(old.ids())
                    self.created = old.created
                    self.feature_dim = old.feature_dim if old.n_regions else None
            self.feature_dtype = np.dtype(feature_dtype or "float32").name
            self._buffer: List[Tuple[str, Regions]] = []
            self._buffer_since: Optional[float] = None
            self.n_added = 0
            self.closed = False
        except BaseException:
            self.lock.release()
            raise

    # -- housekeeping
    def _cleanup_temporaries(self) -> None:
        """Remove temporary files of a writer that was killed (we hold the lock)."""
        parts = _parts_dir(self.path)
        if parts.is_dir():
            for p in parts.iterdir():
                if p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)
        parent = self.path.parent
        if parent.is_dir():
            prefix = f".{self.path.name}."
            for p in parent.iterdir():
                if p.name.startswith(prefix) and p.name.endswith(".tmp"):
                    p.unlink(missing_ok=True)

    # -- writing
    def __contains__(self, image_id: object) -> bool:
        """True if ``image_id`` is stored, committed or buffered."""
        return str(image_id) in self._done

    def __len__(self) -> int:
        return len(self._done)

    def add(self, image_id: str, regions: Regions) -> None:
        """Add the regions of one image (buffered; committed every ``commit_every`` images)."""
        if self.closed:
            raise StoreError(f"writer of {self.path} is closed")
        image_id = str(image_id)
        if not image_id:
            raise ValueError("image id must be a non-empty string")
        if image_id in self._done:
            raise StoreError(f"image id {image_id!r} is already in region store {self.path}")
        if not isinstance(regions, Regions):
            raise TypeError(f"expected Regions for image {image_id!r}, got {type(regions).__name__}")
        dim = int(regions.features.shape[1])
        if len(regions):
            if self.feature_dim is None:
                self.feature_dim = dim
            elif dim != self.feature_dim:
                raise StoreError(f"image {image_id!r} has {dim}-d features; region store "
                                 f"{self.path} holds {self.feature_dim}-d features")
        self._buffer.append((image_id, regions))
        self._done.add(image_id)
        self.n_added += 1
        if self._buffer_since is None:
            self._buffer_since = time.monotonic()
        if (len(self._buffer) >= self.commit_every
                or time.monotonic() - self._buffer_since >= self.commit_seconds):
            self.commit()

    def add_many(self, items: Iterable[Tuple[str, Regions]]) -> None:
        """``add`` each ``(image_id, Regions)`` pair."""
        for image_id, regions in items:
            self.add(image_id, regions)

    def commit(self) -> Optional[Path]:
        """Write the buffered images as a new segment (atomic rename); return its path."""
        if not self._buffer:
            return None
        parts = _parts_dir(self.path)
        parts.mkdir(parents=True, exist_ok=True)
        existing = _segments(self.path)
        seq = int(_SEGMENT_RE.match(existing[-1].name).group(1)) + 1 if existing else 0
        final = parts / f"seg-{seq:08d}.h5"
        tmp = parts / f".seg-{seq:08d}.h5.{os.getpid()}.tmp"
        try:
            _write_file(tmp, config=self.config, feature_dtype=self.feature_dtype,
                        compression=self.compression, created=self.created,
                        records=self._buffer, in_memory=True)
            os.replace(tmp, final)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError) and _is_no_space(e):
                self._write_failed = True
                n = len(self._buffer)
                raise StoreDiskFullError(
                    f"disk full: cannot commit {n} image(s) to region store {self.path} (writing "
                    f"segment {final} failed: no space left on device). The "
                    f"{len(self._done) - n} images committed before are intact; free space on "
                    f"the file system of {parts} and rerun with --resume (resume=True): the "
                    f"{n} uncommitted image(s) are extracted again") from None
            raise
        fsync_dir(parts)
        self._buffer = []
        self._buffer_since = None
        return final

    def compact(self) -> None:
        """Merge the main file and all segments into a new main file (atomically), then delete
        the segments. Also creates an empty main file for a store with no images yet."""
        self.commit()
        segs = _segments(self.path)
        if not segs and self.path.is_file():
            return
        files = [_StoreFile(p) for p in ([self.path] if self.path.is_file() else []) + segs]
        try:
            created = self.created or (files[0].created if files else None)
            try:
                _check_free_space(self.path.parent, _size_of([f.path for f in files]),
                                  f"compacting region store {self.path}")
                with atomic_path(self.path) as tmp:
                    _write_file(tmp, config=self.config, feature_dtype=self.feature_dtype,
                                compression=self.compression, created=created,
                                sources=_plan(files))
            except (OSError, StoreDiskFullError) as e:
                if not isinstance(e, StoreDiskFullError) and not _is_no_space(e):
                    raise
                self._write_failed = True
                raise StoreDiskFullError(
                    f"disk full: cannot compact region store {self.path} (writing its new main "
                    f"file failed: no space left on device). All {len(self._done)} images are "
                    f"committed and readable (main file plus segments in {_parts_dir(self.path)}); "
                    f"free space and rerun with --resume (resume=True) to compact them") from None
        finally:
            for f in files:
                f.close()
        fsync_dir(self.path.parent)
        for p in segs:
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            _parts_dir(self.path).rmdir()

    def close(self, compact: Optional[bool] = None) -> None:
        """Commit, compact (unless ``compact=False``) and release the lock."""
        if self.closed:
            return
        try:
            self.commit()
            if self.compact_on_close if compact is None else compact:
                self.compact()
        finally:
            self.closed = True
            self.lock.release()

    def abort(self) -> None:
        """Commit the finished images that are buffered and release the lock (no compaction).
        After a failed write (disk full) nothing more is written."""
        if self.closed:
            return
        try:
            if not self._write_failed:
                self.commit()
        finally:
            self.closed = True
            self.lock.release()

    def __enter__(self) -> "RegionStoreWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.abort()
            except Exception as e:  # keep the original exception
                log.error("could not commit buffered images of %s: %s", self.path, e)


# ------------------------------------------------------------------------------------ merging
def merge_stores(inputs: Sequence[PathLike], out: PathLike, *, order: Optional[Sequence[str]] = None,
                 on_duplicate: str = "error", feature_dtype: Optional[str] = None,
                 compression: Optional[str] = None, overwrite: bool = False) -> int:
    """Merge region stores ``inputs`` into the store ``out``; return its number of images.

    ``out`` is written to a temporary file and renamed into place (atomic), under ``out``'s
    writer lock; ``out`` may itself be one of the inputs (e.g. the final store plus new shards),
    otherwise an existing ``out`` is an error unless ``overwrite``. Inputs may be interrupted
    stores (their committed segments are included). Their extractor configs must agree (run-only
    keys aside).

    Args:
        inputs: store paths; missing inputs are an error.
        out: the merged store path.
        order: optional image-id order of the result (ids not listed follow in input order).
        on_duplicate: ``"error"`` (an id in two inputs is an error), ``"first"`` or ``"last"``
            (which input's record to keep).
        feature_dtype: dtype of the merged features (default: the inputs'; float32 when mixed).
        compression: HDF5 compression of the result.
    """
    if on_duplicate not in ("error", "first", "last"):
        raise ValueError(f"on_duplicate must be 'error', 'first' or 'last', got {on_duplicate!r}")
    out = Path(out).resolve()
    in_paths = [Path(p) for p in inputs]
    if not in_paths:
        raise ValueError("merge_stores: no inputs")
    out_is_input = any(p.resolve() == out.resolve() for p in in_paths)
    with StoreLock(out):
        if store_exists(out) and not out_is_input and not overwrite:
            raise StoreExistsError(f"merge output {out} already exists (pass overwrite=True, or "
                                   "list it among the inputs to merge into it)")
        stores = [RegionStore(p) for p in in_paths]
        try:
            configs = [s.config for s in stores]
            for p, c in zip(in_paths[1:], configs[1:]):
                diff = compatible_configs(configs[0], c)
                if diff:
                    raise StoreError(f"cannot merge {p} with {in_paths[0]}: extractor configs "
                                     f"differ in {', '.join(diff)}")
            dims = {s.feature_dim for s in stores if s.n_regions}
            if len(dims) > 1:
                raise StoreError(f"cannot merge stores with feature dimensions {sorted(dims)}")
            seen: Dict[str, Path] = {}
            files: List[_StoreFile] = []
            for p, s in zip(in_paths, stores):
                for image_id in s.ids():
                    if image_id in seen and on_duplicate == "error":
                        raise StoreError(f"image id {image_id!r} is in both {seen[image_id]} and "
                                         f"{p} (pass on_duplicate='first' or 'last')")
                    seen.setdefault(image_id, p)
                files.extend(s._files)
            if on_duplicate == "first":
                files = files[::-1]  # the last record wins in _plan
            plan = _plan(files, order=order if order is not None else
                         (list(seen) if on_duplicate == "first" else None))
            dtypes = {s.feature_dtype for s in stores if s.n_regions} or {stores[0].feature_dtype}
            dtype = feature_dtype or (dtypes.pop() if len(dtypes) == 1 else "float32")
            created = min((s.created for s in stores if s.created), default=None)
            _check_free_space(out.parent, _size_of([f.path for f in files]),
                              f"merging into region store {out}")
            with atomic_path(out) as tmp:
                _write_file(tmp, config=configs[0], feature_dtype=dtype, compression=compression,
                            created=created, sources=plan)
            fsync_dir(out.parent)
            n = sum(len(ix) for _, ix in plan)
        finally:
            for s in stores:
                s.close()
        if out_is_input:  # the out store's segments are now part of its main file
            for p in _segments(out):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                _parts_dir(out).rmdir()
    return n
