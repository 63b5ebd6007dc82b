"""Swap construction of the structure tests (experiments/diagnostics/swaps.py)."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.diagnostics.swaps import (  # noqa: E402
    SWAP_KINDS, attribute_swap, exchange_spans, mentions, object_swap, relation_swap, swap_case, swap_cases,
)
from graphmatch.data.annotated import AnnotatedGraph  # noqa: E402
from graphmatch.data.vocab import tokenize  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"


def g(objects, attributes=(), relations=()):
    return AnnotatedGraph.from_names(objects, attributes, relations)


CAT = g(["cat", "bed"], [["cat", "black"], ["bed", "white"]], [["cat", "on", "bed"]])


def test_mentions_and_exchange():
    assert mentions("A train track, by the train.", "train") == [(2, 7), (22, 27)]
    assert mentions("A train track, by the train.", "Train track") == [(2, 13)]
    assert mentions("a cat", "!") == []
    assert exchange_spans("a man riding a horse", (15, 20), (2, 5)) == "a horse riding a man"
    with pytest.raises(ValueError, match="overlap"):
        exchange_spans("abcdef", (0, 3), (2, 4))


def test_relation_swap_moves_premodifiers_with_their_object():
    c = relation_swap("Black cat on white bed.", CAT, index=4)
    assert c.kind == "relation" and c.index == 4
    assert c.swapped_caption == "white bed on Black cat."
    assert c.swapped_graph.relations == ((1, "on", 0),)
    assert c.swapped_graph.objects == CAT.objects and c.swapped_graph.attributes == CAT.attributes
    assert c.swapped == ("cat", "on", "bed")


def test_relation_swap_multiword_names():
    graph = g(["doughnut", "parchment paper"], [], [["doughnut", "on", "parchment paper"]])
    c = relation_swap("the parchment paper the doughnut is on", graph)
    assert c.swapped_caption == "the doughnut the parchment paper is on"


@pytest.mark.parametrize("caption, graph", [
    ("woman sitting next to a woman", g(["woman"], [], [["woman", "sit next to", "woman"]])),  # self relation
    ("a cat on a bed by a cat", CAT),                                                           # name twice
    ("a cat that is black on a white bed", CAT),                  # attribute not a pre-modifier of its object
    ("a dog near a cat", g(["cat", "dog"], [], [["dog", "near", "cat"], ["cat", "near", "dog"]])),  # reverse exists
    ("man riding horse on beach", g(["man", "horse", "beach"], [],
                                    [["man", "ride", "horse"], ["man", "on", "beach"]])),  # endpoint in another relation
])
def test_relation_swap_rejects(caption, graph):
    assert relation_swap(caption, graph) is None


def test_relation_swap_takes_the_first_clean_relation():
    graph = g(["man", "horse", "hat", "head"], [], [["man", "ride", "horse"], ["man", "wear", "hat"],
                                                    ["hat", "on", "head"]])
    # man and hat are in two relations each; the only clean one is none -> None
    assert relation_swap("man riding horse wearing hat on head", graph) is None
    graph2 = g(["man", "horse", "hat", "head"], [], [["man", "ride", "horse"], ["hat", "on", "head"]])
    c = relation_swap("man riding horse, hat on head", graph2)
    assert c.swapped == ("man", "ride", "horse") and c.swapped_caption == "horse riding man, hat on head"


def test_attribute_swap():
    c = attribute_swap("black cat on white bed", CAT)
    assert c.swapped_caption == "white cat on black bed"
    assert c.swapped_graph.attributes == ((0, "white"), (1, "black"))
    assert c.swapped == ("black", "white")
    # a value shared by both objects, or one mentioned twice, or inside a name, is not swappable
    same = g(["cat", "bed"], [["cat", "white"], ["bed", "white"]])
    assert attribute_swap("white cat on white bed", same) is None
    assert attribute_swap("black cat on white bed with black sheets", CAT) is None
    court = g(["court", "ball"], [["court", "tennis"], ["ball", "yellow"]])
    assert attribute_swap("yellow ball on tennis court", court) is not None
    inside = g(["tennis court", "ball"], [["tennis court", "tennis"], ["ball", "yellow"]])
    assert attribute_swap("yellow ball on tennis court", inside) is None
    # one attribute of each object is exchanged; the others stay
    multi = g(["cat", "bed"], [["cat", "black"], ["cat", "fluffy"], ["bed", "white"]])
    c = attribute_swap("fluffy black cat on white bed", multi)
    assert c.swapped_caption == "fluffy white cat on black bed"
    assert c.swapped_graph.attributes == ((0, "white"), (0, "fluffy"), (1, "black"))


def test_object_swap_keeps_attributes_and_relations_in_place():
    c = object_swap("black cat on white bed", CAT)
    assert c.swapped_caption == "black bed on white cat"
    assert c.swapped_graph.objects == ("bed", "cat")
    assert c.swapped_graph.attributes == CAT.attributes and c.swapped_graph.relations == CAT.relations
    assert c.swapped_graph.named_tuples() == {("bed",), ("cat",), ("bed", "black"), ("cat", "white"),
                                              ("bed", "on", "cat")}
    # exchanging two objects with the same role changes nothing: no case
    lawn = g(["bushes", "lawn", "trees"], [["lawn", "green"]], [["bushes", "grow on", "lawn"], ["trees", "grow on", "lawn"]])
    c = object_swap("trees and bushes growing on green lawn", lawn)
    assert c.swapped == ("bushes", "lawn")  # the first pair that changes the graph
    assert c.swapped_caption == "trees and lawn growing on green bushes"


def test_swap_case_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown swap kind 'colour'"):
        swap_case("colour", "a cat", CAT)


def test_cases_on_real_annotation_change_graph_and_caption():
    recs = [json.loads(line) for line in (FIXTURES / "factual_dev.jsonl").read_text().splitlines()]
    pairs = [(r["caption"], AnnotatedGraph.from_record(r)) for r in recs]
    counts = {}
    for kind in SWAP_KINDS:
        cases = swap_cases(pairs, kind)
        counts[kind] = len(cases)
        for c in cases:
            caption, graph = pairs[c.index]
            assert c.caption == caption and c.graph is graph
            assert c.swapped_caption != caption
            assert sorted(tokenize(c.swapped_caption)) == sorted(tokenize(caption))  # token runs exchanged
            assert c.swapped_graph.named_tuples() != graph.named_tuples()
            assert c.swapped_graph.objects == graph.objects or kind == "object"
            assert len(c.swapped_graph.relations) == len(graph.relations)
            if kind == "relation":
                s, p, o = c.swapped
                assert (o, p, s) in {(graph.objects[a], q, graph.objects[b]) for a, q, b in c.swapped_graph.relations}
    # the dev split offers many relation and object swaps and some attribute swaps
    assert counts["relation"] > 500 and counts["object"] > 800 and 20 < counts["attribute"] < 200
