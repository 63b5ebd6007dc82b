"""Scorer tests with hand-computed counts (parsers.evaluation)."""
from __future__ import annotations

import pytest

pytest.importorskip("spacy")

from parsers.evaluation import Normalizer, graph_tuples, score_records, sng_to_record  # noqa: E402


class LowerOnly(Normalizer):
    """A model-free normaliser (lower-case + strip) so counts do not depend on a lemmatizer."""

    def __init__(self):  # noqa: D401 - no spaCy pipeline needed
        self._cache = {"": ""}

    def __call__(self, phrase):
        return " ".join(str(phrase).lower().split())

    def normalize_many(self, phrases):
        return [self(p) for p in phrases]


@pytest.fixture(scope="module")
def norm():
    return LowerOnly()


GOLD = {"objects": ["woman", "bed", "cat"], "attributes": [["bed", "white"]],
        "relations": [["woman", "on", "bed"], ["woman", "with", "cat"]]}


def test_graph_tuples(norm):
    t = graph_tuples(GOLD, norm)
    assert t == {"objects": {("woman",), ("bed",), ("cat",)}, "attributes": {("bed", "white")},
                 "relations": {("woman", "on", "bed"), ("woman", "with", "cat")}}


def test_perfect_match(norm):
    s = score_records([GOLD], [GOLD], norm)
    for c in ("objects", "attributes", "relations", "all"):
        assert s[c]["precision"] == s[c]["recall"] == s[c]["f1"] == 100.0
    assert s["all"]["tp"] == 6 and s["n_captions"] == 1


def test_hand_computed_micro_average(norm):
    pred1 = {"objects": ["Woman", "bed", "dog"], "attributes": [["bed", "white"], ["bed", "soft"]],
             "relations": [["woman", "on", "bed"], ["woman", "on", "bed"], ["woman", "near", "dog"]]}
    gold2 = {"objects": ["man"], "attributes": [], "relations": []}
    pred2 = {"objects": [], "attributes": [], "relations": []}
    s = score_records([pred1, pred2], [GOLD, gold2], norm)
    # objects: pred {woman, bed, dog} + {} vs gold {woman, bed, cat} + {man}: tp 2, pred 3, gold 4
    o = s["objects"]
    assert (o["tp"], o["n_pred"], o["n_gold"]) == (2, 3, 4)
    assert o["precision"] == pytest.approx(200 / 3) and o["recall"] == pytest.approx(50.0)
    assert o["f1"] == pytest.approx(2 * (200 / 3) * 50 / (200 / 3 + 50))
    a = s["attributes"]
    assert (a["tp"], a["n_pred"], a["n_gold"]) == (1, 2, 1)
    r = s["relations"]          # duplicate relation counts once
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (1, 2, 2)
    assert r["f1"] == pytest.approx(50.0)
    al = s["all"]
    assert (al["tp"], al["n_pred"], al["n_gold"]) == (4, 7, 7)
    assert al["f1"] == pytest.approx(400 / 7)
    assert s["n_captions"] == 2


def test_empty_prediction_scores_zero(norm):
    s = score_records([{"objects": [], "attributes": [], "relations": []}], [GOLD], norm)
    assert s["all"]["f1"] == 0.0 and s["all"]["n_gold"] == 6 and s["all"]["n_pred"] == 0


def test_length_mismatch_raises(norm):
    with pytest.raises(ValueError):
        score_records([GOLD], [], norm)


def test_sng_to_record():
    graph = {"entities": [
        {"span": "a white bed", "lemma_span": "a white bed", "head": "bed", "lemma_head": "bed",
         "modifiers": [{"dep": "det", "span": "a", "lemma_span": "a"},
                       {"dep": "amod", "span": "white", "lemma_span": "white"}]},
        {"span": "two cats", "lemma_span": "two cat", "head": "cats", "lemma_head": "cat",
         "modifiers": [{"dep": "nummod", "span": "two", "lemma_span": "two"}]}],
        "relations": [{"subject": 1, "object": 0, "relation": "on", "lemma_relation": "on"}]}
    assert sng_to_record(graph) == {"objects": ["bed", "cat"], "attributes": [["bed", "white"]],
                                    "relations": [["cat", "on", "bed"]]}


def _model_available():
    try:
        from parsers.parser import load_model

        load_model()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _model_available(), reason="no spaCy English model installed")
def test_normalizer_lemmatises_both_sides():
    n = Normalizer()
    assert n("Trees") == "tree"
    assert n("leaves") == n("leaf") == "leaf"          # a lone plural is read as a noun
    assert n("train tracks") == "train track"
    assert n("sit on") == "sit on"
    assert n.normalize_many(["Buildings", "men", "trees"]) == ["building", "man", "tree"]
    pred = {"objects": ["tree", "leaf"], "attributes": [], "relations": [["leaf", "on", "tree"]]}
    gold = {"objects": ["trees", "leaves"], "attributes": [], "relations": [["leaves", "on", "trees"]]}
    assert score_records([pred], [gold], n)["all"]["f1"] == 100.0
