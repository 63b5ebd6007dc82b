"""Typed structures that cross package boundaries.

* :class:`Regions` — what a region extractor (``detectors/``) or a feature reader produces for one
  image: boxes in image pixels, pooled features, and optional class / attribute predictions.
* :class:`SceneGraph` — what a caption parser (``parsers/``) produces for one caption: the tokens,
  the objects, their attributes and the relations between them, each with the token span it
  comes from (so node features can be read off a contextual text encoder's word states).

Both are plain containers with shape validation; graph builders in :mod:`graphmatch.graphs` turn
them into PyG ``Data`` objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

Span = Tuple[int, int]  # [start, end) token offsets within the caption


def _check_finite_rows(t: torch.Tensor, name: str) -> None:
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


@dataclass
class SceneGraph:
    """The scene graph of one caption.

    Indices in attributes and relations refer to positions in ``objects``. Spans are ``[start, end)``
    offsets into ``tokens``. ``note`` explains an empty graph (e.g. ``"empty caption"``).
    Optional token-level analyses (same length as ``tokens``) let graph builders work without the
    parser: ``lemmas``; ``heads`` (index of each token's syntactic head, the token itself for a
    root) and ``deps`` (dependency labels).
    """

    tokens: List[str]
    objects: List[SGObject] = field(default_factory=list)
    attributes: List[SGAttribute] = field(default_factory=list)
    relations: List[SGRelation] = field(default_factory=list)
    note: Optional[str] = None
    lemmas: Optional[List[str]] = None
    heads: Optional[List[int]] = None
    deps: Optional[List[str]] = None

    def __post_init__(self) -> None:
        n_tok, n_obj = len(self.tokens), len(self.objects)

        def check_span(span: Span, what: str) -> None:
            s, e = span
            if not (0 <= s <= e <= n_tok):
                raise ValueError(f"SceneGraph: {what} span {span} is outside the {n_tok} tokens")

        for i, o in enumerate(self.objects):
            check_span(o.span, f"object {i} ({o.name!r})")
        for a in self.attributes:
            if not 0 <= a.object < n_obj:
                raise ValueError(f"SceneGraph: attribute {a.value!r} refers to object {a.object} of {n_obj}")
            check_span(a.span, f"attribute {a.value!r}")
        for name in ("lemmas", "heads", "deps"):
            v = getattr(self, name)
            if v is not None and len(v) != n_tok:
                raise ValueError(f"SceneGraph: {name} has {len(v)} entries for {n_tok} tokens")
        if self.heads is not None and any(not 0 <= h < n_tok for h in self.heads):
            raise ValueError("SceneGraph: heads must index tokens")
        for r in self.relations:
            if not (0 <= r.subject < n_obj and 0 <= r.object < n_obj):
                raise ValueError(
                    f"SceneGraph: relation {r.predicate!r} refers to objects ({r.subject}, {r.object}) of {n_obj}"
                )
            check_span(r.span, f"relation {r.predicate!r}")

    def to_dict(self) -> Dict[str, Any]:
        """The normalised record form, as in FACTUAL-style JSONL records: ``objects`` (unique
        lemmatised names), ``attributes`` ``[object, value]`` and ``relations``
        ``[subject, predicate, object]``, each sorted and without duplicates."""
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
