"""SGM (graphmatch.models.sgm): the batched score equals a per-pair loop, padding and missing
relations, relation direction on the image side, gradients, recipe checks, and training through
the normal path on synthetic scenes with relation edges."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from graphmatch.config import ExperimentConfig, load_config
from graphmatch.data.vocab import Vocabulary
from graphmatch.encoders.span import SpanPoolEncoder
from graphmatch.graphs import VisualGraph, build_text_graph, build_visual_graph, collate_graphs
from graphmatch.models import SGM, build_matcher
from graphmatch.models.base import attach_dense_graph
from graphmatch.structures import NODE_TYPE_PAD, NodeEmb, SceneGraph, SGAttribute, SGObject, SGRelation
from graphmatch.testing.reference import sgm_score_loop

IMG_DIM, EMBED = 6, 8
CAPTIONS = ["a dog on a red mat", "two cats", "a man rides a big brown horse", "the sky", "a cup under a table"]


def scene(text, objects=(), attributes=(), relations=()):
    """Hand-made parse: objects = word positions; attributes (word, object); relations (subject, word, object)."""
    toks = text.split()
    return SceneGraph(tokens=toks, objects=[SGObject(toks[i], (i, i + 1)) for i in objects],
                      attributes=[SGAttribute(o, toks[i], (i, i + 1)) for i, o in attributes],
                      relations=[SGRelation(s, toks[i], o, (i, i + 1)) for s, i, o in relations])


PARSES = [
    scene(CAPTIONS[0], objects=(1, 5), attributes=[(4, 1)], relations=[(0, 2, 1)]),
    scene(CAPTIONS[1], objects=(1,)),                                   # no relation
    scene(CAPTIONS[2], objects=(1, 6), attributes=[(4, 1), (5, 1)], relations=[(0, 2, 1)]),
    scene(CAPTIONS[3]),                                                 # no object: word nodes
    scene(CAPTIONS[4], objects=(1, 4), relations=[(0, 2, 1), (1, 2, 0)]),
]
#: per image: (regions, relation triples (subject, predicate, object))
IMAGES = [(3, [(0, 0, 1), (2, 1, 1)]), (4, [(1, 0, 3)]), (2, []), (5, [(0, 0, 1), (1, 1, 0), (4, 2, 2)])]


def vocab():
    return Vocabulary.build(CAPTIONS)


def captions(parses=PARSES):
    v = vocab()
    return collate_graphs([build_text_graph("scene", p, v.encode(p.tokens), item=i) for i, p in enumerate(parses)],
                          follow_batch=["words"])


def images(spec=IMAGES, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (r, rels) in enumerate(spec):
        x1y1 = torch.rand(r, 2, generator=g) * 50
        boxes = torch.cat([x1y1, x1y1 + 10 + torch.rand(r, 2, generator=g) * 40], 1)
        out.append(build_visual_graph(torch.randn(r, IMG_DIM, generator=g), boxes=boxes, image_size=(100.0, 100.0),
                                      item=i, edges="relations", relations=rels))
    return collate_graphs(out)


def recipe(visual="relations", text="scene"):
    return load_config(None, [f"data.graph.visual_edges={visual}", f"data.graph.text_graph={text}"]).data.graph


def model(seed=0, **options) -> SGM:
    cfg = ExperimentConfig()
    cfg.model.embed_dim, cfg.model.text.word_dim = EMBED, 4
    cfg.model.matcher.name = "sgm"
    for k, v in options.items():
        setattr(cfg.model.matcher, k, v)
    torch.manual_seed(seed)
    return build_matcher(cfg.model, img_dim=IMG_DIM, vocab=vocab(), recipe=recipe()).eval()


def reference(m: SGM, imgs, caps):
    img = attach_dense_graph(m.image_encoder(imgs), imgs)
    cap_emb = m.text_encoder(caps)
    cap = dataclasses.replace(attach_dense_graph(cap_emb, caps), node_type=cap_emb.node_type)
    return sgm_score_loop(img, cap, image_triple=m.image_triple, text_triple=m.text_triple,
                          attribute_path=m.attribute_path, rel_weight=m.rel_weight, direction=m.direction,
                          attributes=m.attributes)


# ---------------------------------------------------------------------------------- the maths
@pytest.mark.parametrize("direction", ["t2i", "i2t", "both"])
@pytest.mark.parametrize("attributes", ["nodes", "fold"])
def test_batched_score_equals_the_per_pair_loop(direction, attributes):
    m = model(direction=direction, attributes=attributes, rel_weight=0.7)
    assert isinstance(m.text_encoder, SpanPoolEncoder) and m.edge_dim == 5  # relations: relative geometry
    imgs, caps = images(), captions()
    with torch.no_grad():
        s = m(imgs, caps)
        ref = reference(m, imgs, caps)
    assert s.shape == (4, 5)
    torch.testing.assert_close(s, ref, atol=1e-5, rtol=1e-5)


def test_image_nodes_are_objects_then_one_relation_per_edge():
    m = model()
    with torch.no_grad():
        img = m.encode_images(images())
    for b, (r, rels) in enumerate(IMAGES):
        n = int(img.mask[b].sum())
        assert n == r + len(rels)
        assert img.node_type[b, :n].tolist() == [0] * r + [2] * len(rels)
        assert (img.node_type[b, n:] == NODE_TYPE_PAD).all() and torch.equal(img.x[b, n:], torch.zeros_like(img.x[b, n:]))


def test_padding_never_changes_a_score():
    m = model(direction="both")
    with torch.no_grad():
        img, cap = m.encode_images(images()), m.encode_captions(captions())
        ref = m.score(img, cap)

        def pad(e: NodeEmb, extra: int) -> NodeEmb:
            b = len(e)
            return NodeEmb(torch.cat([e.x, torch.randn(b, extra, EMBED) * 100], 1),
                           torch.cat([e.mask, torch.zeros(b, extra, dtype=torch.bool)], 1),
                           node_type=torch.cat([e.node_type, torch.tensor([[0, 2, 1][i % 3] for i in range(extra)]
                                                                          ).expand(b, extra)], 1))

        torch.testing.assert_close(m.score(pad(img, 4), pad(cap, 3)), ref)
        # a bigger graph in the batch (more padding for the others) changes nothing
        alone = m(images(IMAGES[:1]), captions(PARSES[:1]))
        torch.testing.assert_close(alone, ref[:1, :1], atol=1e-6, rtol=1e-5)


def test_missing_relations_score_zero_at_the_relation_level():
    m = model(rel_weight=1.0)
    objects_only = model(rel_weight=0.0)
    imgs = images()
    no_edges = images([(3, []), (4, [])])
    with torch.no_grad():
        # a caption without relations ("two cats", "the sky"): the relation weight does not matter
        s, s0 = m(imgs, captions()), objects_only(imgs, captions())
        torch.testing.assert_close(s[:, [1, 3]], s0[:, [1, 3]])
        assert not torch.allclose(s[:, [0, 2, 4]], s0[:, [0, 2, 4]])
        # images without any relation: every caption relation finds no match (0)
        torch.testing.assert_close(m(no_edges, captions()), objects_only(no_edges, captions()))
        # image 2 of IMAGES has no edge while others in its batch do
        torch.testing.assert_close(s[2], s0[2])


def test_reversing_an_image_relation_changes_the_score():
    m = model()
    forward = images([(3, [(0, 0, 1)])], seed=3)
    backward = forward.clone()
    backward.edge_index = forward.edge_index.flip(0)
    caps = captions(PARSES[:1])  # "a dog on a red mat": dog -> on -> mat
    with torch.no_grad():
        s_f, s_b = m(forward, caps), m(backward, caps)
        # the same nodes: a bag of nodes (objects only) cannot tell the two apart
        torch.testing.assert_close(model(rel_weight=0.0)(forward, caps), model(rel_weight=0.0)(backward, caps))
    assert (s_f - s_b).abs().item() > 1e-4


def test_reversing_a_caption_relation_changes_the_score():
    m = model()
    a = scene("a dog on a mat", objects=(1, 4), relations=[(0, 2, 1)])
    b = scene("a dog on a mat", objects=(1, 4), relations=[(1, 2, 0)])
    with torch.no_grad():
        s = m(images(IMAGES[:1]), captions([a, b]))
    assert (s[0, 0] - s[0, 1]).abs().item() > 1e-4


def test_gradients_reach_every_part():
    m = model().train()
    sims = m(images(), captions())
    (sims.diagonal().sum() - sims.sum() / 4).backward()
    for part in (m.image_encoder, m.text_encoder, m.image_triple, m.text_triple, m.attribute_path):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part


# ------------------------------------------------------------------------------- other graphs, errors
def test_annotated_scene_graphs_with_predicate_features():
    """An image side built from a human scene graph: object nodes with features, edges subject -> object
    with predicate features (here of size 7), no boxes."""
    g = torch.Generator().manual_seed(0)

    def annotated(n, edges):
        ei = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
        return VisualGraph(x=torch.randn(n, IMG_DIM, generator=g), edge_index=ei,
                           edge_attr=torch.randn(ei.size(1), 7, generator=g), num_nodes=n)

    imgs = collate_graphs([annotated(3, [(0, 1), (1, 2)]), annotated(2, [(1, 0)])])
    cfg = ExperimentConfig()
    cfg.model.embed_dim, cfg.model.text.word_dim, cfg.model.matcher.name = EMBED, 4, "sgm"
    torch.manual_seed(0)
    m = build_matcher(cfg.model, img_dim=IMG_DIM, vocab=vocab())
    m = SGM(image_encoder=m.image_encoder, text_encoder=m.text_encoder, embed_dim=EMBED, edge_dim=7).eval()
    with torch.no_grad():
        torch.testing.assert_close(m(imgs, captions()), reference(m, imgs, captions()), atol=1e-5, rtol=1e-5)


def test_errors_name_what_is_wrong():
    m = model()
    with pytest.raises(ValueError, match="data.graph.text_graph"):
        build_matcher(_cfg_sgm(), img_dim=IMG_DIM, vocab=vocab(), recipe=recipe(text="words"))
    with pytest.raises(ValueError, match="edge features"):
        build_matcher(_cfg_sgm(), img_dim=IMG_DIM, vocab=vocab(), recipe=recipe(visual="full"))
    with torch.no_grad():
        img = m.encode_images(images())
        with pytest.raises(ValueError, match="node_type"):
            m.score(img, NodeEmb(img.x, img.mask))
    no_features = SGM(image_encoder=m.image_encoder, text_encoder=m.text_encoder, embed_dim=EMBED)
    with pytest.raises(ValueError, match="edge_dim=None"):
        no_features.encode_images(images())
    with pytest.raises(ValueError, match="direction"):
        SGM(image_encoder=m.image_encoder, text_encoder=m.text_encoder, embed_dim=EMBED, direction="up")


def _cfg_sgm():
    cfg = ExperimentConfig()
    cfg.model.embed_dim, cfg.model.text.word_dim, cfg.model.matcher.name = EMBED, 4, "sgm"
    return cfg.model


# ------------------------------------------------------------------------- training through the recipe
@pytest.fixture(scope="module")
def parsed_with_relations(parsed_synthetic, tmp_path_factory):
    """The tiny synthetic data with parse sidecars and the scenes' relations mapped onto regions."""
    root = tmp_path_factory.mktemp("parsed_sgm") / "data"
    shutil.copytree(parsed_synthetic, root)
    for split in ("train", "dev"):
        lines = []
        for line in (root / f"{split}_scene_graphs.jsonl").read_text().splitlines():
            s = json.loads(line)
            region = [o["region"] for o in s["objects"]]
            rels = [[region[i], k % 6, region[j]] for k, (i, _, j) in enumerate(s["relations"])
                    if region[i] is not None and region[j] is not None]
            lines.append(json.dumps({"image_id": s["image_id"], "relations": rels}))
        (root / f"{split}_relations.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_sgm_trains_on_relation_edges_and_scene_graphs(parsed_with_relations, tmp_path):
    from graphmatch.engine.train import train_experiment

    cfg = load_config(None, [f"data.root={parsed_with_relations}", f"output_dir={tmp_path / 'run'}",
                             "data.graph.visual_edges=relations", "data.graph.text_graph=scene",
                             "model.matcher.name=sgm", "model.embed_dim=16", "model.text.word_dim=8",
                             "train.epochs=1", "train.batch_size=32", "train.max_steps_per_epoch=3",
                             "train.device=cpu", "data.max_val_images=10"])
    summary = train_experiment(cfg, progress=False)
    assert summary["best_rsum"] is not None and torch.isfinite(torch.tensor(summary["best_rsum"]))


def test_a_text_gnn_stack_after_the_pooler_keeps_the_node_types():
    cfg = load_config(None, ["model.matcher.name=sgm", f"model.embed_dim={EMBED}", "model.text.word_dim=4",
                             "model.text_gnn.name=gcn", "model.image_gnn.name=gcn"])
    torch.manual_seed(0)
    m = build_matcher(cfg.model, img_dim=IMG_DIM, vocab=vocab(), recipe=recipe()).eval()
    caps = captions()
    with torch.no_grad():
        cap = m.encode_captions(caps)
        s = m.score(m.encode_images(images()), cap)
    assert torch.equal(cap.node_type[cap.mask], caps.node_type) and s.shape == (4, 5) and torch.isfinite(s).all()
