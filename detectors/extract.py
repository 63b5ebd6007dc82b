"""The extraction job behind ``graphmatch extract``: a folder of images -> a region store.

:func:`extract_images` walks a folder (sorted, recursive), decodes the images in a background
``DataLoader`` (``num_workers``) so decoding overlaps the model, runs a region extractor on
batches and writes the regions into a :class:`detectors.store.RegionStoreWriter` (crash safe,
resumable). Image ids are the paths relative to the folder without extension (``a/b.jpg`` ->
``a/b``), or, with ``ids_from_filename``, taken from the file name alone (see :func:`image_id_for`).

* Files without an image extension are *skipped* (listed in the summary), not failures.
* Images that cannot be decoded are *failures*: listed in ``<out>.failures.tsv`` (``path<TAB>reason``
  per line, rewritten atomically after every change) while the run goes on. A later run that
  stores such an image removes its line; the file is deleted when no failure is left.
* When the extractor fails on a batch, each image of the batch is run again on its own: the
  images that succeed are stored, and an image that fails alone is a failure of that image
  (listed in ``failures.tsv`` with the extractor's error; e.g. a 20000x8 image that resizes to
  zero rows), and the run goes on. When ``max_failures_in_a_row`` images in a row (default: the
  batch size, at least 2) fail in the extractor with the same type of error and none between them
  succeeded, the cause is taken to be the model or the device rather than the images, and the run
  stops with :class:`ExtractionError`: the images finished until then stay stored, and
  ``resume=True`` continues after the cause is fixed (failed images are retried on resume).
* Decoding workers are forked processes that never hold the store's lock (see
  :class:`detectors.store.StoreLock`) and end when the extracting process ends, however it ends
  (``kill -9`` included): on Linux through ``PR_SET_PDEATHSIG``, elsewhere (and as a fallback)
  through a thread that watches the parent pid. ``graphmatch extract`` turns ``SIGTERM`` into a
  clean stop that commits the finished images (exit status 143).
* An output path that is a folder (or not writable) is an error before any work is done.
* ``resume=True`` skips images already in the store; without it an existing store is an error.

Sharding (several processes or GPUs): with ``world_size > 1`` rank ``r`` takes images
``i % world_size == r`` of the sorted list and writes the shard store ``<out>.rank{r}``; when it is
done it writes ``<out>.rank{r}.done`` (recording a digest of the image ids it was given). Rank 0
then merges all shards (and, when resuming, the existing ``<out>``) into ``<out>`` with
:func:`detectors.store.merge_stores`, in the sorted image order, so the result equals a
single-process run. An image stored both in ``<out>`` and in a shard (shards kept with
``keep_shards``, or a run stopped between the merge and the deletion of the shards) is taken from
the shard; the extractor configs of all of them are checked to agree. The ``.done`` markers are
deleted as soon as a merge has used them, each rank deletes its own at its start, and rank 0 also
deletes, at its start, every marker written for another list of images, so it never merges a
shard of an earlier run as if it were finished. Under ``torchrun`` (``WORLD_SIZE``/``RANK`` set)
the ranks meet at a ``torch.distributed`` barrier before the merge; with explicit ``rank`` /
``world_size`` and no process group, rank 0 merges once every rank's ``.done`` file exists
(waiting up to ``merge_wait`` seconds), and :func:`merge_shards` (``graphmatch extract
--merge-only``) merges by hand.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from detectors.store import (
    RegionStore, RegionStoreWriter, StoreError, StoreExistsError, check_store_path, merge_stores,
    store_exists,
)
from graphmatch.utils.atomic import atomic_write_json, atomic_write_text

PathLike = Union[str, os.PathLike]

__all__ = [
    "IMAGE_EXTENSIONS", "ImageEntry", "ExtractSummary", "ExtractionError", "list_images",
    "image_id_for", "extract_images", "merge_shards", "shard_path", "resolve_rank",
]

log = logging.getLogger(__name__)

#: file extensions (lower case) treated as images
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm"})


class ExtractionError(RuntimeError):
    """The extractor failed on image after image (or returned a wrong number of results), so the
    run stopped; finished images stay stored (resume to continue)."""


@dataclass(frozen=True)
class ImageEntry:
    """One image file: its path and image id."""

    path: Path
    image_id: str


@dataclass
class ExtractSummary:
    """What a run did. ``images_per_s`` counts the images extracted in this run."""

    out: str
    images_found: int = 0
    done: int = 0
    skipped_existing: int = 0
    skipped_non_image: List[str] = field(default_factory=list)
    failed: int = 0
    failures_file: Optional[str] = None
    seconds: float = 0.0
    images_per_s: float = 0.0
    rank: int = 0
    world_size: int = 1
    store: str = ""
    merged: bool = False
    merge_note: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """A few human-readable lines."""
        who = f"rank {self.rank}/{self.world_size}: " if self.world_size > 1 else ""
        lines = [f"{who}extracted {self.done} images in {self.seconds:.1f} s "
                 f"({self.images_per_s:.2f} images/s) into {self.store}"]
        lines.append(f"{who}skipped {self.skipped_existing} already stored, "
                     f"{len(self.skipped_non_image)} non-image files"
                     + (f" ({', '.join(self.skipped_non_image[:5])}"
                        f"{', ...' if len(self.skipped_non_image) > 5 else ''})"
                        if self.skipped_non_image else ""))
        lines.append(f"{who}failed {self.failed}"
                     + (f" (listed in {self.failures_file})" if self.failed else ""))
        if self.merge_note:
            lines.append(self.merge_note)
        return "\n".join(lines)


# ------------------------------------------------------------------------------- file listing
def image_id_for(rel_path: PathLike, ids_from_filename: bool = False) -> str:
    """The image id of a file at ``rel_path`` (relative to the images folder).

    Default: the relative path without extension, with ``/`` separators (``val/cat.jpg`` ->
    ``val/cat``). With ``ids_from_filename``: the trailing digits of the file name as an integer
    when it ends in digits (``COCO_val2014_000000391895.jpg`` -> ``391895``,
    ``1000092795.jpg`` -> ``1000092795``: the bottom-up-attention TSV convention), else the file
    name without extension.
    """
    rel = PurePosixPath(Path(rel_path).as_posix())
    if not ids_from_filename:
        return str(rel.with_suffix(""))
    m = re.search(r"(\d+)$", rel.stem)
    return str(int(m.group(1))) if m else rel.stem


def list_images(root: PathLike, *, ids_from_filename: bool = False,
                ) -> Tuple[List[ImageEntry], List[str]]:
    """Image files under ``root`` (recursive, sorted by relative path) and the skipped ones.

    Returns ``(images, skipped)`` where ``skipped`` lists the relative paths of files without an
    image extension. Hidden files and folders (name starting with ``.``) are ignored.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: two files map to the same image id (names both).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"images folder not found: {root}")
    rels: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath).relative_to(root)
        rels.extend((base / f).as_posix() for f in filenames if not f.startswith("."))
    rels.sort()
    images: List[ImageEntry] = []
    skipped: List[str] = []
    seen: Dict[str, str] = {}
    for rel in rels:
        if PurePosixPath(rel).suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(rel)
            continue
        image_id = image_id_for(rel, ids_from_filename)
        if image_id in seen:
            raise ValueError(f"{root / seen[image_id]} and {root / rel} both have image id "
                             f"{image_id!r}; rename one of them")
        seen[image_id] = rel
        images.append(ImageEntry(root / rel, image_id))
    return images, skipped


# ---------------------------------------------------------------------------- failures file
def _one_line(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


class _FailureLog:
    """``path<TAB>reason`` lines, rewritten atomically on every change; deleted when empty."""

    def __init__(self, path: Path, *, keep_existing: bool) -> None:
        self.path = path
        self.entries: Dict[str, str] = {}
        if keep_existing and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    p, _, reason = line.partition("\t")
                    self.entries[p] = reason
        elif path.is_file():
            path.unlink()

    def _write(self) -> None:
        if self.entries:
            atomic_write_text(self.path, "".join(f"{p}\t{r}\n" for p, r in self.entries.items()))
        else:
            self.path.unlink(missing_ok=True)

    def record(self, path: Path, reason: str) -> None:
        self.entries[str(path)] = _one_line(reason)
        self._write()

    def clear(self, paths: Sequence[Path]) -> None:
        hit = [str(p) for p in paths if str(p) in self.entries]
        for p in hit:
            del self.entries[p]
        if hit:
            self._write()


# --------------------------------------------------------------------------------- loading
class _ImageFiles(torch.utils.data.Dataset):
    """Decodes image ``i``; returns ``(i, LoadedImage or None, failure reason or None)``."""

    def __init__(self, paths: Sequence[Path], loader: Callable[[str], Any]) -> None:
        self.paths = list(paths)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tuple[int, Any, Optional[str]]:
        try:
            return i, self.loader(str(self.paths[i])), None
        except Exception as e:  # noqa: BLE001 - any decode failure is recorded, the run goes on
            reason = getattr(e, "reason", None) or f"{type(e).__name__}: {e}"
            return i, None, str(reason)


def _as_list(batch: List[Any]) -> List[Any]:
    return batch


_PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Make this (forked worker) process end when ``parent_pid`` ends.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills it when its parent exits or
    is killed. Everywhere, and as a fallback: a daemon thread that ends the process
    (``os._exit``, no clean-up: the worker holds nothing to save) once the parent pid changes.
    A parent that died before this ran is noticed at once.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _decoding_worker_init(parent_pid: int, worker_id: int) -> None:
    """``worker_init_fn`` of the decoding ``DataLoader``: the worker ends with its parent."""
    _exit_with_parent(parent_pid)


def _default_loader() -> Callable[[str], Any]:
    from detectors.images import load_image

    return load_image


def _batch_size_of(extractor: Any) -> int:
    opts = getattr(extractor, "options", None)
    return int(getattr(opts, "batch_size", None) or getattr(extractor, "batch_size", None) or 8)


def _extract_each(extractor: Any, ok: Sequence[Tuple[int, Any]]) -> List[Any]:
    """The regions of each decoded image of a batch, or the exception the extractor raised for
    it: the batch in one call, and if that call fails, each image on its own (so one image the
    model cannot take fails alone). A wrong number of results is an :class:`ExtractionError`."""
    if not ok:
        return []

    def run(items: Sequence[Tuple[int, Any]]) -> List[Any]:
        regions = extractor.extract([li.array for _, li in items])
        if len(regions) != len(items):
            raise ExtractionError(f"the extractor returned {len(regions)} results for "
                                  f"{len(items)} images")
        return list(regions)

    try:
        return run(ok)
    except ExtractionError:
        raise
    except Exception as e:  # noqa: BLE001 - retried image by image below
        if len(ok) == 1:
            return [e]
        log.info("the extractor failed on a batch of %d images (%s: %s); retrying them one by one",
                 len(ok), type(e).__name__, e)
    out: List[Any] = []
    for item in ok:
        try:
            out.extend(run([item]))
        except ExtractionError:
            raise
        except Exception as e:  # noqa: BLE001 - a failure of this image
            out.append(e)
    return out


# ---------------------------------------------------------------------------------- sharding
def shard_path(out: PathLike, rank: int) -> Path:
    """The shard store of ``rank``: ``<out>.rank{rank}``."""
    return Path(f"{out}.rank{rank}")


def _done_marker(out: PathLike, rank: int) -> Path:
    return Path(f"{out}.rank{rank}.done")


def _failures_path(store: PathLike) -> Path:
    return Path(f"{store}.failures.tsv")


def _ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 of a list of image ids (what a ``.done`` marker was written for)."""
    h = hashlib.sha256()
    for image_id in ids:
        h.update(image_id.encode("utf-8") + b"\n")
    return h.hexdigest()


def _marker_is_current(marker: Path, expected: Optional[str]) -> bool:
    """The marker exists and (when ``expected`` is given) was written for those image ids."""
    if not marker.is_file():
        return False
    if expected is None:
        return True
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("images_sha256") == expected


def _unfinished(out: Path, world_size: int, order: Optional[Sequence[str]]) -> List[int]:
    """Ranks without a current ``.done`` marker (``order``: the full sorted list of image ids)."""
    return [r for r in range(world_size) if not _marker_is_current(
        _done_marker(out, r), None if order is None else _ids_digest(list(order)[r::world_size]))]


def resolve_rank(rank: Optional[int] = None, world_size: Optional[int] = None,
                 ) -> Tuple[int, int, bool]:
    """``(rank, world_size, launched)``.

    Each value is taken independently: the explicit one, else ``RANK`` / ``WORLD_SIZE`` of the
    environment (set by ``torchrun``), else 0 / 1. ``launched`` is True when both environment
    variables are set and the values in use are theirs (a ``torch.distributed`` process group
    can be formed). A ``world_size`` given explicitly that differs from ``WORLD_SIZE`` while the
    rank comes from ``RANK`` is an error (pass ``rank`` too).
    """
    env_r = os.environ.get("RANK", "").strip()
    env_w = os.environ.get("WORLD_SIZE", "").strip()
    try:
        r = int(rank) if rank is not None else int(env_r) if env_r else 0
        w = int(world_size) if world_size is not None else int(env_w) if env_w else 1
        env = (int(env_r), int(env_w)) if env_r and env_w else None
    except ValueError:
        raise ValueError(f"RANK / WORLD_SIZE of the environment are not integers: "
                         f"RANK={env_r!r}, WORLD_SIZE={env_w!r}") from None
    if rank is None and env_r and env is not None and w != env[1]:
        raise ValueError(f"world size {w} differs from WORLD_SIZE={env[1]} of the environment, "
                         f"from which the rank ({r}) was taken; pass the rank explicitly too")
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size, got rank {r}, world_size {w}")
    return r, w, env == (r, w)


def merge_shards(out: PathLike, world_size: int, *, order: Optional[Sequence[str]] = None,
                 keep_shards: bool = False) -> int:
    """Merge the shard stores ``<out>.rank{r}`` (and an existing ``<out>``) into ``<out>``.

    Every rank must have finished (``<out>.rank{r}.done`` exists; with ``order``, the full sorted
    list of image ids, it must also have been written for the images ``order[r::world_size]``).
    An image in both ``<out>`` and a shard is taken from the shard (later inputs win). The
    shards' failure lists are combined into ``<out>.failures.tsv``. The ``.done`` files are
    deleted afterwards, and unless ``keep_shards`` also the shard stores and their failure lists.
    Returns the number of stored images.
    """
    out = Path(out)
    missing = _unfinished(out, world_size, order)
    if missing:
        raise StoreError(f"cannot merge into {out}: rank(s) {missing} of {world_size} have not "
                         f"finished (no {_done_marker(out, missing[0]).name}"
                         + (", or one written for another list of images)" if order is not None
                            else ")"))
    shards = [shard_path(out, r) for r in range(world_size)]
    absent = [str(s) for s in shards if not store_exists(s)]
    if absent:
        raise StoreError(f"cannot merge into {out}: shard store(s) missing: {', '.join(absent)}")
    inputs = ([out] if store_exists(out) else []) + shards
    # ids both in out and in a shard: kept shards, or a stop between merge and shard deletion
    n = merge_stores(inputs, out, order=order, on_duplicate="last")
    lines: List[str] = []
    for s in shards:
        fp = _failures_path(s)
        if fp.is_file():
            lines.extend(x for x in fp.read_text(encoding="utf-8").splitlines() if x.strip())
    final_failures = _failures_path(out)
    if lines:
        atomic_write_text(final_failures, "".join(x + "\n" for x in lines))
    else:
        final_failures.unlink(missing_ok=True)
    for r in range(world_size):  # used: a later run must not take them for its own
        _done_marker(out, r).unlink(missing_ok=True)
    if not keep_shards:
        for s in shards:
            s.unlink(missing_ok=True)
            parts = Path(str(s) + ".parts")
            if parts.is_dir():
                for p in parts.iterdir():
                    p.unlink(missing_ok=True)
                parts.rmdir()
            _failures_path(s).unlink(missing_ok=True)
    return n


# ------------------------------------------------------------------------------------ the job
def extract_images(images_dir: PathLike, out: PathLike, extractor: Any, *, resume: bool = False,
                   batch_size: Optional[int] = None, num_workers: int = 0,
                   ids_from_filename: bool = False, rank: int = 0, world_size: int = 1,
                   distributed: bool = False, feature_dtype: str = "float32",
                   commit_every: int = 256, commit_seconds: float = 60.0, progress: bool = True,
                   loader: Optional[Callable[[str], Any]] = None, merge: bool = True,
                   keep_shards: bool = False, merge_wait: float = 0.0,
                   compression: Optional[str] = None,
                   max_failures_in_a_row: Optional[int] = None) -> ExtractSummary:
    """Extract the regions of every image under ``images_dir`` into the store ``out``.

    Args:
        images_dir: folder of images (walked recursively, sorted).
        out: region store path (e.g. ``regions.h5``).
        extractor: an object with ``extract(list of HxWx3 uint8 arrays) -> list[Regions]`` and
            ``config() -> dict`` (a :class:`detectors.extractor.RegionExtractor`).
        resume: skip images already stored; without it an existing store is an error.
        batch_size: images per ``extract`` call (default: the extractor's ``options.batch_size``).
        num_workers: background decoding processes (0: decode in this process).
        ids_from_filename: image ids from file names (see :func:`image_id_for`).
        rank / world_size: this process's shard (see the module docstring).
        distributed: a ``torch.distributed`` process group is initialised: meet at a barrier
            before rank 0 merges.
        feature_dtype: ``"float32"`` or ``"float16"``.
        commit_every / commit_seconds: how often finished images are committed (crash safety).
        progress: show a tqdm progress bar (images/s).
        loader: ``path -> LoadedImage`` (default :func:`detectors.images.load_image`).
        merge: rank 0 merges the shards at the end.
        keep_shards: keep the shard stores after merging.
        merge_wait: without a process group, how long rank 0 waits for the other ranks' ``.done``.
        compression: HDF5 compression filter of the store.
        max_failures_in_a_row: stop after this many images in a row failed in the extractor with
            the same type of error (default: the batch size, at least 2; 0: never stop, record
            every failure).

    Raises:
        StoreError: the output path is a folder or not writable (before any work), or the disk
            is full (:class:`detectors.store.StoreDiskFullError`; committed images stay stored).
        StoreExistsError: the store exists and ``resume`` is False.
        StoreLockedError: another writer holds the store.
        ExtractionError: the extractor failed on image after image (finished images stay stored).
    """
    from graphmatch.utils.progress import progress as progress_bar

    t_start = time.perf_counter()
    out = Path(out)
    sharded = world_size > 1
    store_path = shard_path(out, rank) if sharded else out
    check_store_path(out)
    if sharded:
        check_store_path(store_path)
    entries, skipped = list_images(images_dir, ids_from_filename=ids_from_filename)
    summary = ExtractSummary(out=str(out), images_found=len(entries), skipped_non_image=skipped,
                             rank=rank, world_size=world_size, store=str(store_path))
    if sharded and store_exists(out) and not resume:
        raise StoreExistsError(f"region store {out} already exists; pass --resume (resume=True) "
                               "to continue it, or choose another path")
    already: set = set()
    if sharded and resume and store_exists(out):
        with RegionStore(out) as final:
            already = set(final.ids())
    mine = entries[rank::world_size] if sharded else entries
    order = [e.image_id for e in entries]
    if sharded:
        _done_marker(out, rank).unlink(missing_ok=True)
        if rank == 0:  # markers of a run over other images (ours are all written later)
            for r in range(1, world_size):
                m = _done_marker(out, r)
                if m.is_file() and not _marker_is_current(m, _ids_digest(order[r::world_size])):
                    m.unlink(missing_ok=True)
    bs = int(batch_size or _batch_size_of(extractor))
    limit = max(2, bs) if max_failures_in_a_row is None else int(max_failures_in_a_row)
    config = extractor.config() if hasattr(extractor, "config") else {}

    with RegionStoreWriter(store_path, config=config, feature_dtype=feature_dtype, resume=resume,
                           commit_every=commit_every, commit_seconds=commit_seconds,
                           compression=compression) as writer:
        failures = _FailureLog(_failures_path(store_path), keep_existing=resume)
        # drop entries of images stored meanwhile, or no longer among this run's files
        listed = {str(e.path) for e in mine if e.image_id not in writer and e.image_id not in already}
        failures.clear([Path(p) for p in failures.entries if p not in listed])
        todo = [e for e in mine if e.image_id not in writer and e.image_id not in already]
        summary.skipped_existing = len(mine) - len(todo)
        t0 = time.perf_counter()
        if todo:
            data = _ImageFiles([e.path for e in todo], loader or _default_loader())
            dl = torch.utils.data.DataLoader(
                data, batch_size=bs, shuffle=False, num_workers=int(num_workers),
                collate_fn=_as_list, prefetch_factor=4 if num_workers else None,
                worker_init_fn=(functools.partial(_decoding_worker_init, os.getpid())
                                if num_workers else None))
            streak: List[Any] = [0, None]  # images in a row failed in the extractor, error type
            desc = f"extract[{rank}/{world_size}]" if sharded else "extract"
            with progress_bar(total=len(todo), unit="img", desc=desc, disable=not progress,
                              dynamic_ncols=True, file=sys.stderr) as bar:
                for batch in dl:
                    ok = [(i, li) for i, li, _ in batch if li is not None]
                    for i, _, reason in batch:
                        if reason is not None:
                            failures.record(todo[i].path, reason)
                            summary.failed += 1
                    for (i, li), reg in zip(ok, _extract_each(extractor, ok)):
                        if isinstance(reg, Exception):
                            failures.record(todo[i].path, f"the extractor failed on this image: "
                                                          f"{type(reg).__name__}: {reg}")
                            summary.failed += 1
                            same = streak[1] is type(reg)
                            streak[:] = [streak[0] + 1 if same else 1, type(reg)]
                            if limit and streak[0] >= limit:
                                raise ExtractionError(
                                    f"the extractor failed on {streak[0]} images in a row with "
                                    f"{type(reg).__name__} (last: {todo[i].path}: {reg}); that "
                                    f"points at the model or the device rather than the images. "
                                    f"The {writer.n_added} images finished in this run are stored "
                                    f"in {store_path} and the failed ones are listed in "
                                    f"{failures.path}; fix the cause and rerun with --resume (or "
                                    f"pass --max-failures-in-a-row 0 to record every failure and "
                                    f"go on)") from reg
                            continue
                        streak[:] = [0, None]
                        if getattr(li, "flags", None) and "image" not in reg.flags:
                            reg.flags["image"] = dict(li.flags)
                        writer.add(todo[i].image_id, reg)
                        failures.clear([todo[i].path])
                        summary.done += 1
                    bar.update(len(batch))
        loop_s = time.perf_counter() - t0
        summary.failures_file = str(failures.path) if failures.entries else None
    summary.seconds = time.perf_counter() - t_start
    summary.images_per_s = summary.done / loop_s if summary.done and loop_s > 0 else 0.0

    if sharded:
        atomic_write_json(_done_marker(out, rank),
                          {**summary.to_dict(), "images_sha256": _ids_digest(order[rank::world_size])})
        if distributed:
            import torch.distributed as dist

            dist.barrier()
        if rank == 0 and merge:
            deadline = time.monotonic() + max(0.0, merge_wait)
            while True:
                missing = _unfinished(out, world_size, order)
                if not missing or time.monotonic() >= deadline:
                    break
                time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
            if missing:
                summary.merge_note = (
                    f"not merged: rank(s) {missing} have not finished; when they have, run "
                    f"`graphmatch extract --merge-only --out {out} --world-size {world_size} "
                    f"--images {images_dir}` (or detectors.extract.merge_shards)")
            else:
                n = merge_shards(out, world_size, order=order, keep_shards=keep_shards)
                summary.merged = True
                fp = _failures_path(out)
                summary.merge_note = (f"merged {world_size} shards into {out} ({n} images)"
                                      + (f"; failures listed in {fp}" if fp.is_file() else ""))
    return summary


if __name__ == "__main__":  # ``python -m detectors.extract ...`` / ``torchrun -m detectors.extract ...``
    from detectors.cli import main

    sys.exit(main())
