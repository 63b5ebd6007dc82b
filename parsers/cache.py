"""Parse-once caching of caption scene graphs.

A caption is parsed once per parser version: :class:`ParseCache` maps ``(caption text, parser
version)`` to the caption's record (:meth:`graphmatch.structures.SceneGraph.to_record`, whose
``text`` is the caption) in a SQLite file (standard library; every :meth:`ParseCache.put_many`
is one transaction, so a crash or Ctrl-C never leaves a half-written entry). A new parser version
(rules or model changed) simply misses the old entries; :meth:`ParseCache.prune` removes them.
:data:`RECORD_FORMAT` is part of every key too, so entries written in an earlier record layout
are parsed again, never misread.

:func:`parse_with_cache` is what training code calls: it returns one :class:`SceneGraph` per
caption, parsing only the captions the cache does not hold yet; :func:`parse_records` returns the
records themselves (what ``graphmatch parse`` writes). This module itself does not import spaCy
(the parser passed in does).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Protocol, Sequence, Union

from graphmatch.structures import SceneGraph

from .text import MAX_CAPTION_CHARS, screen_caption

__all__ = [
    "ParseCache", "ParseCacheWarning", "parse_with_cache", "parse_records", "empty_record", "screen_caption",
    "default_cache_dir", "CACHE_ENV", "MAX_CAPTION_CHARS", "RECORD_FORMAT",
]

PathLike = Union[str, os.PathLike]

#: Environment variable naming the root folder of graphmatch's caches (parses go to ``<root>/parses``).
CACHE_ENV = "GRAPHMATCH_CACHE"
#: Version of the record layout; part of every cache key, so a layout change misses old entries.
#: 2: the one scene-graph record of :meth:`SceneGraph.to_record` (with ``text`` and ``offsets``);
#: 1 was the tuple form plus a ``graph`` detail.
RECORD_FORMAT = 2

_DB_NAME = "parses.sqlite3"
_SQL_CHUNK = 500  # host parameters per SELECT (SQLite's limit is >= 999)


class ParseCacheWarning(UserWarning):
    """The cache could not be used as it is (unreadable file, read-only folder); parsing goes on."""


class CaptionParser(Protocol):
    """What :func:`parse_with_cache` needs of a parser (``parsers.parser.SceneGraphParser``)."""

    version: str

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]: ...


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

def empty_record(note: str, text: Optional[str] = None) -> Dict[str, Any]:
    """The record of an empty graph of caption ``text`` whose ``note`` says why it is empty."""
    return SceneGraph(tokens=[], note=note, text=text, offsets=None if text is None else []).to_record()


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$GRAPHMATCH_CACHE/parses`` if set, else ``$XDG_CACHE_HOME/graphmatch/parses``
    (``~/.cache/graphmatch/parses``)."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "parses"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "graphmatch" / "parses"


class ParseCache:
    """Records of parsed captions, keyed by ``sha1(parser_version, caption)``, in
    ``<directory>/parses.sqlite3``.

    * Lookups and inserts are batched (:meth:`get_many`, :meth:`put_many`); each ``put_many`` is
      one SQLite transaction, so an interrupted write leaves the cache as it was before it.
    * Entries of other parser versions are never returned (the version is part of the key) and
      stay until :meth:`prune`.
    * Several processes may share one cache (SQLite locking, WAL journal). The connection is
      opened lazily and re-opened after ``fork`` / unpickling, so a cache can be handed to data
      loader workers.
    * A cache file SQLite cannot read is moved aside (``*.corrupt-<time>``) with a
      :class:`ParseCacheWarning` and a new one is started; a folder that cannot be written to
      turns the cache off with a warning. The cache never makes parsing fail.

    Args:
        directory: folder of the cache file (created if missing).
        parser_version: the parser's ``version`` (changes whenever its rules or model change).
    """

    def __init__(self, directory: PathLike, parser_version: str) -> None:
        if not parser_version:
            raise ValueError("ParseCache needs a non-empty parser_version")
        self.directory = Path(directory).expanduser()
        self.parser_version = str(parser_version)
        self.path = self.directory / _DB_NAME
        self.disabled = False
        self._conn: Optional[sqlite3.Connection] = None
        self._pid: Optional[int] = None
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_parser(cls, parser: Any, directory: Optional[PathLike] = None) -> "ParseCache":
        """A cache for ``parser`` (its ``version``) in ``directory`` (default :func:`default_cache_dir`)."""
        return cls(default_cache_dir() if directory is None else directory, parser.version)

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> Optional[sqlite3.Connection]:
        if self.disabled:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited through fork is never used
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = self._open()
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and not self._is_corrupt():
                return self._disable(f"cannot open {self.path}: {e}")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            warnings.warn(f"parse cache {self.path} is not a readable SQLite file ({e}); "
                          f"moved to {aside.name}, starting a new one", ParseCacheWarning, stacklevel=3)
            try:
                os.replace(self.path, aside)
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(str(self.path) + suffix)
                conn = self._open()
            except (OSError, sqlite3.DatabaseError) as e2:
                return self._disable(f"cannot recreate {self.path}: {e2}")
        except OSError as e:
            return self._disable(f"cannot create {self.directory}: {e}")
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        try:
            with contextlib.suppress(sqlite3.OperationalError):  # e.g. file systems without shared memory
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS parses (key BLOB PRIMARY KEY, version TEXT NOT NULL, "
                         "record TEXT NOT NULL) WITHOUT ROWID")
            conn.execute("CREATE INDEX IF NOT EXISTS parses_version ON parses(version)")
            conn.execute("SELECT count(*) FROM parses WHERE key = x'00'").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _is_corrupt(self) -> bool:
        try:
            with open(self.path, "rb") as f:
                head = f.read(16)
        except OSError:
            return False
        return bool(head) and head != b"SQLite format 3\x00"

    def _disable(self, why: str) -> None:
        warnings.warn(f"parse cache disabled: {why}", ParseCacheWarning, stacklevel=4)
        self.disabled = True
        return None

    def close(self) -> None:
        """Close the connection (it re-opens on the next use)."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __enter__(self) -> "ParseCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_conn"] = None
        state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return f"ParseCache({str(self.directory)!r}, parser_version={self.parser_version!r})"

    # -- keys ----------------------------------------------------------------------------------

    def key(self, text: str) -> bytes:
        """The cache key of ``text`` under this parser version: ``sha1`` of both (and the record
        layout version)."""
        h = hashlib.sha1()
        h.update(f"{RECORD_FORMAT}\x00{self.parser_version}\x00".encode("utf-8"))
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    # -- access --------------------------------------------------------------------------------

    def get_many(self, texts: Sequence[str]) -> List[Optional[Dict[str, Any]]]:
        """The cached record of each text (``None`` where there is none), in order."""
        texts = list(texts)
        out: List[Optional[Dict[str, Any]]] = [None] * len(texts)
        conn = self._connect()
        if conn is not None and texts:
            keys = [self.key(t) for t in texts]
            found: Dict[bytes, str] = {}
            uniq = list(dict.fromkeys(keys))
            try:
                for i in range(0, len(uniq), _SQL_CHUNK):
                    part = uniq[i:i + _SQL_CHUNK]
                    rows = conn.execute(f"SELECT key, record FROM parses WHERE key IN ({','.join('?' * len(part))})",
                                        part).fetchall()
                    found.update((bytes(k), r) for k, r in rows)
            except sqlite3.DatabaseError as e:
                self._disable(f"reading {self.path} failed: {e}")
                found = {}
            for i, k in enumerate(keys):
                r = found.get(k)
                if r is not None:
                    try:
                        out[i] = json.loads(r)
                    except ValueError:  # cannot happen through put_many; treat as a miss
                        out[i] = None
        n_hit = sum(r is not None for r in out)
        self.hits += n_hit
        self.misses += len(out) - n_hit
        return out

    def get(self, text: str) -> Optional[Dict[str, Any]]:
        """The cached record of one text, or ``None``."""
        return self.get_many([text])[0]

    def put_many(self, texts: Sequence[str], records: Sequence[Dict[str, Any]]) -> None:
        """Store ``records[i]`` for ``texts[i]`` (replacing an entry of the same key), in one
        transaction."""
        texts, records = list(texts), list(records)
        if len(texts) != len(records):
            raise ValueError(f"put_many: {len(texts)} texts but {len(records)} records")
        conn = self._connect()
        if conn is None or not texts:
            return
        rows = [(self.key(t), self.parser_version, json.dumps(r, ensure_ascii=False, separators=(",", ":")))
                for t, r in zip(texts, records)]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO parses (key, version, record) VALUES (?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            self._disable(f"writing {self.path} failed: {e}")

    def put(self, text: str, record: Dict[str, Any]) -> None:
        """Store the record of one text."""
        self.put_many([text], [record])

    def __len__(self) -> int:
        """Number of entries of this parser version."""
        conn = self._connect()
        if conn is None:
            return 0
        return int(conn.execute("SELECT count(*) FROM parses WHERE version = ?", (self.parser_version,)).fetchone()[0])

    def versions(self) -> Dict[str, int]:
        """Number of entries per parser version in the file."""
        conn = self._connect()
        if conn is None:
            return {}
        return {v: int(n) for v, n in conn.execute("SELECT version, count(*) FROM parses GROUP BY version")}

    def prune(self) -> int:
        """Remove the entries of every other parser version; return how many were removed."""
        conn = self._connect()
        if conn is None:
            return 0
        cur = conn.execute("DELETE FROM parses WHERE version != ?", (self.parser_version,))
        return int(cur.rowcount)

    def clear(self) -> None:
        """Remove every entry of this parser version."""
        conn = self._connect()
        if conn is not None:
            conn.execute("DELETE FROM parses WHERE version = ?", (self.parser_version,))


# --------------------------------------------------------------------------------------------
# parsing through the cache
# --------------------------------------------------------------------------------------------

def parse_records(parser: CaptionParser, texts: Sequence[str], cache: Optional[ParseCache] = None, *,
                  batch_size: Optional[int] = None, chunk_size: int = 4096,
                  max_chars: Optional[int] = None, stats: Optional[Dict[str, int]] = None
                  ) -> List[Dict[str, Any]]:
    """One record (:meth:`SceneGraph.to_record`, ``text`` = the caption) per text, in order: from
    ``cache`` where present, else parsed with ``parser.pipe`` (each distinct text once) and stored
    in ``cache``. A parser that leaves ``text`` unset gets the caption filled in.

    Texts :func:`parsers.text.screen_caption` rejects (empty; over ``max_chars`` when given — the
    parser itself truncates captions over :data:`MAX_CAPTION_CHARS`) get an empty record with the
    reason as ``note`` and are not parsed. The cache is written every ``chunk_size`` parsed texts,
    so an interrupted call keeps what it parsed. ``stats``, if given, is incremented by the number
    of texts ``screened``, served ``cached`` and ``parsed`` (distinct texts given to the parser).
    """
    counts = {"screened": 0, "cached": 0, "parsed": 0}
    if cache is not None and cache.parser_version != str(parser.version):
        raise ValueError(f"parse cache is for parser version {cache.parser_version!r} but the parser "
                         f"is version {parser.version!r}")
    texts = list(texts)
    out: List[Optional[Dict[str, Any]]] = [None] * len(texts)
    todo: Dict[str, List[int]] = {}
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, not str")
        why = screen_caption(t, max_chars)
        if why is not None:
            out[i] = empty_record(why, t)
            counts["screened"] += 1
        else:
            todo.setdefault(t, []).append(i)
    uniq = list(todo)
    if cache is not None and uniq:
        for t, rec in zip(uniq, cache.get_many(uniq)):
            if rec is not None:
                for i in todo.pop(t):
                    out[i] = rec
                    counts["cached"] += 1
        uniq = list(todo)
    for s in range(0, len(uniq), max(1, chunk_size)):
        part = uniq[s:s + max(1, chunk_size)]
        recs = [g.to_record() for g in _pipe_exactly(parser, part, batch_size)]
        if cache is not None:
            cache.put_many(part, recs)
        for t, rec in zip(part, recs):
            for i in todo[t]:
                out[i] = rec
        counts["parsed"] += len(part)
    if stats is not None:
        for k, v in counts.items():
            stats[k] = stats.get(k, 0) + v
    return out  # type: ignore[return-value]


def parse_with_cache(parser: CaptionParser, texts: Sequence[str], cache: Optional[ParseCache] = None, *,
                     batch_size: Optional[int] = None, max_chars: Optional[int] = None) -> List[SceneGraph]:
    """One :class:`SceneGraph` per text, in order, parsing only what ``cache`` does not hold
    (``cache=None``: parse everything). Graphs rebuilt from the cache equal freshly parsed ones.
    See :func:`parse_records`."""
    where = f"parse cache {cache.path}" if cache is not None else None
    return [SceneGraph.from_record(r, where=where)
            for r in parse_records(parser, texts, cache, batch_size=batch_size, max_chars=max_chars)]


def _pipe_exactly(parser: CaptionParser, texts: List[str], batch_size: Optional[int]) -> List[SceneGraph]:
    """``list(parser.pipe(texts))``, checked to hold exactly one ``SceneGraph`` per text, each of
    that text (``text`` unset is filled in)."""
    graphs = list(parser.pipe(texts, batch_size=batch_size))
    if len(graphs) != len(texts):
        raise RuntimeError(f"parser.pipe returned {len(graphs)} graphs for {len(texts)} captions")
    out = []
    for g, t in zip(graphs, texts):
        if not isinstance(g, SceneGraph):
            raise RuntimeError(f"parser.pipe returned {type(g).__name__}, not SceneGraph")
        if g.text is None:
            g = dataclasses.replace(g, text=t)
        elif g.text != t:
            raise RuntimeError(f"parser.pipe returned the graph of {g.text[:60]!r} for the caption {t[:60]!r} "
                               "(a graph's text must be its caption as given)")
        out.append(g)
    return out
