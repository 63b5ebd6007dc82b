"""The library side of ``graphmatch parse`` and ``graphmatch eval-parser``.

* :func:`parse_file` — parse a captions file (one caption per line) into a JSONL file of records,
  one per input line, resumably and through the :class:`~parsers.cache.ParseCache`.
* :func:`evaluate_parser` — parse the captions of a gold JSONL file with the scene-graph parser
  (and optionally the ``sng_parser`` baseline), time both the same way and score both with
  :func:`parsers.evaluation.score_records`; :func:`format_eval_table` prints the result.

Output records of :func:`parse_file` (one JSON object per line, in input order)::

    {"line": n,                    # 1-based input line number
     "caption": text,              # the line without its line break (invalid UTF-8: decoded with U+FFFD)
     "parser": "<parser version>",
     "graph": {...}}               # the scene-graph record, SceneGraph.to_record()

:func:`read_parse_records` / :func:`load_scene_graphs` read such a file back.
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

from graphmatch.structures import SceneGraph
from graphmatch.utils.io import fsync_dir, os_error_text

from .cache import ParseCache, empty_record, parse_records
from .text import is_truncated, screen_caption

__all__ = [
    "ParseInputWarning", "ParseOutputError", "make_parser", "make_normalizer", "read_caption_lines", "parse_file",
    "read_parse_records", "load_scene_graphs", "load_gold", "run_ours", "run_sng", "run_timed", "evaluate_parser",
    "format_eval_table", "DEFAULT_CHUNK",
]

PathLike = Union[str, os.PathLike]

#: Input lines per written chunk (each chunk is one write + flush + fsync).
DEFAULT_CHUNK = 1024
#: Most warnings a parse run reports one by one (the summary counts all of them).
MAX_WARNINGS_SHOWN = 20

# JSON written with ensure_ascii=False keeps these raw; str.splitlines() would split a record there.
_LINE_SEPARATORS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class ParseInputWarning(UserWarning):
    """An input line got an empty graph because of a problem with it (invalid UTF-8, too long,
    the parser failed on it)."""


class ParseOutputError(OSError):
    """Writing the output of :func:`parse_file` failed (disk full, I/O error). ``errno`` is the
    system's, ``filename`` the output file; the message says which records were being written and
    that the complete records before them are kept."""

    def __str__(self) -> str:
        return str(self.strerror)


# --------------------------------------------------------------------------------------------
# construction (tests replace these two with fakes)
# --------------------------------------------------------------------------------------------

def make_parser(model: Optional[str] = None, batch_size: Optional[int] = None) -> Any:
    """The scene-graph parser (``parsers.parser.SceneGraphParser``) for ``model``. Raises
    ``RuntimeError`` (with the loader's advice) if the spaCy model cannot be loaded."""
    from .parser import SceneGraphParser

    try:
        if batch_size is None:
            return SceneGraphParser(model)
        return SceneGraphParser(model, batch_size=batch_size)
    except OSError as e:
        raise RuntimeError(str(e)) from e


def make_normalizer(model: Optional[str] = None) -> Any:
    """The phrase normaliser used on both sides of a parser evaluation."""
    from .evaluation import Normalizer

    return Normalizer(model)


# --------------------------------------------------------------------------------------------
# reading captions
# --------------------------------------------------------------------------------------------

def _decode_line(raw: bytes, n: int) -> Tuple[str, Optional[str]]:
    """``(text, problem)`` of raw input line ``n`` (1-based), line break removed. ``problem`` is
    ``None`` for valid UTF-8; otherwise it names the problem and ``text`` is decoded with
    replacement characters."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # byte order mark
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        bad = raw[e.start:e.end]
        return (raw.decode("utf-8", "replace"),
                f"not valid UTF-8 (byte 0x{bad[0]:02x} at byte offset {e.start}, {e.reason}); not parsed")


def read_caption_lines(path: PathLike) -> Iterator[Tuple[int, str, Optional[str]]]:
    """``(line number, text, problem)`` for every line of ``path`` (1-based numbers).

    Lines are split at ``\\n`` only (a trailing ``\\r`` is removed), so other characters Unicode
    treats as line breaks stay inside their line and the count equals ``wc -l`` (plus a last line
    without a final line break). ``problem`` names an invalid UTF-8 line, else is ``None``.
    """
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            text, problem = _decode_line(raw, n)
            yield n, text, problem


def count_lines(path: PathLike) -> int:
    """Number of lines :func:`read_caption_lines` yields for ``path``."""
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


# --------------------------------------------------------------------------------------------
# writing records
# --------------------------------------------------------------------------------------------

def _dump_line(record: Dict[str, Any]) -> bytes:
    s = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in _LINE_SEPARATORS.items():
        if ch in s:
            s = s.replace(ch, esc)
    return (s + "\n").encode("utf-8")


def _out_record(n: int, caption: str, rec: Dict[str, Any], version: str) -> Dict[str, Any]:
    return {"line": n, "caption": caption, "parser": version, "graph": rec}


def _lock(f: Any, out: Path) -> None:
    """Take an exclusive lock on the open output file, so that two runs never write one file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks on this platform
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RuntimeError(f"{out} is being written by another process (graphmatch parse running?)") from None
    except OSError:  # file systems without flock support
        pass


_RECORD_KEYS = ("line", "caption", "parser", "graph")


def _record_start(n: int) -> bytes:
    """How the line of record ``n`` begins in a file written by :func:`parse_file`."""
    return b'{"line":' + str(n).encode("ascii") + b","


def _not_a_record(out: Path, n: int, why: str) -> ValueError:
    return ValueError(f"{out}: line {n} is not a graphmatch parse record ({why}); "
                      f"use --overwrite to replace the file")


def _complete_prefix(out: Path, captions: Path, version: str) -> Tuple[int, int]:
    """``(records, bytes)`` of the valid prefix of an existing output file: the complete lines
    (ending in a line break), which must hold records ``1, 2, ...`` in order, without a last line
    that has no line break (a write cut short by an interruption; it is dropped when it is the
    beginning of the next record, or unreadable bytes such as NULs).

    Raises ``ValueError`` and leaves the file alone if a complete line is not the next record (the
    file is not ``graphmatch parse`` output, e.g. a captions or gold file given as ``--out``), if
    the unterminated last line is something else, or if a record belongs to another input or
    parser version (resuming would mix two runs)."""
    n, offset = 0, 0
    lines = read_caption_lines(captions)
    with open(out, "rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                start = _record_start(n + 1)
                if not (raw.startswith(start) or start.startswith(raw) or not raw.strip(b"\x00")):
                    raise _not_a_record(out, n + 1, "the last line has no line break and is not the start "
                                                    f"of record {n + 1}")
                break
            try:
                rec = json.loads(raw)
            except ValueError:
                raise _not_a_record(out, n + 1, "not JSON") from None
            if not isinstance(rec, dict) or any(k not in rec for k in _RECORD_KEYS):
                raise _not_a_record(out, n + 1, "not a JSON object with the keys " + ", ".join(_RECORD_KEYS))
            if rec["line"] != n + 1:
                raise _not_a_record(out, n + 1, f"it is numbered {rec['line']!r}, expected {n + 1}")
            nxt = next(lines, None)
            if nxt is None:
                raise ValueError(f"{out} has more records than {captions} has lines; "
                                 f"it was written from another input (use --overwrite to start over)")
            if rec.get("caption") != nxt[1]:
                raise ValueError(f"{out} was written from another input: record {n + 1} is for "
                                 f"{rec.get('caption')!r}, line {n + 1} of {captions} is {nxt[1]!r} "
                                 f"(use --overwrite to start over, or another --out)")
            if rec.get("parser") != version:
                raise ValueError(f"{out} was written by parser version {rec.get('parser')!r}; this parser "
                                 f"is version {version!r} (use --overwrite to start over, or another --out)")
            n += 1
            offset += len(raw)
    return n, offset


def _open_output(out: Path) -> Tuple[Any, bool]:
    """``(file, created)``: ``out`` opened for reading and writing, created if missing.
    ``created`` is true only for the run whose exclusive create made the file, so that of two runs
    starting together on a missing file exactly one counts as its creator."""
    while True:
        try:
            return os.fdopen(os.open(out, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), "r+b"), True
        except FileExistsError:
            pass
        try:
            return os.fdopen(os.open(out, os.O_RDWR), "r+b"), False
        except FileNotFoundError:  # removed in between: try to create it again
            continue


def parse_file(captions: PathLike, out: PathLike, *, parser: Any = None, model: Optional[str] = None,
               batch_size: Optional[int] = None, cache: Optional[ParseCache] = None, strict: bool = False,
               overwrite: bool = False, chunk_size: int = DEFAULT_CHUNK, max_chars: Optional[int] = None,
               progress: bool = True, on_warning: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Parse every line of ``captions`` into one record per line in ``out`` (see the module docstring).

    Resumable: if ``out`` exists, its complete records are kept (after checking that they come from
    the same input and parser version), a partial last line is discarded and parsing continues
    with the next line; the finished file is the same as an uninterrupted run's (also after
    ``kill -9``, tested). Records are written in chunks of ``chunk_size`` lines, each flushed and
    fsynced, so an interruption loses at most the chunk in progress. ``overwrite=True`` starts from
    scratch.

    If writing a chunk fails (disk full, I/O error), the file is cut back to the end of the last
    complete chunk and :class:`ParseOutputError` (an ``OSError`` with the system's ``errno``) is
    raised, naming the file, the records being written and how many complete records are kept;
    running again after freeing space continues from there.

    An existing ``out`` that is not (the beginning of) such a file is never truncated: a complete
    line that is not the next record raises ``ValueError`` naming it (``overwrite=True`` replaces
    the file). Only an unterminated last line (a write cut short) is discarded.

    A line that is not valid UTF-8, longer than ``max_chars`` characters (when given), or on which
    the parser raises gets an empty graph whose ``note`` names the problem, and ``on_warning``
    (default: :func:`warnings.warn` with :class:`ParseInputWarning`) is called with a message
    naming the line; with ``strict=True`` such a line raises ``ValueError`` instead. A line longer
    than the parser's limit (:data:`parsers.text.MAX_CAPTION_CHARS`) is parsed truncated; its
    note says so (``"truncated to N characters"``) and ``on_warning`` names the line (also with
    ``strict=True``). Empty and whitespace-only lines get an empty graph with a note, without a
    warning. The output has exactly one record per input line.

    Args:
        parser: a parser object (``version``, ``pipe``, ``parse``); default :func:`make_parser`.
        cache: a :class:`ParseCache` for this parser's version, or ``None`` to parse everything.

    Returns:
        a summary: ``lines``, ``resumed_from`` (records kept from before), ``written`` (records
        written by this run), ``parsed`` (distinct captions given to the parser), ``from_cache``,
        ``notes`` (how many written records carry each kind of note), ``warnings``, ``seconds``,
        ``captions_per_s`` (records written per second), ``parser``, ``model``, ``cache``.
    """
    captions, out = Path(captions), Path(out)
    if not captions.is_file():
        raise FileNotFoundError(f"captions file not found: {captions}")
    if out.exists() and out.resolve() == captions.resolve():
        raise ValueError(f"--out {out} is the captions file itself")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    warn = on_warning or (lambda msg: warnings.warn(msg, ParseInputWarning, stacklevel=3))
    if parser is None:
        parser = make_parser(model, batch_size)
    version = str(parser.version)
    if cache is not None and cache.parser_version != version:
        raise ValueError(f"parse cache is for parser version {cache.parser_version!r}, the parser is {version!r}")

    n_lines = count_lines(captions)
    out.parent.mkdir(parents=True, exist_ok=True)
    f, created = _open_output(out)
    locked = False
    try:
        _lock(f, out)
        locked = True
        done, offset = (0, 0) if overwrite else _complete_prefix(out, captions, version)
    except BaseException:
        if created and locked:  # never remove a file another run holds
            out.unlink(missing_ok=True)
        f.close()
        raise
    summary: Dict[str, Any] = {
        "captions": str(captions), "output": str(out), "lines": n_lines, "resumed_from": done, "written": 0,
        "parsed": 0, "from_cache": 0, "notes": {}, "warnings": 0, "seconds": 0.0, "captions_per_s": None,
        "parser": version, "model": getattr(parser, "model_name", model),
        "cache": None if cache is None or cache.disabled else str(cache.path),
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
            chunk: List[Tuple[int, str, Optional[str]]] = []
            lines = read_caption_lines(captions)
            for _ in range(done):
                next(lines)
            for item in lines:
                chunk.append(item)
                if len(chunk) >= chunk_size:
                    _write_chunk(sink, chunk, parser, cache, version, batch_size, max_chars, problem, notes, summary)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                _write_chunk(sink, chunk, parser, cache, version, batch_size, max_chars, problem, notes, summary)
                bar.update(len(chunk))
    finally:
        bar.close()
        secs = time.perf_counter() - t0
        summary.update(seconds=round(secs, 3), notes=dict(notes), warnings=n_warn,
                       captions_per_s=round(summary["written"] / secs, 1) if secs > 0 and summary["written"] else None)
    return summary


class _Output:
    """The output file of :func:`parse_file` from byte ``offset`` (after ``records`` complete
    records) on: appends whole chunks with ``os.write`` + ``fsync``, and on a failed write cuts the
    file back to the last complete chunk and raises :class:`ParseOutputError`."""

    def __init__(self, fd: int, path: Path, offset: int, records: int) -> None:
        self.fd, self.path, self.offset, self.records = fd, path, offset, records
        os.lseek(fd, offset, os.SEEK_SET)

    def append(self, data: bytes, first: int, last: int) -> None:
        """Append the records ``first``..``last`` (line numbers), encoded in ``data``."""
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
            what = os_error_text(e)
            kept = (f"the {self.records} complete records before them are kept" if self.records
                    else "no record was complete")
            raise ParseOutputError(code, f"{self.path}: {what} while writing records {first}-{last}; {kept}, "
                                         f"the file ends after record {self.records}; free some space (or fix "
                                         f"the cause) and run the same command again to continue",
                                   str(self.path)) from e
        self.offset += len(data)
        self.records = last

    def _cut_back(self) -> None:
        """Remove a partly written chunk (truncating never needs free space)."""
        try:
            os.ftruncate(self.fd, self.offset)
            os.lseek(self.fd, self.offset, os.SEEK_SET)
            os.fsync(self.fd)
        except OSError:  # the partial line is dropped by the next run's resume check anyway
            pass


def _write_chunk(f: "_Output", chunk: List[Tuple[int, str, Optional[str]]], parser: Any,
                 cache: Optional[ParseCache], version: str, batch_size: Optional[int], max_chars: Optional[int],
                 problem: Callable[..., None], notes: Counter, summary: Dict[str, Any]) -> None:
    """Build the records of ``chunk`` (input lines) and append them to ``f`` in one write, fsynced."""
    recs: Dict[int, Dict[str, Any]] = {}
    todo: List[Tuple[int, str]] = []
    for n, text, bad in chunk:
        if bad is None and max_chars is not None and len(text) > max_chars:
            bad = screen_caption(text, max_chars)
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
    for n, text, _ in chunk:
        rec = recs[n]
        if rec.get("note"):
            notes[_note_kind(rec["note"])] += 1
        data += _dump_line(_out_record(n, text, rec, version))
    f.append(bytes(data), chunk[0][0], chunk[-1][0])
    summary["written"] += len(chunk)


def _note_kind(note: str) -> str:
    """A note without its details, for counting (``"caption too long"``, ``"not valid UTF-8"``)."""
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
# reading records back
# --------------------------------------------------------------------------------------------

def read_parse_records(path: PathLike) -> Iterator[Dict[str, Any]]:
    """The records of a ``graphmatch parse`` output file, in order. Raises ``ValueError`` naming
    the line on an unreadable or partial line (an interrupted run: re-run it to finish)."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                raise ValueError(f"{path}, line {n}: incomplete record (interrupted run? re-run graphmatch parse)")
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise ValueError(f"{path}, line {n}: not a JSON record ({e})") from None
            yield rec


def load_scene_graphs(path: PathLike) -> List[SceneGraph]:
    """The :class:`SceneGraph` of every record of a ``graphmatch parse`` output file, in line order."""
    return [SceneGraph.from_record(r["graph"], where=f"{path}, line {r['line']}") for r in read_parse_records(path)]


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------

def load_gold(path: PathLike, limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """The records of a gold JSONL file (FACTUAL form: ``caption``, ``objects``, ``attributes``,
    ``relations``); blank lines are skipped. A line that is not a JSON object with a ``caption``
    string raises ``ValueError`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gold file not found: {path}")
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    golds: List[Dict[str, Any]] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if limit is not None and len(golds) >= limit:
                break
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}, line {n}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}, line {n}: not valid JSON ({e})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("caption"), str):
                raise ValueError(f"{path}, line {n}: the record has no 'caption' string")
            for key, width in (("attributes", 2), ("relations", 3)):
                for t in rec.get(key) or []:
                    if not isinstance(t, (list, tuple)) or len(t) < width:
                        raise ValueError(f"{path}, line {n}: {key} entry {t!r} is not a list of {width}")
            golds.append(rec)
    return golds


def run_ours(parser: Any, captions: Sequence[str], batch_size: Optional[int] = None
             ) -> Tuple[List[Dict[str, Any]], float]:
    """Parse ``captions`` with ``parser.pipe`` (one batched pass); return the records
    (:meth:`SceneGraph.to_dict`) and the seconds the parsing took (record conversion excluded)."""
    captions = list(captions)
    t0 = time.perf_counter()
    graphs = list(parser.pipe(captions, batch_size=batch_size))
    secs = time.perf_counter() - t0
    if len(graphs) != len(captions):
        raise RuntimeError(f"parser.pipe returned {len(graphs)} graphs for {len(captions)} captions")
    return [g.to_dict() for g in graphs], secs


def make_sng(model: Optional[str]) -> Any:
    """The ``sng_parser`` baseline on the spaCy ``model`` (its own spaCy backend)."""
    try:
        import sng_parser
    except ImportError as e:
        raise RuntimeError("the sng baseline needs the 'SceneGraphParser' package (import sng_parser)") from e
    try:
        return sng_parser.Parser("spacy", model=model) if model else sng_parser.Parser("spacy")
    except (OSError, ImportError) as e:
        raise RuntimeError(f"sng_parser could not load spaCy model {model!r}: {e}") from e


def run_sng(sng: Any, captions: Sequence[str]) -> Tuple[List[Dict[str, Any]], float, int]:
    """Parse ``captions`` with ``sng.parse`` one caption at a time (as that package works); return
    the records (:func:`parsers.evaluation.sng_to_record`), the parse seconds (conversion
    excluded) and the number of captions it raised on (scored as empty graphs)."""
    from .evaluation import sng_to_record

    raw: List[Dict[str, Any]] = []
    errors = 0
    t0 = time.perf_counter()
    for c in captions:
        try:
            raw.append(sng.parse(c))
        except Exception:
            errors += 1
            raw.append({"entities": [], "relations": []})
    secs = time.perf_counter() - t0
    return [sng_to_record(g) for g in raw], secs, errors


def _rate(n: int, secs: float) -> Optional[float]:
    return n / secs if secs > 0 else None


def run_timed(parser: Any, captions: Sequence[str], *, sng: Any = None, batch_size: Optional[int] = None,
              warmup: int = 20, repeats: int = 1) -> Dict[str, Dict[str, Any]]:
    """Run the parser (and ``sng``, if given) on ``captions`` the way :func:`evaluate_parser` and
    the parser benchmark time them: a warm-up on the first ``warmup`` captions (not timed), then
    ``repeats`` timed passes of each system, interleaved (:func:`run_ours`, :func:`run_sng`).

    Returns ``{"ours": {"preds", "times"}, "sng": {"preds", "times", "errors"}}`` (``"sng"`` only
    with a baseline); ``preds`` are the records of the first timed pass, ``times`` the seconds of
    every pass."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    captions = list(captions)
    if warmup and captions:
        run_ours(parser, captions[:warmup], batch_size)
        if sng is not None:
            run_sng(sng, captions[:warmup])
    out: Dict[str, Dict[str, Any]] = {"ours": {"preds": None, "times": []}}
    if sng is not None:
        out["sng"] = {"preds": None, "times": [], "errors": 0}
    for _ in range(repeats):
        preds, secs = run_ours(parser, captions, batch_size)
        if out["ours"]["preds"] is None:
            out["ours"]["preds"] = preds
        out["ours"]["times"].append(secs)
        if sng is not None:
            spreds, ssecs, errors = run_sng(sng, captions)
            if out["sng"]["preds"] is None:
                out["sng"]["preds"], out["sng"]["errors"] = spreds, errors
            out["sng"]["times"].append(ssecs)
    return out


def evaluate_parser(gold: PathLike, *, model: Optional[str] = None, baseline: Optional[str] = None,
                    limit: Optional[int] = None, batch_size: Optional[int] = None, parser: Any = None,
                    normalizer: Any = None, warmup: int = 20, repeats: int = 1) -> Dict[str, Any]:
    """Score the parser (and the ``baseline``, ``"sng"`` or ``None``) on the captions of ``gold``.

    Both systems parse the same captions after a warm-up on the first ``warmup`` of them (model
    loading is not timed); the timed part is the parse call(s) only, record conversion excluded;
    with ``repeats`` > 1 the fastest of that many interleaved passes counts (:func:`run_timed`).
    Both are scored by :func:`parsers.evaluation.score_records` with one shared normaliser
    (default :func:`make_normalizer` for ``model``).

    Returns ``{"gold", "n_captions", "model", "ours": {"name", "version", "scores", "seconds",
    "times_s", "captions_per_s"}, "sng": {...} (with a baseline, plus "errors"), "speed_ratio"
    (ours / baseline captions/s)}``.
    """
    from .evaluation import score_records

    golds = load_gold(gold, limit)
    if not golds:
        raise ValueError(f"{gold}: no gold records" + (f" (--limit {limit})" if limit is not None else ""))
    captions = [g["caption"] for g in golds]
    if parser is None:
        parser = make_parser(model, batch_size)
    model_name = getattr(parser, "model_name", None) or model
    sng = None
    if baseline is not None:
        if baseline != "sng":
            raise ValueError(f"unknown baseline {baseline!r} (known: sng)")
        sng = make_sng(model_name)
    if normalizer is None:
        normalizer = make_normalizer(model)
    runs = run_timed(parser, captions, sng=sng, batch_size=batch_size, warmup=warmup, repeats=repeats)

    def system(name: str, version: Optional[str], run: Dict[str, Any]) -> Dict[str, Any]:
        secs = min(run["times"])
        return {"name": name, "version": version, "scores": score_records(run["preds"], golds, normalizer),
                "seconds": round(secs, 4), "times_s": [round(t, 4) for t in run["times"]],
                "captions_per_s": _rate(len(captions), secs)}

    report: Dict[str, Any] = {
        "gold": str(gold), "n_captions": len(golds), "model": model_name,
        "ours": system("graphmatch", str(getattr(parser, "version", "")), runs["ours"]),
    }
    if sng is not None:
        report["sng"] = dict(system("sng_parser", _sng_version(), runs["sng"]), errors=runs["sng"]["errors"])
        a, b = report["ours"]["captions_per_s"], report["sng"]["captions_per_s"]
        report["speed_ratio"] = a / b if a and b else None
    return report


def _sng_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("SceneGraphParser")
    except Exception:
        return None


def format_eval_table(report: Dict[str, Any]) -> str:
    """The report of :func:`evaluate_parser` as a text table (P/R/F1 in percent per tuple kind,
    captions/s, and the speed ratio when there is a baseline)."""
    systems = [("ours", "graphmatch")] + ([("sng", "sng_parser")] if "sng" in report else [])
    col = 26
    lines = [f"gold: {report['gold']} ({report['n_captions']} captions); spaCy model: {report.get('model')}"]
    lines.append("; ".join(f"{name} {report[key].get('version') or '?'}" + (" (baseline)" if key == "sng" else "")
                           for key, name in systems))
    lines.append("")
    lines.append(f"{'':<12}" + "".join(f"{name:>{col}}" for _, name in systems))
    lines.append(f"{'':<12}" + "".join(f"{'P':>{col - 16}}{'R':>8}{'F1':>8}" for _ in systems))
    for cat in ("objects", "attributes", "relations", "all"):
        row = f"{cat:<12}"
        for key, _ in systems:
            sc = report[key]["scores"][cat]
            row += f"{sc['precision']:>{col - 16}.1f}{sc['recall']:>8.1f}{sc['f1']:>8.1f}"
        lines.append(row)
    row = f"{'captions/s':<12}"
    for key, _ in systems:
        r = report[key]["captions_per_s"]
        row += f"{(f'{r:.1f}' if r else '-'):>{col}}"
    lines.append(row)
    if "sng" in report:
        ratio = report.get("speed_ratio")
        lines.append("")
        lines.append(f"speed ratio (graphmatch / sng_parser captions/s): {f'{ratio:.2f}x' if ratio else '-'}")
        if report["sng"].get("errors"):
            lines.append(f"sng_parser raised on {report['sng']['errors']} captions (scored as empty graphs)")
    return "\n".join(lines)
