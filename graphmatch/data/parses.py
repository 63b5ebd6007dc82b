"""The parse sidecar of a precomp split: scene graphs of its captions, written once by ``graphmatch parse``.

Text graphs that need a parse (``dependency``, ``scene``) read ``{root}/{split}_graphs.jsonl``
(the ``data.graph.parses`` template), written by ``graphmatch parse --precomp ROOT --split SPLIT``.
The core reads it as data, so it never imports spaCy. Layout (JSON lines, UTF-8)::

    {"format": "graphmatch.parses", "version": 2, "captions": "train_caps.txt",
     "captions_sha256": "<sha256 of the caption file's bytes>", "n": 145000, "parser": "<name+version>"}
    <one SceneGraph record (SceneGraph.to_record) per caption line, in order>

Reading checks, each failure a :class:`~graphmatch.data.precomp.DataError` naming the file (and
the line) and, where the fix is to parse again, the command that writes the file:

* the file exists (``code="parses_missing"``);
* the header: format, version — a sidecar of an older version (version 1 merged objects by
  name) is *stale* (``code="parses_stale"``) —, the caption file's name, its SHA-256 — a caption
  file changed after parsing makes the sidecar *stale* too — and ``n``, the number of caption
  lines;
* exactly ``n`` records follow, each a valid record (:meth:`SceneGraph.from_record`) whose text
  tokenises to the words of its caption line.

Each record is then carried over onto the core tokens of its caption
(:func:`graphmatch.graphs.text.align_scene_graph`), so its spans index the same tokens as the
vocabulary ids.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from graphmatch.data.precomp import DataError
from graphmatch.data.vocab import tokenize, tokenize_with_offsets
from graphmatch.graphs.text import align_scene_graph
from graphmatch.structures import SceneGraph
from graphmatch.utils.atomic import file_sha256
from graphmatch.utils.jsonl import JSONLError, loads_line, read_jsonl

PathLike = Union[str, os.PathLike]

PARSES_FORMAT = "graphmatch.parses"
#: 2: records keep one object per mention (entity instances; FACTUAL's one-object-per-name view is
#: ``graphmatch.structures.merge_instances``). A version-1 sidecar (objects merged by name) is
#: stale: its graphs would be read without the structure the parser now keeps.
PARSES_VERSION = 2
#: The default ``data.graph.parses`` template.
DEFAULT_PARSES = "{root}/{split}_graphs.jsonl"

__all__ = ["PARSES_FORMAT", "PARSES_VERSION", "DEFAULT_PARSES", "parses_path", "parse_command", "read_parses",
           "check_parses_header", "load_parses"]


def parses_path(template: str, root: PathLike, split: str) -> Path:
    """The sidecar of ``split``: ``template`` with ``{root}`` and ``{split}`` replaced."""
    try:
        return Path(template.format(root=str(root), split=split))
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"data.graph.parses {template!r}: only {{root}} and {{split}} can be replaced ({e})") from None


def parse_command(root: PathLike, split: str) -> str:
    """The command that writes the sidecar of ``split`` of the precomp folder ``root``."""
    return f"graphmatch parse --precomp {root} --split {split}"


def _error(msg: str, path: Path, code: str, record: Optional[str] = None) -> DataError:
    return DataError(msg, path=path, record=record, code=code)


def read_parses(path: PathLike, captions_path: PathLike, n_captions: int, *,
                command: Optional[str] = None) -> Tuple[Dict[str, Any], List[SceneGraph]]:
    """The header and the records of a parse sidecar, checked against the caption file.

    Args:
        path: the sidecar.
        captions_path: the caption file it must describe.
        n_captions: the number of caption lines.
        command: the command that writes the sidecar, named in errors whose fix is to parse again.

    Returns:
        ``(header, scene_graphs)``, the graphs as parsed (not yet aligned).

    Raises:
        DataError: see the module docstring.
    """
    path, captions_path = Path(path), Path(captions_path)
    again = f"; write it again with `{command}`" if command else ""
    if not path.is_file():
        raise _error(f"parse file {path} not found: caption graphs that need a parse read it for every caption "
                     f"of {captions_path}" + (f"; write it with `{command}`" if command else ""), path,
                     "parses_missing")
    graphs: List[SceneGraph] = []
    header: Dict[str, Any] = {}
    try:
        for lineno, record in read_jsonl(path, what="parse file", skip_blank=False):
            if lineno == 1:
                header = _read_header(record, path, captions_path, n_captions, again)
                continue
            if len(graphs) >= n_captions:
                raise _error(f"{path}:{lineno}: more records than the {n_captions} captions of "
                             f"{captions_path.name}{again}", path, "parses_count", f"line {lineno}")
            try:
                graphs.append(SceneGraph.from_record(record, where=f"{path}:{lineno}"))
            except ValueError as e:
                raise _error(f"{e}{again}", path, "parses_record", f"line {lineno}") from None
    except JSONLError as e:
        code = "parses_header" if e.lineno == 1 else "parses_record"
        raise _error(f"{e}{again}", path, code, f"line {e.lineno}") from None
    except OSError as e:
        raise _error(f"{path}: cannot read the parse file ({e})", path, "unreadable") from e
    if not header:
        raise _error(f"{path} is empty: a parse file starts with a header line{again}", path, "parses_header")
    if len(graphs) != n_captions:
        raise _error(f"{path} has {len(graphs)} records but its header and {captions_path.name} have "
                     f"{n_captions} captions (an interrupted write?){again}", path, "parses_count")
    return header, graphs


def _read_header(header: Dict[str, Any], path: Path, captions_path: Path, n_captions: int, again: str) -> Dict[str, Any]:
    if header.get("format") != PARSES_FORMAT:
        raise _error(f"{path}:1: not a parse file: the header's 'format' is {header.get('format')!r}, expected "
                     f"{PARSES_FORMAT!r}{again}", path, "parses_header", "line 1")
    version = header.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version < PARSES_VERSION:
        raise _error(f"{path} is stale: parse file version {version} (objects merged by name); this graphmatch "
                     f"reads version {PARSES_VERSION} (one object per mention){again}", path, "parses_stale", "line 1")
    if version != PARSES_VERSION:
        raise _error(f"{path}:1: parse file version {version!r}; this graphmatch reads version "
                     f"{PARSES_VERSION}{again}", path, "parses_header", "line 1")
    if header.get("captions") != captions_path.name:
        raise _error(f"{path}:1: holds the parses of {header.get('captions')!r}, not of {captions_path.name}"
                     f"{again}", path, "parses_header", "line 1")
    digest = file_sha256(captions_path)
    if header.get("captions_sha256") != digest:
        raise _error(f"{path} is stale: {captions_path} changed after it was parsed (its sha256 is {digest[:12]}..., "
                     f"the parse file was written for {str(header.get('captions_sha256'))[:12]}...); the parses no "
                     f"longer describe its lines{again}", path, "parses_stale", "line 1")
    if header.get("n") != n_captions:
        raise _error(f"{path}:1: the header says n = {header.get('n')!r} captions but {captions_path.name} has "
                     f"{n_captions}{again}", path, "parses_count", "line 1")
    return header


def check_parses_header(path: PathLike, captions_path: PathLike, n_captions: int, *,
                        command: Optional[str] = None) -> Dict[str, Any]:
    """The header of the sidecar ``path``, checked against the caption file (format, version,
    caption file name and SHA-256, line count) without reading the records.

    Raises:
        DataError: as :func:`read_parses` for the header (``code`` ``parses_missing``,
            ``parses_header``, ``parses_stale`` or ``parses_count``).
    """
    path, captions_path = Path(path), Path(captions_path)
    again = f"; write it again with `{command}`" if command else ""
    if not path.is_file():
        raise _error(f"parse file {path} not found" + (f"; write it with `{command}`" if command else ""), path,
                     "parses_missing")
    try:
        with open(path, "rb") as f:
            first = f.readline()
        header = loads_line(first, path=path, lineno=1, what="parse file")
    except JSONLError as e:
        raise _error(f"{e}{again}", path, "parses_header", "line 1") from None
    except OSError as e:
        raise _error(f"{path}: cannot read the parse file ({e})", path, "unreadable") from e
    return _read_header(header, path, captions_path, n_captions, again)


def load_parses(path: PathLike, captions_path: PathLike, captions: Sequence[str], *,
                command: Optional[str] = None) -> List[SceneGraph]:
    """The parses of ``captions`` (the lines of ``captions_path``) from the sidecar ``path``, each
    carried over onto the core tokens of its caption (:func:`align_scene_graph`).

    Raises:
        DataError: see :func:`read_parses`; also a record whose text does not tokenise to the words
            of its caption line, or that has no character offsets.
    """
    path, captions_path = Path(path), Path(captions_path)
    again = f"; write it again with `{command}`" if command else ""
    _, graphs = read_parses(path, captions_path, len(captions), command=command)
    out = []
    for c, (sg, caption) in enumerate(zip(graphs, captions)):
        where = f"{path}:{c + 2}"
        if sg.text is None or sg.offsets is None:
            raise _error(f"{where}: the record has no 'text' / 'offsets', which tie its tokens to the caption's words"
                         f"{again}", path, "parses_record", f"line {c + 2}")
        core = tokenize_with_offsets(sg.text)
        if [t for t, _, _ in core] != tokenize(caption):
            raise _error(f"{where}: the record's text {sg.text!r} does not have the words of line {c + 1} of "
                         f"{captions_path.name} ({caption!r}){again}", path, "parses_record", f"line {c + 2}")
        try:
            out.append(align_scene_graph(sg, core))
        except ValueError as e:
            raise _error(f"{where}: {e}", path, "parses_record", f"line {c + 2}") from None
    return out
