"""SYNTHETIC scene data in the precomp layout, generated locally with no download.

This module builds a small SYNTHETIC image-sentence matching dataset so that the package's demo
can train and evaluate a real fine-grained matching model on CPU in minutes, through the real
:func:`graphmatch.data.precomp.load_precomp` loader. None of it comes from real images.

Each SYNTHETIC "image" is a scene graph: 2-4 objects from 20 categories, each with 0-2 attributes
(colour, size, height, age, material) and a pixel box in an image of random size; spatial
relations (``left of``, ``right of``, ``above``, ``below``, ``on``, ``next to``) are derived from
the boxes. Its region features imitate bottom-up features: every object region is a fixed, seeded
random projection of [category embedding + attribute embeddings, box-position encoding] plus
Gaussian noise, passed through ReLU; the remaining regions are partial crops of objects or
background patches. Region order is shuffled. Captions are rendered from the scene graph with
varied templates and synonyms and are true of their image; for every image 1-2 hard negative
captions (false for the scene but minimally different from a true caption) are also written.

Output folder (``out_dir``)::

    {split}_ims.npy  {split}_caps.txt  {split}_ids.txt  {split}_ims_bbx.npy  {split}_ims_size.npy
    {split}_scene_graphs.jsonl   one record per image (objects, boxes, relations, regions)
    {split}_hardneg.jsonl        {"image", "caption", "positive", "kind"} per hard negative
    meta.json  README.txt        both state that the data is SYNTHETIC

for the splits ``train``, ``dev`` and ``test``. The folder is built in a temporary sibling and
renamed into place at the end, so an interrupted run never leaves a folder that looks complete.
The same seed and parameters give byte-identical files.
"""
from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from tqdm import tqdm

from graphmatch.data.precomp import write_precomp
from graphmatch.data.vocab import tokenize
from graphmatch.utils.atomic import atomic_dir, atomic_write_json, atomic_write_text
from graphmatch.utils.progress import progress as progress_bar

PathLike = Union[str, os.PathLike]

__all__ = ["generate_synthetic", "ensure_synthetic", "is_synthetic_dir", "synthetic_words",
           "CATEGORIES", "ATTRIBUTES", "PREDICATES", "SYNTHETIC_VERSION", "GENERATOR",
           "DEFAULT_PARAMS", "SPLITS"]

SYNTHETIC_VERSION = 1
GENERATOR = "graphmatch.data.synthetic"
SPLITS = ("train", "dev", "test")
DEFAULT_PARAMS: dict[str, int] = {"n_train": 3000, "n_dev": 300, "n_test": 500,
                                  "captions_per_image": 5, "n_regions": 12,
                                  "feature_dim": 256, "seed": 0}
MAX_OBJECTS = 4

# ------------------------------------------------------------------------------ lexicon
# Attribute groups: canonical value -> surface words (first is the canonical word).
ATTRIBUTE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "size": {"small": ("small", "little"), "large": ("large", "big")},
    "height": {"tall": ("tall",), "short": ("short",)},
    "age": {"young": ("young",), "old": ("old",)},
    "colour": {"red": ("red",), "blue": ("blue",), "green": ("green",), "yellow": ("yellow",),
               "black": ("black",), "white": ("white",), "brown": ("brown",),
               "gray": ("gray", "grey")},
    "material": {"wooden": ("wooden",), "metal": ("metal",), "plastic": ("plastic",)},
}
ADJECTIVE_ORDER = ("size", "height", "age", "colour", "material")
ATTRIBUTES: tuple[str, ...] = tuple(v for g in ADJECTIVE_ORDER for v in ATTRIBUTE_GROUPS[g])
GROUP_OF: dict[str, str] = {v: g for g, vals in ATTRIBUTE_GROUPS.items() for v in vals}

_ALL_COLOURS = tuple(ATTRIBUTE_GROUPS["colour"])
_ANIMAL_COLOURS = ("black", "white", "brown", "gray")
_FURNITURE_COLOURS = ("brown", "black", "white", "red")


@dataclass(frozen=True)
class Category:
    """An object category of the SYNTHETIC world."""

    name: str
    nouns: tuple[str, ...]              # surface synonyms; nouns[0] == name
    plural: str
    groups: dict[str, tuple[str, ...]]  # attribute group -> allowed canonical values
    base_size: tuple[float, float]      # typical (width, height) as fractions of the image
    support: bool = False               # other objects can be "on" it
    rider: bool = False                 # can be "on" a support


def _cat(name: str, nouns: Sequence[str], plural: str, groups: dict[str, tuple[str, ...]],
         base: tuple[float, float], support: bool = False, rider: bool = False) -> Category:
    return Category(name, tuple(nouns), plural, groups, base, support, rider)


_SIZE = tuple(ATTRIBUTE_GROUPS["size"])
_HEIGHT = tuple(ATTRIBUTE_GROUPS["height"])
_AGE = tuple(ATTRIBUTE_GROUPS["age"])
CATEGORIES: tuple[Category, ...] = (
    _cat("dog", ("dog", "puppy"), "dogs", {"size": _SIZE, "colour": _ANIMAL_COLOURS},
         (0.22, 0.20), rider=True),
    _cat("cat", ("cat", "kitten"), "cats", {"size": _SIZE, "colour": _ANIMAL_COLOURS},
         (0.16, 0.16), rider=True),
    _cat("horse", ("horse", "pony"), "horses",
         {"size": _SIZE, "colour": ("black", "white", "brown")}, (0.30, 0.30), support=True),
    _cat("bird", ("bird",), "birds",
         {"size": _SIZE, "colour": ("black", "white", "red", "blue", "yellow")}, (0.09, 0.09),
         rider=True),
    _cat("man", ("man", "guy", "person"), "men", {"height": _HEIGHT, "age": _AGE},
         (0.14, 0.45), rider=True),
    _cat("woman", ("woman", "lady", "person"), "women", {"height": _HEIGHT, "age": _AGE},
         (0.14, 0.42), rider=True),
    _cat("boy", ("boy", "kid", "child"), "boys", {"height": _HEIGHT}, (0.11, 0.30), rider=True),
    _cat("girl", ("girl", "kid", "child"), "girls", {"height": _HEIGHT}, (0.11, 0.29),
         rider=True),
    _cat("car", ("car", "automobile"), "cars", {"size": _SIZE, "colour": _ALL_COLOURS},
         (0.34, 0.20), support=True),
    _cat("bus", ("bus",), "buses",
         {"size": _SIZE, "colour": ("red", "blue", "yellow", "white", "green")}, (0.45, 0.33)),
    _cat("truck", ("truck", "lorry"), "trucks", {"size": _SIZE, "colour": _ALL_COLOURS},
         (0.40, 0.28)),
    _cat("bike", ("bike", "bicycle"), "bikes", {"size": _SIZE, "colour": _ALL_COLOURS},
         (0.22, 0.18)),
    _cat("boat", ("boat",), "boats",
         {"size": _SIZE, "colour": _ALL_COLOURS, "material": ("wooden", "metal")},
         (0.34, 0.18), support=True),
    _cat("table", ("table",), "tables",
         {"colour": _FURNITURE_COLOURS, "material": ("wooden", "metal", "plastic")},
         (0.30, 0.18), support=True),
    _cat("chair", ("chair",), "chairs",
         {"colour": _FURNITURE_COLOURS, "material": ("wooden", "metal", "plastic")},
         (0.13, 0.22), support=True),
    _cat("bench", ("bench",), "benches",
         {"colour": ("brown", "green", "black", "red"), "material": ("wooden", "metal")},
         (0.34, 0.14), support=True),
    _cat("tree", ("tree",), "trees", {"size": _SIZE, "height": _HEIGHT}, (0.24, 0.50)),
    _cat("umbrella", ("umbrella",), "umbrellas", {"size": _SIZE, "colour": _ALL_COLOURS},
         (0.17, 0.15)),
    _cat("ball", ("ball",), "balls", {"size": _SIZE, "colour": _ALL_COLOURS}, (0.06, 0.06),
         rider=True),
    _cat("kite", ("kite",), "kites", {"size": _SIZE, "colour": _ALL_COLOURS}, (0.10, 0.10)),
)
CATEGORY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CATEGORIES)}
# Noun surface word -> set of category names it can refer to ("person" -> man or woman).
NOUN_DENOTATION: dict[str, frozenset[str]] = {}
for _c in CATEGORIES:
    for _n in _c.nouns:
        NOUN_DENOTATION[_n] = NOUN_DENOTATION.get(_n, frozenset()) | {_c.name}
BACKGROUNDS = ("sky", "grass", "road", "wall", "water", "floor")  # distractor regions only

# Spatial predicates (canonical name -> surface phrases) and flips used for hard negatives.
PREDICATES: dict[str, tuple[str, ...]] = {
    "left of": ("left of", "to the left of", "on the left of"),
    "right of": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "on": ("on", "on top of"),
    "next to": ("next to", "near", "beside"),
}
INVERSE_PREDICATE = {"left of": "right of", "right of": "left of", "above": "below",
                     "below": "above", "on": "below"}
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}

# Caption templates by kind; {m0} {m1} {m2}: noun phrases, {p0}: predicate, {c0}: counted noun.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "exists": ("{m0}", "there is {m0}", "{m0} in the picture", "a photo of {m0}",
               "an image with {m0}", "{m0} can be seen"),
    "pair": ("{m0} and {m1}", "there are {m0} and {m1}", "a picture of {m0} and {m1}",
             "{m0} together with {m1}"),
    "relation": ("{m0} {p0} {m1}", "{m0} is {p0} {m1}", "there is {m0} {p0} {m1}",
                 "a photo of {m0} {p0} {m1}"),
    "relation_plus": ("{m0} {p0} {m1} and {m2}", "{m2} and {m0} {p0} {m1}",
                      "there is {m0} {p0} {m1} and also {m2}"),
    "count": ("{c0}", "there are {c0}", "{c0} in the picture", "{c0} and {m0}",
              "a photo of {c0} and {m0}"),
}
HARD_NEGATIVE_KINDS = ("attribute_swap", "relation_flip", "attribute_replace")


def synthetic_words() -> list[str]:
    """Every word token the SYNTHETIC caption generator can emit (sorted)."""
    words: set[str] = set()
    strings: list[str] = ["a", "an"]
    for c in CATEGORIES:
        strings += [*c.nouns, c.plural]
    for vals in ATTRIBUTE_GROUPS.values():
        for surf in vals.values():
            strings += list(surf)
    for surf in PREDICATES.values():
        strings += list(surf)
    strings += list(NUMBER_WORDS.values())
    for temps in TEMPLATES.values():
        for t in temps:
            for ph in ("{m0}", "{m1}", "{m2}", "{p0}", "{c0}"):
                t = t.replace(ph, " ")
            strings.append(t)
    for s in strings:
        words.update(tokenize(s))
    return sorted(words)


# ------------------------------------------------------------------------------ scenes
@dataclass
class _Object:
    cat: int
    attrs: tuple[str, ...]            # canonical attribute values in adjective order
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def category(self) -> Category:
        return CATEGORIES[self.cat]


@dataclass
class _Scene:
    width: int
    height: int
    objects: list[_Object]
    relations: set = field(default_factory=set)   # {(i, predicate, j)}


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _pair_predicates(a: _Object, b: _Object) -> list[str]:
    """Spatial predicates p with ``p(a, b)`` true, from the boxes (image y axis points down)."""
    ax1, ay1, ax2, ay2 = a.box
    bx1, by1, bx2, by2 = b.box
    aw, ah, bw, bh = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    acx, acy, bcx, bcy = (ax1 + ax2) / 2, (ay1 + ay2) / 2, (bx1 + bx2) / 2, (by1 + by2) / 2
    x_overlap = min(ax2, bx2) - max(ax1, bx1)
    out = []
    left = acx < bcx and ax2 - bx1 <= 0.25 * min(aw, bw)
    right = bcx < acx and bx2 - ax1 <= 0.25 * min(aw, bw)
    if left:
        out.append("left of")
    if right:
        out.append("right of")
    if acy < bcy and ay2 - by1 <= 0.25 * min(ah, bh) and x_overlap > 0:
        out.append("above")
    if bcy < acy and by2 - ay1 <= 0.25 * min(ah, bh) and x_overlap > 0:
        out.append("below")
    if (a.category.rider and b.category.support and bx1 <= acx <= bx2 and ay1 < by1
            and by1 - 0.1 * bh <= ay2 <= by1 + 0.3 * bh):
        out.append("on")
    if ((left or right) and abs(acy - bcy) <= 0.35 * max(ah, bh)
            and -x_overlap <= 0.5 * max(aw, bw)):
        out.append("next to")
    return out


def _sample_scene(rng: np.random.Generator) -> _Scene:
    width = int(rng.integers(480, 641))
    height = int(rng.integers(360, 481))
    n_obj = int(rng.integers(2, MAX_OBJECTS + 1))
    cats = [int(c) for c in rng.integers(0, len(CATEGORIES), n_obj)]
    if n_obj >= 3 and rng.random() < 0.25 and len(set(cats)) == n_obj:
        cats[-1] = cats[0]  # make repeated categories (and count captions) common enough
    objects = []
    for c in cats:
        groups = list(CATEGORIES[c].groups)
        n_attr = min(int(rng.integers(0, 3)), len(groups))
        chosen = sorted((groups[int(k)] for k in rng.permutation(len(groups))[:n_attr]),
                        key=ADJECTIVE_ORDER.index)
        attrs = tuple(str(rng.choice(CATEGORIES[c].groups[g])) for g in chosen)
        objects.append(_Object(c, attrs))
    if not any(o.attrs for o in objects):
        o = objects[0]
        groups = sorted(o.category.groups, key=ADJECTIVE_ORDER.index)
        g = groups[int(rng.integers(0, len(groups)))]
        o.attrs = (str(rng.choice(o.category.groups[g])),)
    # Place supports first so that riders can be put on them.
    order = sorted(range(n_obj), key=lambda i: (not objects[i].category.support, i))
    placed: list[int] = []
    for i in order:
        o = objects[i]
        fw, fh = o.category.base_size
        s = float(rng.uniform(0.75, 1.25))
        if "large" in o.attrs:
            s *= 1.3
        if "small" in o.attrs:
            s *= 0.7
        w = min(fw * s * width, 0.9 * width)
        h = min(fh * s * height, 0.9 * height)
        if "tall" in o.attrs:
            h = min(h * 1.2, 0.9 * height)
        if "short" in o.attrs:
            h *= 0.8
        box = None
        supports = [j for j in placed if objects[j].category.support]
        if o.category.rider and supports and rng.random() < 0.4:
            j = supports[int(rng.integers(0, len(supports)))]
            sx1, sy1, sx2, sy2 = objects[j].box
            slack = (sx2 - sx1) - w
            cx = (sx1 + sx2) / 2 + (float(rng.uniform(-slack / 2, slack / 2)) if slack > 0 else 0.0)
            y2 = sy1 + float(rng.uniform(0.0, 0.2)) * (sy2 - sy1)
            x1 = min(max(cx - w / 2, 0.0), width - w)
            if y2 - h >= 0:
                box = (x1, y2 - h, x1 + w, y2)
        if box is None:
            best, best_cost = None, np.inf
            for _ in range(30):
                x1 = float(rng.uniform(0, width - w))
                y1 = float(rng.uniform(0, height - h))
                cand = (x1, y1, x1 + w, y1 + h)
                cost = max((_iou(cand, objects[j].box) for j in placed), default=0.0)
                if cost < best_cost:
                    best, best_cost = cand, cost
                if cost < 0.05:
                    break
            box = best
        o.box = tuple(round(float(v), 1) for v in box)  # type: ignore[assignment]
        placed.append(i)
    scene = _Scene(width, height, objects)
    for i, j in itertools.permutations(range(n_obj), 2):
        for p in _pair_predicates(objects[i], objects[j]):
            scene.relations.add((i, p, j))
    return scene


# ------------------------------------------------------------------------------ captions
@dataclass(frozen=True)
class _Mention:
    obj: int                          # object index the phrase was made for
    noun: str                         # surface noun
    attrs: tuple[tuple[str, str], ...]  # (canonical, surface) in adjective order


@dataclass(frozen=True)
class _Caption:
    template: str
    mentions: tuple[_Mention, ...] = ()
    relation: Optional[tuple[int, str, str]] = None   # (predicate, surface) between m0 and m1
    count: Optional[tuple[int, int]] = None           # (category index, n)
    period: bool = False

    def render(self) -> str:
        slots = {f"m{i}": _noun_phrase(m) for i, m in enumerate(self.mentions)}
        if self.relation is not None:
            slots["p0"] = self.relation[2]
        if self.count is not None:
            cat, n = self.count
            slots["c0"] = f"{NUMBER_WORDS[n]} {CATEGORIES[cat].plural}"
        text = self.template.format(**slots)
        return text[0].upper() + text[1:] + ("." if self.period else "")


def _noun_phrase(m: _Mention) -> str:
    words = [s for _, s in m.attrs] + [m.noun]
    article = "an" if words[0][0] in "aeiou" else "a"
    return " ".join([article, *words])


def _matches(m: _Mention, o: _Object) -> bool:
    return (o.category.name in NOUN_DENOTATION[m.noun]
            and all(a in o.attrs for a, _ in m.attrs))


def _is_true(cap: _Caption, scene: _Scene) -> bool:
    """Whether ``cap`` is true of ``scene``: an injective assignment of mentions to objects that
    match them (noun denotation, attributes a subset) and satisfy the relation, plus exact counts.
    """
    if cap.count is not None:
        cat, n = cap.count
        if sum(o.cat == cat for o in scene.objects) != n:
            return False
    cands = [[i for i, o in enumerate(scene.objects) if _matches(m, o)] for m in cap.mentions]
    for assign in itertools.product(*cands):
        if len(set(assign)) != len(assign):
            continue
        if cap.relation is not None:
            i, pred = cap.relation[0], cap.relation[1]
            if (assign[i], pred, assign[i + 1]) not in scene.relations:
                continue
        return True
    return False


def _key(text: str) -> str:
    return " ".join(tokenize(text))


def _content(cap: _Caption) -> tuple:
    """What a caption states, ignoring template, synonyms and mention order."""
    mentions = tuple(sorted((m.obj, tuple(a for a, _ in m.attrs))
                            for m in cap.mentions))
    relation = None
    if cap.relation is not None:
        relation = (cap.mentions[0].obj, cap.relation[1], cap.mentions[1].obj)
    return (cap.count, mentions, relation)


class _CaptionMaker:
    """Samples true captions of a scene and derives hard negatives from them."""

    def __init__(self, rng: np.random.Generator, scene: _Scene) -> None:
        self.rng = rng
        self.scene = scene
        self._nouns: dict[int, str] = {}  # category -> noun, fixed within one caption

    def _pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.rng.integers(0, len(seq)))]

    def mention(self, i: int, *, all_attrs: bool = False) -> _Mention:
        o = self.scene.objects[i]
        attrs = tuple((a, self._pick(ATTRIBUTE_GROUPS[GROUP_OF[a]][a])) for a in o.attrs
                      if all_attrs or self.rng.random() < 0.6)
        if o.cat not in self._nouns:
            self._nouns[o.cat] = self._pick(o.category.nouns)
        return _Mention(i, self._nouns[o.cat], attrs)

    def available(self) -> list[str]:
        s = self.scene
        kinds = ["exists", "pair"]
        if s.relations:
            kinds.append("relation")
            if len(s.objects) >= 3:
                kinds.append("relation_plus")
        if self._counted():
            kinds.append("count")
        return kinds

    def _counted(self) -> list[int]:
        cats = [o.cat for o in self.scene.objects]
        return sorted({c for c in cats if cats.count(c) >= 2})

    def make(self, kind: str, *, all_attrs: bool = False) -> _Caption:
        s, rng = self.scene, self.rng
        self._nouns = {}
        template = self._pick(TEMPLATES[kind])
        period = bool(rng.random() < 0.5)
        n = len(s.objects)
        if kind == "exists":
            attributed = [i for i, o in enumerate(s.objects) if o.attrs]
            i = self._pick(attributed) if all_attrs and attributed else int(rng.integers(0, n))
            return _Caption(template, (self.mention(i, all_attrs=all_attrs),), period=period)
        if kind == "pair":
            attributed = [i for i, o in enumerate(s.objects) if o.attrs]
            pool = attributed if all_attrs and len(attributed) >= 2 else list(range(n))
            i, j = (pool[int(v)] for v in rng.permutation(len(pool))[:2])
            return _Caption(template, (self.mention(i, all_attrs=all_attrs),
                                       self.mention(j, all_attrs=all_attrs)), period=period)
        if kind in ("relation", "relation_plus"):
            i, pred, j = self._pick(sorted(s.relations))
            ms = [self.mention(i), self.mention(j)]
            if kind == "relation_plus":
                others = [k for k in range(n) if k not in (i, j)]
                ms.append(self.mention(self._pick(others)))
            return _Caption(template, tuple(ms), relation=(0, pred, self._pick(PREDICATES[pred])),
                            period=period)
        if kind == "count":
            cat = self._pick(self._counted())
            k = sum(o.cat == cat for o in s.objects)
            name = CATEGORIES[cat].name
            others = [i for i, o in enumerate(s.objects)
                      if o.cat != cat and all(name not in NOUN_DENOTATION[nn]
                                              for nn in o.category.nouns)]
            if "{m0}" in template:
                if not others:
                    template = self._pick([t for t in TEMPLATES["count"] if "{m0}" not in t])
                    return _Caption(template, count=(cat, k), period=period)
                i = self._pick(others)
                m = self.mention(i)
                # a noun that could also denote the counted category would blur the count
                nouns = [nn for nn in s.objects[i].category.nouns
                         if name not in NOUN_DENOTATION[nn]]
                m = replace(m, noun=self._pick(nouns))
                return _Caption(template, (m,), count=(cat, k), period=period)
            return _Caption(template, count=(cat, k), period=period)
        raise ValueError(f"unknown caption kind {kind!r}")

    def positives(self, k: int) -> Optional[list[_Caption]]:
        """``k`` distinct true captions (distinct after tokenisation), or None if it failed."""
        avail = self.available()
        plan: list[tuple[str, bool]] = []
        if "relation" in avail:
            plan.append(("relation", False))
        n_attributed = sum(bool(o.attrs) for o in self.scene.objects)
        plan.append(("pair" if n_attributed >= 2 and self.rng.random() < 0.6 else "exists", True))
        if "count" in avail:
            plan.append(("count", False))
        weights = {"exists": 2.0, "pair": 2.0, "relation": 3.0, "relation_plus": 1.5,
                   "count": 1.0}
        p = np.array([weights[a] for a in avail])
        p /= p.sum()
        caps: list[_Caption] = []
        keys: set[str] = set()
        contents: set[tuple] = set()
        n_attempts = 40 * k
        for attempt in range(n_attempts):
            if len(caps) == k:
                break
            if attempt < len(plan):
                kind, full = plan[attempt]
            else:
                kind, full = avail[int(self.rng.choice(len(avail), p=p))], False
            cap = self.make(kind, all_attrs=full)
            key = _key(cap.render())
            content = _content(cap)
            # Prefer captions that say something new; late in the search a new wording suffices.
            if key in keys or (content in contents and attempt < n_attempts // 2):
                continue
            if not _is_true(cap, self.scene):  # by construction this does not happen
                raise AssertionError(f"generated a false caption: {cap.render()!r}")
            caps.append(cap)
            keys.add(key)
            contents.add(content)
        if len(caps) < k:
            return None
        order = self.rng.permutation(k)
        return [caps[int(i)] for i in order]

    # ---------------------------------------------------------------- hard negatives
    def _variants(self, cap: _Caption, kind: str) -> list[_Caption]:
        out: list[_Caption] = []
        ms = list(cap.mentions)
        objs = self.scene.objects
        if kind == "relation_flip" and cap.relation is not None:
            _, pred, _ = cap.relation
            if pred != "next to":
                swapped = ms.copy()
                swapped[0], swapped[1] = ms[1], ms[0]
                out.append(replace(cap, mentions=tuple(swapped)))
            if pred in INVERSE_PREDICATE:
                inv = INVERSE_PREDICATE[pred]
                out.append(replace(cap, relation=(0, inv, self._pick(PREDICATES[inv]))))
        elif kind == "attribute_swap":
            for a, b in itertools.combinations(range(len(ms)), 2):
                ma, mb = ms[a], ms[b]
                if not ma.attrs or not mb.attrs or ma.attrs == mb.attrs:
                    continue
                ca, cb = objs[ma.obj].category, objs[mb.obj].category
                if not (all(v in cb.groups.get(GROUP_OF[v], ()) for v, _ in ma.attrs)
                        and all(v in ca.groups.get(GROUP_OF[v], ()) for v, _ in mb.attrs)):
                    continue
                new = ms.copy()
                new[a], new[b] = replace(ma, attrs=mb.attrs), replace(mb, attrs=ma.attrs)
                out.append(replace(cap, mentions=tuple(new)))
        elif kind == "attribute_replace":
            for a, m in enumerate(ms):
                allowed = objs[m.obj].category.groups
                for t, (v, _) in enumerate(m.attrs):
                    for w in allowed[GROUP_OF[v]]:
                        if w == v:
                            continue
                        attrs = list(m.attrs)
                        attrs[t] = (w, self._pick(ATTRIBUTE_GROUPS[GROUP_OF[w]][w]))
                        new = ms.copy()
                        new[a] = replace(m, attrs=tuple(attrs))
                        out.append(replace(cap, mentions=tuple(new)))
        return out

    def _find(self, kind: str, positives: list[_Caption],
              taken: set[str]) -> Optional[tuple[str, _Caption, _Caption]]:
        for pi in self.rng.permutation(len(positives)):
            pos = positives[int(pi)]
            variants = self._variants(pos, kind)
            for vi in self.rng.permutation(len(variants)):
                neg = variants[int(vi)]
                key = _key(neg.render())
                if key not in taken and not _is_true(neg, self.scene):
                    taken.add(key)
                    return kind, pos, neg
        return None

    def negatives(self, positives: list[_Caption], n: int) -> list[tuple[str, _Caption, _Caption]]:
        """Up to ``n`` (kind, positive, negative) triples, kinds varied; each negative is false
        for the scene and differs (after tokenisation) from every positive and from the others."""
        taken = {_key(c.render()) for c in positives}
        kinds = [HARD_NEGATIVE_KINDS[int(i)]
                 for i in self.rng.permutation(len(HARD_NEGATIVE_KINDS))]
        out: list[tuple[str, _Caption, _Caption]] = []
        while kinds and len(out) < n:
            for kind in list(kinds):
                if len(out) >= n:
                    break
                found = self._find(kind, positives, taken)
                if found is None:
                    kinds.remove(kind)
                else:
                    out.append(found)
        return out


# ------------------------------------------------------------------------------ features
_SEM_DIM = 48
_POS_FREQS = (1.0, 2.0, 3.0, 4.0)
_POS_DIM = 8 + 4 * len(_POS_FREQS)
_POS_WEIGHT = 2.0
_NOISE = 0.25


@dataclass
class _World:
    """Fixed (seeded) embeddings and projection shared by all splits."""

    cat_emb: np.ndarray    # [n_categories, _SEM_DIM]
    attr_emb: np.ndarray   # [n_attributes, _SEM_DIM]
    bg_emb: np.ndarray     # [n_backgrounds, _SEM_DIM]
    proj: np.ndarray       # [_SEM_DIM + _POS_DIM, feature_dim]


def _make_world(seed: int, feature_dim: int) -> _World:
    rng = np.random.default_rng([seed, 0])
    cat = rng.standard_normal((len(CATEGORIES), _SEM_DIM))
    attr = 0.7 * rng.standard_normal((len(ATTRIBUTES), _SEM_DIM))
    bg = rng.standard_normal((len(BACKGROUNDS), _SEM_DIM))
    proj = rng.standard_normal((_SEM_DIM + _POS_DIM, feature_dim)) / np.sqrt(_SEM_DIM / 2)
    return _World(cat, attr, bg, proj)


def _position_encoding(boxes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """[N, 4] pixel boxes and [N, 2] (w, h) -> [N, _POS_DIM] position encoding."""
    wh = np.concatenate([sizes, sizes], axis=1)
    nb = boxes / wh                                  # x1, y1, x2, y2 in [0, 1]
    c = np.stack([(nb[:, 0] + nb[:, 2]) / 2, (nb[:, 1] + nb[:, 3]) / 2,
                  nb[:, 2] - nb[:, 0], nb[:, 3] - nb[:, 1]], axis=1)
    parts = [nb, c]
    for f in _POS_FREQS:
        parts += [np.sin(np.pi * f * c[:, :2]), np.cos(np.pi * f * c[:, :2])]
    return np.concatenate(parts, axis=1)


def _regions(rng: np.random.Generator, scene: _Scene, n_regions: int):
    """Region sources and boxes for one image, in shuffled order.

    Returns (cat [R], attr_multi_hot [R, A], bg [R], scale [R], boxes [R, 4], kinds, sources,
    region_of_object).
    """
    W, H = scene.width, scene.height
    n_obj = len(scene.objects)
    cat = np.full(n_regions, -1, np.int64)
    bg = np.full(n_regions, -1, np.int64)
    scale = np.ones(n_regions)
    mh = np.zeros((n_regions, len(ATTRIBUTES)))
    boxes = np.zeros((n_regions, 4))
    kinds: list[str] = []
    sources: list[Optional[int]] = []
    attr_idx = {a: i for i, a in enumerate(ATTRIBUTES)}
    for r in range(n_regions):
        if r < n_obj:
            o = scene.objects[r]
            cat[r], boxes[r] = o.cat, o.box
            for a in o.attrs:
                mh[r, attr_idx[a]] = 1.0
            kinds.append("object")
            sources.append(r)
        elif rng.random() < 0.5:
            i = int(rng.integers(0, n_obj))
            o = scene.objects[i]
            x1, y1, x2, y2 = o.box
            fw, fh = rng.uniform(0.4, 0.9, 2)
            cw, ch = (x2 - x1) * fw, (y2 - y1) * fh
            cx1 = x1 + rng.uniform(0, (x2 - x1) - cw) + rng.normal(0, 0.05 * cw)
            cy1 = y1 + rng.uniform(0, (y2 - y1) - ch) + rng.normal(0, 0.05 * ch)
            cx1 = float(np.clip(cx1, 0, W - cw))
            cy1 = float(np.clip(cy1, 0, H - ch))
            boxes[r] = (cx1, cy1, cx1 + cw, cy1 + ch)
            cat[r] = o.cat
            for a in o.attrs:
                mh[r, attr_idx[a]] = 1.0
            scale[r] = rng.uniform(0.3, 0.7)
            kinds.append("crop")
            sources.append(i)
        else:
            bw, bh = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H
            bx1, by1 = rng.uniform(0, W - bw), rng.uniform(0, H - bh)
            boxes[r] = (bx1, by1, bx1 + bw, by1 + bh)
            bg[r] = int(rng.integers(0, len(BACKGROUNDS)))
            kinds.append("background")
            sources.append(None)
    boxes = np.round(boxes, 1)
    perm = rng.permutation(n_regions)                # new row p holds old region perm[p]
    region_of = np.empty(n_regions, np.int64)
    region_of[perm] = np.arange(n_regions)
    return (cat[perm], mh[perm], bg[perm], scale[perm], boxes[perm],
            [kinds[int(p)] for p in perm], [sources[int(p)] for p in perm],
            [int(region_of[i]) for i in range(n_obj)])


def _features(world: _World, rng: np.random.Generator, cat: np.ndarray, mh: np.ndarray,
              bg: np.ndarray, scale: np.ndarray, boxes: np.ndarray,
              sizes: np.ndarray) -> np.ndarray:
    """Vectorised region features for all regions of a split: [N] inputs -> [N, D] float32."""
    obj = cat >= 0
    sem = np.zeros((cat.shape[0], _SEM_DIM))
    sem[obj] = scale[obj, None] * (world.cat_emb[cat[obj]] + mh[obj] @ world.attr_emb)
    sem[~obj] = world.bg_emb[bg[~obj]]
    latent = np.concatenate([sem, _POS_WEIGHT * _position_encoding(boxes, sizes)], axis=1)
    noise = rng.standard_normal((cat.shape[0], world.proj.shape[1]))
    return np.maximum(latent @ world.proj + _NOISE * noise, 0.0).astype(np.float32)


# ------------------------------------------------------------------------------ writing
def _generate_split(out: Path, split: str, split_index: int, n_images: int, params: dict,
                    world: _World, bar: tqdm) -> dict[str, int]:
    k, R = params["captions_per_image"], params["n_regions"]
    rng = np.random.default_rng([params["seed"], 1, split_index])
    all_cat, all_mh, all_bg, all_scale, all_boxes, all_sizes = [], [], [], [], [], []
    captions: list[str] = []
    ids = [f"synthetic_{split}_{i + 1:06d}" for i in range(n_images)]
    graph_lines: list[str] = []
    neg_lines: list[str] = []
    kind_counts = {kind: 0 for kind in HARD_NEGATIVE_KINDS}
    for row in range(n_images):
        for _attempt in range(100):
            scene = _sample_scene(rng)
            maker = _CaptionMaker(rng, scene)
            pos = maker.positives(k)
            if pos is None:
                continue
            negs = maker.negatives(pos, int(rng.integers(1, 3)))
            if negs:
                break
        else:  # pragma: no cover - the sampler makes this practically impossible
            raise RuntimeError(f"could not generate a SYNTHETIC scene for {split} image {row}")
        texts = [c.render() for c in pos]
        captions.extend(texts)
        cat, mh, bg, scale, boxes, kinds, sources, region_of = _regions(rng, scene, R)
        all_cat.append(cat)
        all_mh.append(mh)
        all_bg.append(bg)
        all_scale.append(scale)
        all_boxes.append(boxes)
        all_sizes.append((scene.width, scene.height))
        graph = {
            "image": row, "image_id": ids[row], "width": scene.width, "height": scene.height,
            "objects": [{"category": o.category.name, "attributes": list(o.attrs),
                         "box": [float(v) for v in o.box], "region": region_of[i]}
                        for i, o in enumerate(scene.objects)],
            "relations": [[i, p, j] for i, p, j in
                          sorted(scene.relations, key=lambda t: (t[0], t[2], t[1]))],
            "regions": [{"kind": kd, "object": src} for kd, src in zip(kinds, sources)],
            "captions": texts,
        }
        graph_lines.append(json.dumps(graph, ensure_ascii=False))
        for kind, p, n in negs:
            neg_lines.append(json.dumps({"image": row, "caption": n.render(),
                                         "positive": p.render(), "kind": kind},
                                        ensure_ascii=False))
            kind_counts[kind] += 1
        bar.update(1)
    sizes_px = np.asarray(all_sizes, np.float64)
    per_region_sizes = np.repeat(sizes_px, R, axis=0)
    boxes = np.concatenate(all_boxes)
    feats = _features(world, rng, np.concatenate(all_cat), np.concatenate(all_mh),
                      np.concatenate(all_bg), np.concatenate(all_scale), boxes, per_region_sizes)
    write_precomp(out, split, feats.reshape(n_images, R, -1), captions, image_ids=ids,
                  boxes=boxes.reshape(n_images, R, 4).astype(np.float32),
                  image_sizes=sizes_px.astype(np.float32))
    atomic_write_text(out / f"{split}_scene_graphs.jsonl", "".join(s + "\n" for s in graph_lines))
    atomic_write_text(out / f"{split}_hardneg.jsonl", "".join(s + "\n" for s in neg_lines))
    return {"images": n_images, "captions": len(captions), "hard_negatives": len(neg_lines),
            **{f"hard_negatives_{kd}": c for kd, c in kind_counts.items()}}


_README = """SYNTHETIC DATA - not real images or real captions.

This folder was produced by graphmatch.data.synthetic (version {version}) with parameters
{params}.

Every "image" is a SYNTHETIC scene graph of 2-4 objects with attributes and boxes; its region
features are a seeded random projection of category, attribute and box-position information plus
noise, and its captions are rendered from the scene graph with templates. It exists so that the
graphmatch demo and tests can train and evaluate a matching model without any download.
Results on it say nothing about performance on real image-sentence data.

Files per split (train, dev, test), in the precomp layout read by graphmatch.data.precomp:
  {{split}}_ims.npy            float32 [n_images, {n_regions}, {feature_dim}] region features
  {{split}}_ims_bbx.npy        float32 [n_images, {n_regions}, 4] boxes (x1, y1, x2, y2), pixels
  {{split}}_ims_size.npy       float32 [n_images, 2] image (width, height)
  {{split}}_caps.txt           {k} captions per image, contiguous
  {{split}}_ids.txt            image ids (synthetic_{{split}}_000001, ...)
  {{split}}_scene_graphs.jsonl scene graph per image (objects, region rows, relations)
  {{split}}_hardneg.jsonl      hard negative captions: false for the image, close to a true one
"""


def _normalise_params(kw: dict) -> dict[str, int]:
    unknown = set(kw) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown SYNTHETIC generator parameter(s): {sorted(unknown)}")
    params = {**DEFAULT_PARAMS, **kw}
    for name, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {v!r}")
        params[name] = int(v)
    for name in ("n_train", "n_dev", "n_test", "captions_per_image", "feature_dim"):
        if params[name] < 1:
            raise ValueError(f"{name} must be >= 1, got {params[name]}")
    if params["n_regions"] < MAX_OBJECTS:
        raise ValueError(f"n_regions must be >= {MAX_OBJECTS} (the most objects in a scene), "
                         f"got {params['n_regions']}")
    if params["seed"] < 0:
        raise ValueError(f"seed must be >= 0, got {params['seed']}")
    return params


def _read_meta(path: Path) -> Optional[dict]:
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_synthetic_dir(path: PathLike) -> bool:
    """Whether ``path`` is a folder written by this generator (its meta.json says SYNTHETIC)."""
    meta = _read_meta(Path(path))
    return bool(meta and meta.get("synthetic") is True and meta.get("generator") == GENERATOR)


def generate_synthetic(out_dir: PathLike, *, n_train: int = 3000, n_dev: int = 300,
                       n_test: int = 500, captions_per_image: int = 5, n_regions: int = 12,
                       feature_dim: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """Generate the SYNTHETIC dataset into ``out_dir`` (see the module docstring).

    The data is built in a temporary sibling folder and renamed onto ``out_dir`` at the end. An
    existing ``out_dir`` is replaced only if it is empty or an earlier SYNTHETIC folder of this
    generator; anything else raises ``FileExistsError`` and is left untouched.

    Returns a summary: the contents of meta.json plus ``path`` and ``seconds``.
    """
    t0 = time.perf_counter()
    params = _normalise_params(dict(n_train=n_train, n_dev=n_dev, n_test=n_test,
                                    captions_per_image=captions_per_image, n_regions=n_regions,
                                    feature_dim=feature_dim, seed=seed))
    out = Path(out_dir).absolute()
    if out.exists() or out.is_symlink():
        if not out.is_dir() or out.is_symlink():
            raise FileExistsError(f"{out} exists and is not a folder; refusing to overwrite it")
        if any(out.iterdir()) and not is_synthetic_dir(out):
            raise FileExistsError(
                f"{out} exists and is not a SYNTHETIC data folder of {GENERATOR} (no meta.json "
                "with \"synthetic\": true); refusing to overwrite it")
    with atomic_dir(out) as tmp:  # built beside out and renamed into place when complete
        world = _make_world(params["seed"], params["feature_dim"])
        counts = {}
        sizes = dict(zip(SPLITS, (params["n_train"], params["n_dev"], params["n_test"])))
        with progress_bar(total=sum(sizes.values()), desc="SYNTHETIC scenes", unit="img",
                          disable=not progress) as bar:
            for si, split in enumerate(SPLITS):
                counts[split] = _generate_split(tmp, split, si, sizes[split], params, world, bar)
        meta = {
            "synthetic": True,
            "generator": GENERATOR,
            "version": SYNTHETIC_VERSION,
            "params": params,
            "counts": counts,
            "splits": list(SPLITS),
            "categories": [c.name for c in CATEGORIES],
            "attributes": list(ATTRIBUTES),
            "predicates": list(PREDICATES),
            "description": ("SYNTHETIC scenes of 2-4 objects with attributes, boxes and spatial "
                            "relations; region features are seeded random projections of scene "
                            "content plus noise and captions are rendered from templates. Not "
                            "real images or captions; for demos and tests only."),
        }
        atomic_write_text(tmp / "README.txt", _README.format(
            version=SYNTHETIC_VERSION, params=json.dumps(params), n_regions=params["n_regions"],
            feature_dim=params["feature_dim"], k=params["captions_per_image"]))
        atomic_write_json(tmp / "meta.json", meta)
    return {**meta, "path": str(out), "seconds": round(time.perf_counter() - t0, 3)}


def ensure_synthetic(out_dir: PathLike, **kw: Any) -> dict:
    """Generate the SYNTHETIC dataset unless ``out_dir`` already holds it with these parameters.

    Keyword arguments are those of :func:`generate_synthetic`. Returns the summary (meta.json's
    contents plus ``path`` and ``generated``: whether data was generated now).
    """
    progress = bool(kw.pop("progress", False))
    params = _normalise_params(kw)
    out = Path(out_dir).absolute()
    meta = _read_meta(out)
    if (meta is not None and is_synthetic_dir(out) and meta.get("version") == SYNTHETIC_VERSION
            and meta.get("params") == params):
        return {**meta, "path": str(out), "generated": False}
    summary = generate_synthetic(out, progress=progress, **params)
    return {**summary, "generated": True}

