"""The region-store writer: :class:`RegionStoreWriter` and :func:`merge_stores`.

The layout of a store (``regions.h5`` plus committed segments in ``regions.h5.parts/``) and its
reader, :class:`~graphmatch.data.regions.RegionStore`, are defined in the core, in
:mod:`graphmatch.data.regions`, so that training reads stores without this package; this module
writes them: segments, locking, compaction, resume and merging of shards. ``RegionStore`` and
``StoreError`` are importable from here as well.

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
(e.g. a ``DataLoader`` worker) does not keep the store locked (:class:`StoreLock`, a
:class:`graphmatch.utils.locks.WriterLock`).

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
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from graphmatch.data.regions import (
    SEGMENT_PATTERN,
    STORE_FORMAT,
    STORE_FORMAT_VERSION,
    STORE_OPTIONAL_FIELDS,
    RegionStore,
    StoreError,
    StoreFile,
    store_exists,
    store_parts_dir,
    store_segments,
)
from graphmatch.structures import Regions
from graphmatch.utils.atomic import NO_SPACE_ERRNOS, atomic_path, fsync_dir, write_bytes
from graphmatch.utils.locks import LockedError, WriterLock

PathLike = Union[str, os.PathLike]

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "StoreError", "StoreExistsError", "StoreLockedError",
    "StoreDiskFullError", "check_store_path", "RegionStore", "RegionStoreWriter", "StoreLock", "merge_stores", "store_exists",
    "compatible_configs", "RUN_ONLY_CONFIG_KEYS", "RUN_ONLY_CONFIG_PATHS",
]

log = logging.getLogger(__name__)

#: the layout the writer writes (see :mod:`graphmatch.data.regions`)
FORMAT_NAME = STORE_FORMAT
FORMAT_VERSION = STORE_FORMAT_VERSION

#: extractor-config keys (at any nesting level) ignored when checking that two configs agree:
#: they describe the run or the environment, not the features
RUN_ONLY_CONFIG_KEYS = frozenset({"batch_size", "device", "num_workers", "progress", "versions"})
#: extractor-config entries (dotted paths from the top) ignored as well: where files were found.
#: The files themselves are compared by content (``weights.sha256``, ``class_names.sha256``;
#: detectron2's config file by ``detectron2_config``), so the same weights reached through
#: another path, or moved, do not make two configs differ.
RUN_ONLY_CONFIG_PATHS = frozenset({"options.weights", "options.class_names", "weights.path",
                                   "class_names.path", "config_file"})

_STR = h5py.string_dtype("utf-8")
_COPY_IMAGES = 128  # images per bulk copy when merging files


class StoreExistsError(StoreError):
    """The store already exists and the writer was not asked to resume it."""


class StoreLockedError(StoreError, LockedError):
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
class StoreLock(WriterLock):
    """The exclusive writer lock of a region store: a :class:`~graphmatch.utils.locks.WriterLock`
    on ``<store>.lock`` that raises :class:`StoreLockedError` when another writer holds it and
    :class:`StoreError` when the file system cannot lock (see :mod:`graphmatch.utils.locks` for
    the guarantees: a killed writer never blocks, forked children do not keep the lock, the error
    names the live holder).

    Args:
        store_path: the store path, e.g. ``regions.h5`` (resolved, so a symbolic link to the
            store has the same lock).
    """

    def __init__(self, store_path: PathLike) -> None:
        super().__init__(store_path, what="region store", locked_error=StoreLockedError,
                         error=StoreError)

    @property
    def store_path(self) -> Path:
        """The resolved store path."""
        return self.target


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
        _, dtype, fill = STORE_OPTIONAL_FIELDS[name]
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
        for name in STORE_OPTIONAL_FIELDS:
            if name not in h5:
                continue
            arr = optional.get(name)
            if arr is None:
                h5[name].resize(r + rows, axis=0)  # fill value for the new rows
            else:
                self._grow(h5[name], arr.astype(STORE_OPTIONAL_FIELDS[name][1], copy=False), r)
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
        for name, (bit, dtype, fill) in STORE_OPTIONAL_FIELDS.items():
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

    def append_from(self, src: StoreFile, indices: Sequence[int]) -> None:
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
            optional = {name: (np.asarray(h[name][s:e]) if name in h else None) for name in STORE_OPTIONAL_FIELDS}
            self.append(src.ids[a:b], np.diff(src.offsets[a:b + 1]), src.sizes[a:b],
                        src.flags[a:b], src.present[a:b], boxes, feats, optional)
            start = end


def _write_file(path: Path, *, config: Mapping[str, Any], feature_dtype: str,
                compression: Optional[str], created: Optional[str] = None,
                records: Sequence[Tuple[str, Regions]] = (),
                sources: Sequence[Tuple[StoreFile, Sequence[int]]] = (),
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


def _plan(files: Sequence[StoreFile], order: Optional[Sequence[str]] = None,
          ) -> List[Tuple[StoreFile, List[int]]]:
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
    plan: List[Tuple[StoreFile, List[int]]] = []
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
        parts = store_parts_dir(self.path)
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
        parts = store_parts_dir(self.path)
        parts.mkdir(parents=True, exist_ok=True)
        existing = store_segments(self.path)
        seq = int(SEGMENT_PATTERN.match(existing[-1].name).group(1)) + 1 if existing else 0
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
        segs = store_segments(self.path)
        if not segs and self.path.is_file():
            return
        files = [StoreFile(p) for p in ([self.path] if self.path.is_file() else []) + segs]
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
                    f"committed and readable (main file plus segments in {store_parts_dir(self.path)}); "
                    f"free space and rerun with --resume (resume=True) to compact them") from None
        finally:
            for f in files:
                f.close()
        fsync_dir(self.path.parent)
        for p in segs:
            p.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            store_parts_dir(self.path).rmdir()

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
            files: List[StoreFile] = []
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
            for p in store_segments(out):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                store_parts_dir(out).rmdir()
    return n
