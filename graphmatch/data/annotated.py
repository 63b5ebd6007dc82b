"""Human-annotated scene graphs (FACTUAL, Visual Genome) as visual graphs.

A structure test needs an "image" side whose structure is known exactly. Here it is a human
scene graph: objects, attributes of objects and directed relations between objects, all given by
name. :func:`annotated_visual_graph` turns one into a :class:`~graphmatch.graphs.VisualGraph` that
the standard region encoders (``precomp_fc``) and GNN stacks read unchanged:

* one node per object, with float features ``x_i = [e(name_i), mean_{a in A_i} e(a)]`` (``[2 d]``;
  the attribute half is zero for an object without attributes), where ``e`` embeds a name;
* one edge ``subject -> object`` per relation (directed, as ``edge_index`` [2, E]; a relation of an
  object to itself is a self-loop), with ``edge_attr = e(predicate)`` ([E, d]) and ``edge_type`` the
  predicate's id in a predicate vocabulary (:func:`build_predicate_vocab`; id 1 is an unknown
  predicate);
* no ``boxes`` and no ``image_size``: the annotation has no geometry, so builders and matchers that
  need boxes (polar edges) do not apply.

**Name embeddings** (:class:`NameEmbedder`). A name is tokenised with the core tokenizer
(:func:`graphmatch.data.vocab.tokenize`) and embedded as the mean of its words' vectors
(``"train track"`` -> ``(e(train) + e(track)) / 2``; a name with no word embeds to zeros). A word's
vector comes from a local word-vector file in GloVe text format when one is given
(:func:`graphmatch.encoders.text.load_word_vectors`), else from a fixed random table: the vector
of word ``w`` is ``N(0, I_d) / sqrt(d)`` drawn from a generator seeded by
``sha256(f"{seed}:{w}")``, so it depends on the word and the seed only (not on the vocabulary, the
order of the data or the process). Words missing from a word-vector file get such a random vector,
scaled to the file's mean vector norm. The encoder's first linear layer is then what is learnt: a
learned projection of fixed codes rather than a learned table.

**Objects by index.** :class:`AnnotatedGraph` holds objects by index, so an annotation with two
objects of the same name (Visual Genome) fits; FACTUAL records name their objects uniquely and are
read by name (:meth:`AnnotatedGraph.from_record`).
"""
from __future__ import annotations

import hashlib
import os
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, Optional, Sequence, Tuple, Union

import torch

from graphmatch.data.vocab import Vocabulary, tokenize
from graphmatch.graphs.data import VisualGraph

__all__ = ["AnnotatedGraph", "NameEmbedder", "build_predicate_vocab", "annotated_visual_graph",
           "AnnotatedRelationEdges"]


@dataclass(frozen=True)
class AnnotatedGraph:
    """A human scene graph with objects by index.

    Attributes:
        objects: object names, node ``i`` is ``objects[i]``.
        attributes: ``(object index, value)`` pairs.
        relations: ``(subject index, predicate, object index)`` triples (directed).
    """

    objects: Tuple[str, ...]
    attributes: Tuple[Tuple[int, str], ...] = ()
    relations: Tuple[Tuple[int, str, int], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.objects)
        for i, o in enumerate(self.objects):
            if not isinstance(o, str) or not o.strip():
                raise ValueError(f"objects[{i}]: an object name must be a non-empty string, got {o!r}")
        for k, a in enumerate(self.attributes):
            if len(a) != 2 or not isinstance(a[1], str) or not a[1].strip():
                raise ValueError(f"attributes[{k}]: expected (object index, value), got {a!r}")
            if not isinstance(a[0], int) or not 0 <= a[0] < n:
                raise ValueError(f"attributes[{k}]: object index {a[0]!r} is outside 0..{n - 1}")
        for k, r in enumerate(self.relations):
            if len(r) != 3 or not isinstance(r[1], str) or not r[1].strip():
                raise ValueError(f"relations[{k}]: expected (subject index, predicate, object index), got {r!r}")
            for end, v in (("subject", r[0]), ("object", r[2])):
                if not isinstance(v, int) or not 0 <= v < n:
                    raise ValueError(f"relations[{k}]: {end} index {v!r} is outside 0..{n - 1}")

    @classmethod
    def from_names(cls, objects: Sequence[str], attributes: Iterable[Sequence[str]] = (),
                   relations: Iterable[Sequence[str]] = (), *, where: str = "") -> "AnnotatedGraph":
        """A graph whose attributes ``(object, value)`` and relations ``(subject, predicate,
        object)`` name their objects (FACTUAL's form; names must be unique among ``objects``)."""
        at = f"{where}: " if where else ""
        index: Dict[str, int] = {}
        for i, o in enumerate(objects):
            if o in index:
                raise ValueError(f"{at}objects[{i}]: {o!r} appears twice; objects named in attributes and relations "
                                 "must be unique by name")
            index[o] = i

        def idx(name: Any, field: str) -> int:
            if name not in index:
                raise ValueError(f"{at}{field}: {name!r} is not one of the objects {list(objects)}")
            return index[name]

        attrs = []
        for k, a in enumerate(attributes):
            if len(a) != 2:
                raise ValueError(f"{at}attributes[{k}]: expected [object, value], got {a!r}")
            attrs.append((idx(a[0], f"attributes[{k}][0]"), a[1]))
        rels = []
        for k, r in enumerate(relations):
            if len(r) != 3:
                raise ValueError(f"{at}relations[{k}]: expected [subject, predicate, object], got {r!r}")
            rels.append((idx(r[0], f"relations[{k}][0]"), r[1], idx(r[2], f"relations[{k}][2]")))
        try:
            return cls(tuple(objects), tuple(attrs), tuple(rels))
        except ValueError as e:
            raise ValueError(f"{at}{e}") from None

    @classmethod
    def from_record(cls, record: Dict[str, Any], *, where: str = "") -> "AnnotatedGraph":
        """The graph of a FACTUAL-format record (``objects``, ``attributes``, ``relations`` by name)."""
        at = f"{where}: " if where else ""
        if not isinstance(record, dict):
            raise ValueError(f"{at}a record must be a JSON object, got {type(record).__name__}")
        for key in ("objects", "attributes", "relations"):
            if not isinstance(record.get(key, []), list):
                raise ValueError(f"{at}{key!r} must be a list, got {type(record[key]).__name__}")
        if "objects" not in record:
            raise ValueError(f"{at}the record has no 'objects'")
        return cls.from_names(record["objects"], record.get("attributes", []), record.get("relations", []),
                              where=where)

    def named_tuples(self) -> FrozenSet[Tuple[str, ...]]:
        """The graph as a set of named tuples ``(name,)``, ``(name, value)``, ``(subject, predicate,
        object)``: equal for graphs that differ only in node order (SPICE-style)."""
        o = self.objects
        return frozenset([(n,) for n in o] + [(o[i], v) for i, v in self.attributes]
                         + [(o[s], p, o[t]) for s, p, t in self.relations])

    def to_names(self) -> Dict[str, Any]:
        """The FACTUAL-style form (lists by name)."""
        o = self.objects
        return {"objects": list(o), "attributes": [[o[i], v] for i, v in self.attributes],
                "relations": [[o[s], p, o[t]] for s, p, t in self.relations]}


def _seeded_vector(word: str, dim: int, seed: int) -> torch.Tensor:
    digest = hashlib.sha256(f"{seed}:{word}".encode("utf-8")).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return torch.randn(dim, generator=gen) / math.sqrt(dim)


class NameEmbedder:
    """Word vectors for names of objects, attributes and predicates (see the module docstring).

    Args:
        dim: vector size ``d`` (with a word-vector file: the file's, checked when given).
        seed: seed of the random table.
        vectors: ``{word: vector [d]}`` read from a file (:meth:`from_word_vectors`).

    ``embed(name)`` is the mean of ``word(w)`` over the name's tokens; ``word(w)`` is the file's
    vector, else the seeded random vector (times :attr:`scale`, the file's mean norm, 1 without a file).
    """

    def __init__(self, dim: int = 300, *, seed: int = 0, vectors: Optional[Dict[str, torch.Tensor]] = None,
                 scale: float = 1.0) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"NameEmbedder: dim must be a positive int, got {dim!r}")
        self.dim, self.seed, self.scale = dim, int(seed), float(scale)
        self._vectors: Dict[str, torch.Tensor] = dict(vectors or {})
        for w, v in self._vectors.items():
            if tuple(v.shape) != (dim,):
                raise ValueError(f"NameEmbedder: the vector of {w!r} has shape {tuple(v.shape)}, expected ({dim},)")
        self._cache: Dict[str, torch.Tensor] = {}

    @classmethod
    def from_word_vectors(cls, path: Union[str, "os.PathLike[str]"], words: Iterable[str], *, seed: int = 0,
                          dim: Optional[int] = None) -> "NameEmbedder":
        """Vectors of the tokens of ``words`` (names) read from a GloVe-format text file."""
        from graphmatch.encoders.text import load_word_vectors

        vocab = sorted({t for w in words for t in tokenize(w)})
        vectors, found = load_word_vectors(path, vocab, dim=dim)
        table = {w: vectors[i] for i, w in enumerate(vocab) if found[i]}
        scale = float(vectors[found].norm(dim=1).mean()) if found.any() else 1.0
        return cls(vectors.size(1), seed=seed, vectors=table, scale=scale)

    @property
    def n_file_words(self) -> int:
        """How many words have a vector from the file."""
        return len(self._vectors)

    def word(self, w: str) -> torch.Tensor:
        """The vector ``[d]`` of one token."""
        v = self._vectors.get(w)
        if v is not None:
            return v
        v = self._cache.get(w)
        if v is None:
            v = self._cache[w] = _seeded_vector(w, self.dim, self.seed) * self.scale
        return v

    def embed(self, name: str) -> torch.Tensor:
        """The vector ``[d]`` of a (multi-word) name: the mean of its tokens' vectors (zeros for none)."""
        toks = tokenize(name)
        if not toks:
            return torch.zeros(self.dim)
        return torch.stack([self.word(t) for t in toks]).mean(0)

    def __repr__(self) -> str:
        return f"NameEmbedder(dim={self.dim}, seed={self.seed}, file_words={self.n_file_words})"


def build_predicate_vocab(graphs: Iterable[AnnotatedGraph], *, min_count: int = 1) -> Vocabulary:
    """The predicates of ``graphs`` as a :class:`~graphmatch.data.vocab.Vocabulary` (one entry per
    whole predicate, ``"sit on"``; by count, then alphabetically; id 1 = unknown)."""
    counts: Counter = Counter(p for g in graphs for _, p, _ in g.relations)
    return Vocabulary.build([[p] for p, c in counts.items() for _ in range(c)], min_count=min_count)


def annotated_visual_graph(graph: AnnotatedGraph, embedder: NameEmbedder, predicates: Vocabulary, *,
                           item: int = -1) -> VisualGraph:
    """The :class:`~graphmatch.graphs.VisualGraph` of an annotated scene graph (module docstring).

    Shapes:
        ``x`` [N, 2 d] float32, ``edge_index`` [2, E] (subject -> object), ``edge_attr`` [E, d],
        ``edge_type`` [E] long (predicate ids), ``item`` [1]; N objects, E relations.
    """
    d = embedder.dim
    n = len(graph.objects)
    names = torch.stack([embedder.embed(o) for o in graph.objects]) if n else torch.zeros(0, d)
    attrs = torch.zeros(n, d)
    count = torch.zeros(n)
    for i, v in graph.attributes:
        attrs[i] += embedder.embed(v)
        count[i] += 1
    attrs = attrs / count.clamp(min=1).unsqueeze(1)
    rels = graph.relations
    edge_index = torch.tensor([[s for s, _, _ in rels], [t for _, _, t in rels]], dtype=torch.long).reshape(2, -1)
    edge_attr = torch.stack([embedder.embed(p) for _, p, _ in rels]) if rels else torch.zeros(0, d)
    edge_type = torch.tensor([predicates.id_of(p) for _, p, _ in rels], dtype=torch.long)
    return VisualGraph(x=torch.cat([names, attrs], dim=1).float(), edge_index=edge_index,
                       edge_attr=edge_attr.float(), edge_type=edge_type, item=torch.tensor([item]), num_nodes=n)


class AnnotatedRelationEdges:
    """The visual-edge declaration of annotated graphs, for a graph recipe (``visual_edges.name``).

    Annotated graphs have the edges of the ``relations`` builder (``subject -> object``, predicate
    ids in ``edge_type``) but their ``edge_attr`` is the predicate embedding ``[E, d]`` instead of
    box geometry. This object carries that declaration where a recipe names its visual edges: its
    ``__name__`` is ``"relations"`` (what a matcher's ``graph_needs`` is checked against) and its
    ``edge_dim`` is ``d``, so :func:`graphmatch.models.build_matcher` builds GNN stacks that read
    the predicate features. It builds no graph itself (:func:`annotated_visual_graph` does).
    """

    needs_boxes = False
    reads_relations = True

    def __init__(self, edge_dim: int) -> None:
        if isinstance(edge_dim, bool) or not isinstance(edge_dim, int) or edge_dim < 1:
            raise ValueError(f"AnnotatedRelationEdges: edge_dim must be a positive int, got {edge_dim!r}")
        self.__name__ = "relations"
        self.edge_dim = edge_dim

    def __repr__(self) -> str:
        return f"AnnotatedRelationEdges(edge_dim={self.edge_dim})"
