"""Scene-graph node features pooled from the word states of their spans (graphmatch.encoders.span),
the node types they carry in NodeEmb, the composition with a GNN stack, and SCAN trained on scene
text graphs through the normal path."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from graphmatch.config import ExperimentConfig, load_config
from graphmatch.data.vocab import Vocabulary
from graphmatch.encoders import build_encoder
from graphmatch.encoders.graph import GraphEncoder
from graphmatch.encoders.span import SpanPoolEncoder, is_span_batch, word_view
from graphmatch.encoders.text import BiGRUTextEncoder
from graphmatch.graphs import build_text_graph, build_word_graph, collate_graphs
from graphmatch.models import build_matcher
from graphmatch.nn.functional import l2norm
from graphmatch.structures import NODE_TYPE_PAD, NodeEmb, SceneGraph, SGAttribute, SGObject, SGRelation

DIM = 8
CAPTIONS = ["a dog on a red mat", "two cats sleep", "a man rides a big brown horse", "the sky"]


def scene(text: str, objects=(), attributes=(), relations=(), spans=None) -> SceneGraph:
    """A hand-made parse: ``objects`` are word positions, ``attributes`` (word, object number),
    ``relations`` (subject number, word, object number); ``spans`` overrides object spans."""
    toks = text.split()
    objs = [SGObject(toks[i], (i, i + 1)) for i in objects]
    for k, sp in (spans or {}).items():
        objs[k] = SGObject(objs[k].name, sp)
    return SceneGraph(tokens=toks, objects=objs,
                      attributes=[SGAttribute(o, toks[i], (i, i + 1)) for i, o in attributes],
                      relations=[SGRelation(s, toks[i], o, (i, i + 1)) for s, i, o in relations])


PARSES = [
    scene(CAPTIONS[0], objects=(1, 5), attributes=[(4, 1)], relations=[(0, 2, 1)]),
    scene(CAPTIONS[1], objects=(1,), spans={0: (0, 2)}),                 # a two-word object "two cats"
    scene(CAPTIONS[2], objects=(1, 6), attributes=[(4, 1), (5, 1)], relations=[(0, 2, 1)]),
    scene(CAPTIONS[3]),                                                   # no object: word nodes
]


def vocab() -> Vocabulary:
    return Vocabulary.build(CAPTIONS)


def scene_batch(parses=PARSES):
    v = vocab()
    return collate_graphs([build_text_graph("scene", p, v.encode(p.tokens), item=i) for i, p in enumerate(parses)],
                          follow_batch=["words"])


def word_encoder(seed: int = 0) -> BiGRUTextEncoder:
    torch.manual_seed(seed)
    return BiGRUTextEncoder(vocab_size=len(vocab()), word_dim=6, embed_dim=DIM).eval()


def word_states(enc, parses=PARSES):
    """The word encoder on plain word graphs of the same captions (an independent path)."""
    v = vocab()
    return enc(collate_graphs([build_word_graph(v.encode(p.tokens)) for p in parses]))


def loop_pool(states: NodeEmb, batch, pool: str, score_vectors=None):
    """Per node: its span's word states, their mean or softmax-weighted sum, l2-normalised."""
    out = []
    for n in range(batch.num_nodes):
        b = int(batch.batch[n])
        s, e = batch.span[n].tolist()
        h = states.x[b, s:e]
        if h.size(0) == 0:
            out.append(torch.zeros(DIM))
            continue
        if pool == "mean":
            v = h.mean(0)
        else:
            a = torch.softmax(h @ score_vectors[int(batch.node_type[n])], dim=0)
            v = (a.unsqueeze(1) * h).sum(0)
        out.append(l2norm(v, dim=-1))
    return torch.stack(out)


# ------------------------------------------------------------------------------------- pooling
def test_the_word_view_has_one_node_per_word():
    b = scene_batch()
    assert is_span_batch(b) and not is_span_batch(collate_graphs([build_word_graph([3, 4])]))
    view = word_view(b)
    assert view.num_graphs == 4 and torch.equal(view.x, b.words) and torch.equal(view.batch, b.words_batch)
    unbatched = collate_graphs([build_text_graph("scene", PARSES[0], vocab().encode(PARSES[0].tokens))])
    with pytest.raises(ValueError, match="words_batch"):
        word_view(unbatched)


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_pooling_equals_a_per_node_loop(pool):
    enc = SpanPoolEncoder(word_encoder(), dim=DIM, pool=pool).eval()
    if pool == "attention":
        with torch.no_grad():
            enc.score_vectors.normal_(0, 3.0)  # far from uniform
    b = scene_batch()
    with torch.no_grad():
        out = enc(b)
        ref = loop_pool(word_states(enc.word_encoder), b, pool, enc.score_vectors)
    assert out.x.shape[:2] == out.mask.shape == (4, int(torch.bincount(b.batch).max()))
    torch.testing.assert_close(out.x[out.mask], ref, atol=1e-6, rtol=1e-5)
    assert torch.equal(out.x[~out.mask], torch.zeros(int((~out.mask).sum()), DIM))  # padding rows zero
    # node types travel with the nodes; padding is -1
    assert torch.equal(out.node_type[out.mask], b.node_type)
    assert (out.node_type[~out.mask] == NODE_TYPE_PAD).all()
    assert out.node_type[3].tolist()[:2] == [3, 3]  # the caption without objects: word nodes


def test_attention_starts_as_the_mean_and_learns():
    b = scene_batch()
    att = SpanPoolEncoder(word_encoder(), dim=DIM, pool="attention")
    mean = SpanPoolEncoder(word_encoder(), dim=DIM, pool="mean")
    torch.testing.assert_close(att(b).x, mean(b).x)
    att(b).x[1, 0].sum().backward()  # "two cats": a two-word span, so the weights matter
    assert att.score_vectors.grad[0].abs().sum() > 0


def test_an_empty_span_gives_the_zero_vector():
    p = scene("a dog on a mat", objects=(1, 4), relations=[(0, 2, 1)])
    p.relations[0].span = (2, 2)  # a relation named by no word
    b = scene_batch([p])
    for pool in ("mean", "attention"):
        out = SpanPoolEncoder(word_encoder(), dim=DIM, pool=pool)(b)
        assert torch.isfinite(out.x).all() and torch.equal(out.x[0, 2], torch.zeros(DIM))
        assert out.x[0, :2].norm(dim=-1).allclose(torch.ones(2))


def test_word_graphs_pass_through_and_errors_are_named():
    enc = SpanPoolEncoder(word_encoder(), dim=DIM)
    words = collate_graphs([build_word_graph(vocab().encode("a dog"))])
    torch.testing.assert_close(enc(words).x, enc.word_encoder(words).x)
    with pytest.raises(ValueError, match="pool must be one of"):
        SpanPoolEncoder(word_encoder(), dim=DIM, pool="max")
    with pytest.raises(ValueError, match="dim=5"):
        SpanPoolEncoder(word_encoder(), dim=5)(scene_batch())


# ------------------------------------------------------------------------------- with a GNN stack
def test_a_gnn_stack_runs_on_the_pooled_nodes():
    cfg = ExperimentConfig()
    cfg.model.text.word_dim = 6
    torch.manual_seed(0)
    enc = build_encoder(cfg.model.text, embed_dim=DIM, vocab=vocab(), span_pool="attention",
                        gnn={"name": "gcn", "num_layers": 2})
    assert isinstance(enc, GraphEncoder) and isinstance(enc.base, SpanPoolEncoder) and enc.base.pool == "attention"
    b = scene_batch()
    out = enc(b)
    assert out.x.shape == enc.base(b).x.shape
    # the stack is applied to the pooled nodes in batch order, over the scene graph's edges
    base = enc.base(b)
    ref = enc.stack(base.x[base.mask], b.edge_index)
    assert enc.normalize  # the pooler normalises, so the stack's output is normalised too
    torch.testing.assert_close(out.x[out.mask], l2norm(ref, dim=-1))
    # the scene graph's edges matter: the object "mat" receives messages from "red" and "on"
    no_edges = b.clone()
    no_edges.edge_index = torch.zeros(2, 0, dtype=torch.long)
    assert not torch.allclose(enc(no_edges).x[0, 1], out.x[0, 1])
    out.x[out.mask].sum().backward()
    assert enc.base.word_encoder.embed.weight.grad.abs().sum() > 0


def test_build_matcher_pools_scene_graphs_only():
    cfg = ExperimentConfig()
    cfg.model.embed_dim, cfg.model.text.word_dim = DIM, 6
    scene_recipe = dataclasses.replace(cfg.data.graph, text_graph="scene")
    m = build_matcher(cfg.model, img_dim=4, vocab=vocab(), recipe=scene_recipe)
    assert isinstance(m.text_encoder, SpanPoolEncoder) and m.text_encoder.pool == "mean"
    assert isinstance(build_matcher(cfg.model, img_dim=4, vocab=vocab(), recipe=cfg.data.graph).text_encoder,
                      BiGRUTextEncoder)
    cfg.model.text_pool = "attention"
    assert build_matcher(cfg.model, img_dim=4, vocab=vocab(), recipe=scene_recipe).text_encoder.pool == "attention"
    with pytest.raises(ValueError, match="text_pool"):
        load_config(None, ["model.text_pool=max"])


# ------------------------------------------------------------------------------------ NodeEmb
def test_node_emb_carries_node_types_through_slicing_trim_cat_and_to():
    x = torch.randn(3, 4, 2)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    types = torch.tensor([[0, 2, -1, -1], [3, -1, -1, -1], [0, 1, 2, -1]])
    e = NodeEmb(x, mask, node_type=types)
    assert torch.equal(e[1:].node_type, types[1:]) and torch.equal(e[torch.tensor([2, 0])].node_type, types[[2, 0]])
    assert torch.equal(e.trim().node_type, types[:, :3])
    c = NodeEmb.cat([e[:2].trim(), e[2:]])
    assert c.node_type.shape == (3, 4) and torch.equal(c.node_type[:2, :2], types[:2, :2])
    assert (c.node_type[:2, 2:] == NODE_TYPE_PAD).all()  # padded with -1
    assert torch.equal(e.to("cpu").node_type, types)
    with pytest.raises(ValueError, match="node_type has shape"):
        NodeEmb(x, mask, node_type=types[:, :2])
    with pytest.raises(ValueError, match="integer"):
        NodeEmb(x, mask, node_type=types.float())
    with pytest.raises(ValueError, match="'node_type' is set in some parts"):
        NodeEmb.cat([e, NodeEmb(x, mask)])


# ------------------------------------------------------------------------- training through the recipe
@pytest.fixture()
def parsed(parsed_synthetic):
    return parsed_synthetic


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_scan_trains_on_scene_graph_nodes(parsed, tmp_path, pool):
    from graphmatch.engine.train import train_experiment

    cfg = load_config(None, [f"data.root={parsed}", f"output_dir={tmp_path / 'run'}", "data.graph.text_graph=scene",
                             "model.embed_dim=16", "model.text.word_dim=8", f"model.text_pool={pool}",
                             "train.epochs=1", "train.batch_size=32", "train.max_steps_per_epoch=3",
                             "train.device=cpu", "data.max_val_images=10"])
    summary = train_experiment(cfg, progress=False)
    assert summary["best_rsum"] is not None and torch.isfinite(torch.tensor(summary["best_rsum"]))
