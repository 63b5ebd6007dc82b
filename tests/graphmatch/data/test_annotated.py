"""Human scene graphs as visual graphs (graphmatch.data.annotated)."""
import json
from pathlib import Path

import pytest
import torch

from graphmatch.data.annotated import (
    AnnotatedGraph, AnnotatedRelationEdges, NameEmbedder, annotated_visual_graph, build_predicate_vocab,
)
from graphmatch.encoders import PrecompRegionEncoder
from graphmatch.graphs import collate_graphs

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "factual_small.jsonl"


def cat_on_bed():
    return AnnotatedGraph.from_names(["cat", "bed", "train track"], [["cat", "black"], ["cat", "fluffy"], ["bed", "white"]],
                                     [["cat", "on", "bed"], ["train track", "next to", "bed"]])


def test_from_names_indexes_objects_and_keeps_order():
    g = cat_on_bed()
    assert g.objects == ("cat", "bed", "train track")
    assert g.attributes == ((0, "black"), (0, "fluffy"), (1, "white"))
    assert g.relations == ((0, "on", 1), (2, "next to", 1))
    assert g.to_names()["relations"] == [["cat", "on", "bed"], ["train track", "next to", "bed"]]


@pytest.mark.parametrize("record, field", [
    ({"objects": ["cat"], "attributes": [], "relations": [["cat", "on", "bed"]]}, "relations[0][2]"),
    ({"objects": ["cat"], "attributes": [["dog", "black"]], "relations": []}, "attributes[0][0]"),
    ({"objects": ["cat", "cat"], "attributes": [], "relations": []}, "objects[1]"),
    ({"objects": ["cat"], "attributes": [["cat"]], "relations": []}, "attributes[0]"),
    ({"objects": "cat", "attributes": [], "relations": []}, "'objects' must be a list"),
    ({"attributes": [], "relations": []}, "no 'objects'"),
])
def test_bad_records_name_the_field(record, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")) as e:
        AnnotatedGraph.from_record(record, where="f.jsonl:3")
    assert "f.jsonl:3" in str(e.value)


def test_index_form_checks_ranges():
    with pytest.raises(ValueError, match=r"relations\[0\]: object index 5"):
        AnnotatedGraph(("a", "b"), (), ((0, "on", 5),))
    with pytest.raises(ValueError, match=r"objects\[1\]"):
        AnnotatedGraph(("a", " "))


def test_named_tuples_ignore_node_order():
    a = AnnotatedGraph(("cat", "bed"), ((0, "black"),), ((0, "on", 1),))
    b = AnnotatedGraph(("bed", "cat"), ((1, "black"),), ((1, "on", 0),))
    c = AnnotatedGraph(("cat", "bed"), ((0, "black"),), ((1, "on", 0),))
    assert a.named_tuples() == b.named_tuples() != c.named_tuples()


def test_random_table_is_a_function_of_word_and_seed():
    e1, e2, e3 = NameEmbedder(16, seed=0), NameEmbedder(16, seed=0), NameEmbedder(16, seed=1)
    e2.word("zebra")  # another word drawn first changes nothing
    assert torch.equal(e1.word("cat"), e2.word("cat"))
    assert not torch.allclose(e1.word("cat"), e3.word("cat"))
    assert not torch.allclose(e1.word("cat"), e1.word("dog"))
    # multi-word names average their words; tokenised like captions
    assert torch.allclose(e1.embed("Train  track"), (e1.word("train") + e1.word("track")) / 2)
    assert torch.equal(e1.embed("!!"), torch.zeros(16))
    assert e1.word("cat").norm().item() == pytest.approx(1.0, abs=0.5)


def test_word_vector_file(tmp_path):
    f = tmp_path / "vec.txt"
    f.write_text("cat 1 0 0\ntrack 0 2 0\nunused 9 9 9\n")
    e = NameEmbedder.from_word_vectors(f, ["cat", "train track"], seed=0)
    assert e.dim == 3 and e.n_file_words == 2
    assert torch.equal(e.word("cat"), torch.tensor([1.0, 0, 0]))
    # a missing word gets the seeded random vector, scaled to the file's mean norm (1.5)
    assert torch.allclose(e.word("train"), NameEmbedder(3, seed=0).word("train") * 1.5)
    assert torch.allclose(e.embed("train track"), (e.word("train") + torch.tensor([0, 2.0, 0])) / 2)
    with pytest.raises(ValueError, match="3 dimensions, expected 5"):
        NameEmbedder.from_word_vectors(f, ["cat"], dim=5)


def test_visual_graph_features_and_edges():
    g = cat_on_bed()
    e = NameEmbedder(8, seed=3)
    preds = build_predicate_vocab([g, AnnotatedGraph(("a", "b"), (), ((0, "on", 1),))])
    assert preds.words[2] == "on"  # by count
    v = annotated_visual_graph(g, e, preds, item=7)
    assert v.x.shape == (3, 16) and v.x.dtype == torch.float32
    assert torch.allclose(v.x[0, :8], e.embed("cat"))
    assert torch.allclose(v.x[0, 8:], (e.embed("black") + e.embed("fluffy")) / 2)
    assert torch.allclose(v.x[1, 8:], e.embed("white"))
    assert torch.equal(v.x[2, 8:], torch.zeros(8))  # no attribute
    assert torch.allclose(v.x[2, :8], e.embed("train track"))
    assert v.edge_index.tolist() == [[0, 2], [1, 1]]  # subject -> object
    assert torch.allclose(v.edge_attr[1], e.embed("next to"))
    assert v.edge_type.tolist() == [preds.id_of("on"), preds.id_of("next to")]
    assert v.item.tolist() == [7] and "boxes" not in v
    unknown = annotated_visual_graph(AnnotatedGraph(("a", "b"), (), ((0, "fly over", 1),)), e, preds)
    assert unknown.edge_type.tolist() == [preds.unk_id]


def test_graph_without_relations_and_precomp_encoder_reads_batches():
    e = NameEmbedder(8)
    recs = [json.loads(line) for line in FIXTURE.read_text().splitlines()[:20]]
    graphs = [AnnotatedGraph.from_record(r) for r in recs]
    preds = build_predicate_vocab(graphs)
    lone = annotated_visual_graph(AnnotatedGraph(("sky",)), e, preds)
    assert lone.edge_index.shape == (2, 0) and lone.edge_attr.shape == (0, 8)
    batch = collate_graphs([annotated_visual_graph(g, e, preds) for g in graphs] + [lone])
    emb = PrecompRegionEncoder(img_dim=16, embed_dim=32)(batch)
    assert emb.x.shape[0] == 21 and emb.mask.sum().item() == sum(len(g.objects) for g in graphs) + 1
    assert batch.edge_attr.shape == (sum(len(g.relations) for g in graphs), 8)


def test_edge_declaration_sizes_gnn_stacks():
    from types import SimpleNamespace

    from graphmatch.config import load_config
    from graphmatch.data.vocab import Vocabulary
    from graphmatch.models import build_matcher

    decl = AnnotatedRelationEdges(8)
    cfg = load_config(None, ["model.embed_dim=16", "model.text.word_dim=8", "model.image_gnn.name=gat"])
    recipe = SimpleNamespace(visual_edges=SimpleNamespace(name=decl), text_graph=cfg.data.graph.text_graph)
    m = build_matcher(cfg.model, img_dim=16, vocab=Vocabulary.build(["a cat"]), recipe=recipe)
    assert m.image_encoder.stack.edge_dim == 8
    with pytest.raises(ValueError, match="edge_dim"):
        AnnotatedRelationEdges(0)
