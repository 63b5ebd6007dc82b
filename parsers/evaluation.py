"""Scene-graph parser evaluation: SPICE-style tuple matching against FACTUAL-style records.

A record is a dict with ``objects`` (names), ``attributes`` (``[object, value]``) and ``relations``
(``[subject, predicate, object]``) — the form of the FACTUAL JSONL files and of
:meth:`graphmatch.structures.SceneGraph.to_dict`. The parser's graphs keep one object per
mention; they are scored in FACTUAL's one-object-per-name view,
``merge_instances(graph).to_dict()`` (:func:`graphmatch.structures.merge_instances`). Both sides are normalised the same way
(:class:`Normalizer`: lower-case and lemmatise every word of each phrase), turned into tuple sets
(:func:`graph_tuples`; duplicates within a caption count once) and matched exactly; precision,
recall and F1 are micro-averaged over the corpus (:func:`score_records`).

:func:`sng_to_record` maps the output of the public ``sng_parser`` (SceneGraphParser) to a record,
so that a baseline run is scored by the very same code.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Sequence, Set, Tuple

__all__ = ["Normalizer", "graph_tuples", "score_records", "sng_to_record", "CATEGORIES"]

CATEGORIES = ("objects", "attributes", "relations")

_WS = re.compile(r"\s+")
_VERB_FORMS = {"VBZ", "VBG", "VBD", "VBN"}


class Normalizer:
    """Lower-cases and lemmatises every word of a phrase (objects, attribute values, predicates).

    Uses a spaCy pipeline's tagger + lemmatizer on the phrase on its own. Because record
    phrases are object names, attribute values and *lemmatised* predicates,
    an inflected verb form in last position is read as a noun and lemmatised as one (``"leaves"`` →
    ``"leaf"``, ``"building"`` stays ``"building"``), which keeps the normalisation of a name
    independent of the tagger's context-free guess. Results are cached per phrase.

    Args:
        nlp_or_model: a loaded spaCy ``Language``, a model name, or ``None`` for the parser's
            default English model (see :func:`parsers.parser.load_model`).
    """

    def __init__(self, nlp_or_model: Any = None) -> None:
        if nlp_or_model is None or isinstance(nlp_or_model, str):
            from .parser import load_model

            nlp = load_model(nlp_or_model)
        else:
            nlp = nlp_or_model
        keep = {"tok2vec", "tagger", "attribute_ruler", "lemmatizer"}
        self._disable = [p for p in nlp.pipe_names if p not in keep]
        self.nlp = nlp
        self._lemmatizer = nlp.get_pipe("lemmatizer") if "lemmatizer" in nlp.pipe_names else None
        self._cache: Dict[str, str] = {"": ""}

    @staticmethod
    def _clean(phrase: str) -> str:
        return _WS.sub(" ", str(phrase).lower()).strip()

    def _lemmas(self, doc: Any) -> str:
        out: List[str] = []
        last = len(doc) - 1
        for k, tok in enumerate(doc):
            lemma = tok.lemma_.lower() or tok.lower_
            if k == last and tok.tag_ in _VERB_FORMS and self._lemmatizer is not None:
                try:
                    tok.pos_ = "NOUN"
                    tok.set_morph("Number=Plur")  # else a "3rd person singular" reads as a base form
                    lemma = self._lemmatizer.rule_lemmatize(tok)[0].lower()
                except Exception:  # pragma: no cover - lemmatizer without rule tables
                    pass
            out.append(lemma)
        return " ".join(out)

    def __call__(self, phrase: str) -> str:
        key = self._clean(phrase)
        hit = self._cache.get(key)
        if hit is None:
            with self.nlp.select_pipes(disable=self._disable):
                hit = self._lemmas(self.nlp(key))
            self._cache[key] = hit
        return hit

    def normalize_many(self, phrases: Iterable[str]) -> List[str]:
        """Normalise many phrases at once (uncached ones go through ``nlp.pipe`` in one batch)."""
        keys = [self._clean(p) for p in phrases]
        todo = sorted({k for k in keys if k not in self._cache})
        if todo:
            with self.nlp.select_pipes(disable=self._disable):
                for k, doc in zip(todo, self.nlp.pipe(todo, batch_size=1000)):
                    self._cache[k] = self._lemmas(doc)
        return [self._cache[k] for k in keys]


def _phrases(record: Dict[str, Any]) -> List[str]:
    out: List[str] = list(record.get("objects") or [])
    for a in record.get("attributes") or []:
        out.extend(a[:2])
    for r in record.get("relations") or []:
        out.extend(r[:3])
    return [str(p) for p in out]


def graph_tuples(record: Dict[str, Any], norm: Normalizer) -> Dict[str, Set[Tuple[str, ...]]]:
    """The normalised tuple sets of a record: ``{"objects": {(o,)}, "attributes": {(o, a)},
    "relations": {(s, p, o)}}``, each built from its own list of the record; tuples with an
    empty phrase are skipped."""
    n = norm
    objs = {(n(o),) for o in record.get("objects") or []}
    attrs = {(n(a[0]), n(a[1])) for a in record.get("attributes") or [] if len(a) >= 2}
    rels = {(n(r[0]), n(r[1]), n(r[2])) for r in record.get("relations") or [] if len(r) >= 3}
    attrs = {t for t in attrs if all(t)}
    rels = {t for t in rels if all(t)}
    objs = {t for t in objs if t[0]}
    return {"objects": objs, "attributes": attrs, "relations": rels}


def _prf(tp: int, n_pred: int, n_gold: int) -> Dict[str, float]:
    p = 100.0 * tp / n_pred if n_pred else 0.0
    r = 100.0 * tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "n_pred": n_pred, "n_gold": n_gold}


def score_records(preds: Sequence[Dict[str, Any]], golds: Sequence[Dict[str, Any]],
                  norm: Normalizer) -> Dict[str, Any]:
    """Micro-averaged precision / recall / F1 (percent) of predicted records against gold records.

    Returns ``{"objects": {...}, "attributes": {...}, "relations": {...}, "all": {...},
    "n_captions": N}`` where each category holds ``precision``, ``recall``, ``f1``, ``tp``,
    ``n_pred`` and ``n_gold``; ``all`` matches the union of the three tuple sets per caption.
    """
    if len(preds) != len(golds):
        raise ValueError(f"score_records: {len(preds)} predictions for {len(golds)} gold records")
    norm.normalize_many([p for rec in list(preds) + list(golds) for p in _phrases(rec)])
    counts = {c: [0, 0, 0] for c in CATEGORIES + ("all",)}
    for pred, gold in zip(preds, golds):
        tp_, tg = graph_tuples(pred, norm), graph_tuples(gold, norm)
        for c in CATEGORIES:
            k = counts[c]
            k[0] += len(tp_[c] & tg[c])
            k[1] += len(tp_[c])
            k[2] += len(tg[c])
        ap = set().union(*tp_.values())
        ag = set().union(*tg.values())
        k = counts["all"]
        k[0] += len(ap & ag)
        k[1] += len(ap)
        k[2] += len(ag)
    out: Dict[str, Any] = {c: _prf(*counts[c]) for c in counts}
    out["n_captions"] = len(golds)
    return out


#: Determiners / quantifier words removed from ``sng_parser`` spans when the head is not used.
_SNG_DROP = {"a", "an", "the", "this", "that", "these", "those", "some", "its", "his", "her",
             "their", "my", "our", "your"}


def sng_to_record(graph: Dict[str, Any]) -> Dict[str, Any]:
    """Map an ``sng_parser`` graph (``Parser('spacy', ...).parse(text)``) to a record.

    * objects: each entity's ``lemma_head`` (the head noun's lemma with sng_parser's compound
      words prepended); if absent, ``lemma_span`` without determiners.
    * attributes: the entity's modifiers with dependency ``amod`` or ``compound``
      (``det`` and ``nummod`` modifiers are determiners and counts, not attributes).
    * relations: ``[subject name, lemma_relation, object name]``.
    """
    names: List[str] = []
    attrs: Set[Tuple[str, str]] = set()
    for ent in graph.get("entities", []):
        name = ent.get("lemma_head")
        if not name:
            name = " ".join(w for w in str(ent.get("lemma_span", "")).split() if w.lower() not in _SNG_DROP)
        name = name.lower().strip()
        names.append(name)
        for m in ent.get("modifiers", []):
            if m.get("dep") in ("amod", "compound"):
                attrs.add((name, str(m.get("lemma_span", m.get("span", ""))).lower()))
    rels: Set[Tuple[str, str, str]] = set()
    for r in graph.get("relations", []):
        try:
            s, o = names[r["subject"]], names[r["object"]]
        except (IndexError, KeyError, TypeError):
            continue
        rels.add((s, str(r.get("lemma_relation", r.get("relation", ""))).lower(), o))
    return {"objects": sorted(set(n for n in names if n)),
            "attributes": [list(t) for t in sorted(attrs)],
            "relations": [list(t) for t in sorted(rels)]}
