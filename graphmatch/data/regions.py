"""Region sources: the readers of per-image regions that training and evaluation take.

Every reader maps an image id to its :class:`~graphmatch.structures.Regions` (boxes, features,
image size, optional class / attribute predictions) and offers ``get(image_id)``, ``ids()``,
``len()``, ``in``, iteration over ``(image_id, Regions)`` pairs in storage order, ``close()`` and
the context-manager protocol:

* :class:`RegionStore` — the HDF5 region store that ``graphmatch extract`` writes (layout below;
  its writer, :class:`detectors.store.RegionStoreWriter`, lives with the extractors);
* :class:`ButdTsvReader` — the bottom-up-attention TSV files (``generate_tsv.py`` of
  peteanderson80/bottom-up-attention): tab-separated, no header, fields ``image_id, image_w,
  image_h, num_boxes, boxes, features`` with ``boxes`` / ``features`` base64-encoded float32
  arrays (``num_boxes x 4`` and ``num_boxes x D``). Both the fixed 36-box and the adaptive
  10–100-box files are read (the box count comes from each record). The 10-field variant with
  class and attribute predictions (``img_id, img_h, img_w, objects_id, objects_conf, attrs_id,
  attrs_conf, num_boxes, boxes, features``, as in LXMERT's files) is recognised by its field
  count, and a header line naming the fields is accepted. Several files (``.tsv.0``,
  ``.tsv.1`` ...) can be read as one. Random access builds a byte-offset index on first use.
  :func:`write_butd_tsv` writes the format.

  Label convention: in those files ``objects_id`` / ``attrs_id`` are 0-based indices into the
  class / attribute list (the reference scripts store ``argmax(cls_prob[:, 1:])``, i.e. the
  background or "no attribute" column dropped), while ``Regions.labels`` / ``attr_labels`` of
  this package use 0 = background and ``i + 1`` = line ``i`` of the vocabulary file. The reader
  therefore adds 1 to ``objects_id`` and ``attrs_id`` and :func:`write_butd_tsv` subtracts 1 (a
  background label 0 is written as -1, and -1 reads back as 0).
* :class:`PrecompReader` — a split of the SCAN ``.npy`` layout, read as training reads it
  (:class:`graphmatch.data.precomp.PrecompRegions`: zero-padding rows left out).

:func:`open_regions` picks the reader from the path. Malformed input raises
:class:`RegionFormatError` (TSV, precomp) or :class:`StoreError` (region store), naming the file
and the line or record. This module needs numpy, h5py and torch only.

Region store layout
-------------------
A store at ``regions.h5`` is one HDF5 file (the *main* file) plus, while a writer is running or
after it was interrupted, a folder ``regions.h5.parts/`` of complete *segment* files
``seg-XXXXXXXX.h5`` (:func:`store_segments`). Main file and segments have the same ragged layout
(all regions of all images concatenated):

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

File attributes: ``format`` (:data:`STORE_FORMAT`, ``"graphmatch-regions"``), ``format_version``
(:data:`STORE_FORMAT_VERSION`), ``created``, ``modified`` (ISO 8601 UTC), ``extractor_config``
(the extractor's ``config()`` as JSON), ``feature_dim`` and ``feature_dtype``.

A reader sees the main file plus every complete segment; a later record of an id wins. Opening
a store takes no lock: a store being written can be read, and shows what was committed so far.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import csv
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch

from graphmatch.structures import Regions
from graphmatch.utils.atomic import atomic_path

PathLike = Union[str, os.PathLike]

__all__ = [
    "RegionFormatError", "StoreError", "BUTD_FIELDS", "BUTD_FIELDS_WITH_CLASSES", "ButdTsvReader",
    "PrecompReader", "RegionStore", "StoreFile", "STORE_FORMAT", "STORE_FORMAT_VERSION",
    "STORE_OPTIONAL_FIELDS", "SEGMENT_PATTERN", "store_parts_dir", "store_segments", "store_exists",
    "write_butd_tsv", "open_regions",
]


class RegionFormatError(ValueError):
    """Malformed precomputed-feature input; the message names the file and line / record."""


class StoreError(RuntimeError):
    """A region store is missing, malformed, incompatible or busy; the message names the file."""


# ---------------------------------------------------------------------------- store format
#: the ``format`` attribute of every file of a region store
STORE_FORMAT = "graphmatch-regions"
#: the newest layout version this reader understands (written by the store writer)
STORE_FORMAT_VERSION = 1
#: optional per-region fields: name -> (bit in ``present``, dtype, fill value of absent rows)
STORE_OPTIONAL_FIELDS: Dict[str, Tuple[int, Any, Any]] = {
    "labels": (1, np.int64, -1),
    "scores": (2, np.float32, np.nan),
    "attr_labels": (4, np.int64, -1),
    "attr_scores": (8, np.float32, np.nan),
}
#: names of committed segment files in ``<store>.parts/``; the number gives the commit order
SEGMENT_PATTERN = re.compile(r"^seg-(\d{8})\.h5$")


def store_parts_dir(path: PathLike) -> Path:
    """The folder of committed segments of the store at ``path``: ``<resolved path>.parts``."""
    return Path(str(Path(path).resolve()) + ".parts")


def store_segments(path: PathLike) -> List[Path]:
    """Complete segment files of the store at ``path``, in commit order."""
    parts = store_parts_dir(path)
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if SEGMENT_PATTERN.match(p.name))


def store_exists(path: PathLike) -> bool:
    """True if ``path`` has a main file or at least one committed segment."""
    path = Path(path).resolve()
    return path.is_file() or bool(store_segments(path))


# ---------------------------------------------------------------------------- store reader
class StoreFile:
    """One HDF5 file of the region-store layout (main file or segment), opened read-only.

    Attributes:
        path: the file.
        h5: the open ``h5py.File``.
        config: the extractor config (``extractor_config`` attribute, parsed).
        feature_dim / feature_dtype / created: file attributes.
        ids: image ids in file order; ``offsets`` [n + 1], ``sizes`` [n, 2], ``flags`` (JSON
            strings) and ``present`` [n] are the index datasets.

    Raises:
        StoreError: naming the file, when it is not an HDF5 region store, is of a newer format
            version or its index datasets disagree.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        try:
            self.h5 = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path}: cannot open as an HDF5 region store ({e})") from e
        try:
            a = self.h5.attrs
            fmt = a.get("format")
            if fmt != STORE_FORMAT:
                raise StoreError(f"{path}: not a region store (format attribute {fmt!r}, "
                                 f"expected {STORE_FORMAT!r})")
            ver = int(a.get("format_version", -1))
            if ver > STORE_FORMAT_VERSION:
                raise StoreError(f"{path}: store format version {ver} is newer than this "
                                 f"reader ({STORE_FORMAT_VERSION}); upgrade graphmatch")
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
        """The regions of the ``i``-th image of this file."""
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        h5 = self.h5
        bits = int(self.present[i])
        opt: Dict[str, Optional[torch.Tensor]] = {}
        for name, (bit, _, _) in STORE_OPTIONAL_FIELDS.items():
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
        """Close the HDF5 file."""
        with contextlib.suppress(Exception):
            self.h5.close()


class RegionStore:
    """Read access to a region store: ``get(image_id) -> Regions``, ``ids()``, ``len``, ``in``.

    Iterating yields ``(image_id, Regions)`` pairs in storage order (as every reader in
    this module does). The store is the main file plus every committed segment of
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
        self._files: List[StoreFile] = []
        paths = ([self.path] if self.path.is_file() else []) + store_segments(self.path)
        if not paths:
            raise StoreError(f"region store not found: {self.path} (no such file and no "
                             f"committed segments in {store_parts_dir(self.path)})")
        for p in paths:
            try:
                self._files.append(StoreFile(p))
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


# ----------------------------------------------------------------------------- BUTD TSV
#: the fields of bottom-up-attention's ``generate_tsv.py``
BUTD_FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")
#: the variant with class / attribute predictions (LXMERT's ``*_obj36.tsv``)
BUTD_FIELDS_WITH_CLASSES = ("img_id", "img_h", "img_w", "objects_id", "objects_conf", "attrs_id",
                            "attrs_conf", "num_boxes", "boxes", "features")
_ALIASES = {"img_id": "image_id", "img_w": "image_w", "img_h": "image_h"}
_OPTIONAL_FIELDS = {  # field -> (Regions attribute, dtype in the file, dtype returned)
    "objects_id": ("labels", np.int64, torch.long),
    "objects_conf": ("scores", np.float32, torch.float32),
    "attrs_id": ("attr_labels", np.int64, torch.long),
    "attrs_conf": ("attr_scores", np.float32, torch.float32),
}
#: id fields stored 0-based over the vocabulary; ``Regions`` ids = file ids + 1 (module docstring)
_ID_FIELDS = frozenset({"objects_id", "attrs_id"})
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _raise_field_limit() -> None:
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _b64(text: str) -> bytes:
    """Decode base64, accepting the ``b'...'`` wrapping that Python 3 writers often left."""
    t = text.strip()
    if len(t) >= 3 and t[0] in "bB" and t[1] in "'\"" and t[-1] == t[1]:
        t = t[2:-1]
    return base64.b64decode(t, validate=True)


class ButdTsvReader:
    """Bottom-up-attention TSV file(s) (see the module docstring).

    Args:
        paths: one TSV file or a list of them (read in order, as one collection).
        fields: field names of the records; default: recognised from the header line if there is
            one, else from the field count (6: :data:`BUTD_FIELDS`, 10:
            :data:`BUTD_FIELDS_WITH_CLASSES`).
        feature_dim: expected feature dimension; default: that of the first record (every record
            must then agree).

    Image ids are strings as written (``"391895"``). Image sizes must be positive. In the
    10-field variant ``attrs_id`` / ``attrs_conf`` may hold ``K`` values per box (read as
    ``[num_boxes, K]``).
    """

    def __init__(self, paths: Union[PathLike, Sequence[PathLike]], *,
                 fields: Optional[Sequence[str]] = None, feature_dim: Optional[int] = None) -> None:
        _raise_field_limit()
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"TSV file not found: {p}")
        self.fields = tuple(fields) if fields is not None else None
        self.feature_dim = feature_dim
        self._index: Optional[Dict[str, Tuple[int, int, int]]] = None  # id -> (file, offset, line)

    # -- parsing
    def _fields_for(self, row: List[str], path: Path, line: int) -> Tuple[str, ...]:
        if self.fields is not None:
            return self.fields
        if len(row) == len(BUTD_FIELDS):
            return BUTD_FIELDS
        if len(row) == len(BUTD_FIELDS_WITH_CLASSES):
            return BUTD_FIELDS_WITH_CLASSES
        raise RegionFormatError(
            f"{path}: line {line}: {len(row)} tab-separated fields; expected 6 ({', '.join(BUTD_FIELDS)}) "
            f"or 10 ({', '.join(BUTD_FIELDS_WITH_CLASSES)}), or pass fields=")

    @staticmethod
    def _is_header(row: List[str]) -> bool:
        return bool(row) and row[0].strip() in ("image_id", "img_id")

    def _parse(self, row: List[str], fields: Sequence[str], path: Path, line: int) -> Tuple[str, Regions]:
        where = f"{path}: line {line}"
        if len(row) != len(fields):
            raise RegionFormatError(f"{where}: {len(row)} fields, expected {len(fields)} "
                                    f"({', '.join(fields)}); a field is missing or the line is cut")
        rec = {_ALIASES.get(k, k): v for k, v in zip(fields, row)}
        for key in ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features"):
            if key not in rec:
                raise RegionFormatError(f"{where}: the fields {list(fields)} have no {key!r}")
        image_id = rec["image_id"].strip()
        if not image_id:
            raise RegionFormatError(f"{where}: empty image_id")
        where = f"{where} (image_id {image_id})"

        def number(key: str) -> int:
            try:
                return int(float(rec[key]))
            except ValueError:
                raise RegionFormatError(f"{where}: field {key} is not a number: "
                                        f"{rec[key][:40]!r}") from None

        w, h, n = number("image_w"), number("image_h"), number("num_boxes")
        if w <= 0 or h <= 0:
            raise RegionFormatError(f"{where}: image size {w}x{h} must be positive")
        if n < 0:
            raise RegionFormatError(f"{where}: num_boxes is negative ({n})")

        def array(key: str, dtype: Any) -> np.ndarray:
            try:
                raw = _b64(rec[key])
            except (binascii.Error, ValueError) as e:
                raise RegionFormatError(f"{where}: field {key} is not valid base64 ({e})") from None
            item = np.dtype(dtype).itemsize
            if len(raw) % item:
                raise RegionFormatError(f"{where}: field {key} has {len(raw)} bytes, not a whole "
                                        f"number of {np.dtype(dtype).name} values")
            return np.frombuffer(raw, dtype=dtype)

        boxes = array("boxes", np.float32)
        if boxes.size != n * 4:
            raise RegionFormatError(f"{where}: field boxes has {boxes.size * 4} bytes; expected "
                                    f"num_boxes ({n}) x 4 x 4 = {n * 16} bytes of float32")
        feats = array("features", np.float32)
        if n == 0:
            if feats.size:
                raise RegionFormatError(f"{where}: num_boxes is 0 but features has {feats.size * 4} bytes")
            dim = self.feature_dim or 0
        else:
            if feats.size % n:
                raise RegionFormatError(
                    f"{where}: field features has {feats.size * 4} bytes, not a multiple of "
                    f"num_boxes ({n}) x 4 bytes of float32")
            dim = feats.size // n
            if self.feature_dim is None:
                self.feature_dim = dim
            elif dim != self.feature_dim:
                raise RegionFormatError(
                    f"{where}: field features has {feats.size * 4} bytes = num_boxes ({n}) x {dim} "
                    f"float32, but the records so far are {self.feature_dim}-d (expected "
                    f"{n * self.feature_dim * 4} bytes)")
        opt: Dict[str, torch.Tensor] = {}
        for key, (attr, dtype, tdtype) in _OPTIONAL_FIELDS.items():
            if key in rec:
                arr = array(key, dtype)
                if n == 0 and arr.size == 0:
                    arr = arr.reshape(0)
                elif arr.size == n:
                    pass
                elif n and arr.size % n == 0 and key.startswith("attrs"):
                    arr = arr.reshape(n, -1)
                else:
                    raise RegionFormatError(f"{where}: field {key} has {arr.size} values for "
                                            f"num_boxes {n}")
                t = torch.from_numpy(arr.copy()).to(tdtype)
                opt[attr] = t + 1 if key in _ID_FIELDS else t
        return image_id, Regions(
            boxes=torch.from_numpy(boxes.reshape(n, 4).copy()),
            features=torch.from_numpy(feats.reshape(n, dim).copy()),
            image_size=(w, h), **opt)

    def _rows(self) -> Iterator[Tuple[int, int, int, List[str]]]:
        """``(file index, byte offset, line number, fields)`` of every record line."""
        for fi, path in enumerate(self.paths):
            with open(path, "rb") as f:
                line_no, offset = 0, 0
                for raw in f:
                    line_no += 1
                    start, offset = offset, offset + len(raw)
                    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if not text.strip():
                        continue
                    row = next(csv.reader([text], delimiter="\t"))
                    if line_no == 1 and self._is_header(row):
                        if self.fields is None:
                            self.fields = tuple(x.strip() for x in row)
                        continue
                    yield fi, start, line_no, row

    # -- reader API
    def __iter__(self) -> Iterator[Tuple[str, Regions]]:
        for fi, _, line, row in self._rows():
            path = self.paths[fi]
            yield self._parse(row, self._fields_for(row, path, line), path, line)

    items = __iter__

    def _build_index(self) -> Dict[str, Tuple[int, int, int]]:
        if self._index is None:
            index: Dict[str, Tuple[int, int, int]] = {}
            for fi, off, line, row in self._rows():
                fields = self._fields_for(row, self.paths[fi], line)
                key = next((i for i, k in enumerate(fields) if _ALIASES.get(k, k) == "image_id"), 0)
                if key >= len(row):
                    raise RegionFormatError(f"{self.paths[fi]}: line {line}: missing image_id field")
                index[row[key].strip()] = (fi, off, line)
            self._index = index
        return self._index

    def ids(self) -> List[str]:
        """Image ids in file order (builds the index)."""
        return list(self._build_index())

    def get(self, image_id: str) -> Regions:
        """Regions of ``image_id`` (random access through a byte-offset index)."""
        idx = self._build_index()
        try:
            fi, off, line = idx[str(image_id)]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in {', '.join(map(str, self.paths))}") from None
        path = self.paths[fi]
        with open(path, "rb") as f:
            f.seek(off)
            text = f.readline().decode("utf-8", errors="replace").rstrip("\r\n")
        row = next(csv.reader([text], delimiter="\t"))
        return self._parse(row, self._fields_for(row, path, line), path, line)[1]

    __getitem__ = get

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._build_index()

    def __len__(self) -> int:
        return len(self._build_index())

    def close(self) -> None:
        """Nothing to release (files are opened per access)."""

    def __enter__(self) -> "ButdTsvReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_butd_tsv(path: PathLike, items: Iterable[Tuple[str, Regions]], *,
                   with_classes: bool = False) -> int:
    """Write ``(image_id, Regions)`` pairs as a bottom-up-attention TSV file (atomically).

    Args:
        path: output file.
        items: the records; features are written as float32.
        with_classes: write the 10-field variant (:data:`BUTD_FIELDS_WITH_CLASSES`) with labels,
            scores and attribute predictions instead of the 6 classic fields. Label ids are
            written 0-based over the vocabulary (``Regions`` id - 1, see the module docstring);
            absent labels are written as -1, absent scores as 0.

    Returns the number of records written. Image ids must not contain tabs or line breaks.
    """
    def enc(a: Any, dtype: Any) -> str:
        arr = np.ascontiguousarray(np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=dtype))
        return base64.b64encode(arr.tobytes()).decode("ascii")

    n_written = 0
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            for image_id, r in items:
                image_id = str(image_id)
                if not image_id or any(c in image_id for c in "\t\r\n"):
                    raise ValueError(f"image id {image_id!r} is empty or contains a tab / line break")
                n = len(r)
                width, height = r.image_size
                if not with_classes:
                    w.writerow([image_id, width, height, n, enc(r.boxes, np.float32),
                                enc(r.features.float(), np.float32)])
                else:
                    def ids(v: Optional[torch.Tensor]) -> str:
                        # Regions ids (0 = background, i + 1 = line i) -> 0-based file ids
                        return enc(v.detach().cpu().long() - 1 if v is not None
                                   else np.full(n, -1), np.int64)

                    def conf(v: Optional[torch.Tensor]) -> str:
                        return enc(v if v is not None else np.zeros(n), np.float32)
                    w.writerow([image_id, height, width, ids(r.labels), conf(r.scores),
                                ids(r.attr_labels), conf(r.attr_scores),
                                n, enc(r.boxes, np.float32), enc(r.features.float(), np.float32)])
                n_written += 1
    return n_written


# ---------------------------------------------------------------------------------- precomp
class PrecompReader:
    """A split of the SCAN precomp layout (``{split}_ims.npy`` and friends) as a region reader.

    The regions of an image are those of :class:`graphmatch.data.precomp.PrecompRegions` (the
    region source training uses for precomp arrays, so a store or TSV converted from a precomp
    split holds exactly what training would see): zero-padding rows are left out; without a boxes
    file (``{split}_ims_bbx.npy``) the boxes are zeros and ``flags["boxes_missing"]`` is set;
    without sizes (``{split}_ims_size.npy``) the size is the extent of the boxes (at least 1 x 1)
    and ``flags["image_size_estimated"]`` is set. Image ids come from the split's ids file (row
    indices as strings without one). This reader adds iteration in row order and the
    context-manager protocol.

    Args:
        root: the precomp folder (it needs ``{split}_caps.txt`` too, see
            :func:`graphmatch.data.precomp.load_precomp`).
        split: the split name.
        mmap: memory-map the arrays.

    Raises:
        graphmatch.data.precomp.DataError: (from ``get`` / iteration) an image whose every row is
            zero padding, or a row with NaN / inf or an inverted box, naming the file and row.
    """

    def __init__(self, root: PathLike, split: str, *, mmap: bool = True) -> None:
        from graphmatch.data.precomp import PrecompRegions, load_precomp

        self.root, self.split_name = Path(root), split
        self.data = load_precomp(root, split, mmap=mmap, check_finite=False)
        self.source = PrecompRegions(self.data)

    @property
    def feature_dim(self) -> int:
        """Dimension of the region features."""
        return self.source.feature_dim

    def ids(self) -> List[str]:
        """Image ids in row order."""
        return self.source.ids()

    def get(self, image_id: str) -> Regions:
        """Regions of ``image_id``; ``KeyError`` naming the split and folder if absent."""
        return self.source.get(image_id)

    __getitem__ = get

    def __iter__(self) -> Iterator[Tuple[str, Regions]]:
        for i, image_id in enumerate(self.data.image_ids):
            yield image_id, self.source.row(i)

    items = __iter__

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.source

    def __len__(self) -> int:
        return len(self.source)

    def close(self) -> None:
        """Nothing to release (the arrays are memory-mapped and freed with the reader)."""

    def __enter__(self) -> "PrecompReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------- opening
def open_regions(path: PathLike, *, split: Optional[str] = None) -> Any:
    """Open precomputed regions, choosing the reader from the path and its contents.

    * a folder with ``{split}_ims.npy`` files, or such a file itself: :class:`PrecompReader`
      (``split`` is needed when the folder holds several splits);
    * an HDF5 file (by signature or a ``.h5``/``.hdf5`` suffix), or a store that only has
      committed segments (``<path>.parts/``): :class:`RegionStore`;
    * a file with ``.tsv`` among its suffixes, or text whose first line has 6 or 10 tab-separated
      fields: :class:`ButdTsvReader`.
    """
    p = Path(path)
    if p.is_dir():
        splits = sorted(q.name[: -len("_ims.npy")] for q in p.glob("*_ims.npy")
                        if not q.name.endswith("_bbx.npy"))
        if not splits:
            raise RegionFormatError(f"{p}: folder has no *_ims.npy file (precomp layout)")
        if split is None:
            if len(splits) > 1:
                raise RegionFormatError(f"{p}: several precomp splits ({', '.join(splits)}); pass split=")
            split = splits[0]
        return PrecompReader(p, split)
    if p.name.endswith("_ims.npy"):
        return PrecompReader(p.parent, split or p.name[: -len("_ims.npy")])
    if not p.exists():
        if Path(str(p) + ".parts").is_dir():
            return RegionStore(p)
        raise FileNotFoundError(f"no such file or folder: {p}")
    with open(p, "rb") as f:
        head = f.read(65536)
    if head.startswith(_HDF5_SIGNATURE) or p.suffix.lower() in (".h5", ".hdf5"):
        return RegionStore(p)
    first = head.split(b"\n", 1)[0]
    if ".tsv" in [s.lower() for s in p.suffixes] or first.count(b"\t") in (5, 9):
        return ButdTsvReader(p)
    raise RegionFormatError(f"{p}: unknown region format (expected an HDF5 region store, a "
                            "bottom-up-attention TSV file or a precomp folder / *_ims.npy)")
