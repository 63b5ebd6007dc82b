"""Reader and writer for the "precomp" layout of the SCAN / VSE++ / GSMN lineage.

A split ``{split}`` (``train``, ``dev``, ``test``, ``testall`` ...) of a dataset folder ``root``
consists of these files:

``{split}_ims.npy`` (required)
    float array ``[n_images, R, D]`` of bottom-up region features (e.g. 36 x 2048). Loaded with
    ``mmap_mode="r"`` by default, so a large split is not read into memory.
``{split}_caps.txt`` (required)
    one caption per line, UTF-8.
``{split}_ids.txt`` (optional)
    image ids, one per line. Two layouts are understood:

    * ``n_images`` lines: the id of each feature row. Captions then come in contiguous groups of
      ``k = n_captions / n_images`` per image (caption ``j`` belongs to row ``j // k``).
    * ``n_captions`` lines: the image id of each caption (an explicit caption -> image map).
      The ids must take exactly ``n_images`` distinct values. **Order rule**: the captions of
      one image form one contiguous block of lines, and the blocks come in the order of the
      feature rows (the first block is row 0, the next new id row 1, ...). An id that reappears
      after another image's block is an error naming the line, because the rows of a shuffled
      file cannot be known. Captions in any order are accepted when ``{split}_ims_ids.txt``
      gives the id of every feature row: each caption then goes to the row of its id.

    When ``n_images == n_captions`` the file is read as one id per image. Without the file,
    captions come in contiguous groups (``n_captions`` must be a whole multiple of
    ``n_images``) and the image ids are the row indices as strings. A whole multiple is not
    proof that no block was lost: :mod:`graphmatch.data.check` reports the captions per image of
    every split and warns when they differ between splits.
``{split}_ims_ids.txt`` (optional)
    the image id of each feature row (``n_images`` distinct lines); only read together with a
    per-caption ``{split}_ids.txt``, which may then list the captions in any order.
``{split}_ims_bbx.npy`` (optional)
    region boxes ``[n_images, R, 4]`` as ``(x1, y1, x2, y2)`` in pixels.
``{split}_ims_size.npy`` (optional)
    image sizes: a numeric ``[n_images, 2]`` array of ``(width, height)``, or (the layout of the
    GSMN repository) a 1-D object array of dicts with keys ``image_w`` / ``image_h``. The numeric
    form is detected from the ``.npy`` header first and read without pickle; only the legacy
    object form is read with ``allow_pickle=True``, which can execute code from the file, so only
    load such files from a trusted source. Boxes without sizes are allowed.

Text files (captions, ids) must be UTF-8; a UTF-8 byte-order mark is dropped, LF, CRLF and
CR-only (classic Mac OS) line endings are read as line breaks; a UTF-16/UTF-32 file (byte-order
mark or NUL bytes) and a file mixing lone CRs with LF line ends are errors.

Region feature rows that are all zero are zero padding (fewer detected regions than ``R``):
:class:`PrecompRegions` (the region source of a loaded split) leaves them out of the image's regions, so they are
masked out of attention and pooling. An image with no non-zero row is an error.

Every problem with the input raises :class:`DataError` naming the file and the line / record /
field concerned.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

from graphmatch.data.vocab import tokenize
from graphmatch.structures import Correspondence, Regions
from graphmatch.utils.atomic import atomic_save_npy, atomic_write_text

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

__all__ = ["DataError", "PrecompSplit", "PrecompRegions", "load_precomp", "load_captions", "write_precomp", "precomp_paths"]

_MAX_LISTED = 5  # how many offending lines / records an error message lists
_FINITE_CHUNK_BYTES = 64 * 1024 * 1024  # bytes of features checked per chunk


class DataError(ValueError):
    """Input data on disk is missing or malformed. The message names the file and the problem.

    ``path`` (the file), ``record`` (e.g. ``"line 12"``, ``"row 5"``) and ``code`` (the kind of
    problem, e.g. ``"ids_order"``) repeat what the message says, for programs that collect errors.
    """

    def __init__(self, message: str, *, path: Optional[PathLike] = None, record: Optional[str] = None,
                 code: str = "invalid") -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.record = record
        self.code = code


def precomp_paths(root: PathLike, split: str) -> dict[str, Path]:
    """The file paths of ``split`` in ``root``: keys ims, caps, ids, bbx, size, ims_ids."""
    root = Path(root)
    return {"ims": root / f"{split}_ims.npy", "caps": root / f"{split}_caps.txt",
            "ids": root / f"{split}_ids.txt", "bbx": root / f"{split}_ims_bbx.npy",
            "size": root / f"{split}_ims_size.npy", "ims_ids": root / f"{split}_ims_ids.txt"}


def _layout_hint(split: str) -> str:
    return (f"expected layout: {split}_ims.npy (float [n_images, R, D]) and {split}_caps.txt "
            f"(one caption per line), optionally {split}_ids.txt, {split}_ims_bbx.npy, "
            f"{split}_ims_size.npy")


def _list_some(items: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _MAX_LISTED else "")


# ---------------------------------------------------------------------------------- dataclass
@dataclass
class PrecompSplit:
    """One loaded split. ``features`` may be a read-only memmap, or ``None`` for a split whose
    regions come from elsewhere (:func:`load_captions`: a region store keyed by ``image_ids``)."""

    root: Path
    split: str
    features: Optional[np.ndarray]            # [n_images, R, D] float, or None
    captions: list[str]                       # n_captions
    img_of_caption: np.ndarray                # [n_captions] int64: feature row of each caption
    captions_of_image: list[np.ndarray]       # n_images arrays of caption indices (int64)
    image_ids: list[str] = field(default_factory=list)
    boxes: Optional[np.ndarray] = None        # [n_images, R, 4] (x1, y1, x2, y2) pixels
    image_sizes: Optional[np.ndarray] = None  # [n_images, 2] float32 (width, height)

    @property
    def n_images(self) -> int:
        """Number of images (feature rows)."""
        return len(self.captions_of_image)

    @property
    def n_captions(self) -> int:
        """Number of captions."""
        return len(self.captions)

    @property
    def n_regions(self) -> Optional[int]:
        """Regions per image (R); None without features."""
        return None if self.features is None else int(self.features.shape[1])

    @property
    def feature_dim(self) -> Optional[int]:
        """Region feature dimension (D); None without features."""
        return None if self.features is None else int(self.features.shape[2])

    @property
    def correspondence(self) -> Correspondence:
        """The caption -> image map as a :class:`~graphmatch.structures.Correspondence`."""
        return Correspondence(self.img_of_caption, self.n_images, every_image_captioned=False)

    @property
    def captions_per_image(self) -> Optional[int]:
        """k when every image has the same number of captions, else None."""
        counts = {len(c) for c in self.captions_of_image}
        return counts.pop() if len(counts) == 1 else None

    def subset_images(self, indices: Union[Sequence[int], np.ndarray]) -> "PrecompSplit":
        """A new split with the images ``indices`` (in that order) and all of their captions.

        Captions keep their original relative order within each image and are grouped by image
        in the order of ``indices``. ``indices`` may also be a boolean mask of length n_images.
        Features are copied into memory (fancy indexing of a memmap).
        """
        corr, cap_idx = self.correspondence.subset(indices, grouped=True)
        idx = np.asarray(indices)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64).reshape(-1) % max(1, self.n_images)
        return replace(
            self,
            features=None if self.features is None else np.asarray(self.features[idx]),
            captions=[self.captions[j] for j in cap_idx],
            img_of_caption=np.array(corr.img_of_caption),
            captions_of_image=list(corr.groups),
            image_ids=[self.image_ids[i] for i in idx],
            boxes=None if self.boxes is None else np.asarray(self.boxes[idx]),
            image_sizes=None if self.image_sizes is None else np.asarray(self.image_sizes[idx]),
        )

    def __repr__(self) -> str:
        return (f"PrecompSplit(root={str(self.root)!r}, split={self.split!r}, "
                f"n_images={self.n_images}, n_captions={self.n_captions}, "
                f"regions={self.n_regions}, dim={self.feature_dim}, "
                f"boxes={self.boxes is not None}, sizes={self.image_sizes is not None})")


class PrecompRegions:
    """The feature rows of a loaded :class:`PrecompSplit` as a region source: ``get(image_id)`` and
    ``image_id in source`` by the split's image ids, :meth:`row` by row number.

    All-zero feature rows are zero padding (fewer detected regions than ``R``): they are left out of
    an image's :class:`~graphmatch.structures.Regions` together with their boxes, so graphs never
    hold them. Without a boxes file the boxes are zeros and ``flags["boxes_missing"]`` is set;
    without a sizes file the size is the extent of the boxes (at least 1 x 1) and
    ``flags["image_size_estimated"]`` is set; graph builders leave such fields out.

    Raises:
        DataError: (from :meth:`row` / :meth:`get`) an image whose every row is zero padding, or a
            row the :class:`~graphmatch.structures.Regions` checks reject (NaN / inf, an inverted
            box), naming the file and the row.
    """

    def __init__(self, split: PrecompSplit) -> None:
        if split.features is None:
            raise ValueError(f"split {split.split!r} of {split.root} has no feature array ({split.split}_ims.npy)")
        self.split = split
        self.path = split.root / f"{split.split}_ims.npy"
        self._row = {image_id: i for i, image_id in enumerate(split.image_ids)}

    @property
    def feature_dim(self) -> int:
        return int(self.split.feature_dim)  # type: ignore[arg-type]

    def ids(self) -> list[str]:
        """Image ids in row order."""
        return list(self.split.image_ids)

    def __len__(self) -> int:
        return self.split.n_images

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._row

    def get(self, image_id: str) -> Regions:
        """The regions of ``image_id``."""
        try:
            i = self._row[str(image_id)]
        except KeyError:
            raise KeyError(f"image id {image_id!r} is not in split {self.split.split!r} of {self.split.root}") from None
        return self.row(i)

    __getitem__ = get

    def row(self, i: int) -> Regions:
        """The regions of feature row ``i``, zero padding left out."""
        s = self.split
        feats = np.array(s.features[i], dtype=np.float32)  # type: ignore[index]
        boxes = None if s.boxes is None else np.array(s.boxes[i], dtype=np.float32)
        keep = (feats != 0).any(axis=1)
        if not keep.all():
            if not keep.any():
                raise DataError(f"{self.path}: image row {i} has only all-zero region features (every region is "
                                "zero padding)", path=self.path, record=f"row {i}", code="all_zero_image")
            feats = feats[keep]
            boxes = None if boxes is None else boxes[keep]
        flags: dict = {}
        if boxes is None:
            boxes = np.zeros((feats.shape[0], 4), np.float32)
            flags["boxes_missing"] = True
        if s.image_sizes is not None:
            size = (float(s.image_sizes[i][0]), float(s.image_sizes[i][1]))
        else:
            ext = boxes[:, 2:].max(axis=0) if len(boxes) else np.ones(2)
            size = (max(1.0, float(np.ceil(ext[0]))), max(1.0, float(np.ceil(ext[1]))))
            flags["image_size_estimated"] = True
        try:
            return Regions(boxes=torch.from_numpy(boxes), features=torch.from_numpy(feats), image_size=size,
                           flags=flags)
        except ValueError as e:
            where = self.path if "boxes" not in str(e) else s.root / f"{s.split}_ims_bbx.npy"
            raise DataError(f"{where}: image row {i}: {e}", path=where, record=f"row {i}", code="bad_regions") from None

    def __repr__(self) -> str:
        return f"PrecompRegions({str(self.path)!r}, {len(self)} images)"


# ---------------------------------------------------------------------------------- readers
def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header, without reading the data."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                shape, _, dtype = np.lib.format._read_array_header(f, version)  # (3, 0)
    except (ValueError, OSError, EOFError, AttributeError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from e
    return tuple(shape), np.dtype(dtype)


def features_header(ims: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a features file, checked: float, 3-D, not empty (raises DataError)."""
    shape, dtype = _npy_header(ims)
    if dtype.hasobject or not np.issubdtype(dtype, np.floating):
        raise DataError(f"{ims}: features must be a float array, got dtype {dtype}", path=ims, code="dtype")
    if len(shape) != 3:
        raise DataError(f"{ims}: features must be 3-D [n_images, regions, dim], got shape {shape}",
                        path=ims, code="shape")
    if min(shape) == 0:
        raise DataError(f"{ims}: features array is empty (shape {shape})", path=ims, code="shape")
    return shape, dtype


def boxes_header(bbx: Path, n_images: int, n_regions: int, ims_name: str) -> None:
    """Check the shape and dtype of a boxes file against the features (raises DataError)."""
    bshape, bdtype = _npy_header(bbx)
    if bdtype.hasobject or not np.issubdtype(bdtype, np.number):
        raise DataError(f"{bbx}: boxes must be numeric, got dtype {bdtype}", path=bbx, code="dtype")
    if bshape != (n_images, n_regions, 4):
        raise DataError(f"{bbx}: boxes have shape {bshape}, expected "
                        f"({n_images}, {n_regions}, 4) = [n_images, regions, (x1, y1, x2, y2)] "
                        f"to match {ims_name}", path=bbx, code="shape")


def _load_npy(path: Path, *, mmap: bool, allow_pickle: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot load .npy file ({e})") from e


def _line_of(data: bytes, pos: int, sep: bytes = b"\n") -> int:
    """1-based line number of byte ``pos``."""
    return data.count(sep, 0, pos) + 1


def read_text_lines(path: PathLike, what: str = "text") -> tuple[list[str], dict]:
    """Read a UTF-8 text file as a list of lines (no terminators; a trailing newline is optional).

    Returns ``(lines, info)``; ``info`` says ``encoding`` (``"utf-8"`` or ``"utf-8-sig"``: a
    byte-order mark was dropped) and ``line_endings`` (``"LF"``, ``"CRLF"``, ``"CR"``, ``"LF+CRLF"``
    or ``"none"``). CR-only files (classic Mac OS) are split at each CR.

    Raises:
        DataError: the file cannot be read; it is UTF-16 / UTF-32 (byte-order mark or NUL bytes,
            ``code="encoding"``); it mixes lone CRs with LF line ends (``code="line_endings"``,
            naming the first such line); a line is not valid UTF-8 (naming the lines).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} file ({e})", path=path, code="unreadable") from e
    info = {"encoding": "utf-8", "line_endings": "none"}
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32 LE"), (b"\x00\x00\xfe\xff", "UTF-32 BE"),
                      (b"\xff\xfe", "UTF-16 LE"), (b"\xfe\xff", "UTF-16 BE")):
        if data.startswith(bom):
            raise DataError(f"{path}: {what} file is encoded as {name} (it starts with a {name} byte-order "
                            f"mark); graphmatch reads UTF-8: convert it, e.g. iconv -f {name.replace(' ', '')} "
                            f"-t UTF-8", path=path, record="byte 0", code="encoding")
    nul = data.find(b"\x00")
    if nul >= 0:
        even = data[0::2].count(b"\x00")
        odd = data[1::2].count(b"\x00")
        guess = ("looks like UTF-16 LE without a byte-order mark" if odd > len(data) // 4 else
                 "looks like UTF-16 BE without a byte-order mark" if even > len(data) // 4 else
                 "NUL bytes are not text")
        raise DataError(f"{path}: {what} file contains NUL bytes, first at byte {nul} (line "
                        f"{_line_of(data, nul)}); it {guess}; graphmatch reads UTF-8 text",
                        path=path, record=f"line {_line_of(data, nul)}", code="encoding")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        info["encoding"] = "utf-8-sig"
    n_crlf = data.count(b"\r\n")
    n_lf = data.count(b"\n") - n_crlf
    n_cr = data.count(b"\r") - n_crlf
    if n_cr and not (n_lf or n_crlf):
        info["line_endings"] = "CR"
        raw = data.split(b"\r")
    else:
        if n_cr:
            pos = data.find(b"\r")
            while pos >= 0 and data[pos + 1:pos + 2] == b"\n":
                pos = data.find(b"\r", pos + 1)
            raise DataError(f"{path}: line {_line_of(data, pos)} of the {what} file contains a carriage return "
                            "(CR) that does not end a CRLF line; the file mixes CR and LF line endings, so its "
                            "records cannot be told apart reliably: convert it to one kind of line ending",
                            path=path, record=f"line {_line_of(data, pos)}", code="line_endings")
        info["line_endings"] = ("LF+CRLF" if n_lf and n_crlf else "CRLF" if n_crlf else "LF" if n_lf
                                else "none")
        raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    lines: list[str] = []
    bad: list[int] = []
    first_err: Optional[UnicodeDecodeError] = None
    for i, b in enumerate(raw, start=1):
        if b.endswith(b"\r"):
            b = b[:-1]
        try:
            lines.append(b.decode("utf-8"))
        except UnicodeDecodeError as e:
            bad.append(i)
            first_err = first_err or e
            lines.append("")
    if bad:
        assert first_err is not None
        raise DataError(
            f"{path}: line {bad[0]} is not valid UTF-8 ({first_err.reason} at byte "
            f"{first_err.start} of the line); invalid lines: {_list_some(bad)}",
            path=path, record=f"line {bad[0]}", code="encoding")
    return lines, info


def _read_lines(path: Path, what: str) -> list[str]:
    """:func:`read_text_lines` without the info (a CR-only file is logged as a warning)."""
    lines, info = read_text_lines(path, what)
    if info["line_endings"] == "CR":
        log.warning("%s: CR-only (classic Mac OS) line endings; read %d lines", path, len(lines))
    return lines


def _chunk_rows(array: np.ndarray, chunk_bytes: Optional[int] = None) -> int:
    row_bytes = max(1, int(np.prod(array.shape[1:])) * array.dtype.itemsize)
    return max(1, (chunk_bytes or _FINITE_CHUNK_BYTES) // row_bytes)


def scan_features(features: np.ndarray, *, progress: bool = False, desc: str = "features") -> dict:
    """Scan a (possibly memmapped) ``[n_images, R, D]`` array in bounded-memory chunks.

    Returns a JSON-able dict: ``n_images``; ``nonfinite_images`` (rows with a NaN / inf) and
    ``first_nonfinite`` ``[row, region]``; ``zero_regions`` (all-zero region rows: padding),
    ``images_with_zero_regions`` and ``first_zero_region`` ``[row, region]``; ``all_zero_images``
    (rows whose every region is zero) and ``all_zero_rows`` (the first few of them).
    """
    n = int(features.shape[0])
    step = _chunk_rows(features)
    out = {"n_images": n, "nonfinite_images": 0, "first_nonfinite": None, "zero_regions": 0,
           "images_with_zero_regions": 0, "first_zero_region": None, "all_zero_images": 0,
           "all_zero_rows": []}
    from graphmatch.utils.progress import progress as progress_bar

    with progress_bar(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for s in range(0, n, step):
            chunk = np.asarray(features[s:s + step])
            flat = chunk.reshape(chunk.shape[0], chunk.shape[1], -1)
            finite = np.isfinite(flat).all(axis=2)             # [c, R]
            bad_img = ~finite.all(axis=1)
            if bad_img.any():
                if out["first_nonfinite"] is None:
                    r = int(np.flatnonzero(bad_img)[0])
                    out["first_nonfinite"] = [s + r, int(np.flatnonzero(~finite[r])[0])]
                out["nonfinite_images"] += int(bad_img.sum())
            zero = ~(flat != 0).any(axis=2)                    # [c, R]: all-zero region rows
            if zero.any():
                per_img = zero.sum(axis=1)
                if out["first_zero_region"] is None:
                    r = int(np.flatnonzero(per_img)[0])
                    out["first_zero_region"] = [s + r, int(np.flatnonzero(zero[r])[0])]
                out["zero_regions"] += int(per_img.sum())
                out["images_with_zero_regions"] += int((per_img > 0).sum())
                all_zero = np.flatnonzero(per_img == zero.shape[1])
                out["all_zero_images"] += int(all_zero.size)
                room = _MAX_LISTED - len(out["all_zero_rows"])
                out["all_zero_rows"] += [s + int(i) for i in all_zero[:max(0, room)]]
            bar.update(chunk.shape[0])
    return out


def feature_scan_errors(scan: dict, path: Path) -> list[DataError]:
    """The errors of a :func:`scan_features` result: NaN / inf features, images with only
    all-zero (padding) region rows."""
    errors = []
    n = scan["n_images"]
    if scan["nonfinite_images"]:
        row, reg = scan["first_nonfinite"]
        errors.append(DataError(
            f"{path}: features contain NaN or inf: first bad image row {row} (region {reg}), "
            f"{scan['nonfinite_images']} of {n} image rows affected (pass check_finite=False to skip this check)",
            path=path, record=f"row {row}", code="nonfinite_features"))
    if scan["all_zero_images"]:
        rows = scan["all_zero_rows"]
        errors.append(DataError(
            f"{path}: image row {rows[0]} has only all-zero region features (every region is zero padding, so "
            f"the image has nothing to match); {scan['all_zero_images']} of {n} image rows are all zero: "
            f"{_list_some(rows) if scan['all_zero_images'] <= _MAX_LISTED else ', '.join(map(str, rows)) + ', ...'}",
            path=path, record=f"row {rows[0]}", code="all_zero_image"))
    return errors


_PROGRESS_BYTES = 256 * 1024 * 1024  # feature files larger than this get a progress bar when scanned


def cached_feature_scan(path: PathLike, features: Optional[np.ndarray] = None, *, progress: bool = False) -> dict:
    """:func:`scan_features` of the ``.npy`` file ``path`` (memory-mapped unless ``features`` is
    given), cached per file version (:mod:`graphmatch.data.scan_cache`)."""
    from graphmatch.data.scan_cache import cached

    path = Path(path)

    def compute() -> dict:
        arr = features if features is not None else np.load(path, mmap_mode="r")
        big = progress and path.stat().st_size > _PROGRESS_BYTES
        return scan_features(arr, progress=big, desc=f"checking {path.name}")

    return cached("features", [path], compute)


def _check_finite(features: np.ndarray, path: Path) -> None:
    """Raise if any feature is NaN/inf or an image has only all-zero rows (scan cached per file
    version, :func:`cached_feature_scan`)."""
    errors = feature_scan_errors(cached_feature_scan(path, features), path)
    if errors:
        raise errors[0]


_BOX_FINDINGS = {  # code: (level, what the first box shows, what is counted)
    "nonfinite_boxes": ("error", "is not finite", "boxes with NaN or inf"),
    "inverted_boxes": ("error", "is inverted (x2 < x1 or y2 < y1; boxes are (x1, y1, x2, y2))",
                       "inverted boxes"),
    "empty_boxes": ("warning", "has zero width or height", "boxes of zero area"),
    "boxes_outside_image": ("warning", "lies more than one pixel outside its image (width, height) = {size}",
                            "boxes outside their image"),
}


def scan_boxes(boxes: np.ndarray, sizes: Optional[np.ndarray], *, row_offset: int = 0) -> dict:
    """Findings of region boxes ``[n, R, 4]`` (x1, y1, x2, y2): ``{code: {"row", "region", "box",
    "count"}}`` for the codes of ``_BOX_FINDINGS``. An all-zero box (a padding region) is none of
    them. ``sizes`` ``[n, 2]`` (width, height) enables the outside-the-image check."""
    b = np.asarray(boxes, dtype=np.float64)
    finite = np.isfinite(b).all(axis=2)
    with np.errstate(invalid="ignore"):
        inverted = finite & ((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1]))
        padding = (b == 0).all(axis=2)
        masks = {"nonfinite_boxes": ~finite, "inverted_boxes": inverted,
                 "empty_boxes": finite & ~inverted & ~padding & ((b[..., 2] == b[..., 0]) | (b[..., 3] == b[..., 1]))}
        if sizes is not None:
            wh = np.asarray(sizes, dtype=np.float64)[:, None, :]
            masks["boxes_outside_image"] = finite & ~padding & ((b[..., :2] < -1).any(axis=2)
                                                                | (b[..., 2:] > wh + 1).any(axis=2))
    out = {}
    for code, mask in masks.items():
        flat = np.flatnonzero(mask)
        if flat.size:
            i, r = (int(v) for v in np.unravel_index(int(flat[0]), mask.shape))
            out[code] = {"row": row_offset + i, "region": r, "box": [round(float(v), 2) for v in b[i, r]],
                         "size": None if sizes is None else [float(v) for v in np.asarray(sizes)[i]],
                         "count": int(flat.size)}
    return out


def merge_box_scans(scans: Sequence[dict]) -> dict:
    """Merge :func:`scan_boxes` results of consecutive chunks (first finding kept, counts added)."""
    out: dict = {}
    for sc in scans:
        for code, f in sc.items():
            if code in out:
                out[code]["count"] += f["count"]
            else:
                out[code] = dict(f)
    return out


def box_scan_problems(scan: dict, path: Path) -> tuple[list[DataError], list[DataError]]:
    """(errors, warnings) of a :func:`scan_boxes` result, each naming the file, row and region."""
    errors: list[DataError] = []
    warnings: list[DataError] = []
    for code, (level, shows, counted) in _BOX_FINDINGS.items():
        f = scan.get(code)
        if f is None:
            continue
        e = DataError(f"{path}: box of image row {f['row']} region {f['region']} {f['box']} "
                      f"{shows.format(size=f.get('size'))}; {f['count']} {counted}",
                      path=path, record=f"row {f['row']} region {f['region']}", code=code)
        (errors if level == "error" else warnings).append(e)
    return errors, warnings


def box_problems(boxes: np.ndarray, sizes: Optional[np.ndarray], path: Path) -> tuple[list[DataError], list[DataError]]:
    """(errors, warnings) of region boxes held in memory: NaN / inf and inverted boxes are
    errors; zero-area boxes and boxes outside their image (with ``sizes``) are warnings."""
    return box_scan_problems(scan_boxes(boxes, sizes), path)


def _check_captions(captions: list[str], path: Path) -> list[str]:
    stripped = [c.strip() for c in captions]
    empty = [i for i, c in enumerate(stripped, start=1) if not c]
    if empty:
        raise DataError(f"{path}: empty or whitespace-only caption at line(s) {_list_some(empty)}")
    no_tok = [i for i, c in enumerate(stripped, start=1) if not tokenize(c)]
    if no_tok:
        raise DataError(f"{path}: caption with no word token (only punctuation/symbols) at "
                        f"line(s) {_list_some(no_tok)}")
    return stripped


def _load_sizes(path: Path, n_images: int) -> np.ndarray:
    shape, dtype = _npy_header(path)
    if not dtype.hasobject:
        if not (np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)):
            raise DataError(f"{path}: image sizes must be numeric, got dtype {dtype}")
        if shape != (n_images, 2):
            raise DataError(f"{path}: image sizes have shape {shape}, expected ({n_images}, 2) "
                            "as (width, height) per image")
        sizes = np.asarray(_load_npy(path, mmap=False), dtype=np.float32)
    else:
        # Legacy GSMN layout: object array of {"image_w": ..., "image_h": ...}; needs pickle.
        if len(shape) != 1 or shape[0] != n_images:
            raise DataError(f"{path}: legacy image-size records have shape {shape}, expected "
                            f"({n_images},) dicts with keys 'image_w'/'image_h'")
        recs = _load_npy(path, mmap=False, allow_pickle=True)
        sizes = np.zeros((n_images, 2), np.float32)
        for i, rec in enumerate(recs):
            if not isinstance(rec, Mapping):
                raise DataError(f"{path}: record {i} is a {type(rec).__name__}, expected a dict "
                                "with keys 'image_w'/'image_h'")
            for j, key in enumerate(("image_w", "image_h")):
                if key not in rec:
                    raise DataError(f"{path}: record {i} has no field {key!r}")
                try:
                    sizes[i, j] = float(rec[key])
                except (TypeError, ValueError) as e:
                    raise DataError(f"{path}: record {i} field {key!r} is not a number: "
                                    f"{rec[key]!r}") from e
    bad = np.flatnonzero(~(np.isfinite(sizes).all(axis=1) & (sizes > 0).all(axis=1)))
    if bad.size:
        raise DataError(f"{path}: image sizes must be finite and positive; bad record(s) "
                        f"{_list_some(bad.tolist())} (first: {sizes[bad[0]].tolist()})")
    return sizes


def _map_captions(ids: Optional[list[str]], ids_path: Path, caps_path: Path, ims_path: Path,
                  n_images: int, n_captions: int, *, row_ids: Optional[list[str]] = None,
                  row_ids_path: Optional[Path] = None, ordered: bool = True) -> tuple[np.ndarray, list[str]]:
    """Return (img_of_caption, image_ids) from the optional ids file (rules: module docstring).

    ``row_ids``: the id of each feature row (``{split}_ims_ids.txt``), which makes a per-caption
    ids file an explicit map in any order. ``ordered``: whether per-caption ids must follow the
    feature rows (contiguous blocks in row order); False where images are looked up by id.
    """
    def contiguous(source: str) -> np.ndarray:
        if n_captions % n_images:
            raise DataError(
                f"{caps_path} has {n_captions} captions, which is not a whole multiple of the "
                f"{n_images} images in {ims_path} ({source}); captions must come in contiguous "
                f"groups of k per image, or {ids_path.name} must give the image id of each caption",
                path=caps_path, record=f"line {n_captions}", code="caption_count")
        k = n_captions // n_images
        return np.repeat(np.arange(n_images, dtype=np.int64), k)

    if ids is None:
        return contiguous(f"no {ids_path.name}"), [str(i) for i in range(n_images)]
    empty = [i for i, s in enumerate(ids, start=1) if not s.strip()]
    if empty:
        raise DataError(f"{ids_path}: empty image id at line(s) {_list_some(empty)}",
                        path=ids_path, record=f"line {empty[0]}", code="ids_empty")
    ids = [s.strip() for s in ids]
    if len(ids) == n_images and (row_ids is None or n_images != n_captions):
        seen: dict[str, int] = {}
        for i, s in enumerate(ids, start=1):
            if s in seen:
                raise DataError(f"{ids_path}: image id {s!r} at line {i} repeats line {seen[s]}; "
                                f"with {n_images} lines (one per image) ids must be distinct",
                                path=ids_path, record=f"line {i}", code="ids_duplicate")
            seen[s] = i
        return contiguous(f"{ids_path.name} lists one id per image"), ids
    if len(ids) == n_captions:
        img = np.empty(n_captions, np.int64)
        if row_ids is not None:
            assert row_ids_path is not None
            row_of = {}
            for i, s in enumerate(row_ids, start=1):
                s = s.strip()
                if not s or s in row_of:
                    raise DataError(f"{row_ids_path}: line {i}: image id {s!r} is empty or repeats an earlier line; "
                                    "the id of each feature row must be distinct", path=row_ids_path,
                                    record=f"line {i}", code="ids_duplicate")
                row_of[s] = i - 1
            if len(row_of) != n_images:
                raise DataError(f"{row_ids_path} has {len(row_of)} lines but {ims_path} has {n_images} image rows; "
                                "it must give the id of every feature row", path=row_ids_path,
                                code="ids_count")
            for j, s in enumerate(ids):
                if s not in row_of:
                    raise DataError(f"{ids_path}: line {j + 1}: image id {s!r} is not in {row_ids_path.name} "
                                    "(the ids of the feature rows)", path=ids_path, record=f"line {j + 1}",
                                    code="ids_unknown")
                img[j] = row_of[s]
            missing = sorted(set(range(n_images)) - set(img.tolist()))
            if missing:
                raise DataError(f"{row_ids_path}: image row(s) {_list_some(missing)} (first id "
                                f"{row_ids[missing[0]].strip()!r}) have no caption in {ids_path.name}",
                                path=row_ids_path, record=f"line {missing[0] + 1}", code="image_without_caption")
            return img, [s.strip() for s in row_ids]
        row_of = {}
        block_start: dict[str, int] = {}
        prev = None
        for j, s in enumerate(ids):
            if ordered and s != prev and s in row_of:
                raise DataError(
                    f"{ids_path}: line {j + 1}: image id {s!r} reappears after the captions of {prev!r} "
                    f"(its block began at line {block_start[s] + 1}); with one id per caption the captions of "
                    f"each image must be one contiguous block, blocks in the order of the feature rows of "
                    f"{ims_path.name}, or the captions would land on the wrong images. Sort {caps_path.name} "
                    f"and {ids_path.name} together into feature-row order, or give the id of each feature row "
                    f"in {row_ids_path.name if row_ids_path is not None else '<split>_ims_ids.txt'}",
                    path=ids_path, record=f"line {j + 1}", code="ids_order")
            if s not in row_of:
                row_of[s] = len(row_of)
                block_start[s] = j
            img[j] = row_of[s]
            prev = s
        if len(row_of) != n_images:
            raise DataError(
                f"{ids_path}: one id per caption ({n_captions} lines) but {len(row_of)} distinct "
                f"image ids, while {ims_path} has {n_images} images; the distinct ids must match "
                "the feature rows one to one (in order of first appearance)", path=ids_path,
                code="ids_count")
        return img, list(row_of)
    raise DataError(
        f"{ids_path} has {len(ids)} lines; expected {n_images} (one per image in {ims_path.name}) "
        f"or {n_captions} (one per caption in {caps_path.name})", path=ids_path, code="ids_count")


def load_precomp(root: PathLike, split: str, *, mmap: bool = True,
                 check_finite: bool = True) -> PrecompSplit:
    """Load split ``split`` of the precomp folder ``root`` (layout: see the module docstring).

    Args:
        root: the dataset folder.
        split: split name, e.g. ``"train"``, ``"dev"``, ``"test"``, ``"testall"``.
        mmap: memory-map the features read-only (default) instead of reading them into memory.
        check_finite: scan the features (in bounded-memory chunks) for NaN / inf and for images
            whose every region row is zero, and the boxes for NaN / inf and inverted boxes. The
            feature scan of a file is cached by path, size and modification time
            (:func:`cached_feature_scan`), so it runs once per file version.

    Raises:
        DataError: for any missing or malformed file; the message names the file and the line /
            record / field concerned.
    """
    root = Path(root)
    paths = precomp_paths(root, split)
    if not root.is_dir():
        raise DataError(f"precomp folder not found: {root} ({_layout_hint(split)})")
    for key, what in (("ims", "region features"), ("caps", "captions")):
        if not paths[key].is_file():
            raise DataError(f"missing {what} file {paths[key]} for split {split!r} "
                            f"({_layout_hint(split)})")

    # ---- features
    ims = paths["ims"]
    shape, dtype = features_header(ims)
    features = _load_npy(ims, mmap=mmap)
    n_images, n_regions = int(shape[0]), int(shape[1])
    if check_finite:
        _check_finite(features, ims)

    # ---- captions
    caps = paths["caps"]
    captions = _read_lines(caps, "captions")
    if not captions:
        raise DataError(f"{caps}: no captions (file is empty)")
    captions = _check_captions(captions, caps)

    # ---- caption -> image map
    ids_lines = _read_lines(paths["ids"], "image ids") if paths["ids"].is_file() else None
    row_ids = (_read_lines(paths["ims_ids"], "image ids of the feature rows")
               if ids_lines is not None and paths["ims_ids"].is_file() else None)
    img_of_caption, image_ids = _map_captions(ids_lines, paths["ids"], caps, ims,
                                              n_images, len(captions), row_ids=row_ids,
                                              row_ids_path=paths["ims_ids"])
    captions_of_image = list(Correspondence(img_of_caption, n_images, every_image_captioned=False).groups)

    # ---- boxes and sizes
    boxes = None
    if paths["bbx"].is_file():
        boxes_header(paths["bbx"], n_images, n_regions, ims.name)
        boxes = np.asarray(_load_npy(paths["bbx"], mmap=False))
        if check_finite:
            box_errors, _ = box_problems(boxes, None, paths["bbx"])
            if box_errors:
                raise box_errors[0]
    sizes = _load_sizes(paths["size"], n_images) if paths["size"].is_file() else None

    return PrecompSplit(root=root, split=split, features=features, captions=captions,
                        img_of_caption=img_of_caption, captions_of_image=captions_of_image,
                        image_ids=image_ids, boxes=boxes, image_sizes=sizes)


def load_captions(root: PathLike, split: str) -> PrecompSplit:
    """Captions and image ids of a split whose regions live elsewhere (``features`` is None).

    Reads ``{split}_caps.txt`` and the required ``{split}_ids.txt``: one id per caption (the
    explicit map), or one id per image with captions in contiguous groups of ``k``. The ids are the
    keys under which a region store (HDF5 store, bottom-up-attention TSV, ...) holds each image.

    Raises:
        DataError: a missing or malformed file, naming it and the line.
    """
    root = Path(root)
    paths = precomp_paths(root, split)
    for key, what in (("caps", "captions"), ("ids", "image ids")):
        if not paths[key].is_file():
            raise DataError(f"missing {what} file {paths[key]} for split {split!r}: a split whose regions "
                            "come from a region store needs captions and the image id of each image or caption")
    caps = paths["caps"]
    captions = _read_lines(caps, "captions")
    if not captions:
        raise DataError(f"{caps}: no captions (file is empty)")
    captions = _check_captions(captions, caps)
    ids = _read_lines(paths["ids"], "image ids")
    if len(ids) == len(captions):
        n_images = len({i.strip() for i in ids})
    else:
        n_images = len(ids)
    if n_images == 0:
        raise DataError(f"{paths['ids']}: no image ids (file is empty)")
    img_of_caption, image_ids = _map_captions(ids, paths["ids"], caps, paths["ids"], n_images, len(captions),
                                              ordered=False)
    captions_of_image = list(Correspondence(img_of_caption, n_images, every_image_captioned=False).groups)
    return PrecompSplit(root=root, split=split, features=None, captions=captions,
                        img_of_caption=img_of_caption, captions_of_image=captions_of_image, image_ids=image_ids)


# ---------------------------------------------------------------------------------- writer
def write_precomp(root: PathLike, split: str, features: np.ndarray, captions: Sequence[str], *,
                  image_ids: Optional[Sequence[str]] = None,
                  img_of_caption: Optional[Union[Sequence[int], np.ndarray]] = None,
                  boxes: Optional[np.ndarray] = None,
                  image_sizes: Optional[np.ndarray] = None) -> dict[str, Path]:
    """Write a split in the precomp layout; each file is written atomically.

    Args:
        root: dataset folder (created if needed).
        split: split name.
        features: float array ``[n_images, R, D]`` (its dtype is kept).
        captions: caption strings (no line breaks; each must contain a word token).
        image_ids: one id per image (no surrounding whitespace, distinct). Written as
            ``{split}_ids.txt`` with one line per image, unless ``img_of_caption`` is given.
        img_of_caption: feature row of each caption. When given, ``{split}_ids.txt`` holds one
            line per caption (the image id of each caption; row indices as ids when ``image_ids``
            is None). Because the loader assigns rows in order of first appearance, the rows must
            first appear in increasing order 0, 1, 2, ... and every image needs a caption.
            Without it captions are written as contiguous groups of ``k`` per image.
        boxes: ``[n_images, R, 4]`` (x1, y1, x2, y2), saved as float32.
        image_sizes: ``[n_images, 2]`` (width, height), saved as float32.

    Optional files of ``split`` that are not written this time are removed, so that a later
    :func:`load_precomp` sees exactly what was written. Returns the paths written.
    """
    features = np.asarray(features)
    if features.ndim != 3 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"features must be a float array [n_images, R, D], got "
                         f"{features.dtype} {features.shape}")
    n, r = features.shape[:2]
    captions = list(captions)
    for j, c in enumerate(captions):
        if not isinstance(c, str):
            raise ValueError(f"caption {j} is not a str: {c!r}")
        if "\n" in c or "\r" in c:
            raise ValueError(f"caption {j} contains a line break: {c!r}")
        if not tokenize(c):
            raise ValueError(f"caption {j} has no word token: {c!r}")
    ids: Optional[list[str]] = None
    if image_ids is not None:
        ids = [str(s) for s in image_ids]
        if len(ids) != n:
            raise ValueError(f"{len(ids)} image ids for {n} images")
        for s in ids:
            if not s or s != s.strip() or "\n" in s or "\r" in s:
                raise ValueError(f"image id {s!r} is empty or has surrounding whitespace/newlines")
        if len(set(ids)) != n:
            raise ValueError("image ids are not distinct")
    ids_lines: Optional[list[str]] = None
    if img_of_caption is not None:
        img = np.asarray(img_of_caption, dtype=np.int64)
        if img.shape != (len(captions),):
            raise ValueError(f"img_of_caption has shape {img.shape}, expected ({len(captions)},)")
        if img.size and (img.min() < 0 or img.max() >= n):
            raise ValueError(f"img_of_caption has rows outside [0, {n})")
        _, first = np.unique(img, return_index=True)
        if len(first) != n or not np.array_equal(img[np.sort(first)], np.arange(n)):
            raise ValueError("img_of_caption must give every image a caption, with rows first "
                             "appearing in increasing order 0, 1, 2, ...")
        names = ids if ids is not None else [str(i) for i in range(n)]
        ids_lines = [names[i] for i in img]
    else:
        if n == 0 or len(captions) % n:
            raise ValueError(f"{len(captions)} captions are not a whole multiple of {n} images "
                             "(pass img_of_caption for an explicit caption -> image map)")
        ids_lines = ids
    if boxes is not None:
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.shape != (n, r, 4):
            raise ValueError(f"boxes have shape {boxes.shape}, expected ({n}, {r}, 4)")
    if image_sizes is not None:
        image_sizes = np.asarray(image_sizes, dtype=np.float32)
        if image_sizes.shape != (n, 2):
            raise ValueError(f"image_sizes have shape {image_sizes.shape}, expected ({n}, 2)")

    paths = precomp_paths(root, split)
    Path(root).mkdir(parents=True, exist_ok=True)
    written = {}
    atomic_save_npy(paths["ims"], features)
    written["ims"] = paths["ims"]
    atomic_write_text(paths["caps"], "".join(c + "\n" for c in captions))
    written["caps"] = paths["caps"]
    paths["ims_ids"].unlink(missing_ok=True)  # never written: rows follow the per-caption ids
    optional = {"ids": ids_lines, "bbx": boxes, "size": image_sizes}
    for key, value in optional.items():
        if value is None:
            paths[key].unlink(missing_ok=True)
        elif key == "ids":
            atomic_write_text(paths[key], "".join(s + "\n" for s in value))
            written[key] = paths[key]
        else:
            atomic_save_npy(paths[key], value)
            written[key] = paths[key]
    return written

