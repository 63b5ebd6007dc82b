"""Tests for graphmatch.data.synthetic: the SYNTHETIC scene generator.

Captions and hard negatives are checked with a small checker written independently of the
generator: it parses a caption into counted nouns, noun phrases and one spatial predicate, and
evaluates it against the scene graph written to ``{split}_scene_graphs.jsonl``.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from graphmatch.data import synthetic
from graphmatch.data.precomp import load_precomp
from graphmatch.data.synthetic import (ensure_synthetic, generate_synthetic, is_synthetic_dir,
                                       synthetic_words)
from graphmatch.data.vocab import tokenize

TINY = dict(n_train=20, n_dev=5, n_test=5, captions_per_image=5, n_regions=8, feature_dim=32)
SPLIT_SIZES = {"train": 20, "dev": 5, "test": 5}

# ---------------------------------------------------------------- independent caption checker
NOUNS = {
    "dog": {"dog"}, "puppy": {"dog"}, "cat": {"cat"}, "kitten": {"cat"},
    "horse": {"horse"}, "pony": {"horse"}, "bird": {"bird"},
    "man": {"man"}, "guy": {"man"}, "woman": {"woman"}, "lady": {"woman"},
    "person": {"man", "woman"}, "boy": {"boy"}, "girl": {"girl"},
    "kid": {"boy", "girl"}, "child": {"boy", "girl"},
    "car": {"car"}, "automobile": {"car"}, "bus": {"bus"}, "truck": {"truck"},
    "lorry": {"truck"}, "bike": {"bike"}, "bicycle": {"bike"}, "boat": {"boat"},
    "table": {"table"}, "chair": {"chair"}, "bench": {"bench"}, "tree": {"tree"},
    "umbrella": {"umbrella"}, "ball": {"ball"}, "kite": {"kite"},
}
PLURALS = {"dogs": "dog", "cats": "cat", "horses": "horse", "birds": "bird", "men": "man",
           "women": "woman", "boys": "boy", "girls": "girl", "cars": "car", "buses": "bus",
           "trucks": "truck", "bikes": "bike", "boats": "boat", "tables": "table",
           "chairs": "chair", "benches": "bench", "trees": "tree", "umbrellas": "umbrella",
           "balls": "ball", "kites": "kite"}
ADJECTIVES = {"small": "small", "little": "small", "large": "large", "big": "large",
              "tall": "tall", "short": "short", "young": "young", "old": "old",
              "red": "red", "blue": "blue", "green": "green", "yellow": "yellow",
              "black": "black", "white": "white", "brown": "brown", "gray": "gray",
              "grey": "gray", "wooden": "wooden", "metal": "metal", "plastic": "plastic"}
NUMBERS = {"two": 2, "three": 3, "four": 4}
PREDICATE_PHRASES = sorted([
    ("to the left of", "left of"), ("on the left of", "left of"), ("left of", "left of"),
    ("to the right of", "right of"), ("on the right of", "right of"),
    ("right of", "right of"), ("above", "above"), ("over", "above"), ("below", "below"),
    ("under", "below"), ("beneath", "below"), ("on top of", "on"), ("on", "on"),
    ("next to", "next to"), ("near", "next to"), ("beside", "next to"),
], key=lambda t: -len(t[0].split()))


def parse_caption(text: str):
    """(counts, mentions, relation): counts [(category, n)], mentions [(noun, {attrs})],
    relation (mention index a, predicate, mention index b) or None."""
    toks = tokenize(text)
    counts, mentions, relation = [], [], None
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in NUMBERS and i + 1 < len(toks) and toks[i + 1] in PLURALS:
            counts.append((PLURALS[toks[i + 1]], NUMBERS[t]))
            i += 2
            continue
        if t in ("a", "an"):
            j = i + 1
            attrs = set()
            while j < len(toks) and toks[j] in ADJECTIVES:
                attrs.add(ADJECTIVES[toks[j]])
                j += 1
            if j < len(toks) and toks[j] in NOUNS:
                mentions.append((toks[j], attrs))
                i = j + 1
                # a predicate directly after a noun phrase (optionally after "is")
                k = i + 1 if i < len(toks) and toks[i] == "is" else i
                for phrase, pred in PREDICATE_PHRASES:
                    words = phrase.split()
                    if toks[k:k + len(words)] == words:
                        assert relation is None, f"two predicates in {text!r}"
                        relation = (len(mentions) - 1, pred, len(mentions))
                        i = k + len(words)
                        break
                continue
        i += 1
    return counts, mentions, relation


def caption_holds(text: str, graph: dict) -> bool:
    counts, mentions, relation = parse_caption(text)
    objs = graph["objects"]
    rels = {(a, p, b) for a, p, b in graph["relations"]}
    for cat, n in counts:
        if sum(o["category"] == cat for o in objs) != n:
            return False
    cands = [[i for i, o in enumerate(objs)
              if o["category"] in NOUNS[noun] and attrs <= set(o["attributes"])]
             for noun, attrs in mentions]
    for assign in itertools.product(*cands):
        if len(set(assign)) < len(assign):
            continue
        if relation is not None and (assign[relation[0]], relation[1],
                                     assign[relation[2]]) not in rels:
            continue
        return True
    return False


def _geometric_relations(graph: dict) -> set:
    """Left/right/above/below recomputed from the object boxes, as a sanity check."""
    out = set()
    objs = graph["objects"]
    for i, j in itertools.permutations(range(len(objs)), 2):
        ax1, ay1, ax2, ay2 = objs[i]["box"]
        bx1, by1, bx2, by2 = objs[j]["box"]
        if (ax1 + ax2) < (bx1 + bx2) and ax2 - bx1 <= 0.25 * min(ax2 - ax1, bx2 - bx1):
            out.add((i, "left of", j))
    return out


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("syn") / "synthetic"
    summary = generate_synthetic(out, seed=3, **TINY)
    return out, summary


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ---------------------------------------------------------------- tests
def test_summary(tiny) -> None:
    out, summary = tiny
    assert summary["path"] == str(out.absolute())
    for split, n in SPLIT_SIZES.items():
        assert summary["counts"][split]["images"] == n
        assert summary["counts"][split]["captions"] == 5 * n
        assert n <= summary["counts"][split]["hard_negatives"] <= 2 * n


def test_deterministic(tiny, tmp_path) -> None:
    out, _ = tiny
    generate_synthetic(tmp_path / "same", seed=3, **TINY)
    assert _files(tmp_path / "same") == _files(out)
    generate_synthetic(tmp_path / "other", seed=4, **TINY)
    a, b = _files(out), _files(tmp_path / "other")
    assert a.keys() == b.keys()
    for name in ("train_ims.npy", "train_caps.txt", "train_ims_bbx.npy",
                 "train_scene_graphs.jsonl"):
        assert a[name] != b[name], name


def test_meta_and_readme(tiny) -> None:
    out, _ = tiny
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["synthetic"] is True
    assert meta["generator"] == "graphmatch.data.synthetic"
    assert meta["version"] == 1
    assert meta["params"] == {**synthetic.DEFAULT_PARAMS, **TINY, "seed": 3}
    assert "SYNTHETIC" in meta["description"]
    assert "SYNTHETIC" in (out / "README.txt").read_text(encoding="utf-8")
    assert is_synthetic_dir(out)
    # no temporary folders left next to the output
    assert [p.name for p in out.parent.iterdir()] == [out.name]


@pytest.mark.parametrize("split", list(SPLIT_SIZES))
def test_loads_through_precomp(tiny, split: str) -> None:
    out, _ = tiny
    n = SPLIT_SIZES[split]
    s = load_precomp(out, split)
    assert s.features.shape == (n, TINY["n_regions"], TINY["feature_dim"])
    assert s.features.dtype == np.float32
    assert float(np.asarray(s.features).min()) >= 0.0       # post-ReLU, like bottom-up features
    assert s.n_captions == 5 * n and s.captions_per_image == TINY["captions_per_image"]
    assert s.image_ids == [f"synthetic_{split}_{i + 1:06d}" for i in range(n)]
    assert s.boxes.shape == (n, TINY["n_regions"], 4)
    assert s.image_sizes.shape == (n, 2)
    w, h = s.image_sizes[:, 0], s.image_sizes[:, 1]
    assert ((480 <= w) & (w <= 640) & (360 <= h) & (h <= 480)).all()
    b = s.boxes
    assert (b[..., 0] >= 0).all() and (b[..., 1] >= 0).all()
    assert (b[..., 2] <= w[:, None] + 1e-3).all() and (b[..., 3] <= h[:, None] + 1e-3).all()
    assert (b[..., 2] > b[..., 0]).all() and (b[..., 3] > b[..., 1]).all()


def test_scene_graphs_match_precomp(tiny) -> None:
    out, _ = tiny
    s = load_precomp(out, "train")
    graphs = _read_jsonl(out / "train_scene_graphs.jsonl")
    assert [g["image"] for g in graphs] == list(range(20))
    for g in graphs:
        row = g["image"]
        assert g["image_id"] == s.image_ids[row]
        assert [g["width"], g["height"]] == s.image_sizes[row].tolist()
        assert 2 <= len(g["objects"]) <= 4
        regions = [o["region"] for o in g["objects"]]
        assert len(set(regions)) == len(regions)
        for o in g["objects"]:
            assert len(o["attributes"]) <= 2
            np.testing.assert_allclose(s.boxes[row, o["region"]], o["box"], atol=1e-3)
        assert _geometric_relations(g) == {r for r in map(tuple, g["relations"])
                                           if r[1] == "left of"}
        for a, p, b in g["relations"]:
            inverse = {"left of": "right of", "right of": "left of", "above": "below",
                       "below": "above", "next to": "next to"}
            if p in inverse:
                assert [b, inverse[p], a] in g["relations"]


def test_captions_known_words_distinct_and_true(tiny) -> None:
    out, _ = tiny
    known = set(synthetic_words())
    for split, n in SPLIT_SIZES.items():
        s = load_precomp(out, split)
        graphs = _read_jsonl(out / f"{split}_scene_graphs.jsonl")
        for cap in s.captions:
            assert set(tokenize(cap)) <= known, cap
        for row in range(n):
            caps = [s.captions[j] for j in s.captions_of_image[row]]
            assert len({" ".join(tokenize(c)) for c in caps}) == len(caps), caps
            for c in caps:
                assert caption_holds(c, graphs[row]), (c, graphs[row])


def test_hard_negatives(tiny) -> None:
    out, _ = tiny
    kinds_seen = set()
    for split, n in SPLIT_SIZES.items():
        s = load_precomp(out, split)
        graphs = _read_jsonl(out / f"{split}_scene_graphs.jsonl")
        negs = _read_jsonl(out / f"{split}_hardneg.jsonl")
        per_image = {row: [x for x in negs if x["image"] == row] for row in range(n)}
        for row, items in per_image.items():
            assert 1 <= len(items) <= 2, (split, row)
            positives = [s.captions[j] for j in s.captions_of_image[row]]
            pos_keys = {" ".join(tokenize(c)) for c in positives}
            neg_keys = [" ".join(tokenize(x["caption"])) for x in items]
            assert len(set(neg_keys)) == len(neg_keys)
            for x, key in zip(items, neg_keys):
                assert set(x) == {"image", "caption", "positive", "kind"}
                assert x["kind"] in ("attribute_swap", "relation_flip", "attribute_replace")
                kinds_seen.add(x["kind"])
                assert x["positive"] in positives
                assert key not in pos_keys
                assert set(tokenize(x["caption"])) <= set(synthetic_words())
                # minimally different: same length up to a predicate synonym
                assert abs(len(tokenize(x["caption"])) - len(tokenize(x["positive"]))) <= 2
                assert not caption_holds(x["caption"], graphs[row]), x
                if x["kind"] == "relation_flip":
                    _, _, rel = parse_caption(x["caption"])
                    assert rel is not None
                    assert sorted(tokenize(x["caption"])) != sorted(tokenize(x["positive"])) \
                        or parse_caption(x["positive"])[1] != parse_caption(x["caption"])[1]
    assert {"relation_flip", "attribute_replace"} <= kinds_seen


def test_relation_flip_is_false_for_every_matching_pair(tiny) -> None:
    """A direct check of the relation-flip kind: no object pair matching the negative's subject
    and object phrases stands in the negative's relation."""
    out, _ = tiny
    n_checked = 0
    for split in SPLIT_SIZES:
        graphs = _read_jsonl(out / f"{split}_scene_graphs.jsonl")
        for x in _read_jsonl(out / f"{split}_hardneg.jsonl"):
            if x["kind"] != "relation_flip":
                continue
            _, mentions, (a, pred, b) = parse_caption(x["caption"])
            g = graphs[x["image"]]
            objs = g["objects"]

            def match(m, o):
                return o["category"] in NOUNS[m[0]] and m[1] <= set(o["attributes"])

            for i, j in itertools.permutations(range(len(objs)), 2):
                if match(mentions[a], objs[i]) and match(mentions[b], objs[j]):
                    assert [i, pred, j] not in g["relations"], x
            n_checked += 1
    assert n_checked > 0


def test_ensure_synthetic(tmp_path) -> None:
    out = tmp_path / "data"
    first = ensure_synthetic(out, **TINY)
    assert first["generated"] is True
    mtime = (out / "meta.json").stat().st_mtime_ns
    again = ensure_synthetic(out, **TINY)
    assert again["generated"] is False
    assert (out / "meta.json").stat().st_mtime_ns == mtime
    other = ensure_synthetic(out, **{**TINY, "seed": 1})
    assert other["generated"] is True and other["params"]["seed"] == 1
    assert json.loads((out / "meta.json").read_text())["params"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_refuses_non_synthetic_folder(tmp_path) -> None:
    out = tmp_path / "real"
    out.mkdir()
    (out / "train_caps.txt").write_text("precious real data\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a SYNTHETIC"):
        generate_synthetic(out, **TINY)
    with pytest.raises(FileExistsError):
        ensure_synthetic(out, **TINY)
    (out / "meta.json").write_text(json.dumps({"synthetic": False}), encoding="utf-8")
    with pytest.raises(FileExistsError):
        generate_synthetic(out, **TINY)
    assert (out / "train_caps.txt").read_text(encoding="utf-8") == "precious real data\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate_synthetic(afile, **TINY)


def test_empty_existing_folder_is_used(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    generate_synthetic(tmp_path / "empty", **TINY)
    assert is_synthetic_dir(tmp_path / "empty")


def test_crash_midway_leaves_no_output(tmp_path, monkeypatch) -> None:
    real = synthetic.write_precomp

    def failing(root, split, *args, **kw):
        if split == "dev":
            raise RuntimeError("simulated crash")
        return real(root, split, *args, **kw)

    monkeypatch.setattr(synthetic, "write_precomp", failing)
    out = tmp_path / "synthetic"
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_synthetic(out, **TINY)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_crash_keeps_previous_synthetic_folder(tmp_path, monkeypatch) -> None:
    out = tmp_path / "synthetic"
    generate_synthetic(out, **TINY)
    before = _files(out)

    def failing(*args, **kw):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(synthetic, "atomic_write_json", failing)
    with pytest.raises(RuntimeError):
        generate_synthetic(out, **{**TINY, "seed": 7})
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]


@pytest.mark.parametrize("kw, error", [
    (dict(n_regions=3), ValueError),
    (dict(n_train=0), ValueError),
    (dict(captions_per_image=0), ValueError),
    (dict(seed=-1), ValueError),
    (dict(feature_dim=2.5), TypeError),
])
def test_parameter_validation(tmp_path, kw, error) -> None:
    with pytest.raises(error):
        generate_synthetic(tmp_path / "x", **{**TINY, **kw})
    assert not (tmp_path / "x").exists()


def test_features_encode_category_and_position(tmp_path) -> None:
    """Object regions of one category are closer to each other than to other categories, and
    the horizontal box position is linearly recoverable from the features."""
    out = tmp_path / "syn"
    generate_synthetic(out, n_train=150, n_dev=1, n_test=1, n_regions=6, feature_dim=64, seed=0)
    s = load_precomp(out, "train")
    graphs = _read_jsonl(out / "train_scene_graphs.jsonl")
    feats, cats, cx = [], [], []
    for g in graphs:
        for o in g["objects"]:
            feats.append(np.asarray(s.features[g["image"], o["region"]]))
            cats.append(o["category"])
            cx.append((o["box"][0] + o["box"][2]) / 2 / g["width"])
    x = np.stack(feats)
    cats = np.array(cats)
    centroids = {c: x[cats == c].mean(0) for c in set(cats)}
    names = sorted(centroids)
    dist = np.stack([np.linalg.norm(x - centroids[c], axis=1) for c in names], axis=1)
    accuracy = (np.array(names)[dist.argmin(1)] == cats).mean()
    assert accuracy > 0.6
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(a, np.array(cx), rcond=None)
    residual = np.array(cx) - a @ coef
    assert residual.std() < 0.5 * np.std(cx)
