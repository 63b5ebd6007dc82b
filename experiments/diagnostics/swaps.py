"""Minimal structure swaps of an annotated (graph, caption) pair, Winoground-style.

Each function takes a caption ``C`` and its human scene graph ``G``
(:class:`graphmatch.data.annotated.AnnotatedGraph`) and returns a :class:`SwapCase` with a twin
graph ``G'`` and a twin caption ``C'`` that describes ``G'`` as ``C`` describes ``G``, or None when
the pair offers no clean swap of that kind. All are pure functions of their arguments.

A *mention* of a name is an occurrence of its tokens (core tokenizer,
:func:`graphmatch.data.vocab.tokenize_with_offsets`) as a contiguous token run of the caption; a
name is *usable* when it has exactly one mention. Texts are edited by exchanging two
non-overlapping character spans of the caption, so the rest of it (case, punctuation) stays as it
was.

* **relation** — a relation ``(s, p, o)`` whose endpoints are different objects with usable names:
  ``G'`` has ``(o, p, s)`` instead (its direction reversed, nodes and everything else unchanged);
  ``C'`` exchanges the two endpoint phrases. An endpoint phrase is its name with the attribute
  words that directly precede it ("black cat"), so attributes travel with their object ("black
  cat on white bed" -> "white bed on black cat"); an endpoint with an attribute mentioned
  elsewhere in the caption, or taking part in another relation (whose attachment the edit would
  change), gives no case. Skipped when ``(o, p, s)`` is already in ``G``.
* **attribute** — objects ``a != b`` with attributes ``x`` of ``a`` and ``y`` of ``b`` (``x`` not an
  attribute of ``b``, ``y`` not of ``a``), each value with exactly one mention that overlaps no
  object mention: ``G'`` gives ``a`` the value ``y`` and ``b`` the value ``x``; ``C'`` exchanges
  the two value words.
* **object** — objects ``a != b`` with usable, non-overlapping names: ``G'`` exchanges their names
  (each node keeps its attributes and relations, as the words around a name stay in place in the
  caption); ``C'`` exchanges the two names. Skipped when ``G'`` equals ``G`` up to node order
  (two objects with the same attributes and relations).

One case per record and kind: the first eligible one in annotation order (relations in order;
object pairs ``(i, j)``, ``i < j``, in order; attribute pairs in order). Every case changes the
graph as a set of named tuples (:meth:`AnnotatedGraph.named_tuples`) and the caption text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from graphmatch.data.annotated import AnnotatedGraph
from graphmatch.data.vocab import tokenize, tokenize_with_offsets

__all__ = ["SWAP_KINDS", "SwapCase", "mentions", "exchange_spans", "relation_swap", "attribute_swap",
           "object_swap", "swap_case", "swap_cases"]

#: The swap kinds, in report order.
SWAP_KINDS: Tuple[str, ...] = ("relation", "attribute", "object")

Span = Tuple[int, int]


@dataclass(frozen=True)
class SwapCase:
    """A caption and graph with their twins.

    Attributes:
        kind: ``"relation"``, ``"attribute"`` or ``"object"``.
        caption, graph: ``C`` and ``G``.
        swapped_caption, swapped_graph: ``C'`` and ``G'``.
        swapped: what was exchanged (the relation triple, or the two names / values).
        index: the record's number in its file (-1 when not given).
    """

    kind: str
    caption: str
    graph: AnnotatedGraph
    swapped_caption: str
    swapped_graph: AnnotatedGraph
    swapped: Tuple[str, ...]
    index: int = -1


def mentions(caption: str, phrase: str) -> List[Span]:
    """Character spans ``[start, end)`` of the occurrences of ``phrase``'s tokens as contiguous
    token runs of ``caption`` (``[]`` for a phrase with no token)."""
    toks = tokenize_with_offsets(caption)
    words = [t for t, _, _ in toks]
    target = tokenize(phrase)
    k = len(target)
    if not k:
        return []
    return [(toks[i][1], toks[i + k - 1][2]) for i in range(len(words) - k + 1) if words[i : i + k] == target]


def _overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def exchange_spans(text: str, a: Span, b: Span) -> str:
    """``text`` with the substrings at the non-overlapping character spans ``a`` and ``b`` exchanged."""
    if _overlap(a, b):
        raise ValueError(f"exchange_spans: spans {a} and {b} overlap")
    (s1, e1), (s2, e2) = sorted([a, b])
    return text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]


def _single(caption: str, phrase: str) -> Optional[Span]:
    m = mentions(caption, phrase)
    return m[0] if len(m) == 1 else None


def _with_premodifiers(caption: str, graph: AnnotatedGraph, obj: int, span: Span) -> Optional[Span]:
    """The span of object ``obj``'s name grown left over the attribute words that directly precede
    it; None when one of its attributes is mentioned anywhere else."""
    toks = tokenize_with_offsets(caption)
    values = [v for i, v in graph.attributes if i == obj]
    start = next(k for k, (_, s, _) in enumerate(toks) if s == span[0])
    used = set()
    moved = True
    while moved:
        moved = False
        for v in values:
            vt = tokenize(v)
            k = len(vt)
            if v not in used and k and start - k >= 0 and [t for t, _, _ in toks[start - k : start]] == vt:
                start -= k
                used.add(v)
                moved = True
    for v in values:
        if v not in used and mentions(caption, v):
            return None  # mentioned, but not as a pre-modifier: the edit would leave it behind
    return toks[start][1], span[1]


def relation_swap(caption: str, graph: AnnotatedGraph, *, index: int = -1) -> Optional[SwapCase]:
    """The first relation of ``graph`` that reverses cleanly (module docstring), or None."""
    names = graph.objects
    triples = set(graph.relations)
    for k, (s, p, o) in enumerate(graph.relations):
        if s == o or names[s] == names[o] or (o, p, s) in triples:
            continue
        if any(j != k and (s in (a, b) or o in (a, b)) for j, (a, _, b) in enumerate(graph.relations)):
            continue
        ms, mo = _single(caption, names[s]), _single(caption, names[o])
        if ms is None or mo is None or _overlap(ms, mo):
            continue
        ps, po = _with_premodifiers(caption, graph, s, ms), _with_premodifiers(caption, graph, o, mo)
        if ps is None or po is None or _overlap(ps, po):
            continue
        rels = list(graph.relations)
        rels[k] = (o, p, s)
        twin = AnnotatedGraph(graph.objects, graph.attributes, tuple(rels))
        return SwapCase("relation", caption, graph, exchange_spans(caption, ps, po), twin,
                        (names[s], p, names[o]), index)
    return None


def attribute_swap(caption: str, graph: AnnotatedGraph, *, index: int = -1) -> Optional[SwapCase]:
    """The first pair of attributes of two objects that exchanges cleanly (module docstring), or None."""
    attrs = graph.attributes
    of = [{v for i, v in attrs if i == n} for n in range(len(graph.objects))]
    name_spans = [m for o in graph.objects for m in mentions(caption, o)]
    for ka in range(len(attrs)):
        for kb in range(ka + 1, len(attrs)):
            (a, x), (b, y) = attrs[ka], attrs[kb]
            if a == b or x == y or x in of[b] or y in of[a]:
                continue
            mx, my = _single(caption, x), _single(caption, y)
            if mx is None or my is None or _overlap(mx, my):
                continue
            if any(_overlap(m, n) for m in (mx, my) for n in name_spans):
                continue
            new = list(attrs)
            new[ka], new[kb] = (a, y), (b, x)
            twin = AnnotatedGraph(graph.objects, tuple(new), graph.relations)
            return SwapCase("attribute", caption, graph, exchange_spans(caption, mx, my), twin, (x, y), index)
    return None


def object_swap(caption: str, graph: AnnotatedGraph, *, index: int = -1) -> Optional[SwapCase]:
    """The first pair of objects whose names exchange cleanly (module docstring), or None."""
    names = graph.objects
    spans = [_single(caption, o) for o in names]
    before = graph.named_tuples()
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if names[i] == names[j] or spans[i] is None or spans[j] is None or _overlap(spans[i], spans[j]):
                continue
            new = list(names)
            new[i], new[j] = names[j], names[i]
            twin = AnnotatedGraph(tuple(new), graph.attributes, graph.relations)
            if twin.named_tuples() == before:
                continue
            return SwapCase("object", caption, graph, exchange_spans(caption, spans[i], spans[j]), twin,
                            (names[i], names[j]), index)
    return None


_BUILDERS = {"relation": relation_swap, "attribute": attribute_swap, "object": object_swap}


def swap_case(kind: str, caption: str, graph: AnnotatedGraph, *, index: int = -1) -> Optional[SwapCase]:
    """The swap of ``kind`` (one of :data:`SWAP_KINDS`) of a caption and its graph, or None."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown swap kind {kind!r}; expected one of {SWAP_KINDS}")
    case = _BUILDERS[kind](caption, graph, index=index)
    if case is not None and (case.swapped_caption == caption or case.swapped_graph.named_tuples() == graph.named_tuples()):
        return None  # the edit changed nothing (cannot happen by the rules above; kept as a guard)
    return case


def swap_cases(pairs: Iterable[Tuple[str, AnnotatedGraph]], kind: str,
               indices: Optional[Sequence[int]] = None) -> List[SwapCase]:
    """The cases of ``kind`` over ``(caption, graph)`` pairs, at most one per pair, in order."""
    out = []
    for n, (caption, graph) in enumerate(pairs):
        case = swap_case(kind, caption, graph, index=indices[n] if indices is not None else n)
        if case is not None:
            out.append(case)
    return out
