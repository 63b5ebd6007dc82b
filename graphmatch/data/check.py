"""Checks of a data folder before training: ``graphmatch check-data DIR`` and ``train``.

:func:`check_data` checks every split of a precomp folder (or the captions and ids of a split
whose regions live in a region store) and returns a :class:`DataReport` of errors and warnings,
each a :class:`Problem` naming the file, the record (``line N`` / ``row N region R``) and what is
wrong, plus a checksum manifest (size and SHA-256 of every file of the folder).

What is checked
    *fast* (file headers and text files only): presence of the files, shapes and dtypes of the
    ``.npy`` files against each other, encoding (UTF-8; UTF-16 / NUL bytes are errors, a UTF-8
    byte-order mark a warning) and line endings (CR-only: warning, read correctly; lone CRs mixed
    with LF: error) of caption and id files, empty captions, the caption -> image map (ids order
    rule of :mod:`graphmatch.data.precomp`, counts, captions per image), image sizes;
    *full* (reads the arrays in bounded-memory chunks through a memory map, with a progress bar
    for large files): NaN / inf feature rows, all-zero region rows (padding: a warning) and images
    with only zero rows (error), boxes with NaN / inf or inverted (errors), of zero area or
    outside their image (warnings).
    Across splits: feature sizes that differ (error) and captions per image that differ
    (warning: a caption file that lost whole blocks can still divide evenly).

Caching
    Full scans are cached per file version (absolute path, size and modification time) in
    ``$GRAPHMATCH_CACHE/data-checks.json`` (default ``~/.cache/graphmatch/``), written
    atomically; the data folder itself is never written, so a read-only folder works, and a
    cache that cannot be read or written only costs a rescan. :func:`check_before_training`
    (called by ``train``) therefore runs the fast checks every time and the full scans once per
    data version.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

import graphmatch.data.precomp as P
from graphmatch.data.precomp import DataError, cached_feature_scan
from graphmatch.data.scan_cache import cached
from graphmatch.utils.atomic import file_sha256

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

__all__ = ["Problem", "SplitReport", "DataReport", "check_split", "check_data", "check_before_training",
           "cached_feature_scan", "file_manifest", "write_manifest", "verify_manifest", "find_splits"]

_PROGRESS_BYTES = 256 * 1024 * 1024  # files larger than this get a progress bar
_HASH_BLOCK = 1024 * 1024


# ------------------------------------------------------------------------------------ report
@dataclass
class Problem:
    """One finding: ``level`` ``"error"`` or ``"warning"``, ``code`` its kind (e.g.
    ``"ids_order"``), ``file``, ``record`` (``"line 12"``, ``"row 3 region 5"``, or None for the
    whole file) and ``message`` (which names the file and record too)."""

    level: str
    code: str
    file: Optional[str]
    record: Optional[str]
    message: str

    def __str__(self) -> str:
        return self.message


def _problem(level: str, e: DataError) -> Problem:
    return Problem(level, getattr(e, "code", "invalid"), getattr(e, "path", None), getattr(e, "record", None), str(e))


@dataclass
class SplitReport:
    """The findings and counts of one split (``kind``: ``"precomp"`` or ``"captions"``, the latter
    for a split whose regions come from a region store)."""

    split: str
    kind: str
    files: List[str] = field(default_factory=list)
    counts: Dict[str, Any] = field(default_factory=dict)
    problems: List[Problem] = field(default_factory=list)
    full: bool = False

    def add(self, level: str, e: DataError) -> None:
        self.problems.append(_problem(level, e))


@dataclass
class DataReport:
    """The result of :func:`check_data`: per-split reports, folder-level problems, manifest."""

    root: str
    splits: List[SplitReport] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    manifest: List[Dict[str, Any]] = field(default_factory=list)

    def all_problems(self) -> List[Problem]:
        return [p for s in self.splits for p in s.problems] + list(self.problems)

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.all_problems() if p.level == "error"]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.all_problems() if p.level == "warning"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings alone are fine)."""
        return not self.errors

    def to_dict(self) -> Dict[str, Any]:
        return {"root": self.root, "ok": self.ok, "splits": [asdict(s) for s in self.splits],
                "problems": [asdict(p) for p in self.problems], "manifest": self.manifest}

    def format(self, *, manifest: bool = True) -> str:
        """A readable summary: counts per split, then errors and warnings, then the manifest."""
        lines = [f"data folder {self.root}"]
        for s in self.splits:
            c = s.counts
            cpi = c.get("captions_per_image")
            cpi_text = (str(cpi) if cpi is not None else
                        f"{c['captions_per_image_min']}-{c['captions_per_image_max']}" if "captions_per_image_min" in c
                        else "?")
            shape = (f"{c['n_regions']} regions x {c['feature_dim']} ({c['dtype']})" if "n_regions" in c
                     else "regions from a region store" if s.kind == "captions" else "features unreadable")
            extra = []
            if c.get("boxes"):
                extra.append("boxes")
            if c.get("sizes"):
                extra.append("sizes")
            if c.get("zero_regions"):
                extra.append(f"{c['zero_regions']} zero (padding) region rows in {c['images_with_zero_regions']} images")
            lines.append(f"  split {s.split}: {c.get('n_images', '?')} images, {c.get('n_captions', '?')} captions "
                         f"({cpi_text} per image), {shape}"
                         + (f", {', '.join(extra)}" if extra else "")
                         + ("" if s.full else " [fast checks only]"))
        errs, warns = self.errors, self.warnings
        for title, items in (("errors", errs), ("warnings", warns)):
            if items:
                lines.append(f"{len(items)} {title}:")
                lines += [f"  {title[:-1].upper()} [{p.code}] {p.message}" for p in items]
        if manifest and self.manifest:
            total = sum(m["bytes"] for m in self.manifest)
            lines.append(f"manifest ({len(self.manifest)} files, {total} bytes; sha256, bytes, file):")
            lines += [f"  {m['sha256']}  {m['bytes']:>12}  {m['name']}" for m in self.manifest]
        lines.append("OK: no errors" + (f" ({len(warns)} warnings)" if warns else "") if not errs
                     else f"FAILED: {len(errs)} errors, {len(warns)} warnings")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------ cache
def _cached_box_scan(bbx: Path, sizes: Optional[np.ndarray], size_path: Optional[Path], progress: bool) -> dict:
    def compute() -> dict:
        arr = np.load(bbx, mmap_mode="r")
        step = P._chunk_rows(arr)
        from graphmatch.utils.progress import progress as progress_bar

        scans = []
        with progress_bar(total=arr.shape[0], desc=f"checking {bbx.name}", unit="img",
                          disable=not (progress and bbx.stat().st_size > _PROGRESS_BYTES)) as bar:
            for s in range(0, arr.shape[0], step):
                chunk = np.asarray(arr[s:s + step])
                scans.append(P.scan_boxes(chunk, None if sizes is None else sizes[s:s + step], row_offset=s))
                bar.update(chunk.shape[0])
        return P.merge_box_scans(scans)

    return cached("boxes", [bbx] + ([size_path] if size_path is not None else []), compute)


# ------------------------------------------------------------------------------------ checks
def find_splits(root: PathLike) -> List[str]:
    """Split names of a folder: every ``{split}`` with a ``{split}_caps.txt`` (sorted; ``train``,
    ``dev``, ``test`` first)."""
    names = {p.name[:-len("_caps.txt")] for p in Path(root).glob("*_caps.txt") if p.is_file()}
    order = {"train": 0, "dev": 1, "val": 2, "test": 3, "testall": 4}
    return sorted(names, key=lambda n: (order.get(n, 9), n))


def _read_text(report: SplitReport, path: Path, what: str) -> Optional[List[str]]:
    try:
        lines, info = P.read_text_lines(path, what)
    except DataError as e:
        report.add("error", e)
        return None
    report.counts.setdefault("text_files", {})[path.name] = info
    if info["encoding"] == "utf-8-sig":
        report.add("warning", DataError(f"{path}: starts with a UTF-8 byte-order mark (dropped when read)",
                                        path=path, record="byte 0", code="utf8_bom"))
    if info["line_endings"] == "CR":
        report.add("warning", DataError(f"{path}: CR-only line endings (classic Mac OS); read as {len(lines)} lines",
                                        path=path, code="cr_line_endings"))
    return lines


def check_split(root: PathLike, split: str, *, full: bool = True, progress: bool = False,
                regions: bool = False) -> SplitReport:
    """Check one split of ``root``; never raises for bad data (everything goes into the report).

    ``regions``: the split's regions come from a region store (``data.regions``), so only its
    captions and ids are checked. ``full``: also scan the arrays (cached per file version).
    """
    root = Path(root)
    paths = P.precomp_paths(root, split)
    has_ims = paths["ims"].is_file()
    kind = "captions" if regions or (not has_ims and paths["ids"].is_file()) else "precomp"
    rep = SplitReport(split=split, kind=kind, full=full and kind == "precomp")
    rep.files = [str(p) for p in paths.values() if p.is_file()]
    if not paths["caps"].is_file():
        rep.add("error", DataError(f"missing captions file {paths['caps']} for split {split!r}",
                                   path=paths["caps"], code="missing_file"))
    if kind == "precomp" and not has_ims:
        rep.add("error", DataError(f"missing region features file {paths['ims']} for split {split!r} "
                                   f"(or give {paths['ids'].name} and a region store)", path=paths["ims"],
                                   code="missing_file"))
    if kind == "captions" and not paths["ids"].is_file():
        rep.add("error", DataError(f"missing image ids file {paths['ids']} for split {split!r}: a split whose "
                                   "regions come from a region store needs the image id of each image or caption",
                                   path=paths["ids"], code="missing_file"))

    # ---- headers
    shape = None
    if kind == "precomp" and has_ims:
        try:
            shape, dtype = P.features_header(paths["ims"])
            rep.counts.update(n_images=int(shape[0]), n_regions=int(shape[1]), feature_dim=int(shape[2]),
                              dtype=str(dtype))
        except DataError as e:
            rep.add("error", e)

    # ---- text files
    captions = _read_text(rep, paths["caps"], "captions") if paths["caps"].is_file() else None
    if captions is not None:
        if not captions:
            rep.add("error", DataError(f"{paths['caps']}: no captions (file is empty)", path=paths["caps"],
                                       code="empty_file"))
            captions = None
        else:
            try:
                P._check_captions(captions, paths["caps"])
            except DataError as e:
                e.path, e.code = str(paths["caps"]), "bad_caption"
                rep.add("error", e)
            rep.counts["n_captions"] = len(captions)
    ids = _read_text(rep, paths["ids"], "image ids") if paths["ids"].is_file() else None
    row_ids = (_read_text(rep, paths["ims_ids"], "image ids of the feature rows")
               if kind == "precomp" and paths["ims_ids"].is_file() else None)

    # ---- caption -> image map
    if captions is not None:
        n_images = rep.counts.get("n_images")
        if kind == "captions" and ids is not None:
            n_images = len({i.strip() for i in ids}) if len(ids) == len(captions) else len(ids)
            rep.counts["n_images"] = n_images
        if n_images and (ids is not None or not paths["ids"].is_file()):
            try:
                img, image_ids = P._map_captions(ids, paths["ids"], paths["caps"],
                                                 paths["ims"] if kind == "precomp" else paths["ids"], n_images,
                                                 len(captions), row_ids=row_ids, row_ids_path=paths["ims_ids"],
                                                 ordered=kind == "precomp")
                per = np.bincount(img, minlength=n_images)
                if per.min() == per.max():
                    rep.counts["captions_per_image"] = int(per[0])
                else:
                    rep.counts.update(captions_per_image=None, captions_per_image_min=int(per.min()),
                                      captions_per_image_max=int(per.max()))
                    rep.add("warning", DataError(
                        f"{paths['ids']}: images have between {per.min()} and {per.max()} captions (image row "
                        f"{int(per.argmin())}, id {image_ids[int(per.argmin())]!r}, has {per.min()})",
                        path=paths["ids"], code="uneven_captions"))
                if not paths["ids"].is_file():
                    rep.counts["ids"] = "none (captions in contiguous groups)"
            except DataError as e:
                rep.add("error", e)

    # ---- the parse sidecar (read by text graphs that need a parse): named when stale
    sidecar = Path(root) / f"{split}_graphs.jsonl"
    if captions is not None and sidecar.is_file():
        from graphmatch.data.parses import check_parses_header, parse_command

        try:
            check_parses_header(sidecar, paths["caps"], len(captions), command=parse_command(root, split))
            rep.counts["parses"] = True
        except DataError as e:
            rep.counts["parses"] = e.code
            rep.add("warning", e)  # only recipes with text_graph dependency / scene read it

    # ---- boxes and sizes
    sizes = None
    if kind == "precomp" and shape is not None:
        n_images, n_regions = int(shape[0]), int(shape[1])
        if paths["size"].is_file():
            try:
                sizes = P._load_sizes(paths["size"], n_images)
                rep.counts["sizes"] = True
            except DataError as e:
                if e.path is None:
                    e.path = str(paths["size"])
                rep.add("error", e)
        if paths["bbx"].is_file():
            try:
                P.boxes_header(paths["bbx"], n_images, n_regions, paths["ims"].name)
                rep.counts["boxes"] = True
            except DataError as e:
                rep.add("error", e)

    # ---- full scans
    if rep.full and shape is not None:
        try:
            scan = cached_feature_scan(paths["ims"], progress=progress)
        except (OSError, ValueError) as e:
            rep.add("error", DataError(f"{paths['ims']}: cannot read the features ({e})", path=paths["ims"],
                                       code="unreadable"))
        else:
            for e in P.feature_scan_errors(scan, paths["ims"]):
                rep.add("error", e)
            rep.counts.update(zero_regions=scan["zero_regions"],
                              images_with_zero_regions=scan["images_with_zero_regions"])
            if scan["zero_regions"]:
                row, reg = scan["first_zero_region"]
                rep.add("warning", DataError(
                    f"{paths['ims']}: {scan['zero_regions']} all-zero region rows (zero padding) in "
                    f"{scan['images_with_zero_regions']} images, first at image row {row} region {reg}; "
                    "they are left out of the image graphs (masked)", path=paths["ims"],
                    record=f"row {row} region {reg}", code="zero_regions"))
        if rep.counts.get("boxes"):
            try:
                bscan = _cached_box_scan(paths["bbx"], sizes, paths["size"] if sizes is not None else None, progress)
            except (OSError, ValueError) as e:
                rep.add("error", DataError(f"{paths['bbx']}: cannot read the boxes ({e})", path=paths["bbx"],
                                           code="unreadable"))
            else:
                errs, warns = P.box_scan_problems(bscan, paths["bbx"])
                for e in errs:
                    rep.add("error", e)
                for e in warns:
                    rep.add("warning", e)
    return rep


def _cross_split(report: DataReport) -> None:
    dims = {s.split: s.counts["feature_dim"] for s in report.splits if "feature_dim" in s.counts}
    if len(set(dims.values())) > 1:
        report.problems.append(Problem("error", "feature_dim_mismatch", None, None,
                                       f"{report.root}: region feature sizes differ between splits ("
                                       + ", ".join(f"{k}: {v}" for k, v in dims.items())
                                       + "); a model trained on one split cannot read the others"))
    cpi = {s.split: s.counts["captions_per_image"] for s in report.splits if s.counts.get("captions_per_image")}
    if len(set(cpi.values())) > 1:
        report.problems.append(Problem("warning", "captions_per_image_differ", None, None,
                                       f"{report.root}: captions per image differ between splits ("
                                       + ", ".join(f"{k}: {v}" for k, v in cpi.items())
                                       + "); a captions file that lost whole blocks of captions can still "
                                       "divide evenly, so check the caption counts of these splits"))


def check_data(root: PathLike, splits: Optional[Sequence[str]] = None, *, full: bool = True,
               progress: bool = False, manifest: bool = True, regions: bool = False) -> DataReport:
    """Check the splits ``splits`` (default: all, :func:`find_splits`) of the folder ``root``.

    Returns a :class:`DataReport` (``ok`` is False when any error was found); the manifest lists
    size and SHA-256 of every file at the top of ``root`` (hidden files excepted) when
    ``manifest``. Never raises for bad data.
    """
    root = Path(root)
    report = DataReport(root=str(root))
    if not root.is_dir():
        report.problems.append(Problem("error", "missing_folder", str(root), None, f"data folder not found: {root}"))
        return report
    names = list(splits) if splits else find_splits(root)
    if not names:
        report.problems.append(Problem("error", "no_splits", str(root), None,
                                       f"{root}: no split found (no <split>_caps.txt file)"))
    for name in names:
        report.splits.append(check_split(root, name, full=full, progress=progress, regions=regions))
    _cross_split(report)
    if manifest:
        report.manifest = file_manifest(root, progress=progress)
    return report


def check_before_training(root: PathLike, splits: Sequence[str], *, regions: bool = False,
                          full: bool = True) -> DataReport:
    """The checks ``train`` runs on its splits before loading them: the fast checks always, the
    full scans once per file version (cached). Warnings are logged.

    Raises:
        DataError: when any check fails; the message lists the errors (each naming file and record).
    """
    report = check_data(root, list(dict.fromkeys(splits)), full=full, manifest=False, regions=regions)
    for w in report.warnings:
        log.warning("%s", w.message)
    # differing feature sizes of the training and validation splits are reported by the trainer,
    # which names the config keys (data.train_split / data.val_split)
    errs = [e for e in report.errors if e.code != "feature_dim_mismatch"]
    if errs:
        first = errs[0]
        more = "" if len(errs) == 1 else f" (and {len(errs) - 1} more: " + "; ".join(e.message for e in errs[1:4]) + ")"
        raise DataError(f"data check failed: {first.message}{more}; run `graphmatch check-data {root}` for the "
                        "full report", path=first.file, record=first.record, code=first.code)
    return report


# ------------------------------------------------------------------------------------ manifest
def _sha256(path: Path, bar: Any) -> str:
    return file_sha256(path, block_size=_HASH_BLOCK, on_block=bar.update)


def file_manifest(root: PathLike, names: Optional[Sequence[str]] = None, *, progress: bool = False
                  ) -> List[Dict[str, Any]]:
    """``[{"name", "bytes", "sha256"}]`` of the files ``names`` of ``root`` (default: every
    non-hidden regular file at its top level), sorted by name."""
    from graphmatch.utils.progress import progress as progress_bar

    root = Path(root)
    files = (sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
             if names is None else [root / n for n in names])
    total = sum(p.stat().st_size for p in files)
    out = []
    with progress_bar(total=total, desc="sha256", unit="B",
                      disable=not (progress and total > _PROGRESS_BYTES)) as bar:
        for p in files:
            out.append({"name": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p, bar)})
    return out


def write_manifest(path: PathLike, root: PathLike, manifest: List[Dict[str, Any]]) -> None:
    """Write ``manifest`` as JSON to ``path`` atomically."""
    from graphmatch.utils.atomic import atomic_write_json

    atomic_write_json(path, {"format": "graphmatch-data-manifest/1", "root": str(root), "files": manifest})


def _read_manifest(path: Path) -> List[Dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("files"), list):
        return data["files"]
    files = []  # `sha256sum` format: "<hex>  <name>"
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataError(f"{path}: line {i} is neither a graphmatch JSON manifest nor `sha256sum` output",
                            path=path, record=f"line {i}", code="manifest")
        files.append({"name": parts[1].lstrip("*").strip(), "sha256": parts[0].lower()})
    return files


def verify_manifest(root: PathLike, manifest_path: PathLike, *, progress: bool = False) -> List[Problem]:
    """Compare the files of ``root`` with a manifest (graphmatch JSON or ``sha256sum`` output).

    Returns one error :class:`Problem` per missing file, size or checksum mismatch (empty: all
    match). Files of ``root`` that the manifest does not list are not reported."""
    root, manifest_path = Path(root), Path(manifest_path)
    problems = []
    for entry in _read_manifest(manifest_path):
        p = root / entry["name"]
        if not p.is_file():
            problems.append(Problem("error", "manifest_missing", str(p), None,
                                    f"{p}: listed in {manifest_path} but missing"))
            continue
        size = p.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            problems.append(Problem("error", "manifest_size", str(p), None,
                                    f"{p}: {size} bytes, the manifest {manifest_path} says {entry['bytes']}"))
            continue
        digest = file_manifest(root, [entry["name"]], progress=progress)[0]["sha256"]
        if digest != entry["sha256"]:
            problems.append(Problem("error", "manifest_checksum", str(p), None,
                                    f"{p}: sha256 {digest} differs from {entry['sha256']} in {manifest_path}"))
    return problems
