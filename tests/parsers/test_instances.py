"""Scene graphs that keep entity instances: one object per mention, coreference rules, the
FACTUAL-style merged view (``merge_instances``), the canonical graph form and the structure-only
minimal pairs measurement, sidecar records and stale version-1 sidecars."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")
from spacy.tokens import Doc  # noqa: E402

from graphmatch.data.parses import PARSES_FORMAT, PARSES_VERSION, check_parses_header  # noqa: E402
from graphmatch.data.precomp import DataError  # noqa: E402
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation, merge_instances  # noqa: E402
from graphmatch.utils.atomic import file_sha256  # noqa: E402
from graphmatch.utils.jsonl import JSONLError  # noqa: E402
from parsers.benchmark import canonical_graph, load_pairs, run_ours, structure_pairs  # noqa: E402
from parsers.rules import doc_to_scene_graph  # noqa: E402

PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "structure_pairs.jsonl"
_VOCAB = spacy.blank("en").vocab


def make_doc(tokens):
    return Doc(_VOCAB, words=[t[0] for t in tokens], pos=[t[1] for t in tokens], tags=[t[2] for t in tokens],
               lemmas=[t[3] for t in tokens], deps=[t[4] for t in tokens], heads=[t[5] for t in tokens])


def triples(g):
    """(subject name + attributes, predicate, object name + attributes) of each relation."""
    def label(i):
        return (g.objects[i].lemma, tuple(sorted(a.value for a in g.attributes if a.object == i)))
    return {(label(r.subject), r.predicate, label(r.object)) for r in g.relations}


def names(g):
    return sorted(o.lemma for o in g.objects)


def owner_of(g, name):
    """Names of the objects that ``have`` the object called ``name``."""
    return {g.objects[r.subject].lemma for r in g.relations
            if r.predicate == "have" and g.objects[r.object].lemma == name}


# an old person kisses a young person (hand-built: pins the rules, not the model)
KISS = [
    ("an", "DET", "DT", "an", "det", 2), ("old", "ADJ", "JJ", "old", "amod", 2),
    ("person", "NOUN", "NN", "person", "nsubj", 3), ("kisses", "VERB", "VBZ", "kiss", "ROOT", 3),
    ("a", "DET", "DT", "a", "det", 6), ("young", "ADJ", "JJ", "young", "amod", 6),
    ("person", "NOUN", "NN", "person", "dobj", 3),
]
# a man walks a dog and the man pets it
REPEAT = [
    ("a", "DET", "DT", "a", "det", 1), ("man", "NOUN", "NN", "man", "nsubj", 2),
    ("walks", "VERB", "VBZ", "walk", "ROOT", 2), ("a", "DET", "DT", "a", "det", 4),
    ("dog", "NOUN", "NN", "dog", "dobj", 2), ("and", "CCONJ", "CC", "and", "cc", 2),
    ("the", "DET", "DT", "the", "det", 7), ("man", "NOUN", "NN", "man", "nsubj", 8),
    ("pets", "VERB", "VBZ", "pet", "conj", 2), ("it", "PRON", "PRP", "it", "dobj", 8),
]


# ------------------------------------------------------------------ instances (hand-built)
def test_same_name_mentions_are_two_objects_with_their_own_attributes():
    g = doc_to_scene_graph(make_doc(KISS))
    assert names(g) == ["person", "person"]
    assert triples(g) == {(("person", ("old",)), "kiss", ("person", ("young",)))}
    swapped = [list(t) for t in KISS]
    swapped[1][0] = swapped[1][3] = "young"
    swapped[5][0] = swapped[5][3] = "old"
    assert canonical_graph(doc_to_scene_graph(make_doc([tuple(t) for t in swapped]))) != canonical_graph(g)


def test_definite_repeat_is_the_same_entity_and_it_finds_the_dog():
    g = doc_to_scene_graph(make_doc(REPEAT))
    assert names(g) == ["dog", "man"]
    assert {(g.objects[r.subject].lemma, r.predicate, g.objects[r.object].lemma) for r in g.relations} == \
        {("man", "walk", "dog"), ("man", "pet", "dog")}


@pytest.mark.parametrize("word", ["another", "a"])
def test_indefinite_or_another_repeat_is_a_new_entity(word):
    toks = [list(t) for t in REPEAT]
    toks[6][0] = toks[6][3] = word
    g = doc_to_scene_graph(make_doc([tuple(t) for t in toks]))
    assert names(g) == ["dog", "man", "man"]
    petters = [r.subject for r in g.relations if r.predicate == "pet"]
    walkers = [r.subject for r in g.relations if r.predicate == "walk"]
    assert petters and walkers and set(petters).isdisjoint(walkers)


# ------------------------------------------------------------------ coreference (spaCy model)
def test_pronoun_gender_picks_the_compatible_mention(parser):
    assert owner_of(parser.parse("a woman next to a man holding her bag"), "bag") == {"woman"}
    assert owner_of(parser.parse("a woman next to a man holding his bag"), "bag") == {"man"}
    assert owner_of(parser.parse("a woman holding his umbrella next to a man"), "umbrella") == {"man"}  # after


def test_it_is_not_a_person_and_he_prefers_a_person_over_an_animal(parser):
    it = parser.parse("a boy sits on a horse and it eats grass")
    he = parser.parse("a boy sits on a horse and he eats grass")
    eaters = lambda g: {g.objects[r.subject].lemma for r in g.relations if r.predicate == "eat"}  # noqa: E731
    assert eaters(it) == {"horse"} and eaters(he) == {"boy"}


def test_clause_subject_wins_within_a_tier_and_its_possessor(parser):
    assert owner_of(parser.parse("an elephant eating hay with its trunk"), "trunk") == {"elephant"}
    assert owner_of(parser.parse("a girl holding a puppy and its leash"), "leash") == {"puppy"}


def test_a_pronoun_is_not_the_other_argument_of_its_relation(parser):
    g = parser.parse("a plate with a sandwich on it")
    rel = {(g.objects[r.subject].lemma, r.predicate, g.objects[r.object].lemma) for r in g.relations}
    assert ("sandwich", "on", "plate") in rel
    g = parser.parse("a cart with luggage on it")   # also when the parser attaches "on it" to the cart
    assert {(g.objects[r.subject].lemma, r.predicate, g.objects[r.object].lemma) for r in g.relations} >= \
        {("luggage", "on", "cart")}


def test_they_plural_series_and_singular(parser):
    assert owner_of(parser.parse("two women with knives in their hands"), "hand") == {"woman"}
    assert owner_of(parser.parse("a man and a woman with their dog"), "dog") == {"man", "woman"}
    assert owner_of(parser.parse("the person has their arms up"), "arm") == {"person"}


def test_same_name_told_apart_by_prepositional_phrases(parser):
    g = parser.parse("the girl in white is hugging the girl in blue")
    assert names(g) == ["girl", "girl"]
    assert triples(g) == {(("girl", ("white",)), "hug", ("girl", ("blue",)))}
    g = parser.parse("the woman on the left is holding a baby and the woman on the right is holding a bag")
    assert (("woman", ("on the left",)), "hold", ("baby", ())) in triples(g)
    assert (("woman", ("on the right",)), "hold", ("bag", ())) in triples(g)


def test_repeat_with_the_same_modifier_joins_the_right_earlier_entity(parser):
    g = parser.parse("the cup on the table is full and the cup on the shelf is empty")
    assert names(g).count("cup") == 2
    full = {a.object for a in g.attributes if a.value == "full"}
    empty = {a.object for a in g.attributes if a.value == "empty"}
    assert full and empty and full.isdisjoint(empty)


def test_related_mentions_of_one_name_stay_apart(parser):
    g = parser.parse("the dog is chasing the dog")
    assert names(g) == ["dog", "dog"] and len(g.relations) == 1
    assert g.relations[0].subject != g.relations[0].object


# ------------------------------------------------------------------ merge_instances
def _two_people():
    toks = "an old person kisses a young person".split()
    return SceneGraph(tokens=toks, objects=[SGObject("person", (2, 3)), SGObject("person", (6, 7), quantity="one")],
                      attributes=[SGAttribute(0, "old", (1, 2)), SGAttribute(1, "young", (5, 6)),
                                  SGAttribute(1, "old", (5, 6))],
                      relations=[SGRelation(0, "kiss", 1, (3, 4)), SGRelation(1, "kiss", 0, (3, 4))], note="n")


def test_merge_instances_unions_attributes_and_drops_self_relations():
    g = _two_people()
    before = g.to_record()
    m = merge_instances(g)
    assert g.to_record() == before                      # the input is not changed
    assert [o.name for o in m.objects] == ["person"] and m.objects[0].quantity == "one"
    assert m.objects[0].span == (2, 3)
    assert [(a.object, a.value) for a in m.attributes] == [(0, "old"), (0, "young")]
    assert m.relations == [] and m.note == "n" and m.tokens == g.tokens
    assert m.to_dict() == {"objects": ["person"], "attributes": [["person", "old"], ["person", "young"]],
                           "relations": []}


def test_merge_instances_keeps_distinct_names_and_drops_duplicate_relations():
    toks = "a man on a horse and a man on a horse".split()
    g = SceneGraph(tokens=toks, objects=[SGObject("man", (1, 2)), SGObject("horse", (4, 5)),
                                         SGObject("man", (7, 8)), SGObject("horse", (10, 11))],
                   relations=[SGRelation(0, "on", 1, (2, 3)), SGRelation(2, "on", 3, (8, 9))])
    m = merge_instances(g)
    assert [o.name for o in m.objects] == ["man", "horse"]
    assert [(r.subject, r.predicate, r.object) for r in m.relations] == [(0, "on", 1)]
    assert merge_instances(m).to_record() == m.to_record()   # a graph unique by name is its own view


def test_merge_instances_rejects_what_is_not_a_scene_graph():
    with pytest.raises(TypeError, match="must be a SceneGraph"):
        merge_instances({"objects": []})


def test_eval_parser_scores_the_merged_view(parser):
    recs, _ = run_ours(parser, ["an old person kisses a young person"])
    assert recs == [{"objects": ["person"], "attributes": [["person", "old"], ["person", "young"]],
                     "relations": []}]


# ------------------------------------------------------------------ canonical form and pairs
def test_canonical_graph_ignores_order_and_sees_structure():
    g = _two_people()
    perm = SceneGraph(tokens=g.tokens, objects=[g.objects[1], g.objects[0]],
                      attributes=[SGAttribute(1 - a.object, a.value, a.span) for a in reversed(g.attributes)],
                      relations=[SGRelation(1 - r.subject, r.predicate, 1 - r.object, r.span)
                                 for r in reversed(g.relations)])
    assert canonical_graph(perm) == canonical_graph(g)
    one_way = SceneGraph(tokens=g.tokens, objects=g.objects, attributes=g.attributes, relations=g.relations[:1])
    other_way = SceneGraph(tokens=g.tokens, objects=g.objects, attributes=g.attributes, relations=g.relations[1:])
    assert canonical_graph(one_way) != canonical_graph(other_way)


def test_canonical_graph_is_exact_on_symmetric_graphs():
    # two 3-cycles vs one 6-cycle of identical objects: colour refinement alone cannot tell them apart
    toks = ["x"] * 6
    objs = [SGObject("dot", (k, k + 1)) for k in range(6)]

    def ring(edges):
        return SceneGraph(tokens=toks, objects=objs, relations=[SGRelation(a, "to", b, (0, 1)) for a, b in edges])

    two = ring([(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])
    six = ring([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 0)])
    assert canonical_graph(two) != canonical_graph(six)
    rng = random.Random(0)
    p = list(range(6))
    rng.shuffle(p)
    shuffled = ring([(p[a], p[b]) for a, b in [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)]])
    assert canonical_graph(shuffled) == canonical_graph(two)


def test_fixture_pairs_are_structure_only_and_cover_every_kind():
    pairs = load_pairs(PAIRS)
    assert len(pairs) >= 60
    kinds = {p["kind"] for p in pairs}
    assert {"relation_swap", "relation_swap_same_name", "attribute_swap", "same_name_attributes",
            "same_name_pp", "coreference"} <= kinds
    assert all(p["a"] != p["b"] for p in pairs)


def test_structure_pairs_rate_on_the_fixture(parser):
    pairs = load_pairs(PAIRS)
    inst = structure_pairs(parser, pairs)
    merged = structure_pairs(parser, pairs, view="merged")
    assert inst["n"] == len(pairs) and inst["rate"] >= 95.0, inst["same"]
    assert merged["rate"] < inst["rate"]   # the one-object-per-name view loses structure


def test_load_pairs_names_the_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text(json.dumps({"a": "x", "b": "y", "kind": "k"}) + "\n" + json.dumps({"a": "x", "kind": "k"}) + "\n")
    with pytest.raises(JSONLError, match=r"p\.jsonl:2.*'b'"):
        load_pairs(bad)
    with pytest.raises(ValueError, match="view"):
        structure_pairs(None, [], view="both")


# ------------------------------------------------------------------ records and sidecars
def test_instance_records_round_trip(parser):
    for caption in ("an old person kisses a young person", "the girl in white is hugging the girl in blue",
                    "a man walks a dog and another man pets it"):
        g = parser.parse(caption)
        back = SceneGraph.from_record(json.loads(json.dumps(g.to_record())))
        assert back == g and canonical_graph(back) == canonical_graph(g)


def test_a_version_1_sidecar_is_stale(tmp_path):
    caps = tmp_path / "dev_caps.txt"
    caps.write_text("a dog\n")
    side = tmp_path / "dev_graphs.jsonl"
    head = {"format": PARSES_FORMAT, "version": 1, "captions": caps.name, "captions_sha256": file_sha256(caps),
            "n": 1, "parser": "spacy_rules/rules-1"}
    side.write_text(json.dumps(head) + "\n")
    with pytest.raises(DataError, match=r"is stale: parse file version 1 \(objects merged by name\)") as e:
        check_parses_header(side, caps, 1, command="graphmatch parse --precomp R --split dev")
    assert e.value.code == "parses_stale" and "graphmatch parse --precomp R --split dev" in str(e.value)
    side.write_text(json.dumps(dict(head, version=PARSES_VERSION)) + "\n")
    assert check_parses_header(side, caps, 1)["version"] == PARSES_VERSION == 2
    side.write_text(json.dumps(dict(head, version=99)) + "\n")
    with pytest.raises(DataError, match="version 99") as e:
        check_parses_header(side, caps, 1)
    assert e.value.code == "parses_header"
