"""Parse cache: get/put, invalidation by parser version and record format, robustness."""
from __future__ import annotations

import pickle
import sqlite3
import warnings
from typing import Iterable, Iterator, List, Optional

import pytest

from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation
from parsers.cache import ParseCache, ParseCacheWarning, default_cache_dir, empty_record, parse_records, parse_with_cache


def _graph(text: str) -> SceneGraph:
    toks = text.split()
    objs = [SGObject(name=t, span=(i, i + 1), lemma=t.rstrip("s")) for i, t in enumerate(toks) if len(t) > 3]
    attrs = [SGAttribute(object=0, value=toks[0], span=(0, 1))] if objs else []
    rels = [SGRelation(subject=0, predicate="near", object=len(objs) - 1, span=(0, 1))] if len(objs) > 1 else []
    offsets, pos = [], 0
    for t in toks:
        pos = text.index(t, pos)
        offsets.append((pos, pos + len(t)))
        pos += len(t)
    return SceneGraph(tokens=toks, objects=objs, attributes=attrs, relations=rels,
                      note=None if objs else "no objects", lemmas=[t.lower() for t in toks], text=text, offsets=offsets)


class CountingParser:
    """Stand-in parser that records what it was asked to parse."""

    model_name = "fake"

    def __init__(self, version: str = "v1") -> None:
        self.version = version
        self.calls: List[List[str]] = []

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]:
        texts = list(texts)
        self.calls.append(texts)
        return iter([_graph(t) for t in texts])

    @property
    def n_parsed(self) -> int:
        return sum(len(c) for c in self.calls)


def test_entries_of_an_earlier_record_format_are_parsed_again(tmp_path, monkeypatch):
    """The record layout version is part of every key: a cache written in the layout before
    SceneGraph.to_record (format 1: tuples plus a "graph" detail) is never misread."""
    import parsers.cache as cache_mod

    old_record = {"objects": ["dog"], "attributes": [], "relations": [], "note": None,
                  "graph": {"tokens": ["a", "dog"], "objects": [{"name": "dog", "span": [1, 2]}]}}
    monkeypatch.setattr(cache_mod, "RECORD_FORMAT", 1)
    with ParseCache(tmp_path, "v1") as c:
        c.put("a dog", old_record)
        assert c.get("a dog") == old_record
    monkeypatch.setattr(cache_mod, "RECORD_FORMAT", 2)
    p = CountingParser("v1")
    with ParseCache(tmp_path, "v1") as c:
        assert c.get("a dog") is None
        assert parse_with_cache(p, ["a dog"], c) == [_graph("a dog")]
    assert p.n_parsed == 1


def test_get_put_persist_and_version_invalidation(tmp_path):
    texts = ["a dog on a table", "two cats", "café au lait 🙂"]
    recs = [_graph(t).to_record() for t in texts]
    with ParseCache(tmp_path, "v1") as c:
        assert c.get_many(texts) == [None, None, None]
        c.put_many(texts[:2], recs[:2])
        assert c.get_many(texts) == [recs[0], recs[1], None]
        assert len(c) == 2
    # a new instance (another process) sees the same entries
    c1 = ParseCache(tmp_path, "v1")
    assert c1.get_many(texts[::-1]) == [None, recs[1], recs[0]]
    c1.put(texts[2], recs[2])
    assert c1.get(texts[2]) == recs[2]
    # another parser version shares nothing
    c2 = ParseCache(tmp_path, "v2")
    assert c2.get_many(texts) == [None, None, None]
    c2.put(texts[0], empty_record("other"))
    assert c1.get(texts[0]) == recs[0] and c2.get(texts[0])["note"] == "other"
    assert c2.versions() == {"v1": 3, "v2": 1}
    assert c2.prune() == 3 and c2.versions() == {"v2": 1}
    assert c1.key("x") != c2.key("x") and c1.key("x") != c1.key("x ")
    with pytest.raises(ValueError):
        c1.put_many(["a", "b"], [recs[0]])
    c1.close()
    c2.close()


def test_parse_with_cache_parses_once_and_reparses_on_new_version(tmp_path):
    texts = ["a black dog", "a black dog", "", "   ", "x" * 50, "tall trees near a road"]
    p = CountingParser("v1")
    cache = ParseCache.for_parser(p, tmp_path)
    g1 = parse_with_cache(p, texts, cache, max_chars=40)
    assert len(g1) == len(texts)
    assert p.calls == [["a black dog", "tall trees near a road"]]  # distinct, parseable texts only
    assert g1[0] == _graph("a black dog") and g1[1] == g1[0]
    assert g1[2].note == "empty caption" and g1[3].note.startswith("empty caption")
    assert g1[4].objects == [] and "too long" in g1[4].note
    g2 = parse_with_cache(p, texts, cache, max_chars=40)
    assert p.n_parsed == 2 and g2 == g1  # nothing re-parsed; graphs from the cache equal fresh ones
    p2 = CountingParser("v2")
    parse_with_cache(p2, texts, ParseCache.for_parser(p2, tmp_path), max_chars=40)
    assert p2.n_parsed == 2  # the rules changed: parsed again
    with pytest.raises(ValueError, match="version"):
        parse_with_cache(p2, texts, cache)
    assert parse_with_cache(CountingParser(), ["a big car"]) == [_graph("a big car")]  # no cache
    # records written chunk by chunk: an interrupted call keeps what it parsed
    p3 = CountingParser("v3")

    class Boom(CountingParser):
        def pipe(self, texts, batch_size=None):
            if len(self.calls) == 1:
                raise KeyboardInterrupt
            return super().pipe(texts, batch_size)

    b = Boom("v3")
    c3 = ParseCache(tmp_path, "v3")
    with pytest.raises(KeyboardInterrupt):
        parse_records(b, ["one dog", "two dogs", "three dogs"], c3, chunk_size=2)
    assert len(c3) == 2
    parse_records(p3, ["one dog", "two dogs", "three dogs"], c3)
    assert p3.calls == [["three dogs"]]


def test_cache_survives_corrupt_file_pickling_and_pipe_count_errors(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "parses.sqlite3").write_bytes(b"this is not a database" * 100)
    c = ParseCache(d, "v1")
    with pytest.warns(ParseCacheWarning, match="moved"):
        assert c.get_many(["a"]) == [None]
    c.put("a", empty_record("n"))
    assert c.get("a")["note"] == "n"
    assert any(p.name.startswith("parses.sqlite3.corrupt-") for p in d.iterdir())
    c2 = pickle.loads(pickle.dumps(c))  # e.g. handed to a data loader worker
    assert c2.get("a")["note"] == "n"
    # the file is a plain SQLite database another tool can read
    with sqlite3.connect(d / "parses.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM parses").fetchone()[0] == 1

    class Short(CountingParser):
        def pipe(self, texts, batch_size=None):
            return iter([_graph(t) for t in list(texts)[:-1]])

    with pytest.raises(RuntimeError, match="2 captions"):
        parse_with_cache(Short(), ["a dog", "a cat"])
    # a folder that cannot be created turns the cache off with a warning, parsing goes on
    blocker = tmp_path / "file"
    blocker.write_text("x")
    off = ParseCache(blocker / "sub", "v1")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert parse_with_cache(CountingParser(), ["a dog"], off) == [_graph("a dog")]
    assert off.disabled and any(issubclass(x.category, ParseCacheWarning) for x in w)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "gm"))
    assert default_cache_dir() == tmp_path / "gm" / "parses"
    monkeypatch.delenv("GRAPHMATCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "graphmatch" / "parses"
    with pytest.raises(ValueError):
        ParseCache(tmp_path, "")
