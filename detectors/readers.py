"""Readers of precomputed region features in the formats people already have.

Every reader yields ``(image_id, Regions)`` when iterated and offers ``get(image_id)``,
``ids()``, ``len()`` and ``in``:

* :class:`ButdTsvReader` — the bottom-up-attention TSV files (``generate_tsv.py`` of
  peteanderson80/bottom-up-attention): tab-separated, no header, fields ``image_id, image_w,
  image_h, num_boxes, boxes, features`` with ``boxes`` / ``features`` base64-encoded float32
  arrays (``num_boxes x 4`` and ``num_boxes x D``). Both the fixed 36-box and the adaptive
  10–100-box files are read (the box count comes from each record). The 10-field variant with
  class and attribute predictions (``img_id, img_h, img_w, objects_id, objects_conf, attrs_id,
  attrs_conf, num_boxes, boxes, features``, as in LXMERT's files) is recognised by its field
  count, and a header line naming the fields is accepted. Several files (``.tsv.0``,
  ``.tsv.1`` ...) can be read as one. Random access builds a byte-offset index on first use.

  Label convention: in those files ``objects_id`` / ``attrs_id`` are 0-based indices into the
  class / attribute list (the reference scripts store ``argmax(cls_prob[:, 1:])``, i.e. the
  background or "no attribute" column dropped), while ``Regions.labels`` / ``attr_labels`` of
  this package use 0 = background and ``i + 1`` = line ``i`` of the vocabulary file (see
  :mod:`detectors.base`). The reader therefore adds 1 to ``objects_id`` and ``attrs_id`` and
  :func:`write_butd_tsv` subtracts 1 (a background label 0 is written as -1, and -1 reads back
  as 0).
* :class:`PrecompReader` — the SCAN ``.npy`` layout via :func:`graphmatch.data.precomp.load_precomp`.
* :class:`detectors.store.RegionStore` — our HDF5 store.

:func:`open_regions` picks the reader from the path. :func:`write_butd_tsv` writes the TSV format.
Malformed input raises :class:`RegionFormatError` naming the file, the line and the record.
"""
from __future__ import annotations

import base64
import binascii
import csv
import os
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from detectors.store import RegionStore
from graphmatch.structures import Regions
from graphmatch.utils.io import atomic_path

PathLike = Union[str, os.PathLike]

__all__ = [
    "RegionFormatError", "BUTD_FIELDS", "BUTD_FIELDS_WITH_CLASSES", "ButdTsvReader",
    "PrecompReader", "write_butd_tsv", "open_regions",
]

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


class RegionFormatError(ValueError):
    """Malformed precomputed-feature input; the message names the file and line / record."""


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


# -------------------------------------------------------------------------------------- TSV
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
    """A split of the SCAN precomp layout (``{split}_ims.npy`` and friends) as regions.

    Features, boxes (``{split}_ims_bbx.npy``) and image sizes (``{split}_ims_size.npy``) come
    from :func:`graphmatch.data.precomp.load_precomp` (which also needs ``{split}_caps.txt``);
    image ids from its ids file (row indices as strings without one). Without a boxes file the
    boxes are zeros and ``flags["boxes_missing"]`` is set; without sizes, the size is the extent
    of the boxes (at least 1 x 1) and ``flags["image_size_estimated"]`` is set.
    """

    def __init__(self, root: PathLike, split: str, *, mmap: bool = True) -> None:
        from graphmatch.data.precomp import load_precomp

        self.root, self.split_name = Path(root), split
        self.data = load_precomp(root, split, mmap=mmap, check_finite=False)
        self._row = {image_id: i for i, image_id in enumerate(self.data.image_ids)}

    def ids(self) -> List[str]:
        """Image ids in row order."""
        return list(self.data.image_ids)

    def _regions(self, i: int) -> Regions:
        d = self.data
        feats = torch.from_numpy(np.array(d.features[i]))
        flags: Dict[str, Any] = {}
        if d.boxes is not None:
            boxes = torch.from_numpy(np.array(d.boxes[i], dtype=np.float32))
        else:
            boxes = torch.zeros(feats.shape[0], 4)
            flags["boxes_missing"] = True
        if d.image_sizes is not None:
            size = (int(round(float(d.image_sizes[i, 0]))), int(round(float(d.image_sizes[i, 1]))))
        else:
            ext = boxes[:, 2:].max(0).values if len(boxes) else torch.ones(2)
            size = (max(1, int(np.ceil(float(ext[0])))), max(1, int(np.ceil(float(ext[1])))))
            flags["image_size_estimated"] = True
        return Regions(boxes=boxes, features=feats, image_size=size, flags=flags)

    def get(self, image_id: str) -> Regions:
        """Regions of ``image_id``."""
        try:
            return self._regions(self._row[str(image_id)])
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in split {self.split_name!r} of "
                           f"{self.root}") from None

    __getitem__ = get

    def __iter__(self) -> Iterator[Tuple[str, Regions]]:
        for i, image_id in enumerate(self.data.image_ids):
            yield image_id, self._regions(i)

    items = __iter__

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._row

    def __len__(self) -> int:
        return len(self._row)

    def close(self) -> None:
        """Drop the reference to the (memory-mapped) arrays."""

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
      committed segments (``<path>.parts/``): :class:`detectors.store.RegionStore`;
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
