"""Parse cache: record round trip, get/put, invalidation by parser version, robustness."""
from __future__ import annotations

import pickle
import sqlite3
import warnings
from typing import Iterable, Iterator, List, Optional

import pytest

from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation
from parsers.cache import (ParseCache, ParseCacheWarning, default_cache_dir, empty_record, parse_records,
                           parse_with_cache, record_to_scene_graph, scene_graph_to_record)


def _graph(text: str) -> SceneGraph:
    toks = text.split()
    objs = [SGObject(name=t, span=(i, i + 1), lemma=t.rstrip("s")) for i, t in enumerate(toks) if len(t) > 3]
    attrs = [SGAttribute(object=0, value=toks[0], span=(0, 1))] if objs else []
    rels = [SGRelation(subject=0, predicate="near", object=len(objs) - 1, span=(0, 1))] if len(objs) > 1 else []
    return SceneGraph(tokens=toks, objects=objs, attributes=attrs, relations=rels,
                      note=None if objs else "no objects", lemmas=[t.lower() for t in toks])


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


def test_record_round_trip_is_exact():
    sg = SceneGraph(
        tokens=["two", "white", "dogs", "on", "a", "red", "couch", "café", "🙂"],
        objects=[SGObject("dogs", (2, 3), head="dog", lemma="dog", quantity="2"),
                 SGObject("red couch", (5, 7), head="couch", lemma="couch")],
        attributes=[SGAttribute(0, "white", (1, 2)), SGAttribute(1, "red", (5, 6))],
        relations=[SGRelation(0, "on", 1, (3, 4))],
        note=None, lemmas=["two", "white", "dog", "on", "a", "red", "couch", "café", "🙂"],
        heads=[2, 2, 2, 2, 6, 6, 3, 6, 6], deps=["nummod", "amod", "ROOT", "prep", "det", "amod", "pobj",
                                                 "dep", "punct"])
    rec = scene_graph_to_record(sg)
    assert rec["objects"] == ["couch", "dog"]
    assert rec["attributes"] == [["couch", "red"], ["dog", "white"]]
    assert rec["relations"] == [["dog", "on", "couch"]]
    import json

    back = record_to_scene_graph(json.loads(json.dumps(rec)))
    assert back == sg
    empty = record_to_scene_graph(empty_record("empty caption"))
    assert empty.tokens == [] and empty.objects == [] and empty.note == "empty caption"
    with pytest.raises(ValueError, match="graph"):
        record_to_scene_graph({"objects": []})


def test_get_put_persist_and_version_invalidation(tmp_path):
    texts = ["a dog on a table", "two cats", "café au lait 🙂"]
    recs = [scene_graph_to_record(_graph(t)) for t in texts]
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
