"""The batch parse job: a captions file → a parse file, resumable, written in fsynced chunks.

* :func:`parse_file` — parse every line of a captions file into a parse file (below), through
  the :class:`~parsers.cache.ParseCache`; a killed run continues where it stopped.
* :func:`parse_precomp` — the parse sidecars of a precomp folder: ``{root}/{split}_caps.txt`` →
  ``{root}/{split}_graphs.jsonl`` for every split found (or the given ones); what the core's
  scene / dependency text graphs read (:mod:`graphmatch.data.parses`).
* :func:`read_parse_header`, :func:`read_parse_records`, :func:`load_scene_graphs` — read a parse
  file back.

A parse file (JSON lines, UTF-8) starts with a header line, then holds one record per caption line,
in caption-line order::

    {"format": "graphmatch.parses", "version": 2, "captions": "train_caps.txt",
     "captions_sha256": "<sha256 of the caption file's bytes>", "n": <caption lines>,
     "parser": "<parser name>/<parser version>"}
    {"text": "<caption line 1>", "tokens": [...], "offsets": [...], "objects": [...], ...}
    ...

Each record is :meth:`graphmatch.structures.SceneGraph.to_record` of the caption's graph, whose
``text`` is the caption line exactly. Captions are read as the training loader reads them
(:func:`graphmatch.data.precomp.read_text_lines`), so the records line up with the captions the
data set holds; a file the loader refuses (UTF-16, NUL bytes, invalid UTF-8, mixed CR / LF line
ends) is refused here too, with the loader's error naming the file and line.

The header says which caption file, which bytes and which parser a parse file belongs to. A run
on an existing file continues it only if the header matches; otherwise the file is *stale* (the
caption file changed after parsing, or another parser wrote it): :class:`StaleParsesError` names
the file and what differs, and ``overwrite=True`` (``--overwrite``) parses from scratch.
"""
from __future__ import annotations

import errno
import json
import os
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from graphmatch.data.parses import DEFAULT_PARSES, PARSES_FORMAT, PARSES_VERSION, parses_path
from graphmatch.structures import SceneGraph
from graphmatch.utils.atomic import file_sha256, fsync_dir, os_error_text
from graphmatch.utils.jsonl import JSONLError, loads_line, read_jsonl
from graphmatch.utils.locks import WriterLock

from .cache import ParseCache, empty_record, parse_records
from .parser import make_parser
from .text import is_truncated, screen_caption

__all__ = [
    "ParseInputWarning", "ParseOutputError", "StaleParsesError", "PARSES_FORMAT", "PARSES_VERSION",
    "DEFAULT_CHUNK", "parser_id", "parses_header", "read_captions", "parse_file", "parse_precomp", "sidecar_path",
    "read_parse_header", "read_parse_records", "load_scene_graphs",
]

PathLike = Union[str, os.PathLike]

#: Caption lines per written chunk (each chunk is one write + fsync).
DEFAULT_CHUNK = 1024
#: Most warnings a parse run reports one by one (the summary counts all of them).
MAX_WARNINGS_SHOWN = 20

# JSON written with ensure_ascii=False keeps these raw; str.splitlines() would split a record there.
_LINE_SEPARATORS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
# How every record line begins (records are written with their caption text first).
_RECORD_START = b'{"text":'


class ParseInputWarning(UserWarning):
    """A caption line got an empty graph because of a problem with it (too long for
    ``max_chars``, the parser failed on it) or was parsed truncated."""


class ParseOutputError(OSError):
    """Writing a parse file failed (disk full, I/O error). ``errno`` is the system's, ``filename``
    the parse file; the message says what was being written and that the complete records before
    it are kept."""

    def __str__(self) -> str:
        return str(self.strerror)


class StaleParsesError(ValueError):
    """An existing parse file belongs to other captions (the caption file changed after parsing)
    or another parser; the message names the file and what differs (``reason``) and that
    ``overwrite=True`` (``--overwrite``) parses from scratch."""

    reason: str = ""


# --------------------------------------------------------------------------------------------
# header and captions
# --------------------------------------------------------------------------------------------

def parser_id(parser: Any) -> str:
    """``"<name>/<version>"`` of a parser (just the version for a parser without ``name``): what a
    parse file's header records and a resumed run must match."""
    name = getattr(parser, "name", None)
    version = str(parser.version)
    return f"{name}/{version}" if name else version


def parses_header(captions: PathLike, n: int, parser: Any, sha256: Optional[str] = None) -> Dict[str, Any]:
    """The header line of the parse file of ``captions`` (``n`` lines) by ``parser``
    (``sha256``: of the caption file's bytes, computed when not given)."""
    captions = Path(captions)
    return {"format": PARSES_FORMAT, "version": PARSES_VERSION, "captions": captions.name,
            "captions_sha256": sha256 if sha256 is not None else file_sha256(captions), "n": int(n),
            "parser": parser_id(parser)}


def read_captions(path: PathLike, on_warning: Optional[Callable[[str], None]] = None) -> List[str]:
    """The caption lines of ``path``, read as the training loader reads them
    (:func:`graphmatch.data.precomp.read_text_lines`: UTF-8, an optional byte-order mark dropped,
    LF / CRLF / CR-only line ends). ``on_warning`` hears about CR-only line ends.

    Raises:
        FileNotFoundError: no such file.
        graphmatch.data.precomp.DataError: a file the loader refuses (the message names the line).
    """
    from graphmatch.data.precomp import read_text_lines

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captions file not found: {path}")
    lines, info = read_text_lines(path, "captions")
    if info["line_endings"] == "CR" and on_warning is not None:
        on_warning(f"{path}: CR-only (classic Mac OS) line endings; read {len(lines)} lines")
    return lines


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def _dump_line(obj: Dict[str, Any]) -> bytes:
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _LINE_SEPARATORS.items():
        if ch in s:
            s = s.replace(ch, esc)
    return (s + "\n").encode("utf-8")


def _not_a_parse_file(out: Path, lineno: int, why: str) -> ValueError:
    return ValueError(f"{out}:{lineno}: not a graphmatch parse file ({why}); the file is left as it is: use "
                      f"--overwrite (overwrite=True) to replace it, or write to another file")


def _header_mismatch(got: Dict[str, Any], want: Dict[str, Any], out: Path, captions: Path) -> Optional[str]:
    """What differs between an existing parse file's header ``got`` and this run's ``want``."""
    if got.get("version") != PARSES_VERSION:
        return f"{out} is a parse file of version {got.get('version')!r}; this graphmatch writes version {PARSES_VERSION}"
    if got.get("captions_sha256") != want["captions_sha256"] or got.get("n") != want["n"]:
        return (f"{out} is stale: it holds the parses of {got.get('captions')!r} (sha256 "
                f"{str(got.get('captions_sha256'))[:12]}..., {got.get('n')!r} lines), but {captions} now has sha256 "
                f"{want['captions_sha256'][:12]}... ({want['n']} lines): the captions changed after parsing")
    if got.get("captions") != want["captions"]:
        return f"{out} holds the parses of {got.get('captions')!r}, not of {captions.name} (the same bytes, another name)"
    if got.get("parser") != want["parser"]:
        return f"{out} was written by parser {got.get('parser')!r}; this parser is {want['parser']!r}"
    return None


def _stale(why: str) -> StaleParsesError:
    e = StaleParsesError(f"{why}; parse again from scratch with --overwrite (overwrite=True), or write to another file")
    e.reason = why
    return e


def _resume_point(out: Path, header: Dict[str, Any], captions: Path, lines: Sequence[str]) -> Tuple[int, int]:
    """``(records, bytes)`` of the part of an existing parse file that a run continues: its header
    (which must match ``header``) and the complete record lines after it, which must hold the
    captions ``lines[0], lines[1], ...`` in order. A last line without a line break (a write cut
    short) is dropped when it is the beginning of the next line or NUL bytes.

    Raises:
        ValueError: the file is not a parse file (a complete line that is not the next header or
            record, e.g. a captions or gold file given as the output); nothing is changed.
        StaleParsesError: the header is of other captions or another parser.
    """
    n, offset = 0, 0
    with open(out, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                start = _dump_line(header) if lineno == 1 else _RECORD_START
                if not (raw.startswith(start) or start.startswith(raw) or not raw.strip(b"\x00")):
                    raise _not_a_parse_file(out, lineno, "the last line has no line break and is not the start "
                                                         + ("of a header" if lineno == 1 else "of a record"))
                break
            what = "parse header" if lineno == 1 else "parse record"
            try:
                obj = loads_line(raw, path=out, lineno=lineno, what=what)
            except JSONLError as e:
                raise _not_a_parse_file(out, lineno, f"the line {e.problem}") from None
            if lineno == 1:
                if obj.get("format") != PARSES_FORMAT:
                    raise _not_a_parse_file(out, 1, f"the first line is not a header with \"format\": "
                                                    f"\"{PARSES_FORMAT}\"")
                why = _header_mismatch(obj, header, out, captions)
                if why is not None:
                    raise _stale(why)
                offset += len(raw)
                continue
            if "tokens" not in obj or not isinstance(obj.get("text"), str):
                raise _not_a_parse_file(out, lineno, "not a scene-graph record with 'text' and 'tokens'")
            if n >= len(lines):
                raise _stale(f"{out} has more records than the {len(lines)} lines of {captions}")
            if obj["text"] != lines[n]:
                raise _stale(f"{out}:{lineno}: the record is for {obj['text'][:80]!r}, but line {n + 1} of {captions} "
                             f"is {lines[n][:80]!r}")
            n += 1
            offset += len(raw)
    return n, offset


def _why_replaced(out: Path, header: Dict[str, Any], captions: Path) -> Optional[str]:
    """Why an existing ``out`` cannot be continued, judged by its first line: ``None`` for an
    empty file or the header of these captions and this parser."""
    with open(out, "rb") as f:
        first = f.readline()
    if not first.strip(b"\x00 \n"):
        return None
    try:
        obj = loads_line(first, path=out, lineno=1, what="parse header")
    except JSONLError:
        return f"{out} was not a graphmatch parse file"
    if obj.get("format") != PARSES_FORMAT:
        return f"{out} was not a graphmatch parse file"
    return _header_mismatch(obj, header, out, captions)
    return None


class _Output:
    """A parse file from byte ``offset`` (after ``records`` complete records) on: appends whole
    chunks with ``os.write`` + ``fsync``, and on a failed write cuts the file back to the last
    complete chunk and raises :class:`ParseOutputError`."""

    def __init__(self, fd: int, path: Path, offset: int, records: int) -> None:
        self.fd, self.path, self.offset, self.records = fd, path, offset, records
        os.lseek(fd, offset, os.SEEK_SET)

    def append(self, data: bytes, what: str, records: int) -> None:
        """Append ``data`` (``what``: ``"the header"``, ``"records 5-9"``), after which the file
        holds ``records`` complete records."""
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                if n <= 0:  # pragma: no cover - a regular file never accepts 0 bytes without an error
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                view = view[n:]
            os.fsync(self.fd)
        except OSError as e:
            self._cut_back()
            code = e.errno or errno.EIO
            kept = (f"the {self.records} complete records before them are kept" if self.records
                    else "no record was complete")
            raise ParseOutputError(code, f"{self.path}: {os_error_text(e)} while writing {what}; {kept}, "
                                         f"the file ends after record {self.records}; free some space (or fix "
                                         f"the cause) and run the same command again to continue",
                                   str(self.path)) from e
        self.offset += len(data)
        self.records = records

    def _cut_back(self) -> None:
        """Remove a partly written chunk (truncating never needs free space)."""
        try:
            os.ftruncate(self.fd, self.offset)
            os.lseek(self.fd, self.offset, os.SEEK_SET)
            os.fsync(self.fd)
        except OSError:  # the partial line is dropped by the next run's resume check anyway
            pass


def _lock(out: Path) -> WriterLock:
    """The writer lock of a parse file (``<out>.lock``), taken: two runs never write one file.
    Raises :class:`graphmatch.utils.locks.LockedError` (naming the running holder) if another run
    holds it."""
    return WriterLock(out, what="parse output").acquire()


def _open_output(out: Path) -> Tuple[Any, bool]:
    """``(file, created)``: ``out`` opened for reading and writing, created if missing."""
    try:
        return os.fdopen(os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), "r+b"), True
    except FileExistsError:
        return os.fdopen(os.open(out, os.O_RDWR), "r+b"), False


def parse_file(captions: PathLike, out: PathLike, *, parser: Any = None, model: Optional[str] = None,
               batch_size: Optional[int] = None, cache: Optional[ParseCache] = None, strict: bool = False,
               overwrite: bool = False, chunk_size: int = DEFAULT_CHUNK, max_chars: Optional[int] = None,
               progress: bool = True, on_warning: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Parse every line of ``captions`` into the parse file ``out`` (see the module docstring).

    Resumable: if ``out`` exists, its header must match (same caption file name, bytes and line
    count, same parser) and its complete records are kept (after checking they are of the same
    captions, in order); a partial last line is discarded and parsing continues with the next
    caption. The finished file is the same as an uninterrupted run's (also after ``kill -9``,
    tested). Records are written in chunks of ``chunk_size`` captions, each fsynced, so an
    interruption loses at most the chunk in progress. A header that does not match raises
    :class:`StaleParsesError` naming what differs; ``overwrite=True`` parses from scratch (the
    summary's ``replaced`` then says why the old file did not do).

    If writing a chunk fails (disk full, I/O error), the file is cut back to the end of the last
    complete chunk and :class:`ParseOutputError` (an ``OSError`` with the system's ``errno``) is
    raised, naming the file, the records being written and how many complete records are kept;
    running again after freeing space continues from there.

    An existing ``out`` that is not (the beginning of) a parse file is never changed: a complete
    line that is not the next header or record raises ``ValueError`` naming it
    (``overwrite=True`` replaces the file). One writer at a time: the lock ``<out>.lock``
    (:class:`graphmatch.utils.locks.WriterLock`) is held while the file is written.

    A caption longer than ``max_chars`` characters (when given) or on which the parser raises gets
    an empty graph whose ``note`` names the problem, and ``on_warning`` (default:
    :func:`warnings.warn` with :class:`ParseInputWarning`) is called with a message naming the
    line; with ``strict=True`` such a line raises ``ValueError`` instead. A caption longer than the
    parser's limit (:data:`parsers.text.MAX_CAPTION_CHARS`) is parsed truncated; its note says so
    (``"truncated to N characters"``) and ``on_warning`` names the line (also with
    ``strict=True``). Empty and whitespace-only lines get an empty graph with a note, without a
    warning. The file has exactly one record per caption line.

    Args:
        captions: the captions file, one caption per line (read by :func:`read_captions`).
        out: the parse file to write.
        parser: a parser object (``version``, ``pipe``; see :mod:`parsers.registry`); default
            :func:`parsers.parser.make_parser` for ``model`` and ``batch_size``.
        cache: a :class:`ParseCache` for this parser's version, or ``None`` to parse everything.

    Returns:
        a summary: ``captions``, ``output``, ``lines``, ``resumed_from`` (records kept from
        before), ``written`` (records written by this run), ``parsed`` (distinct captions given to
        the parser), ``from_cache``, ``notes`` (how many written records carry each kind of note),
        ``warnings``, ``seconds``, ``captions_per_s`` (records written per second), ``parser``
        (:func:`parser_id`), ``model``, ``cache``, ``replaced`` (``None``, or why an existing file
        was replaced under ``overwrite``).
    """
    captions, out = Path(captions), Path(out)
    if not captions.is_file():
        raise FileNotFoundError(f"captions file not found: {captions}")
    if out.exists() and out.resolve() == captions.resolve():
        raise ValueError(f"the output {out} is the captions file itself")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    warn = on_warning or (lambda msg: warnings.warn(msg, ParseInputWarning, stacklevel=3))
    sha = file_sha256(captions)
    lines = read_captions(captions, warn)
    if parser is None:
        parser = make_parser(model, batch_size)
    version = str(parser.version)
    if cache is not None and cache.parser_version != version:
        raise ValueError(f"parse cache is for parser version {cache.parser_version!r}, the parser is {version!r}")
    header = parses_header(captions, len(lines), parser, sha)

    out.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(out)
    try:
        return _run(captions, out, lines, header, parser, cache=cache, batch_size=batch_size, strict=strict,
                    overwrite=overwrite, chunk_size=chunk_size, max_chars=max_chars, progress=progress,
                    warn=warn, model=model)
    finally:
        lock.release()


def _run(captions: Path, out: Path, lines: List[str], header: Dict[str, Any], parser: Any, *,
         cache: Optional[ParseCache], batch_size: Optional[int], strict: bool, overwrite: bool, chunk_size: int,
         max_chars: Optional[int], progress: bool, warn: Callable[[str], None], model: Optional[str]
         ) -> Dict[str, Any]:
    """:func:`parse_file` with the writer lock held."""
    f, created = _open_output(out)
    replaced = None
    try:
        if overwrite:
            done, offset = 0, 0
            replaced = None if created else _why_replaced(out, header, captions)
        else:
            done, offset = _resume_point(out, header, captions, lines)
    except BaseException:
        f.close()
        if created:
            out.unlink(missing_ok=True)
        raise
    n_lines = len(lines)
    summary: Dict[str, Any] = {
        "captions": str(captions), "output": str(out), "lines": n_lines, "resumed_from": done, "written": 0,
        "parsed": 0, "from_cache": 0, "notes": {}, "warnings": 0, "seconds": 0.0, "captions_per_s": None,
        "parser": header["parser"], "model": getattr(parser, "model_name", model),
        "cache": None if cache is None or cache.disabled else str(cache.path), "replaced": replaced,
    }
    notes: Counter = Counter()
    n_warn = 0

    def problem(n: int, note: str, fatal: bool = True) -> None:
        nonlocal n_warn
        if strict and fatal:
            raise ValueError(f"{captions}, line {n}: {note}")
        n_warn += 1
        if n_warn <= MAX_WARNINGS_SHOWN:
            warn(f"{captions}, line {n}: {note}")
        elif n_warn == MAX_WARNINGS_SHOWN + 1:
            warn(f"{captions}: more problem lines follow; only their count is reported")

    from graphmatch.utils.progress import progress as progress_bar

    t0 = time.perf_counter()
    bar = progress_bar(total=n_lines, initial=done, unit=" captions", desc=f"parse {captions.name}", file=sys.stderr,
                       disable=not progress or done >= n_lines, dynamic_ncols=True, mininterval=0.5)
    try:
        with f:
            f.seek(offset)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
            if created:
                fsync_dir(out.parent)
            sink = _Output(f.fileno(), out, offset, done)
            if offset == 0:
                sink.append(_dump_line(header), "the header", 0)
            for s in range(done, n_lines, chunk_size):
                chunk = [(n + 1, lines[n]) for n in range(s, min(s + chunk_size, n_lines))]
                _write_chunk(sink, chunk, parser, cache, batch_size, max_chars, problem, notes, summary)
                bar.update(len(chunk))
    finally:
        bar.close()
        secs = time.perf_counter() - t0
        summary.update(seconds=round(secs, 3), notes=dict(notes), warnings=n_warn,
                       captions_per_s=round(summary["written"] / secs, 1) if secs > 0 and summary["written"] else None)
    return summary


def _write_chunk(f: _Output, chunk: List[Tuple[int, str]], parser: Any, cache: Optional[ParseCache],
                 batch_size: Optional[int], max_chars: Optional[int], problem: Callable[..., None], notes: Counter,
                 summary: Dict[str, Any]) -> None:
    """Build the records of ``chunk`` (``(line number, caption)``) and append them to ``f`` in one
    write, fsynced."""
    recs: Dict[int, Dict[str, Any]] = {}
    todo: List[Tuple[int, str]] = []
    for n, text in chunk:
        bad = screen_caption(text, max_chars) if max_chars is not None and len(text) > max_chars else None
        if bad is not None:
            problem(n, bad)
            recs[n] = empty_record(bad, text)
        else:
            todo.append((n, text))
    if todo:
        texts = [t for _, t in todo]
        stats: Dict[str, int] = {}
        try:
            parsed = parse_records(parser, texts, cache, batch_size=batch_size, max_chars=max_chars, stats=stats)
        except Exception as err:  # one bad caption must not sink the chunk: retry one by one
            stats = {}
            parsed = _parse_one_by_one(parser, todo, cache, batch_size, max_chars, problem, err, stats)
        summary["from_cache"] += stats.get("cached", 0)
        summary["parsed"] += stats.get("parsed", 0)
        for (n, text), rec in zip(todo, parsed):
            recs[n] = rec
            if is_truncated(rec.get("note")):
                problem(n, f"{len(text)} characters, over the parser's limit; parsed {rec['note']}", fatal=False)
    data = bytearray()
    for n, _ in chunk:
        rec = recs[n]
        if rec.get("note"):
            notes[_note_kind(rec["note"])] += 1
        data += _dump_line(rec)
    f.append(bytes(data), f"the records of lines {chunk[0][0]}-{chunk[-1][0]}", f.records + len(chunk))
    summary["written"] += len(chunk)


def _note_kind(note: str) -> str:
    """A note without its details, for counting (``"caption too long"``, ``"parser error"``)."""
    return re.sub(r"(?<![\w-])\d+(?![\w-])", "N", re.split(r" \(|: |; ", note, maxsplit=1)[0])


def _parse_one_by_one(parser: Any, todo: List[Tuple[int, str]], cache: Optional[ParseCache],
                      batch_size: Optional[int], max_chars: Optional[int], problem: Callable[..., None],
                      first_error: Exception, stats: Dict[str, int]) -> List[Dict[str, Any]]:
    """Parse the captions of a chunk one at a time after the batch failed; a caption the parser
    fails on gets an empty record naming the error. If it fails on every caption of a chunk of
    several, the failure is not the captions' fault: raise ``RuntimeError``."""
    results: List[Union[Dict[str, Any], Exception]] = []
    for _, text in todo:
        try:
            results.append(parse_records(parser, [text], cache, batch_size=batch_size, max_chars=max_chars,
                                         stats=stats)[0])
        except Exception as e:
            results.append(e)
    failed = [(n, r) for (n, _), r in zip(todo, results) if isinstance(r, Exception)]
    if failed and len(failed) == len(todo) and len(todo) > 1:
        n, e = failed[0]
        raise RuntimeError(f"the parser failed on every caption of lines {todo[0][0]}-{todo[-1][0]} "
                           f"(line {n}: {type(e).__name__}: {e})") from first_error
    out: List[Dict[str, Any]] = []
    for (n, text), r in zip(todo, results):
        if isinstance(r, Exception):
            note = f"parser error ({type(r).__name__}: {r}); empty graph"
            problem(n, note)
            r = empty_record(note, text)
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# the sidecars of a precomp folder
# --------------------------------------------------------------------------------------------

def sidecar_path(root: PathLike, split: str) -> Path:
    """``{root}/{split}_graphs.jsonl``: the parse sidecar of ``split`` (the default
    ``data.graph.parses`` of the core's data config)."""
    return parses_path(DEFAULT_PARSES, root, split)


def parse_precomp(root: PathLike, splits: Optional[Sequence[str]] = None, *, parser: Any = None,
                  model: Optional[str] = None, batch_size: Optional[int] = None, cache: Optional[ParseCache] = None,
                  on_split: Optional[Callable[[str, Dict[str, Any]], None]] = None, **options: Any
                  ) -> Dict[str, Dict[str, Any]]:
    """Write the parse sidecar ``{root}/{split}_graphs.jsonl`` of every split of the precomp folder
    ``root`` (every ``{split}_caps.txt`` there; or ``splits``), each with :func:`parse_file`:
    resumable, a stale sidecar (its caption file changed) refused unless ``overwrite=True``.

    The caption files of all the splits are checked to exist before any is parsed; one parser
    (and ``cache``) serves them all.

    Args:
        root: the precomp folder.
        splits: split names (default: every split found, ``train``, ``dev``, ``test`` first).
        on_split: called with ``(split, summary)`` after each split is done.
        **options: further keyword arguments of :func:`parse_file` (``overwrite``, ``strict``,
            ``chunk_size``, ``max_chars``, ``progress``, ``on_warning``).

    Returns:
        ``{split: summary of parse_file}``, in the order parsed.

    Raises:
        FileNotFoundError: ``root`` is not a folder, has no caption file, or a given split has none
            (naming the file and the splits there are).
    """
    from graphmatch.data.check import find_splits

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"precomp folder not found: {root}")
    found = find_splits(root)
    names = list(dict.fromkeys(splits)) if splits else found
    if not names:
        raise FileNotFoundError(f"{root}: no <split>_caps.txt file, so no split to parse")
    for s in names:
        caps = root / f"{s}_caps.txt"
        if not caps.is_file():
            raise FileNotFoundError(f"{caps} not found: split {s!r} has no captions in {root} (splits there: "
                                    f"{', '.join(found) or 'none'})")
    if parser is None:
        parser = make_parser(model, batch_size)
    results: Dict[str, Dict[str, Any]] = {}
    for s in names:
        summary = parse_file(root / f"{s}_caps.txt", sidecar_path(root, s), parser=parser, batch_size=batch_size,
                             cache=cache, **options)
        summary["split"] = s
        results[s] = summary
        if on_split is not None:
            on_split(s, summary)
    return results


# --------------------------------------------------------------------------------------------
# reading parse files back
# --------------------------------------------------------------------------------------------

def read_parse_header(path: PathLike) -> Dict[str, Any]:
    """The header of the parse file ``path``. Raises ``ValueError`` naming the file if its first
    line is not a parse-file header."""
    for lineno, obj in read_jsonl(path, what="parse file", skip_blank=False):
        if obj.get("format") != PARSES_FORMAT:
            raise ValueError(f"{path}:1: not a graphmatch parse file (the first line has no \"format\": "
                             f"\"{PARSES_FORMAT}\")")
        return obj
    raise ValueError(f"{path} is empty: a parse file starts with a header line")


def read_parse_records(path: PathLike) -> Iterator[Dict[str, Any]]:
    """The records of the parse file ``path`` (after its header), in caption-line order. A line
    that is not a record raises :class:`graphmatch.utils.jsonl.JSONLError` naming ``file:line``;
    an unfinished file (fewer records than its header's ``n``) raises ``ValueError`` saying to run
    the parse again."""
    header = read_parse_header(path)
    n = 0
    for lineno, obj in read_jsonl(path, what="parse file", skip_blank=False):
        if lineno == 1:
            continue
        n += 1
        yield obj
    if n != header.get("n"):
        raise ValueError(f"{path} has {n} records, its header says {header.get('n')} (an interrupted run? run the "
                         f"parse again to finish it)")


def load_scene_graphs(path: PathLike) -> List[SceneGraph]:
    """The :class:`SceneGraph` of every record of the parse file ``path``, in caption-line order
    (:meth:`SceneGraph.from_record`; errors name ``file:line``). For a precomp sidecar, the core's
    :func:`graphmatch.data.parses.load_parses` also checks it against the caption file."""
    return [SceneGraph.from_record(r, where=f"{path}:{k + 2}") for k, r in enumerate(read_parse_records(path))]

