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
      The ids must then take exactly ``n_images`` distinct values; the distinct ids are assigned
      to feature rows **in order of first appearance** (the first id seen is row 0, the next new
      id is row 1, ...).

    When ``n_images == n_captions`` both readings agree. Without the file, captions come in
    contiguous groups (``k`` must be an integer) and the image ids are the row indices as strings.
``{split}_ims_bbx.npy`` (optional)
    region boxes ``[n_images, R, 4]`` as ``(x1, y1, x2, y2)`` in pixels.
``{split}_ims_size.npy`` (optional)
    image sizes: a numeric ``[n_images, 2]`` array of ``(width, height)``, or (the layout of the
    GSMN repository) a 1-D object array of dicts with keys ``image_w`` / ``image_h``. The numeric
    form is detected from the ``.npy`` header first and read without pickle; only the legacy
    object form is read with ``allow_pickle=True``, which can execute code from the file, so only
    load such files from a trusted source. Boxes without sizes are allowed.

Every problem with the input raises :class:`DataError` naming the file and the line / record /
field concerned.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from graphmatch.data.vocab import tokenize
from graphmatch.metrics import captions_of_image as group_captions
from graphmatch.registry import DATASETS
from graphmatch.utils.io import atomic_save_npy, atomic_write_text

PathLike = Union[str, os.PathLike]

__all__ = ["DataError", "PrecompSplit", "load_precomp", "load_captions", "write_precomp", "precomp_paths"]

_MAX_LISTED = 5  # how many offending lines / records an error message lists
_FINITE_CHUNK_BYTES = 64 * 1024 * 1024  # bytes of features checked per chunk


class DataError(ValueError):
    """Input data on disk is missing or malformed. The message names the file and the problem."""


def precomp_paths(root: PathLike, split: str) -> dict[str, Path]:
    """The file paths of ``split`` in ``root``: keys ims, caps, ids, bbx, size."""
    root = Path(root)
    return {"ims": root / f"{split}_ims.npy", "caps": root / f"{split}_caps.txt",
            "ids": root / f"{split}_ids.txt", "bbx": root / f"{split}_ims_bbx.npy",
            "size": root / f"{split}_ims_size.npy"}


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
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_images,):
                raise ValueError(f"boolean mask has shape {idx.shape}, expected ({self.n_images},)")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError("indices must be a 1-D sequence of integers or a boolean mask")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < -self.n_images or idx.max() >= self.n_images):
            raise IndexError(f"image index out of range for {self.n_images} images")
        idx = np.where(idx < 0, idx + self.n_images, idx)
        if np.unique(idx).size != idx.size:
            raise ValueError("indices contain duplicates")
        cap_groups = [self.captions_of_image[i] for i in idx]
        cap_idx = (np.concatenate(cap_groups) if cap_groups else np.zeros(0, np.int64))
        new_img = np.repeat(np.arange(idx.size, dtype=np.int64), [len(g) for g in cap_groups])
        new_groups, start = [], 0
        for g in cap_groups:
            new_groups.append(np.arange(start, start + len(g), dtype=np.int64))
            start += len(g)
        return replace(
            self,
            features=None if self.features is None else np.asarray(self.features[idx]),
            captions=[self.captions[j] for j in cap_idx],
            img_of_caption=new_img,
            captions_of_image=new_groups,
            image_ids=[self.image_ids[i] for i in idx],
            boxes=None if self.boxes is None else np.asarray(self.boxes[idx]),
            image_sizes=None if self.image_sizes is None else np.asarray(self.image_sizes[idx]),
        )

    def __repr__(self) -> str:
        return (f"PrecompSplit(root={str(self.root)!r}, split={self.split!r}, "
                f"n_images={self.n_images}, n_captions={self.n_captions}, "
                f"regions={self.n_regions}, dim={self.feature_dim}, "
                f"boxes={self.boxes is not None}, sizes={self.image_sizes is not None})")


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


def _load_npy(path: Path, *, mmap: bool, allow_pickle: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot load .npy file ({e})") from e


def _read_lines(path: Path, what: str) -> list[str]:
    """Read a UTF-8 text file as a list of lines (no line terminators, trailing newline optional).

    Invalid UTF-8 raises :class:`DataError` listing the (1-based) offending line numbers.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} file ({e})") from e
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
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
            f"{first_err.start} of the line); invalid lines: {_list_some(bad)}")
    return lines


def _check_finite(features: np.ndarray, path: Path) -> None:
    """Raise if any feature is NaN/inf, scanning the (possibly memmapped) array in chunks."""
    n = features.shape[0]
    row_bytes = max(1, int(np.prod(features.shape[1:])) * features.dtype.itemsize)
    step = max(1, _FINITE_CHUNK_BYTES // row_bytes)
    first_bad: Optional[int] = None
    n_bad = 0
    for s in range(0, n, step):
        chunk = np.asarray(features[s:s + step])
        ok = np.isfinite(chunk).reshape(chunk.shape[0], -1).all(axis=1)
        if not ok.all():
            bad_rows = np.flatnonzero(~ok)
            if first_bad is None:
                first_bad = s + int(bad_rows[0])
            n_bad += int(bad_rows.size)
    if first_bad is not None:
        raise DataError(
            f"{path}: features contain NaN or inf: first bad image row {first_bad}, "
            f"{n_bad} of {n} image rows affected (pass check_finite=False to skip this check)")


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
                  n_images: int, n_captions: int) -> tuple[np.ndarray, list[str]]:
    """Return (img_of_caption, image_ids) from the optional ids file."""
    def contiguous(source: str) -> np.ndarray:
        if n_captions % n_images:
            raise DataError(
                f"{caps_path} has {n_captions} captions, which is not a whole multiple of the "
                f"{n_images} images in {ims_path} ({source}); captions must come in contiguous "
                f"groups of k per image, or {ids_path.name} must give the image id of each caption")
        k = n_captions // n_images
        return np.repeat(np.arange(n_images, dtype=np.int64), k)

    if ids is None:
        return contiguous(f"no {ids_path.name}"), [str(i) for i in range(n_images)]
    empty = [i for i, s in enumerate(ids, start=1) if not s.strip()]
    if empty:
        raise DataError(f"{ids_path}: empty image id at line(s) {_list_some(empty)}")
    ids = [s.strip() for s in ids]
    if len(ids) == n_images:
        seen: dict[str, int] = {}
        for i, s in enumerate(ids, start=1):
            if s in seen:
                raise DataError(f"{ids_path}: image id {s!r} at line {i} repeats line {seen[s]}; "
                                f"with {n_images} lines (one per image) ids must be distinct")
            seen[s] = i
        return contiguous(f"{ids_path.name} lists one id per image"), ids
    if len(ids) == n_captions:
        row_of: dict[str, int] = {}
        img = np.empty(n_captions, np.int64)
        for j, s in enumerate(ids):
            img[j] = row_of.setdefault(s, len(row_of))
        if len(row_of) != n_images:
            raise DataError(
                f"{ids_path}: one id per caption ({n_captions} lines) but {len(row_of)} distinct "
                f"image ids, while {ims_path} has {n_images} images; the distinct ids must match "
                "the feature rows one to one (in order of first appearance)")
        return img, list(row_of)
    raise DataError(
        f"{ids_path} has {len(ids)} lines; expected {n_images} (one per image in {ims_path.name}) "
        f"or {n_captions} (one per caption in {caps_path.name})")


def load_precomp(root: PathLike, split: str, *, mmap: bool = True,
                 check_finite: bool = True) -> PrecompSplit:
    """Load split ``split`` of the precomp folder ``root`` (layout: see the module docstring).

    Args:
        root: the dataset folder.
        split: split name, e.g. ``"train"``, ``"dev"``, ``"test"``, ``"testall"``.
        mmap: memory-map the features read-only (default) instead of reading them into memory.
        check_finite: scan the features for NaN/inf (in bounded-memory chunks).

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
    shape, dtype = _npy_header(ims)
    if dtype.hasobject or not np.issubdtype(dtype, np.floating):
        raise DataError(f"{ims}: features must be a float array, got dtype {dtype}")
    if len(shape) != 3:
        raise DataError(f"{ims}: features must be 3-D [n_images, regions, dim], got shape {shape}")
    if min(shape) == 0:
        raise DataError(f"{ims}: features array is empty (shape {shape})")
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
    img_of_caption, image_ids = _map_captions(ids_lines, paths["ids"], caps, ims,
                                              n_images, len(captions))
    captions_of_image = [c.astype(np.int64) for c in group_captions(img_of_caption, n_images)]

    # ---- boxes and sizes
    boxes = None
    if paths["bbx"].is_file():
        bshape, bdtype = _npy_header(paths["bbx"])
        if bdtype.hasobject or not np.issubdtype(bdtype, np.number):
            raise DataError(f"{paths['bbx']}: boxes must be numeric, got dtype {bdtype}")
        if bshape != (n_images, n_regions, 4):
            raise DataError(f"{paths['bbx']}: boxes have shape {bshape}, expected "
                            f"({n_images}, {n_regions}, 4) = [n_images, regions, (x1, y1, x2, y2)] "
                            f"to match {ims.name}")
        boxes = np.asarray(_load_npy(paths["bbx"], mmap=False))
        if check_finite and not np.isfinite(boxes).all():
            bad = np.flatnonzero(~np.isfinite(boxes).reshape(n_images, -1).all(axis=1))
            raise DataError(f"{paths['bbx']}: boxes contain NaN or inf at image row(s) "
                            f"{_list_some(bad.tolist())}")
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
    img_of_caption, image_ids = _map_captions(ids, paths["ids"], caps, paths["ids"], n_images, len(captions))
    captions_of_image = [c.astype(np.int64) for c in group_captions(img_of_caption, n_images)]
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


DATASETS.register("precomp", load_precomp)
DATASETS.register("captions", load_captions)
