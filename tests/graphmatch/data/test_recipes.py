"""The graph recipe in the data path: every visual edge builder and text graph kind through
MatchingData, the default recipe's batches unchanged, the parse sidecar reader and its errors,
relation files, data sets built from a config section."""
import json
import shutil

import numpy as np
import pytest
import torch

from graphmatch.config import load_config
from graphmatch.data import DATASETS, build_dataset
from graphmatch.data.dataset import MatchingData
from graphmatch.data.parses import PARSES_FORMAT, PARSES_VERSION, load_parses
from graphmatch.data.precomp import DataError, load_precomp
from graphmatch.data.synthetic import CATEGORIES
from graphmatch.data.vocab import Vocabulary, tokenize
from graphmatch.graphs import (
    DEP_LABELS, NODE_ATTRIBUTE, NODE_OBJECT, VISUAL_EDGES, build_visual_graph, collate_graphs, edge_dim_of,
)
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation
from graphmatch.utils.atomic import file_sha256

NOUNS = {n for c in CATEGORIES for n in (*c.nouns, c.plural)}


@pytest.fixture()
def root(tiny_synthetic, tmp_path):
    """A private copy of the tiny SYNTHETIC folder (the tests write sidecars into it)."""
    dst = tmp_path / "synthetic"
    shutil.copytree(tiny_synthetic, dst)
    return dst


def recipe(*overrides):
    return load_config(None, list(overrides)).data.graph


def toy_parse(caption: str) -> SceneGraph:
    """A parse by whitespace with punctuation tokens of its own (as a parser's tokens would be):
    heads chain to the last word; nouns are objects, the word before a noun its attribute, the
    words between two objects their relation."""
    tokens, offsets, pos = [], [], 0
    for word in caption.split(" "):
        start = caption.index(word, pos)
        tokens.append(word)
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    tokens.append(".")  # a token no core token matches
    offsets.append((len(caption), len(caption)))
    n = len(tokens)
    heads = [min(i + 1, n - 2) for i in range(n - 1)] + [n - 2]
    deps = ["dep"] * (n - 2) + ["ROOT", "punct"]
    objects = [SGObject(t, (i, i + 1)) for i, t in enumerate(tokens) if t.lower() in NOUNS]
    attributes = [SGAttribute(k, tokens[o.span[0] - 1], (o.span[0] - 1, o.span[0]))
                  for k, o in enumerate(objects) if o.span[0] > 0 and tokens[o.span[0] - 1].lower() not in ("a", "an")]
    relations = [SGRelation(k, "rel", k + 1, (a.span[1], b.span[0]))
                 for k, (a, b) in enumerate(zip(objects, objects[1:])) if b.span[0] > a.span[1]]
    return SceneGraph(tokens=tokens, objects=objects, attributes=attributes, relations=relations, heads=heads,
                      deps=deps, text=caption, offsets=offsets)


def write_sidecar(root, split, *, records=None, header=None):
    caps = root / f"{split}_caps.txt"
    lines = caps.read_text(encoding="utf-8").splitlines()
    head = {"format": PARSES_FORMAT, "version": PARSES_VERSION, "captions": caps.name, "captions_sha256": file_sha256(caps),
            "n": len(lines), "parser": "toy/1"}
    head.update(header or {})
    recs = records if records is not None else [toy_parse(c).to_record() for c in lines]
    out = root / f"{split}_graphs.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in [head, *recs]), encoding="utf-8")
    return out


def data_for(root, split="train", *overrides):
    s = load_precomp(root, split)
    return MatchingData(s, Vocabulary.build(s.captions), recipe=recipe(*overrides))


# ------------------------------------------------------------------ the default recipe
def _old_image_graph(s, i):
    """How MatchingData built a precomp image graph before region sources (the reference)."""
    feats = np.array(s.features[i], dtype=np.float32)
    boxes = np.array(s.boxes[i], dtype=np.float32)
    keep = (feats != 0).any(axis=1)
    size = tuple(float(v) for v in s.image_sizes[i])
    return build_visual_graph(torch.from_numpy(feats[keep]), boxes=torch.from_numpy(boxes[keep]), image_size=size,
                              item=int(i))


def test_default_recipe_gives_the_batches_of_earlier_versions(root):
    s = load_precomp(root, "train")
    data = MatchingData(s, Vocabulary.build(s.captions))
    assert (data.visual_edges, data.text_graph_kind) == ("none", "words")
    b = data.pair_batch([5, 0, 7, 3, 100])
    ref = collate_graphs([_old_image_graph(s, i) for i in sorted({int(s.img_of_caption[c]) for c in [5, 0, 7, 3, 100]})])
    assert sorted(b.images.keys()) == sorted(ref.keys())
    for k in ref.keys():
        assert torch.equal(b.images[k], ref[k]), k
    assert b.captions.x.tolist() == torch.cat([data.token_ids[c] for c in [5, 0, 7, 3, 100]]).tolist()
    assert b.positive_mask().tolist() == (torch.arange(b.images.num_graphs)[:, None] == b.img_of_caption).tolist()
    same = MatchingData(s, data.vocab, recipe=recipe())  # the config's default recipe is the same
    assert torch.equal(same.pair_batch([5, 0]).images.x, data.pair_batch([5, 0]).images.x)


# ------------------------------------------------------------------ visual edges
@pytest.mark.parametrize("edges, overrides", [
    ("none", []), ("full", []), ("polar", []), ("knn", ["data.graph.visual_edges.k=2"]),
    ("iou", ["data.graph.visual_edges.iou_threshold=0.0"]), ("relations", []),
])
def test_every_visual_edge_builder_through_matching_data(root, edges, overrides):
    if edges == "relations":
        s = load_precomp(root, "train")
        lines = [json.dumps({"image_id": s.image_ids[0], "relations": [[0, 4, 1], [2, 1, 0]]}),
                 json.dumps({"image_id": s.image_ids[3], "relations": [[1, 2, 3]]})]
        (root / "train_relations.jsonl").write_text("\n".join(lines) + "\n")
    data = data_for(root, "train", f"data.graph.visual_edges.name={edges}", *overrides)
    g = data.image_graph(0)
    n = g.num_nodes
    dim = edge_dim_of(edges)
    assert dim == getattr(VISUAL_EDGES.get(edges), "edge_dim")
    if edges == "none":
        assert g.edge_index.shape == (2, 0) and "edge_attr" not in g
    elif edges == "full":
        assert g.edge_index.size(1) == n * (n - 1) and "edge_attr" not in g
    else:
        assert g.edge_attr.shape == (g.edge_index.size(1), dim) and torch.isfinite(g.edge_attr).all()
    if edges == "polar":
        assert g.edge_index.size(1) == n * (n - 1) and dim == 2
    if edges == "knn":
        assert g.edge_index.size(1) == 2 * n
    if edges == "relations":
        assert g.edge_index.tolist() == [[0, 2], [1, 0]] and g.edge_type.tolist() == [4, 1]
        assert data.image_graph(1).edge_index.size(1) == 0  # no line: no edges
    batch = data.pair_batch(list(range(12)))  # 3 captions per image: 4 images
    assert batch.images.num_graphs == 4
    assert batch.images.edge_index.size(1) == sum(data.image_graph(i).edge_index.size(1) for i in range(4))


def test_relation_file_errors_name_the_file_and_line(root):
    with pytest.raises(DataError, match=r"relation file .*train_relations.jsonl not found"):
        data_for(root, "train", "data.graph.visual_edges.name=relations")
    (root / "train_relations.jsonl").write_text('{"image_id": "nope", "relations": []}\n')
    with pytest.raises(DataError, match=r"train_relations.jsonl:1: image id 'nope' is not an image"):
        data_for(root, "train", "data.graph.visual_edges.name=relations")
    s = load_precomp(root, "train")
    (root / "train_relations.jsonl").write_text(json.dumps({"image_id": s.image_ids[0], "relations": [[0, 1, 99]]}))
    data = data_for(root, "train", "data.graph.visual_edges.name=relations")
    with pytest.raises(ValueError, match=r"train_relations.jsonl: image 'synthetic_train_000001' .*outside"):
        data.image_graph(0)


def test_edge_builder_options_are_config_keys_with_ranges():
    with pytest.raises(ValueError, match=r"'data.graph.visual_edges.k' must be >= 1"):
        load_config(None, ["data.graph.visual_edges.name=knn", "data.graph.visual_edges.k=0"])
    with pytest.raises(ValueError, match=r"unknown key 'data.graph.visual_edges.k'"):
        load_config(None, ["data.graph.visual_edges.name=polar", "data.graph.visual_edges.k=3"])


# ------------------------------------------------------------------ text graphs and the sidecar
@pytest.mark.parametrize("kind", ["words", "full", "dependency", "scene"])
def test_every_text_graph_kind_through_matching_data(root, kind):
    write_sidecar(root, "train")
    data = data_for(root, "train", f"data.graph.text_graph.name={kind}")
    c = 4
    g = data.caption_graph(c)
    n_words = data.token_ids[c].numel()
    if kind in ("words", "full", "dependency"):
        assert g.x.tolist() == data.token_ids[c].tolist()
    if kind == "full":
        assert g.edge_index.size(1) == n_words * (n_words - 1)
    if kind == "dependency":
        assert g.edge_index.size(1) == 2 * (n_words - 1)  # a chain: every word but the root has an arc
        assert {DEP_LABELS[t] for t in g.edge_type.tolist()} == {"dep"}
    if kind == "scene":
        assert g.words.tolist() == data.token_ids[c].tolist()
        words = load_precomp(root, "train").captions[c].split()
        objects = [i for i, w in enumerate(words) if w in NOUNS]
        assert g.node_type.tolist().count(NODE_OBJECT) == len(objects)
        assert [list(sp) for sp, t in zip(g.span.tolist(), g.node_type.tolist()) if t == NODE_OBJECT] == \
            [[i, i + 1] for i in objects]  # spans index the caption's core tokens
        parse = toy_parse(load_precomp(root, "train").captions[c])
        assert g.node_type.tolist().count(NODE_ATTRIBUTE) == len(parse.attributes)
    b = data.pair_batch(list(range(8)))
    assert b.captions.num_graphs == 8
    if kind == "scene":
        assert b.captions.words_batch.max().item() == 7


def test_missing_sidecar_names_the_file_and_the_command(root):
    with pytest.raises(DataError, match=r"parse file .*train_graphs.jsonl not found.*"
                                         r"`graphmatch parse --precomp .*synthetic --split train`") as e:
        data_for(root, "train", "data.graph.text_graph.name=dependency")
    assert e.value.code == "parses_missing"


def test_stale_sidecar_is_detected_and_named(root):
    write_sidecar(root, "train")
    caps = root / "train_caps.txt"
    lines = caps.read_text().splitlines()
    lines[3] = "a red car next to a tree"
    caps.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train_graphs.jsonl is stale: .*train_caps.txt changed after it was parsed"
                                         r".*graphmatch parse --precomp") as e:
        data_for(root, "train", "data.graph.text_graph.name=scene")
    assert e.value.code == "parses_stale"


def test_sidecar_count_and_record_errors(root):
    s = load_precomp(root, "train")
    recs = [toy_parse(c).to_record() for c in s.captions]
    write_sidecar(root, "train", header={"n": 5})
    with pytest.raises(DataError, match=r"train_graphs.jsonl:1: the header says n = 5 captions but train_caps.txt "
                                         r"has 720"):
        data_for(root, "train", "data.graph.text_graph.name=dependency")
    write_sidecar(root, "train", records=recs[:-2])
    with pytest.raises(DataError, match=r"has 718 records but .* 720 captions \(an interrupted write\?\)"):
        data_for(root, "train", "data.graph.text_graph.name=dependency")
    bad = [dict(r) for r in recs]
    bad[6]["objects"] = [{"name": "dog", "span": [0, 99]}]
    write_sidecar(root, "train", records=bad)
    with pytest.raises(DataError, match=r"train_graphs.jsonl:8: .*objects\[0\].* outside"):
        data_for(root, "train", "data.graph.text_graph.name=scene")
    j = next(j for j in range(1, len(recs)) if tokenize(s.captions[j]) != tokenize(s.captions[0]))
    swapped = list(recs)
    swapped[0], swapped[j] = swapped[j], swapped[0]  # records out of caption order
    write_sidecar(root, "train", records=swapped)
    with pytest.raises(DataError, match=r"train_graphs.jsonl:2: the record's text .* does not have the words of "
                                         r"line 1"):
        data_for(root, "train", "data.graph.text_graph.name=scene")
    out = write_sidecar(root, "train")
    out.write_text(out.read_text().replace('"format": "graphmatch.parses"', '"format": "other"', 1))
    with pytest.raises(DataError, match=r"train_graphs.jsonl:1: not a parse file"):
        data_for(root, "train", "data.graph.text_graph.name=scene")
    out = write_sidecar(root, "train")
    out.write_text(out.read_text().splitlines()[0] + "\n" + "{not json\n")
    with pytest.raises(DataError, match=r"train_graphs.jsonl:2: .*not valid JSON"):
        data_for(root, "train", "data.graph.text_graph.name=scene")


def test_sidecar_parses_are_aligned_to_the_core_tokens(root):
    write_sidecar(root, "train")
    s = load_precomp(root, "train")
    parses = load_parses(root / "train_graphs.jsonl", root / "train_caps.txt", s.captions)
    for c in (0, 9, 100):
        assert parses[c].tokens == tokenize(s.captions[c])  # the "." of the toy parser dropped out
        assert parses[c].heads[-1] == len(parses[c].tokens) - 1 and parses[c].deps[-1] == "ROOT"


def test_hard_negatives_on_parse_recipes_get_unparsed_graphs(root, caplog):
    write_sidecar(root, "train")
    for kind in ("dependency", "scene"):
        data = data_for(root, "train", f"data.graph.text_graph.name={kind}")
        g = data.text_graph("a small red dog next to a car")
        if kind == "dependency":
            assert g.edge_index.size(1) == 0 and g.x.numel() == 8
        else:
            assert g.num_nodes == 8 and g.words.numel() == 8
    assert "have no parse" in caplog.text


# ------------------------------------------------------------------ data sets
def test_data_sets_are_components_with_their_own_options(root, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "cache"))
    assert {"precomp", "synthetic"} <= set(DATASETS.names())
    cfg = load_config(None, [f"data.root={root}", "data.graph.visual_edges.name=polar"])
    ds = build_dataset(cfg.data)
    ds.prepare()
    split = ds.load_split("dev")
    assert split.n_images == 40
    vocab = ds.build_vocab(ds.load_split("train").captions)
    dev = ds.load_split("dev", vocab)
    assert isinstance(dev, MatchingData) and dev.visual_edges == "polar"
    assert dev.image_graph(0).edge_attr.size(1) == 2

    new = tmp_path / "generated"
    syn = load_config(None, [f"data.root={new}", "data.name=synthetic", "data.n_train=12", "data.n_dev=4",
                             "data.n_test=4", "data.captions_per_image=2", "data.feature_dim=8", "data.n_regions=5"])
    assert syn.data.kwargs()["n_train"] == 12 and syn.data.common.root == str(new)
    sds = build_dataset(syn.data)
    sds.prepare()
    assert load_precomp(new, "train").n_images == 12 and sds.load_split("train").n_captions == 24
    with pytest.raises(ValueError, match=r"unknown key 'data.n_trian'.*did you mean n_train"):
        load_config(None, ["data.name=synthetic", "data.n_trian=3"])
    with pytest.raises(ValueError, match=r"'data.n_regions' must be >= 4"):
        load_config(None, ["data.name=synthetic", "data.n_regions=2"])
