"""The one scene-graph serialisation: ``SceneGraph.to_record`` / ``SceneGraph.from_record``.

Round trips on the parser's graphs of real FACTUAL captions and on hand-made graphs; records that
are not valid are rejected with an error naming the field and what is wrong with it.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from graphmatch.structures import RECORD_FIELDS, SceneGraph, SGAttribute, SGObject, SGRelation

FIXTURE_GOLD = Path(__file__).resolve().parents[1] / "fixtures" / "factual_dev.jsonl"


def hand_graph() -> SceneGraph:
    text = "two white dogs on a red couch, café 🙂"
    tokens = ["two", "white", "dogs", "on", "a", "red", "couch", ",", "café", "🙂"]
    offsets, pos = [], 0
    for t in tokens:
        pos = text.index(t, pos)
        offsets.append((pos, pos + len(t)))
        pos += len(t)
    return SceneGraph(
        tokens=tokens,
        objects=[SGObject("dogs", (2, 3), head="dog", lemma="dog", quantity="2"),
                 SGObject("red couch", (5, 7), head="couch", lemma="couch")],
        attributes=[SGAttribute(0, "white", (1, 2)), SGAttribute(1, "red", (5, 6))],
        relations=[SGRelation(0, "on", 1, (3, 4))],
        note="a note", lemmas=["two", "white", "dog", "on", "a", "red", "couch", ",", "café", "🙂"],
        heads=[2, 2, 2, 2, 6, 6, 3, 6, 6, 6],
        deps=["nummod", "amod", "ROOT", "prep", "det", "amod", "pobj", "punct", "dep", "punct"],
        text=text, offsets=offsets)


def through_json(rec):
    return json.loads(json.dumps(rec, ensure_ascii=False))


def test_hand_made_graph_round_trip_is_exact():
    sg = hand_graph()
    rec = sg.to_record()
    assert list(rec) == list(RECORD_FIELDS)  # every field, in the documented order
    assert rec["offsets"][0] == [0, 3] and rec["objects"][0] == {"name": "dogs", "span": [2, 3], "head": "dog",
                                                                 "lemma": "dog", "quantity": "2"}
    assert "quantity" not in rec["objects"][1]
    assert rec["attributes"][1] == {"object": 1, "value": "red", "span": [5, 6]}
    assert rec["relations"] == [{"subject": 0, "predicate": "on", "object": 1, "span": [3, 4]}]
    back = SceneGraph.from_record(through_json(rec))
    assert back == sg and back.to_record() == rec
    # the normalised tuple form of evaluation is a different thing: unique lemmatised tuples
    assert sg.to_dict() == {"objects": ["couch", "dog"], "attributes": [["couch", "red"], ["dog", "white"]],
                            "relations": [["dog", "on", "couch"]]}


def test_optional_fields_are_left_out_and_come_back_as_none():
    bare = SceneGraph(tokens=["a", "dog"], objects=[SGObject("dog", (1, 2))])
    rec = bare.to_record()
    assert rec == {"tokens": ["a", "dog"], "objects": [{"name": "dog", "span": [1, 2], "head": "dog", "lemma": "dog"}],
                   "attributes": [], "relations": []}
    assert SceneGraph.from_record(rec) == bare
    empty = SceneGraph(tokens=[], note="empty caption", text="", offsets=[])
    assert empty.to_record() == {"text": "", "tokens": [], "offsets": [], "objects": [], "attributes": [],
                                 "relations": [], "note": "empty caption"}
    assert SceneGraph.from_record(through_json(empty.to_record())) == empty
    explicit_nulls = dict(rec, text=None, offsets=None, lemmas=None, heads=None, deps=None, note=None)
    assert SceneGraph.from_record(explicit_nulls) == bare


def test_round_trip_of_parsed_factual_captions():
    pytest.importorskip("spacy")
    from parsers.parser import make_parser

    captions = [json.loads(line)["caption"] for line in FIXTURE_GOLD.read_text(encoding="utf-8").splitlines()]
    graphs = list(make_parser().pipe(captions))
    assert len(graphs) == len(captions) > 20
    for caption, g in zip(captions, graphs):
        rec = through_json(g.to_record())
        assert rec["text"] == caption and len(rec["offsets"]) == len(rec["tokens"])
        back = SceneGraph.from_record(rec)
        assert back == g and back.to_record() == rec and back.to_dict() == g.to_dict()
    assert sum(len(g.relations) for g in graphs) > 10 and any(o.quantity for g in graphs for o in g.objects)


def _mutate(rec, path, value):
    """A copy of ``rec`` with the field at ``path`` (keys / indices) set to ``value`` (``...``: removed)."""
    out = copy.deepcopy(rec)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


BAD_RECORDS = [
    ((), ["not", "a", "record"], "must be a JSON object, got a list"),
    (("tokens",), ..., "has no 'tokens' field"),
    (("objects",), ..., "has no 'objects' field"),
    (("objex",), [], "field 'objex' is unknown"),
    (("tokens",), "two white dogs", "field 'tokens' must be a list of strings, got a string"),
    (("tokens", 1), 7, "field 'tokens[1]' must be a string, got an integer"),
    (("text",), 5, "field 'text' must be a string"),
    (("offsets",), [[0, 3]], "offsets has 1 entries for 10 tokens"),
    (("offsets", 2), [9, "x"], "field 'offsets[2][1]' must be an integer"),
    (("offsets", 9), [30, 99], "offsets[9] [30, 99] of token '🙂' is outside the text"),
    (("offsets", 3), [0, 1], "offsets[3] [0, 1] starts before offsets[2]"),
    (("objects", 0, "span"), [2, 30], "objects[0] ('dogs') span [2, 30] is outside the 10 tokens"),
    (("objects", 0, "span"), [2, 3.0], "field 'objects[0].span[1]' must be an integer, got a number 3.0"),
    (("objects", 0, "span"), [2], "field 'objects[0].span' must be a [start, end] pair"),
    (("objects", 1, "name"), ..., "field 'objects[1].name' is missing"),
    (("objects", 1, "colour"), "red", "field 'objects[1].colour' is unknown"),
    (("objects", 0, "quantity"), 2, "field 'objects[0].quantity' must be a string"),
    (("objects", 1), "couch", "field 'objects[1]' must be an object"),
    (("attributes", 0, "object"), 5, "attributes[0] ('white') refers to object 5 of 2"),
    (("attributes", 0, "object"), True, "field 'attributes[0].object' must be an integer, got a boolean"),
    (("relations", 0, "predicate"), ..., "field 'relations[0].predicate' is missing"),
    (("relations", 0, "object"), -1, "relations[0] ('on') refers to objects (0, -1) of 2"),
    (("lemmas",), ["a"], "lemmas has 1 entries for 10 tokens"),
    (("heads", 3), 10, "heads[3] = 10 must index tokens"),
    (("deps", 0), None, "field 'deps[0]' must be a string, got null"),
    (("note",), ["x"], "field 'note' must be a string"),
]


@pytest.mark.parametrize("path, value, message", BAD_RECORDS)
def test_bad_records_are_rejected_naming_the_field(path, value, message):
    rec = hand_graph().to_record()
    bad = value if path == () else _mutate(rec, path, value)
    with pytest.raises(ValueError) as e:
        SceneGraph.from_record(bad, where="train_graphs.jsonl:7")
    text = str(e.value)
    assert text.startswith("train_graphs.jsonl:7: ") and message in text, text


def test_misspelt_field_suggests_the_right_one():
    rec = _mutate(hand_graph().to_record(), ("relations",), ...)
    rec["relation"] = []
    with pytest.raises(ValueError, match="'relation' is unknown .*did you mean 'relations'"):
        SceneGraph.from_record(rec)


def test_constructor_checks_text_and_offsets():
    with pytest.raises(ValueError, match="offsets are character offsets into text, but text is None"):
        SceneGraph(tokens=["a"], offsets=[(0, 1)])
    with pytest.raises(ValueError, match="offsets has 2 entries for 1 tokens"):
        SceneGraph(tokens=["a"], text="a b", offsets=[(0, 1), (2, 3)])
    with pytest.raises(ValueError, match="outside the text"):
        SceneGraph(tokens=["ab"], text="a", offsets=[(0, 2)])
    g = SceneGraph(tokens=["a", "b"], text="a b", offsets=[[0, 1], [2, 3]])  # lists are normalised
    assert g.offsets == [(0, 1), (2, 3)]
    # a token need not equal its characters (a caption cleaned before parsing: "&amp;" -> "&")
    assert SceneGraph(tokens=["&"], text="&amp;", offsets=[(0, 5)]).offsets == [(0, 5)]
