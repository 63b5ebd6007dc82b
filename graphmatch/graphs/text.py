"""Caption graphs: the text graph kinds of a graph recipe and the alignment of parses to the core tokens.

Text graphs come in four built-in kinds, registered in :data:`TEXT_GRAPHS` (the ``text_graph`` key
of a config's graph recipe):

* ``"words"`` — nodes are the caption's words (``x`` = token ids), no edges;
* ``"full"`` — the same nodes, every ordered pair an edge (GSMN's dense word graph);
* ``"dependency"`` — word nodes, edges follow the dependency parse in both directions (GSMN's
  sparse graph), ``edge_type`` = index of the dependency label in :data:`DEP_LABELS`;
* ``"scene"`` — nodes are the scene graph's objects, attributes and relations (``node_type``
  0 / 1 / 2), edges attribute->object (``edge_type`` 0), subject->relation (1) and relation->object
  (2); ``span`` says which words feed each node and the caption's token ids travel in ``words``
  (batched with ``follow_batch=["words"]``, giving ``words_batch``). A caption with no object falls
  back to word nodes (``node_type`` 3), so every caption gives a valid graph.

Each builder is called as ``builder(token_ids, scene_graph, *, item)`` and declares
``needs_parse``: whether it reads ``scene_graph`` (a parse of the caption aligned to the core
tokens, :func:`align_scene_graph`) or takes ``None``. A new kind is one registered function::

    @text_graph_builder("my_kind", needs_parse=True)
    def my_kind(token_ids, scene_graph, *, item): ...

The core tokenisation (:func:`graphmatch.data.vocab.tokenize_with_offsets`) is the caption's only
tokenisation: vocabulary ids come from it, and a parser's tokens are mapped onto it through their
character offsets by :func:`align_scene_graph`.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import torch

from graphmatch.graphs.data import TextGraph
from graphmatch.graphs.edges import full_edges
from graphmatch.registry import Registry
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation

#: Text graph kinds by name (``data.graph.text_graph``).
TEXT_GRAPHS = Registry("text graph", "text_graphs")
#: The built-in kinds.
TEXT_GRAPH_KINDS = ("words", "full", "dependency", "scene")
NODE_OBJECT, NODE_ATTRIBUTE, NODE_RELATION, NODE_WORD = 0, 1, 2, 3
EDGE_ATTRIBUTE_OF, EDGE_SUBJECT, EDGE_OBJECT = 0, 1, 2
#: Dependency labels of spaCy's English models (ClearNLP style); anything else maps to "dep".
DEP_LABELS = (
    "ROOT", "acl", "acomp", "advcl", "advmod", "agent", "amod", "appos", "attr", "aux", "auxpass", "case", "cc",
    "ccomp", "compound", "conj", "csubj", "csubjpass", "dative", "dep", "det", "dobj", "expl", "intj", "mark",
    "meta", "neg", "nmod", "npadvmod", "nsubj", "nsubjpass", "nummod", "oprd", "parataxis", "pcomp", "pobj",
    "poss", "preconj", "predet", "prep", "prt", "punct", "quantmod", "relcl", "xcomp",
)
_DEP_INDEX = {d: i for i, d in enumerate(DEP_LABELS)}
#: The label of an arc the alignment adds (a parser token split into several core tokens).
ALIGN_DEP = "dep"

__all__ = ["TEXT_GRAPHS", "TEXT_GRAPH_KINDS", "DEP_LABELS", "NODE_OBJECT", "NODE_ATTRIBUTE", "NODE_RELATION",
           "NODE_WORD", "EDGE_ATTRIBUTE_OF", "EDGE_SUBJECT", "EDGE_OBJECT", "text_graph_builder", "needs_parse",
           "build_word_graph", "build_dependency_graph", "build_scene_graph_graph", "build_text_graph",
           "align_scene_graph"]


def text_graph_builder(name: str, *, needs_parse: bool, config: Optional[type] = None) -> Callable[[Any], Any]:
    """Register a text graph kind in :data:`TEXT_GRAPHS`, declaring whether it reads a parse."""

    def deco(fn: Any) -> Any:
        fn.needs_parse = needs_parse
        TEXT_GRAPHS.register(name, fn, config=config)
        return fn

    return deco


def needs_parse(kind: str) -> bool:
    """Whether text graph ``kind`` needs a parse of each caption (an unknown kind is an error)."""
    return bool(getattr(TEXT_GRAPHS.get(kind), "needs_parse", True))


# ------------------------------------------------------------------------------------------ builders
def build_word_graph(
    token_ids: Union[Sequence[int], torch.Tensor], *, item: int = -1, edges: str = "none"
) -> TextGraph:
    """A :class:`TextGraph` whose nodes are the words of a caption (``x`` = token ids).

    ``span[i] = (i, i + 1)``. ``edges``: ``"none"`` or ``"full"`` (GSMN-dense word graph).
    """
    if edges not in ("none", "full"):
        raise ValueError(f"unknown edge mode {edges!r}; expected one of ('none', 'full')")
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    n = ids.numel()
    span = torch.stack([torch.arange(n), torch.arange(1, n + 1)], dim=1) if n else torch.empty(0, 2, dtype=torch.long)
    edge_index = full_edges(n) if edges == "full" else torch.empty(2, 0, dtype=torch.long)
    return TextGraph(x=ids, edge_index=edge_index, span=span, item=torch.tensor([item]), num_nodes=n)


def _check_ids(scene_graph: SceneGraph, token_ids: Sequence[int]) -> None:
    n = len(scene_graph.tokens)
    if len(token_ids) != n:
        raise ValueError(f"{len(token_ids)} token ids for {n} tokens")


def build_dependency_graph(scene_graph: SceneGraph, token_ids: Sequence[int], *, item: int = -1) -> TextGraph:
    """Word nodes with edges head<->dependent from ``scene_graph.heads`` / ``deps``.

    Both directions of every arc are edges (messages flow up and down the tree); ``edge_type`` is
    the label's index in :data:`DEP_LABELS`. Roots (head = itself) and punctuation arcs give no edge.
    """
    _check_ids(scene_graph, token_ids)
    if scene_graph.heads is None or scene_graph.deps is None:
        raise ValueError("the scene graph has no dependency parse (heads / deps are None)")
    src, dst, typ = [], [], []
    for i, (h, d) in enumerate(zip(scene_graph.heads, scene_graph.deps)):
        if h == i or d == "punct":
            continue
        t = _DEP_INDEX.get(d, _DEP_INDEX["dep"])
        src += [h, i]
        dst += [i, h]
        typ += [t, t]
    g = build_word_graph(token_ids, item=item)
    g.edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    g.edge_type = torch.tensor(typ, dtype=torch.long)
    return g


def build_scene_graph_graph(scene_graph: SceneGraph, token_ids: Sequence[int], *, item: int = -1) -> TextGraph:
    """Object / attribute / relation nodes of a parsed caption (see the module docstring).

    Each node keeps the ``span`` of the words that name it, so its feature can be pooled from the
    text encoder's word states. With no object, the words themselves are the nodes.
    """
    _check_ids(scene_graph, token_ids)
    n_tok = len(scene_graph.tokens)
    words = torch.as_tensor(list(token_ids), dtype=torch.long)
    if not scene_graph.objects:
        spans: List[Tuple[int, int]] = [(i, i + 1) for i in range(n_tok)]
        types = [NODE_WORD] * n_tok
        edges: list = []
        etypes: list = []
    else:
        objs, attrs, rels = scene_graph.objects, scene_graph.attributes, scene_graph.relations
        spans = [o.span for o in objs] + [a.span for a in attrs] + [r.span for r in rels]
        types = [NODE_OBJECT] * len(objs) + [NODE_ATTRIBUTE] * len(attrs) + [NODE_RELATION] * len(rels)
        edges, etypes = [], []
        for j, a in enumerate(attrs):
            edges.append((len(objs) + j, a.object))
            etypes.append(EDGE_ATTRIBUTE_OF)
        base = len(objs) + len(attrs)
        for k, r in enumerate(rels):
            edges += [(r.subject, base + k), (base + k, r.object)]
            etypes += [EDGE_SUBJECT, EDGE_OBJECT]
    return TextGraph(
        words=words,
        num_words=torch.tensor([n_tok]),
        span=torch.tensor(spans, dtype=torch.long).reshape(-1, 2),
        node_type=torch.tensor(types, dtype=torch.long),
        edge_index=torch.tensor(edges, dtype=torch.long).t().reshape(2, -1),
        edge_type=torch.tensor(etypes, dtype=torch.long),
        item=torch.tensor([item]),
        num_nodes=len(types),
    )


@text_graph_builder("words", needs_parse=False)
def words_text_graph(token_ids: Sequence[int], scene_graph: Optional[SceneGraph], *, item: int) -> TextGraph:
    """Word nodes, no edges."""
    return build_word_graph(token_ids, item=item)


@text_graph_builder("full", needs_parse=False)
def full_text_graph(token_ids: Sequence[int], scene_graph: Optional[SceneGraph], *, item: int) -> TextGraph:
    """Word nodes, every ordered pair of distinct words an edge."""
    return build_word_graph(token_ids, item=item, edges="full")


@text_graph_builder("dependency", needs_parse=True)
def dependency_text_graph(token_ids: Sequence[int], scene_graph: Optional[SceneGraph], *, item: int) -> TextGraph:
    """Word nodes, dependency arcs both ways (:func:`build_dependency_graph`)."""
    if scene_graph is None:
        raise ValueError("text graph 'dependency' needs a parse of the caption")
    return build_dependency_graph(scene_graph, token_ids, item=item)


@text_graph_builder("scene", needs_parse=True)
def scene_text_graph(token_ids: Sequence[int], scene_graph: Optional[SceneGraph], *, item: int) -> TextGraph:
    """Object / attribute / relation nodes (:func:`build_scene_graph_graph`)."""
    if scene_graph is None:
        raise ValueError("text graph 'scene' needs a parse of the caption")
    return build_scene_graph_graph(scene_graph, token_ids, item=item)


def build_text_graph(kind: str, scene_graph: Optional[SceneGraph], token_ids: Sequence[int], *,
                     item: int = -1) -> TextGraph:
    """A text graph of ``kind`` (a name registered in :data:`TEXT_GRAPHS`) from a parsed caption.

    ``token_ids`` are the vocabulary ids of ``scene_graph.tokens`` (one per token); kinds that need
    no parse (``words``, ``full``) accept ``scene_graph=None``.
    """
    try:
        builder = TEXT_GRAPHS.get(kind)
    except KeyError:
        raise ValueError(f"unknown text graph kind {kind!r}; expected one of {tuple(TEXT_GRAPHS.names())}") from None
    return builder(token_ids, scene_graph, item=item)


# ------------------------------------------------------------------------------------------ alignment
def _overlap(a: Tuple[int, int], b: Tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def align_scene_graph(sg: SceneGraph, offsets: Sequence[Tuple[str, int, int]]) -> SceneGraph:
    """``sg`` (a parse with its own tokens and their character ``offsets`` into ``sg.text``) carried
    over onto the core tokens ``offsets`` (``(token, start, end)`` of
    :func:`~graphmatch.data.vocab.tokenize_with_offsets` on the same text).

    The rules:

    * **Tokens.** The result's tokens are the core tokens, with the same ``text`` and core offsets.
      Each core token's *source* is the parser token it overlaps most (by characters; the first on a
      tie). Parser tokens that overlap no core token (punctuation, whitespace) drop out.
    * **Spans.** A node's span ``[s, e)`` over parser tokens covers the characters from the start of
      token ``s`` to the end of token ``e - 1``; its new span is the core tokens overlapping those
      characters. An empty span stays empty, placed before the first core token that starts at or
      after its position.
    * **Nodes left without words.** A node whose non-empty span covers no core token (e.g. a
      relation named only by punctuation) is dropped; an object dropped this way takes its
      attributes and relations with it, and the remaining objects are renumbered. ``note`` then
      says what was dropped.
    * **Dependency heads.** A core token takes the head and label of its source. A head that
      dropped out is followed up the parser's tree to the first ancestor that has a core token
      (a token whose ancestors all dropped out becomes a root, head = itself, label ``ROOT``).
      When one parser token is split into several core tokens, the first carries the arc and the
      others attach to it with label :data:`ALIGN_DEP`.
    * **Lemmas.** A core token spelling its source exactly (case aside) keeps the source's lemma;
      another gets its own text.

    Raises:
        ValueError: ``sg`` has no ``text`` / ``offsets``, or a core offset lies outside ``sg.text``.
    """
    if sg.text is None or sg.offsets is None:
        raise ValueError("align_scene_graph: the scene graph has no text / character offsets (a parse record "
                         "written before offsets were recorded cannot be aligned: parse the captions again)")
    text = sg.text
    core = [(str(t), int(s), int(e)) for t, s, e in offsets]
    for t, s, e in core:
        if not 0 <= s <= e <= len(text):
            raise ValueError(f"align_scene_graph: core token {t!r} [{s}, {e}] is outside the text "
                             f"({len(text)} characters)")
    ptoks = [(int(s), int(e)) for s, e in sg.offsets]
    n_core = len(core)

    # source parser token of every core token (most characters in common, first on a tie)
    source: List[Optional[int]] = []
    for _, cs, ce in core:
        best, best_ov = None, 0
        for j, pt in enumerate(ptoks):
            ov = _overlap(pt, (cs, ce))
            if ov > best_ov:
                best, best_ov = j, ov
        source.append(best)
    first_core_of: dict = {}
    for k, j in enumerate(source):
        if j is not None:
            first_core_of.setdefault(j, k)

    def char_range(span: Tuple[int, int]) -> Tuple[int, int]:
        s, e = span
        if s == e:
            pos = ptoks[s][0] if s < len(ptoks) else len(text)
            return pos, pos
        return ptoks[s][0], ptoks[e - 1][1]

    def core_span(span: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        cs, ce = char_range(span)
        if cs == ce and span[0] == span[1]:
            k = next((k for k, (_, s, _e) in enumerate(core) if s >= cs), n_core)
            return k, k
        hit = [k for k, (_, s, e) in enumerate(core) if _overlap((s, e), (cs, ce)) > 0]
        if not hit:
            return None
        return hit[0], hit[-1] + 1

    dropped = {"objects": 0, "attributes": 0, "relations": 0}
    new_index: dict = {}
    objects: List[SGObject] = []
    for i, o in enumerate(sg.objects):
        sp = core_span(o.span)
        if sp is None:
            dropped["objects"] += 1
            continue
        new_index[i] = len(objects)
        objects.append(SGObject(name=o.name, span=sp, head=o.head, lemma=o.lemma, quantity=o.quantity))
    attributes: List[SGAttribute] = []
    for a in sg.attributes:
        sp = core_span(a.span)
        if sp is None or a.object not in new_index:
            dropped["attributes"] += 1
            continue
        attributes.append(SGAttribute(object=new_index[a.object], value=a.value, span=sp))
    relations: List[SGRelation] = []
    for r in sg.relations:
        sp = core_span(r.span)
        if sp is None or r.subject not in new_index or r.object not in new_index:
            dropped["relations"] += 1
            continue
        relations.append(SGRelation(subject=new_index[r.subject], predicate=r.predicate,
                                    object=new_index[r.object], span=sp))

    heads: Optional[List[int]] = None
    deps: Optional[List[str]] = None
    if sg.heads is not None and sg.deps is not None:
        heads, deps = [], []
        for k, j in enumerate(source):
            if j is None:
                heads.append(k)
                deps.append("ROOT")
                continue
            if first_core_of[j] != k:  # a later piece of a split parser token
                heads.append(first_core_of[j])
                deps.append(ALIGN_DEP)
                continue
            h, seen = sg.heads[j], {j}
            while h not in first_core_of and sg.heads[h] != h and h not in seen:
                seen.add(h)
                h = sg.heads[h]
            if h == j or h not in first_core_of or first_core_of[h] == k:
                heads.append(k)
                deps.append("ROOT")
            else:
                heads.append(first_core_of[h])
                deps.append(sg.deps[j])
    lemmas: Optional[List[str]] = None
    if sg.lemmas is not None:
        lemmas = []
        for (t, s, e), j in zip(core, source):
            same = j is not None and (s, e) == ptoks[j]
            lemmas.append(sg.lemmas[j] if same else t)  # type: ignore[index]
    note = sg.note
    lost = [f"{v} {k if v != 1 else k[:-1]}" for k, v in dropped.items() if v]
    if lost:
        extra = f"alignment to the caption's word tokens dropped {', '.join(lost)} with no word token"
        note = f"{note}; {extra}" if note else extra
    return SceneGraph(tokens=[t for t, _, _ in core], objects=objects, attributes=attributes, relations=relations,
                      note=note, lemmas=lemmas, heads=heads, deps=deps, text=text,
                      offsets=[(s, e) for _, s, e in core])
