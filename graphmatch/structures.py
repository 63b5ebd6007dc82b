"""Typed structures that cross package boundaries.

* :class:`Regions` — what a region extractor (``detectors/``) or a feature reader produces for one
  image: boxes in image pixels, pooled features, and optional class / attribute predictions.
* :class:`SceneGraph` — what a caption parser (``parsers/``) produces for one caption: the tokens,
  the objects, their attributes and the relations between them, each with the token span it
  comes from (so node features can be read off a contextual text encoder's word states).

* :class:`NodeEmb` — what an encoder gives a matcher: padded node embeddings of a batch of graphs,
  with, where the matcher needs them, the graphs' dense adjacency, edge features and a pooled
  global vector.

These are plain containers with shape validation; graph builders in :mod:`graphmatch.graphs` turn
regions and scene graphs into PyG ``Data`` objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

Span = Tuple[int, int]  # [start, end) token offsets within the caption


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _check_finite_rows(t: torch.Tensor, name: str) -> None:
    if t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS and np.isfinite(t.detach().numpy()).all():
        return  # the common case, checked by numpy: several times faster than torch on one image's rows
    bad = ~torch.isfinite(t).all(dim=1)  # t is [N, K]
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"Regions.{name}: row {i} contains NaN or inf; {int(bad.sum())} of {t.size(0)} rows do")


@dataclass
class Regions:
    """Regions of one image.

    Attributes:
        boxes: float [N, 4], ``(x1, y1, x2, y2)`` in pixels of the (orientation-corrected) image.
        features: float [N, D], one pooled feature per region.
        image_size: ``(width, height)`` in pixels.
        labels: optional long [N] class ids; ``scores``: optional float [N] class confidences.
        attr_labels / attr_scores: optional long / float [N] (or [N, K]) attribute predictions.
        flags: free-form notes, e.g. ``{"fallback_whole_image": True}`` when nothing was detected.

    Validated on construction (``ValueError`` naming the field and the first bad row): shapes,
    finite boxes and (float) features, no inverted box (``x2 >= x1`` and ``y2 >= y1``; boxes of
    zero width or height are allowed), ``image_size`` > 0.
    """

    boxes: torch.Tensor
    features: torch.Tensor
    image_size: Tuple[int, int]
    labels: Optional[torch.Tensor] = None
    scores: Optional[torch.Tensor] = None
    attr_labels: Optional[torch.Tensor] = None
    attr_scores: Optional[torch.Tensor] = None
    flags: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = torch.as_tensor(self.boxes, dtype=torch.float32)
        self.features = torch.as_tensor(self.features)
        if self.boxes.dim() != 2 or self.boxes.size(-1) != 4:
            raise ValueError(f"Regions.boxes must be [N, 4], got {tuple(self.boxes.shape)}")
        if self.features.dim() != 2:
            raise ValueError(f"Regions.features must be [N, D], got {tuple(self.features.shape)}")
        n = self.boxes.size(0)
        if self.features.size(0) != n:
            raise ValueError(
                f"Regions: {n} boxes but {self.features.size(0)} feature rows; they must match"
            )
        for name in ("labels", "scores", "attr_labels", "attr_scores"):
            v = getattr(self, name)
            if v is not None:
                v = torch.as_tensor(v)
                if v.size(0) != n:
                    raise ValueError(f"Regions.{name} has {v.size(0)} rows for {n} regions")
                setattr(self, name, v)
        _check_finite_rows(self.boxes, "boxes")
        if self.features.is_floating_point():
            _check_finite_rows(self.features, "features")
        inverted = (self.boxes[:, 2] < self.boxes[:, 0]) | (self.boxes[:, 3] < self.boxes[:, 1])
        if inverted.any():
            i = int(inverted.nonzero()[0, 0])
            raise ValueError(f"Regions.boxes: row {i} {self.boxes[i].tolist()} is inverted (x2 < x1 or y2 < y1; "
                             f"boxes are (x1, y1, x2, y2)); {int(inverted.sum())} of {n} rows are inverted")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"Regions.image_size must be (width, height) > 0, got {self.image_size}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    def __len__(self) -> int:
        return self.boxes.size(0)

    @property
    def feature_dim(self) -> int:
        return self.features.size(1)


@dataclass
class SGObject:
    """An entity of a caption.

    Attributes:
        name: the full name as written, compounds included (``"train tracks"``).
        span: ``[start, end)`` token offsets of the name.
        head: the head noun's lemma (``"track"``); default: last word of ``lemma``.
        lemma: the lemmatised full name (``"train track"``); default: ``name``.
        quantity: a count or quantifier kept apart from attributes (``"two"``, ``"3"``).
    """

    name: str
    span: Span
    head: Optional[str] = None
    lemma: Optional[str] = None
    quantity: Optional[str] = None

    def __post_init__(self) -> None:
        if self.lemma is None:
            self.lemma = self.name
        if self.head is None:
            self.head = self.lemma.split()[-1] if self.lemma else self.lemma


@dataclass
class SGAttribute:
    """An attribute ``value`` of object number ``object``."""

    object: int
    value: str
    span: Span


@dataclass
class SGRelation:
    """A relation ``(subject, predicate, object)`` between two object numbers."""

    subject: int
    predicate: str
    object: int
    span: Span


def _json_type(v: Any) -> str:
    """How a decoded JSON value is named in messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(v), type(v).__name__)


def _field_path(prefix: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def _check_fields(d: Dict[str, Any], known: Sequence[str], prefix: str, at: str) -> None:
    """Refuse a key of ``d`` that is not in ``known`` (a misspelt field would else be ignored)."""
    import difflib

    for k in d:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{at}scene-graph record field {_field_path(prefix, k)!r} is unknown "
                             f"(known: {', '.join(known)}){hint}")


class _RecordReader:
    """Typed access to the fields of a scene-graph record, with errors naming the field."""

    def __init__(self, record: Dict[str, Any], at: str) -> None:
        self.record, self.at = record, at

    def error(self, field_name: str, problem: str) -> ValueError:
        return ValueError(f"{self.at}scene-graph record field {field_name!r} {problem}")

    def list(self, key: str) -> List[Any]:
        v = self.record.get(key)
        if v is None and key not in RECORD_REQUIRED:
            return []
        if not isinstance(v, list):
            raise self.error(key, f"must be a list, got {_json_type(v)}")
        return v

    def item(self, v: Any, where: str, known: Sequence[str], required: Sequence[str]) -> Dict[str, Any]:
        if not isinstance(v, dict):
            raise self.error(where, f"must be an object with the fields {', '.join(known)}, got {_json_type(v)}")
        _check_fields(v, known, where, self.at)
        for r in required:
            if r not in v:
                raise self.error(_field_path(where, r), "is missing")
        return v

    def str(self, d: Any, key: Any, prefix: str = "") -> str:
        v = d[key] if isinstance(d, list) else d.get(key)
        if not isinstance(v, str):
            raise self.error(_field_path(prefix, key), f"must be a string, got {_json_type(v)}")
        return v

    def opt_str(self, d: Dict[str, Any], key: str, prefix: str = "") -> Optional[str]:
        return None if d.get(key) is None else self.str(d, key, prefix)

    def int(self, d: Any, key: Any, prefix: str = "") -> int:
        v = d[key] if isinstance(d, list) else d.get(key)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.error(_field_path(prefix, key), f"must be an integer, got {_json_type(v)} {v!r}")
        return v

    def span(self, d: Any, key: Any, prefix: str = "") -> Span:
        v = d[key] if isinstance(d, list) else d.get(key)
        where = _field_path(prefix, key)
        if not (isinstance(v, list) and len(v) == 2):
            raise self.error(where, f"must be a [start, end] pair of integers, got {_json_type(v)} {v!r}")
        return (self.int(v, 0, where), self.int(v, 1, where))

    def str_list(self, key: str, optional: bool = False) -> Optional[List[str]]:
        v = self.record.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, list):
            raise self.error(key, f"must be a list of strings, got {_json_type(v)}")
        return [self.str(v, k, key) for k in range(len(v))]

    def int_list(self, key: str) -> Optional[List[int]]:
        v = self.record.get(key)
        if v is None:
            return None
        if not isinstance(v, list):
            raise self.error(key, f"must be a list of integers, got {_json_type(v)}")
        return [self.int(v, k, key) for k in range(len(v))]


#: The fields of a scene-graph record (:meth:`SceneGraph.to_record`), in the order it writes them.
RECORD_FIELDS = ("text", "tokens", "offsets", "objects", "attributes", "relations", "lemmas", "heads", "deps",
                 "note")
#: Fields a record must have; the others are left out when the graph has no value for them.
RECORD_REQUIRED = ("tokens", "objects", "attributes", "relations")
_OBJECT_FIELDS = ("name", "span", "head", "lemma", "quantity")
_ATTRIBUTE_FIELDS = ("object", "value", "span")
_RELATION_FIELDS = ("subject", "predicate", "object", "span")


@dataclass
class SceneGraph:
    """The scene graph of one caption.

    Indices in attributes and relations refer to positions in ``objects``, one object per entity
    mentioned (two objects may share a name: ``"an old person kisses a young person"``;
    :func:`merge_instances` gives the one-object-per-name view). Spans are ``[start, end)``
    offsets into ``tokens``. ``note`` explains an empty graph (e.g. ``"empty caption"``).
    Optional token-level analyses (same length as ``tokens``) let graph builders work without the
    parser: ``lemmas``; ``heads`` (index of each token's syntactic head, the token itself for a
    root) and ``deps`` (dependency labels).

    ``text`` is the caption the graph was parsed from, exactly as given to the parser, and
    ``offsets`` the ``[start, end)`` character offsets of each token in ``text`` (one per token,
    in text order). They tie the parser's tokens to any other tokenisation of the same caption
    (e.g. the vocabulary's), so that token spans can be carried over. A parser that cleans a
    caption before tokenising it (markup, entities, spacing) still gives offsets into the
    original text; a token then need not equal ``text[start:end]``.

    Serialised one way: :meth:`to_record` / :meth:`from_record` (the JSON object of a parse cache
    entry, a ``graphmatch parse`` output line and a parse sidecar line). :meth:`to_dict` is not a
    serialisation but the normalised tuple form that parser evaluation compares.

    Raises:
        ValueError: on construction, naming the field (as in a record: ``objects[2].span``) of a
            span outside the tokens, an index outside the objects or tokens, a token analysis or
            ``offsets`` of the wrong length, offsets outside ``text`` or out of order, or offsets
            without ``text``.
    """

    tokens: List[str]
    objects: List[SGObject] = field(default_factory=list)
    attributes: List[SGAttribute] = field(default_factory=list)
    relations: List[SGRelation] = field(default_factory=list)
    note: Optional[str] = None
    lemmas: Optional[List[str]] = None
    heads: Optional[List[int]] = None
    deps: Optional[List[str]] = None
    text: Optional[str] = None
    offsets: Optional[List[Span]] = None

    def __post_init__(self) -> None:
        n_tok, n_obj = len(self.tokens), len(self.objects)

        def check_span(span: Span, what: str) -> None:
            s, e = span
            if not (0 <= s <= e <= n_tok):
                raise ValueError(f"SceneGraph: {what} span {list(span)} is outside the {n_tok} tokens")

        for i, o in enumerate(self.objects):
            check_span(o.span, f"objects[{i}] ({o.name!r})")
        for j, a in enumerate(self.attributes):
            if not 0 <= a.object < n_obj:
                raise ValueError(f"SceneGraph: attributes[{j}] ({a.value!r}) refers to object {a.object} "
                                 f"of {n_obj}")
            check_span(a.span, f"attributes[{j}] ({a.value!r})")
        for name in ("lemmas", "heads", "deps"):
            v = getattr(self, name)
            if v is not None and len(v) != n_tok:
                raise ValueError(f"SceneGraph: {name} has {len(v)} entries for {n_tok} tokens")
        if self.heads is not None:
            bad = next((k for k, h in enumerate(self.heads) if not 0 <= h < n_tok), None)
            if bad is not None:
                raise ValueError(f"SceneGraph: heads[{bad}] = {self.heads[bad]} must index tokens (0..{n_tok - 1})")
        for k, r in enumerate(self.relations):
            if not (0 <= r.subject < n_obj and 0 <= r.object < n_obj):
                raise ValueError(f"SceneGraph: relations[{k}] ({r.predicate!r}) refers to objects "
                                 f"({r.subject}, {r.object}) of {n_obj}")
            check_span(r.span, f"relations[{k}] ({r.predicate!r})")
        if self.text is not None and not isinstance(self.text, str):
            raise ValueError(f"SceneGraph: text must be a str, got {type(self.text).__name__}")
        if self.offsets is not None:
            if self.text is None:
                raise ValueError("SceneGraph: offsets are character offsets into text, but text is None")
            if len(self.offsets) != n_tok:
                raise ValueError(f"SceneGraph: offsets has {len(self.offsets)} entries for {n_tok} tokens "
                                 "(one [start, end] per token)")
            self.offsets = [(int(s), int(e)) for s, e in self.offsets]
            n_chars, prev = len(self.text), 0
            for k, (s, e) in enumerate(self.offsets):
                if not 0 <= s <= e <= n_chars:
                    raise ValueError(f"SceneGraph: offsets[{k}] [{s}, {e}] of token {self.tokens[k]!r} is outside "
                                     f"the text ({n_chars} characters)")
                if s < prev:
                    raise ValueError(f"SceneGraph: offsets[{k}] [{s}, {e}] starts before offsets[{k - 1}]; "
                                     "token offsets must be in text order")
                prev = s

    # ------------------------------------------------------------------ the record form
    def to_record(self) -> Dict[str, Any]:
        """The JSON-safe record of this graph, from which :meth:`from_record` rebuilds it exactly::

            {"text": caption, "tokens": [...], "offsets": [[start_char, end_char], ...],
             "objects": [{"name", "span": [s, e], "head", "lemma", "quantity"?}],
             "attributes": [{"object", "value", "span"}],
             "relations": [{"subject", "predicate", "object", "span"}],
             "lemmas"?, "heads"?, "deps"?, "note"?}

        Spans index ``tokens``; ``offsets`` index ``text``. Keys are written in the order of
        :data:`RECORD_FIELDS`; ``text``, ``offsets``, ``quantity``, ``lemmas``, ``heads``, ``deps``
        and ``note`` are left out where the graph has none (``None``).
        """
        rec: Dict[str, Any] = {}
        if self.text is not None:
            rec["text"] = self.text
        rec["tokens"] = list(self.tokens)
        if self.offsets is not None:
            rec["offsets"] = [[int(s), int(e)] for s, e in self.offsets]
        objects = []
        for o in self.objects:
            d: Dict[str, Any] = {"name": o.name, "span": [int(o.span[0]), int(o.span[1])], "head": o.head,
                                 "lemma": o.lemma}
            if o.quantity is not None:
                d["quantity"] = o.quantity
            objects.append(d)
        rec["objects"] = objects
        rec["attributes"] = [{"object": int(a.object), "value": a.value, "span": [int(a.span[0]), int(a.span[1])]}
                             for a in self.attributes]
        rec["relations"] = [{"subject": int(r.subject), "predicate": r.predicate, "object": int(r.object),
                             "span": [int(r.span[0]), int(r.span[1])]} for r in self.relations]
        if self.lemmas is not None:
            rec["lemmas"] = list(self.lemmas)
        if self.heads is not None:
            rec["heads"] = [int(h) for h in self.heads]
        if self.deps is not None:
            rec["deps"] = list(self.deps)
        if self.note is not None:
            rec["note"] = self.note
        return rec

    @classmethod
    def from_record(cls, record: Any, *, where: Optional[str] = None) -> "SceneGraph":
        """Rebuild a :class:`SceneGraph` from its record (:meth:`to_record`).

        Args:
            record: the decoded JSON object.
            where: where the record comes from, put in front of error messages
                (``"data/train_graphs.jsonl:12"``).

        Raises:
            ValueError: the record is not an object, lacks a required field
                (:data:`RECORD_REQUIRED`), has an unknown field, a field of the wrong type, or
                values that do not fit together (a span outside the tokens, offsets of the wrong
                length ...). The message names the field, e.g. ``objects[2].span``, and what is
                wrong with it.
        """
        at = f"{where}: " if where else ""
        if not isinstance(record, dict):
            raise ValueError(f"{at}a scene-graph record must be a JSON object, got {_json_type(record)}")
        _check_fields(record, RECORD_FIELDS, "", at)
        for key in RECORD_REQUIRED:
            if key not in record:
                raise ValueError(f"{at}scene-graph record has no {key!r} field (required: "
                                 f"{', '.join(RECORD_REQUIRED)})")
        get = _RecordReader(record, at)
        objects = []
        for i, o in enumerate(get.list("objects")):
            f = f"objects[{i}]"
            item = get.item(o, f, _OBJECT_FIELDS, ("name", "span"))
            objects.append(SGObject(name=get.str(item, "name", f), span=get.span(item, "span", f),
                                    head=get.opt_str(item, "head", f), lemma=get.opt_str(item, "lemma", f),
                                    quantity=get.opt_str(item, "quantity", f)))
        attributes = []
        for j, a in enumerate(get.list("attributes")):
            f = f"attributes[{j}]"
            item = get.item(a, f, _ATTRIBUTE_FIELDS, _ATTRIBUTE_FIELDS)
            attributes.append(SGAttribute(object=get.int(item, "object", f), value=get.str(item, "value", f),
                                          span=get.span(item, "span", f)))
        relations = []
        for k, r in enumerate(get.list("relations")):
            f = f"relations[{k}]"
            item = get.item(r, f, _RELATION_FIELDS, _RELATION_FIELDS)
            relations.append(SGRelation(subject=get.int(item, "subject", f), predicate=get.str(item, "predicate", f),
                                        object=get.int(item, "object", f), span=get.span(item, "span", f)))
        offsets = None
        if record.get("offsets") is not None:
            offsets = [get.span(record["offsets"], k, "offsets") for k in range(len(get.list("offsets")))]
        fields = dict(tokens=get.str_list("tokens"), objects=objects, attributes=attributes, relations=relations,
                      note=get.opt_str(record, "note"), lemmas=get.str_list("lemmas", optional=True),
                      heads=get.int_list("heads"), deps=get.str_list("deps", optional=True),
                      text=get.opt_str(record, "text"), offsets=offsets)
        try:
            return cls(**fields)
        except ValueError as e:
            msg = str(e)
            if msg.startswith("SceneGraph: "):
                msg = msg[len("SceneGraph: "):]
            raise ValueError(f"{at}scene-graph record: {msg}") from None

    def to_dict(self) -> Dict[str, Any]:
        """The normalised tuple form that parser evaluation compares, as in FACTUAL-style gold
        JSONL records: ``objects`` (unique lemmatised names), ``attributes`` ``[object, value]`` and
        ``relations`` ``[subject, predicate, object]``, each sorted and without duplicates.

        Not a serialisation: tokens, spans, offsets, quantities, duplicates and node order are
        lost. Use :meth:`to_record` / :meth:`from_record` to store a graph. A parser's graph keeps
        one object per mention; FACTUAL-style scoring compares ``merge_instances(g).to_dict()``
        (:func:`merge_instances`), which also drops relations between two instances of a name."""
        names = [o.lemma or o.name for o in self.objects]
        return {
            "objects": sorted(set(names)),
            "attributes": [list(t) for t in sorted({(names[a.object], a.value) for a in self.attributes})],
            "relations": [list(t) for t in sorted({(names[r.subject], r.predicate, names[r.object])
                                                   for r in self.relations})],
        }

    def to_networkx(self) -> Any:
        """A typed ``networkx.DiGraph``: object, attribute and relation nodes (``kind`` attribute)."""
        import networkx as nx

        g = nx.DiGraph()
        for i, o in enumerate(self.objects):
            g.add_node(("object", i), kind="object", label=o.name, span=o.span)
        for j, a in enumerate(self.attributes):
            g.add_node(("attribute", j), kind="attribute", label=a.value, span=a.span)
            g.add_edge(("attribute", j), ("object", a.object), kind="attribute_of")
        for k, r in enumerate(self.relations):
            g.add_node(("relation", k), kind="relation", label=r.predicate, span=r.span)
            g.add_edge(("object", r.subject), ("relation", k), kind="subject")
            g.add_edge(("relation", k), ("object", r.object), kind="object")
        return g


def merge_instances(sg: SceneGraph) -> SceneGraph:
    """The FACTUAL-style view of a scene graph: one object per name.

    A parser's graph keeps one object per mention (``"an old person kisses a young person"``:
    two ``person`` objects and a ``kiss`` relation between them). FACTUAL (Li et al., 2023,
    https://arxiv.org/abs/2305.17497) annotates one object per name, and parser scoring
    compares that view. Objects with the same name key (``lemma``, else ``name``) become one,
    at the place of the first of them, keeping its name, span and head and the first
    ``quantity`` given; attributes are the union over the merged objects (each ``(object,
    value)`` once, first span kept); relations are remapped, and a relation of an object to
    itself (from two instances of one name) and repeated ``(subject, predicate, object)``
    triples are dropped. Tokens, token analyses, ``text``, ``offsets`` and ``note`` are kept.

    Args:
        sg: any scene graph (a graph already unique by name comes back equal to itself).

    Returns:
        A new :class:`SceneGraph`; ``sg`` is not changed.
    """
    if not isinstance(sg, SceneGraph):
        raise TypeError(f"merge_instances: sg must be a SceneGraph, got {type(sg).__name__}")
    where: Dict[str, int] = {}
    new_index: List[int] = []
    objects: List[SGObject] = []
    for o in sg.objects:
        key = o.lemma or o.name
        k = where.get(key)
        if k is None:
            k = where[key] = len(objects)
            objects.append(SGObject(name=o.name, span=o.span, head=o.head, lemma=o.lemma, quantity=o.quantity))
        elif objects[k].quantity is None and o.quantity is not None:
            objects[k].quantity = o.quantity
        new_index.append(k)
    attributes: List[SGAttribute] = []
    seen_attr = set()
    for a in sg.attributes:
        key2 = (new_index[a.object], a.value)
        if key2 not in seen_attr:
            seen_attr.add(key2)
            attributes.append(SGAttribute(object=key2[0], value=a.value, span=a.span))
    relations: List[SGRelation] = []
    seen_rel = set()
    for r in sg.relations:
        key3 = (new_index[r.subject], r.predicate, new_index[r.object])
        if key3[0] != key3[2] and key3 not in seen_rel:
            seen_rel.add(key3)
            relations.append(SGRelation(subject=key3[0], predicate=r.predicate, object=key3[2], span=r.span))
    return SceneGraph(tokens=list(sg.tokens), objects=objects, attributes=attributes, relations=relations,
                      note=sg.note, lemmas=None if sg.lemmas is None else list(sg.lemmas),
                      heads=None if sg.heads is None else list(sg.heads),
                      deps=None if sg.deps is None else list(sg.deps), text=sg.text,
                      offsets=None if sg.offsets is None else list(sg.offsets))


# --------------------------------------------------------------------------------------------
# the image <-> caption correspondence
# --------------------------------------------------------------------------------------------

def _index_array(values: Any, what: str) -> "np.ndarray":
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.size == 0:  # np.asarray([]) is float64; an empty index list is still valid
        return arr.astype(np.int64).reshape(-1) if arr.ndim <= 1 else arr.astype(np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer image indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _some(idx: "np.ndarray", limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in idx[:limit])
    return shown + (f", ... ({len(idx)} in total)" if len(idx) > limit else "")


class Correspondence:
    """Which image each caption describes: ``img_of_caption[c]`` is the image index of caption ``c``.

    The one place that turns this map into groups, subsets, folds and positive masks (nothing
    assumes a fixed number of captions per image).

    Args:
        img_of_caption: integer ``[n_captions]`` (numpy array, torch tensor or list).
        n_images: the number of images (default ``max + 1``).
        every_image_captioned: require at least one caption per image (the retrieval protocol
            needs it; a training batch always has it).

    Raises:
        ValueError: ``img_of_caption`` is not 1-D or not integral, holds an index outside
            ``[0, n_images)`` (naming the captions), or, with ``every_image_captioned``, an image
            has no caption (naming the images).
    """

    __slots__ = ("_img", "n_images", "_groups")

    def __init__(self, img_of_caption: Any, n_images: Optional[int] = None, *,
                 every_image_captioned: bool = True) -> None:
        img = _index_array(img_of_caption, "img_of_caption")
        if img.ndim != 1:
            raise ValueError(f"img_of_caption must be 1-D (one image index per caption), got shape {tuple(img.shape)}")
        if n_images is None:
            n_images = int(img.max()) + 1 if img.size else 0
        n_images = int(n_images)
        if n_images < 0:
            raise ValueError(f"n_images must be >= 0, got {n_images}")
        if img.size:
            bad = np.flatnonzero((img < 0) | (img >= n_images))
            if len(bad):
                raise ValueError(f"img_of_caption holds image indices outside [0, {n_images}): "
                                 f"captions {_some(bad)} point to images {_some(img[bad])}")
        if every_image_captioned:
            empty = np.flatnonzero(np.bincount(img, minlength=n_images) == 0)
            if len(empty):
                raise ValueError(f"{len(empty)} image(s) have no caption in img_of_caption (every image needs at "
                                 f"least one): images {_some(empty)}")
        img = img.copy()
        img.setflags(write=False)
        self._img = img
        self.n_images = n_images
        self._groups: Optional[List[np.ndarray]] = None

    @classmethod
    def from_ids(cls, caption_image_ids: Sequence[str], image_ids: Sequence[str], **kw: Any) -> "Correspondence":
        """From the image id of every caption and the id of every image (row order).

        Raises:
            ValueError: an image id repeats, or a caption's id is not among ``image_ids`` (naming
                the caption).
        """
        row: Dict[str, int] = {}
        for i, s in enumerate(image_ids):
            if s in row:
                raise ValueError(f"image id {s!r} appears twice (images {row[s]} and {i})")
            row[s] = i
        img = np.empty(len(caption_image_ids), np.int64)
        for c, s in enumerate(caption_image_ids):
            if s not in row:
                raise ValueError(f"caption {c}: image id {s!r} is not one of the {len(row)} image ids")
            img[c] = row[s]
        return cls(img, len(row), **kw)

    @classmethod
    def contiguous(cls, n_images: int, captions_per_image: int) -> "Correspondence":
        """``captions_per_image`` consecutive captions per image (the precomp layout without ids)."""
        return cls(np.repeat(np.arange(int(n_images), dtype=np.int64), int(captions_per_image)), n_images)

    # ------------------------------------------------------------------ views
    @property
    def img_of_caption(self) -> "np.ndarray":
        """Read-only int64 ``[n_captions]``."""
        return self._img

    @property
    def n_captions(self) -> int:
        return int(self._img.size)

    def tensor(self, device: Any = None) -> torch.Tensor:
        """``img_of_caption`` as a long tensor (a copy)."""
        return torch.tensor(self._img, dtype=torch.long, device=device)

    @property
    def groups(self) -> List["np.ndarray"]:
        """For every image, its sorted caption indices (int64 arrays; shared, do not modify)."""
        if self._groups is None:
            order = np.argsort(self._img, kind="stable")
            bounds = np.searchsorted(self._img[order], np.arange(self.n_images + 1))
            self._groups = [order[bounds[i]:bounds[i + 1]] for i in range(self.n_images)]
        return self._groups

    def captions_of(self, image: int) -> "np.ndarray":
        """The sorted caption indices of image ``image``."""
        if not -self.n_images <= int(image) < self.n_images:
            raise IndexError(f"image {image} is outside the {self.n_images} images")
        return self.groups[int(image)]

    def counts(self) -> "np.ndarray":
        """Captions per image, int64 ``[n_images]``."""
        return np.bincount(self._img, minlength=self.n_images).astype(np.int64)

    @property
    def captions_per_image(self) -> Optional[int]:
        """k when every image has the same number of captions, else None."""
        c = np.unique(self.counts())
        return int(c[0]) if c.size == 1 else None

    # ------------------------------------------------------------------ subsets
    def subset(self, image_indices: Any, *, grouped: bool = False) -> Tuple["Correspondence", "np.ndarray"]:
        """The images ``image_indices`` (renumbered 0.. in that order) and all of their captions.

        Returns ``(correspondence, caption_indices)``: the captions in their original order, or,
        with ``grouped``, grouped by image in the order of ``image_indices`` (original order within
        an image). ``image_indices`` may be a boolean mask of length ``n_images``.

        Raises:
            ValueError / IndexError: indices that repeat, are not integers or lie outside the images.
        """
        idx = np.asarray(image_indices.detach().cpu() if isinstance(image_indices, torch.Tensor) else image_indices)
        if idx.dtype == np.bool_:
            if idx.shape != (self.n_images,):
                raise ValueError(f"boolean mask has shape {idx.shape}, expected ({self.n_images},)")
            idx = np.flatnonzero(idx)
        if idx.size == 0:
            idx = idx.astype(np.int64).reshape(-1)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("image indices must be a 1-D sequence of integers or a boolean mask")
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < -self.n_images or idx.max() >= self.n_images):
            raise IndexError(f"image index out of range for {self.n_images} images")
        idx = np.where(idx < 0, idx + self.n_images, idx)
        if np.unique(idx).size != idx.size:
            raise ValueError("image indices contain duplicates")
        new_of_old = np.full(self.n_images, -1, np.int64)
        new_of_old[idx] = np.arange(idx.size)
        if grouped:
            parts = [self.groups[i] for i in idx]
            caps = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        else:
            caps = np.flatnonzero(new_of_old[self._img] >= 0)
        return Correspondence(new_of_old[self._img[caps]], int(idx.size),
                              every_image_captioned=False), caps.astype(np.int64)

    def folds(self, n_folds: int) -> List[Tuple["np.ndarray", "Correspondence", "np.ndarray"]]:
        """``n_folds`` contiguous equal image folds (the MS-COCO 1K protocol for 5):
        ``[(image_indices, correspondence, caption_indices), ...]``, each as :meth:`subset`.

        Raises:
            ValueError: ``n_folds`` is not a positive integer or does not divide ``n_images``
                (:func:`graphmatch.metrics.check_folds` says the same in the terms of the COCO protocol).
        """
        if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
            raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}")
        if self.n_images < n_folds or self.n_images % n_folds:
            raise ValueError(f"{self.n_images} images are not divisible into {n_folds} equal folds")
        size = self.n_images // int(n_folds)
        out = []
        for f in range(int(n_folds)):
            images = np.arange(f * size, (f + 1) * size, dtype=np.int64)
            corr, caps = self.subset(images)
            out.append((images, corr, caps))
        return out

    # ------------------------------------------------------------------ masks
    @staticmethod
    def mask_of(img_of_caption: torch.Tensor, n_images: int) -> torch.Tensor:
        """bool ``[n_images, n_captions]`` of a long tensor ``img_of_caption``, on its device
        (no copy to the host: the training step calls this)."""
        return torch.arange(int(n_images), device=img_of_caption.device).unsqueeze(1) == img_of_caption.unsqueeze(0)

    def positive_mask(self, images: Any = None, captions: Any = None, device: Any = None) -> torch.Tensor:
        """bool ``[len(images), len(captions)]``, True where caption ``captions[b]`` describes image
        ``images[a]`` (default: all images / all captions)."""
        img = self._img if captions is None else self._img[np.asarray(captions, dtype=np.int64)]
        rows = np.arange(self.n_images) if images is None else np.asarray(images, dtype=np.int64)
        return torch.as_tensor(rows[:, None] == img[None, :], device=device)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Correspondence) and self.n_images == other.n_images
                and np.array_equal(self._img, other._img))

    def __repr__(self) -> str:
        k = self.captions_per_image
        return (f"Correspondence(n_images={self.n_images}, n_captions={self.n_captions}"
                + (f", captions_per_image={k})" if k is not None else ")"))


# --------------------------------------------------------------------------------------------
# node embeddings
# --------------------------------------------------------------------------------------------

_NODE_FIELDS = ("x", "mask", "adj", "edge_attr", "pooled", "node_type")
#: The value of ``NodeEmb.node_type`` at padding positions (what :meth:`NodeEmb.cat` pads with).
NODE_TYPE_PAD = -1


@dataclass
class NodeEmb:
    """Padded node embeddings of a batch of ``B`` graphs, what :meth:`Matcher.score
    <graphmatch.models.Matcher.score>` takes for each side.

    Attributes:
        x: float ``[B, N, D]`` node embeddings; padding rows are zero and never change a score.
        mask: bool ``[B, N]``, True for a real node.
        adj: optional ``[B, N, N]`` dense adjacency, ``adj[b, i, j]`` = weight of the edge
            ``j -> i`` (0 where there is none; padding rows and columns are 0).
        edge_attr: optional ``[B, N, N, F]`` dense edge features aligned with ``adj``.
        pooled: optional ``[B, D']`` global vector of each graph (VSE-style scoring, the first
            stage of two-stage retrieval).
        node_type: optional long ``[B, N]`` type of each node, for matchers that treat node kinds
            apart (scene-graph nodes: 0 object, 1 attribute, 2 relation, 3 word, the ``node_type``
            of :func:`~graphmatch.graphs.text.build_scene_graph_graph`); :data:`NODE_TYPE_PAD`
            (-1) at padding positions.

    A ``NodeEmb`` is sliced along the batch axis (``emb[2:5]``, ``emb[index_tensor]``), trimmed
    (:meth:`trim`: node columns after the last real node of any row dropped, for faster scoring),
    concatenated with different ``N`` (:meth:`cat` pads), and moved (:meth:`to`).
    """

    x: torch.Tensor
    mask: torch.Tensor
    adj: Optional[torch.Tensor] = None
    edge_attr: Optional[torch.Tensor] = None
    pooled: Optional[torch.Tensor] = None
    node_type: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.dim() < 2:
            shape = tuple(self.x.shape) if isinstance(self.x, torch.Tensor) else type(self.x).__name__
            raise ValueError(f"NodeEmb.x must be a tensor [B, N, ...], got {shape}")
        if not isinstance(self.mask, torch.Tensor) or self.mask.dtype != torch.bool:
            kind = self.mask.dtype if isinstance(self.mask, torch.Tensor) else type(self.mask).__name__
            raise ValueError(f"NodeEmb.mask must be a bool tensor, got {kind}")
        b, n = self.x.shape[:2]
        if tuple(self.mask.shape) != (b, n):
            raise ValueError(f"NodeEmb.mask has shape {tuple(self.mask.shape)} but x has shape "
                             f"{tuple(self.x.shape)}; expected {(b, n)}")
        if self.adj is not None and tuple(self.adj.shape) != (b, n, n):
            raise ValueError(f"NodeEmb.adj has shape {tuple(self.adj.shape)}; expected {(b, n, n)}")
        if self.edge_attr is not None and tuple(self.edge_attr.shape[:3]) != (b, n, n):
            raise ValueError(f"NodeEmb.edge_attr has shape {tuple(self.edge_attr.shape)}; expected {(b, n, n)} + (F,)")
        if self.pooled is not None and self.pooled.shape[0] != b:
            raise ValueError(f"NodeEmb.pooled has {self.pooled.shape[0]} rows for {b} graphs")
        if self.node_type is not None:
            if tuple(self.node_type.shape) != (b, n):
                raise ValueError(f"NodeEmb.node_type has shape {tuple(self.node_type.shape)}; expected {(b, n)}")
            if self.node_type.is_floating_point() or self.node_type.dtype == torch.bool:
                raise ValueError(f"NodeEmb.node_type must be an integer (long) tensor, got {self.node_type.dtype}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_nodes(self) -> int:
        """The padded node axis ``N``."""
        return int(self.x.shape[1])

    def _map(self, fn: Any) -> "NodeEmb":
        return NodeEmb(*(None if getattr(self, k) is None else fn(k, getattr(self, k)) for k in _NODE_FIELDS))

    def __getitem__(self, index: Any) -> "NodeEmb":
        """Graphs ``index`` (an int keeps the batch axis: ``emb[3]`` has ``B = 1``)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda k, t: t[index])

    def to(self, device: Any, non_blocking: bool = False) -> "NodeEmb":
        return self._map(lambda k, t: t.to(device, non_blocking=non_blocking))

    def trim(self) -> "NodeEmb":
        """Drop the node columns after the last real node of any row (at least one column stays,
        so a score function never sees an empty node axis). Masks with holes are handled: only
        trailing all-padding columns go."""
        n = self.num_nodes
        if n == 0:
            return self
        positions = torch.arange(1, n + 1, device=self.mask.device)
        last = int((self.mask.to(positions.dtype) * positions).amax()) if self.mask.numel() else 0
        keep = max(1, last)
        if keep >= n:
            return self

        def cut(k: str, t: torch.Tensor) -> torch.Tensor:
            if k in ("x", "mask", "node_type"):
                return t[:, :keep]
            if k in ("adj", "edge_attr"):
                return t[:, :keep, :keep]
            return t

        return self._map(cut)

    @staticmethod
    def cat(parts: Sequence["NodeEmb"]) -> "NodeEmb":
        """Concatenate along the batch axis, padding the node axis to the longest part. Optional
        fields must be present in all parts or in none."""
        parts = list(parts)
        if not parts:
            raise ValueError("NodeEmb.cat: nothing to concatenate")
        n = max(p.num_nodes for p in parts)
        pad = torch.nn.functional.pad
        out: Dict[str, Any] = {}
        for k in _NODE_FIELDS:
            have = [getattr(p, k) is not None for p in parts]
            if not any(have):
                out[k] = None
                continue
            if not all(have):
                raise ValueError(f"NodeEmb.cat: field {k!r} is set in some parts and not in others")
            ts = []
            for p in parts:
                t, m = getattr(p, k), n - p.num_nodes
                if k == "x":
                    t = pad(t, (0, 0) * (t.dim() - 2) + (0, m))
                elif k == "mask":
                    t = pad(t, (0, m), value=False)
                elif k == "node_type":
                    t = pad(t, (0, m), value=NODE_TYPE_PAD)
                elif k == "adj":
                    t = pad(t, (0, m, 0, m))
                elif k == "edge_attr":
                    t = pad(t, (0, 0, 0, m, 0, m))
                ts.append(t)
            out[k] = torch.cat(ts)
        return NodeEmb(**out)
