"""The contract every registered matcher keeps (a new matcher is covered by registering it):

* padding never changes a score, and neither does the order of the nodes;
* unequal image / caption counts give ``[n_images, n_captions]``; one-region and one-word inputs work;
* gradients reach both encoders;
* a checkpoint round trip gives identical scores.

Each matcher gets the graphs its ``graph_needs`` asks for: visual edges with features (``polar``)
when it reads them, and scene text graphs (from hand-made parses of the captions) when it takes
only those.
"""
import pytest
import torch

from graphmatch.config import load_config
from graphmatch.data.vocab import Vocabulary
from graphmatch.engine.checkpoint import load_checkpoint, save_checkpoint
from graphmatch.graphs import build_text_graph, build_visual_graph, build_word_graph, collate_graphs
from graphmatch.models import MATCHERS, build_matcher
from graphmatch.structures import NodeEmb, SceneGraph, SGAttribute, SGObject, SGRelation

NAMES = MATCHERS.names()
IMG_DIM, EMBED = 6, 8
CAPTIONS = ["a dog on a red mat", "two cats", "a man rides a horse", "the sky", "a big red bus on a road"]
#: hand-made parses: object word positions, (attribute word, object), (subject, relation word, object)
PARSES = {
    "a dog on a red mat": ((1, 5), [(4, 1)], [(0, 2, 1)]),
    "two cats": ((1,), [], []),
    "a man rides a horse": ((1, 4), [], [(0, 2, 1)]),
    "the sky": ((), [], []),
    "a big red bus on a road": ((3, 6), [(1, 0), (2, 0)], [(0, 4, 1)]),
    "dog": ((0,), [], []),
    "cats": ((0,), [], []),
}


def _graph_kinds(name: str):
    """(visual edges, text graph kind) that give matcher ``name`` what its ``graph_needs`` asks for."""
    needs = MATCHERS.get(name).graph_needs
    if needs is None:
        return "none", "words"
    visual = needs.visual_edges[0] if needs.visual_edges else ("polar" if needs.edge_attr else "none")
    return visual, needs.text_graphs[0] if needs.text_graphs else "words"


def _scene(text: str) -> SceneGraph:
    toks = text.split()
    objects, attributes, relations = PARSES[text]
    return SceneGraph(tokens=toks, objects=[SGObject(toks[i], (i, i + 1)) for i in objects],
                      attributes=[SGAttribute(o, toks[i], (i, i + 1)) for i, o in attributes],
                      relations=[SGRelation(s, toks[i], o, (i, i + 1)) for s, i, o in relations])


def _vocab() -> Vocabulary:
    return Vocabulary.build(CAPTIONS)


#: matcher options the contract's small sizes need (EMBED-d nodes)
OPTIONS = {"gsmn": ("model.matcher.num_block=4",)}


def _config(name: str):
    visual, text = _graph_kinds(name)
    cfg = load_config(None, [f"data.graph.visual_edges={visual}", f"data.graph.text_graph={text}",
                             f"model.matcher.name={name}", *OPTIONS.get(name, ())])
    cfg.model.embed_dim = EMBED
    cfg.model.text.word_dim = 4
    return cfg


def _model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    cfg = _config(name)
    return build_matcher(cfg.model, img_dim=IMG_DIM, vocab=_vocab(), recipe=cfg.data.graph).eval(), cfg


def _images(n: int, regions=(3, 5, 1, 4), name: str = "scan"):
    edges = _graph_kinds(name)[0]
    g = torch.Generator().manual_seed(1)
    out = []
    for i in range(n):
        r = regions[i % len(regions)]
        x1y1 = torch.rand(r, 2, generator=g) * 50
        boxes = torch.cat([x1y1, x1y1 + 10 + torch.rand(r, 2, generator=g) * 40], 1)
        out.append(build_visual_graph(torch.randn(r, IMG_DIM, generator=g), boxes=boxes, image_size=(100.0, 100.0),
                                      item=i, edges=edges))
    return collate_graphs(out)


def _captions(texts, name: str = "scan"):
    vocab = _vocab()
    if _graph_kinds(name)[1] == "scene":
        graphs = [build_text_graph("scene", _scene(t), vocab.encode(t), item=i) for i, t in enumerate(texts)]
        return collate_graphs(graphs, follow_batch=["words"])
    return collate_graphs([build_word_graph(vocab.encode(t), item=i) for i, t in enumerate(texts)])


def _pad(emb: NodeEmb, extra: int) -> NodeEmb:
    """``extra`` padding columns holding garbage (masked out), adjacency padded with zeros."""
    b, n = emb.mask.shape
    junk = torch.randn(b, extra, *emb.x.shape[2:]) * 100
    x = torch.cat([emb.x, junk], 1)
    mask = torch.cat([emb.mask, torch.zeros(b, extra, dtype=torch.bool)], 1)
    adj = None if emb.adj is None else torch.nn.functional.pad(emb.adj, (0, extra, 0, extra))
    ea = None if emb.edge_attr is None else torch.nn.functional.pad(emb.edge_attr, (0, 0, 0, extra, 0, extra))
    nt = None if emb.node_type is None else torch.cat([emb.node_type, torch.randint(0, 4, (b, extra))], 1)
    return NodeEmb(x, mask, adj, ea, emb.pooled, nt)


def _permute(emb: NodeEmb, seed: int) -> NodeEmb:
    """The real nodes of every row in another order (adjacency permuted with them)."""
    g = torch.Generator().manual_seed(seed)
    x, mask = emb.x.clone(), emb.mask.clone()
    adj = None if emb.adj is None else emb.adj.clone()
    ea = None if emb.edge_attr is None else emb.edge_attr.clone()
    nt = None if emb.node_type is None else emb.node_type.clone()
    for b in range(x.shape[0]):
        n = int(mask[b].sum())
        p = torch.randperm(n, generator=g)
        x[b, :n] = emb.x[b, :n][p]
        if adj is not None:
            adj[b, :n, :n] = emb.adj[b, :n, :n][p][:, p]
        if ea is not None:
            ea[b, :n, :n] = emb.edge_attr[b, :n, :n][p][:, p]
        if nt is not None:
            nt[b, :n] = emb.node_type[b, :n][p]
    return NodeEmb(x, mask, adj, ea, emb.pooled, nt)


def test_every_builtin_matcher_is_covered():
    assert {"scan", "sgm"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_with_unequal_counts_and_tiny_inputs(name):
    model, _ = _model(name)
    with torch.no_grad():
        img, cap = model.encode_images(_images(3, name=name)), model.encode_captions(_captions(CAPTIONS, name))
        s = model.score(img, cap)
        assert s.shape == (3, 5) and torch.isfinite(s).all()
        one_region = model.encode_images(_images(2, regions=(1,), name=name))
        one_word = model.encode_captions(_captions(["dog", "cats"], name))
        assert model.score(one_region, one_word).shape == (2, 2)
        assert model(_images(4, name=name), _captions(CAPTIONS[:2], name)).shape == (4, 2)


@pytest.mark.parametrize("name", NAMES)
def test_padding_and_node_order_never_change_a_score(name):
    model, _ = _model(name)
    with torch.no_grad():
        img, cap = model.encode_images(_images(4, name=name)), model.encode_captions(_captions(CAPTIONS, name))
        ref = model.score(img, cap)
        torch.testing.assert_close(model.score(_pad(img, 3), _pad(cap, 2)), ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.score(_permute(img, 0), _permute(cap, 1)), ref, rtol=1e-5, atol=1e-6)
        # one pair scored alone equals its entry in the full matrix (no batch effects)
        torch.testing.assert_close(model.score(img[2], cap[3:4]), ref[2:3, 3:4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_both_encoders(name):
    model, _ = _model(name)
    model.train()
    sims = model(_images(3, name=name), _captions(CAPTIONS[:3], name))
    (sims.diagonal().sum() - sims.sum() / 3).backward()
    for side in ("image_encoder", "text_encoder"):
        grads = [p.grad for p in getattr(model, side).parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), side


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_scores(name, tmp_path):
    model, cfg = _model(name)
    vocab = _vocab()
    save_checkpoint(tmp_path / "ckpt", model, cfg, vocab, model_meta={"img_dim": IMG_DIM}, state={"epoch": 0})
    loaded, cfg2, _, _ = load_checkpoint(tmp_path / "ckpt")
    assert cfg2.model == cfg.model
    imgs, caps = _images(3, name=name), _captions(CAPTIONS, name)
    with torch.no_grad():
        torch.testing.assert_close(loaded(imgs, caps), model(imgs, caps), rtol=0, atol=0)
