import networkx as nx
import pytest
import torch

from graphmatch.graphs import build_visual_graph, build_word_graph, collate_graphs, to_dense
from graphmatch.structures import Regions, SceneGraph, SGAttribute, SGObject, SGRelation


def regions(n, d=5, size=(100, 50)):
    boxes = torch.tensor([[i, i, i + 10.0, i + 5.0] for i in range(n)])
    return Regions(boxes=boxes, features=torch.randn(n, d), image_size=size, labels=torch.arange(n))


def test_regions_validation():
    r = regions(3)
    assert len(r) == 3 and r.feature_dim == 5
    with pytest.raises(ValueError, match="3 boxes but 2 feature rows"):
        Regions(boxes=torch.zeros(3, 4), features=torch.zeros(2, 5), image_size=(4, 4))
    with pytest.raises(ValueError, match=r"boxes must be \[N, 4\]"):
        Regions(boxes=torch.zeros(3, 5), features=torch.zeros(3, 5), image_size=(4, 4))
    with pytest.raises(ValueError, match="labels has 2 rows for 3 regions"):
        Regions(boxes=torch.zeros(3, 4), features=torch.zeros(3, 5), image_size=(4, 4), labels=torch.zeros(2))
    with pytest.raises(ValueError, match="image_size"):
        Regions(boxes=torch.zeros(1, 4), features=torch.zeros(1, 5), image_size=(0, 4))


def test_batching_offsets_edges_but_not_boxes_or_spans():
    g1 = build_visual_graph(regions(3), edges="full", item=0)
    g2 = build_visual_graph(regions(2), edges="full", item=1)
    assert g1.edge_index.shape == (2, 6) and not (g1.edge_index[0] == g1.edge_index[1]).any()
    b = collate_graphs([g1, g2])
    assert b.edge_index.max().item() == 4 and b.edge_index[:, 6:].min().item() == 3
    assert torch.equal(b.boxes[3:], g2.boxes)  # boxes are not offset by batching
    assert b.image_size.shape == (2, 2) and b.item.tolist() == [0, 1]
    t = collate_graphs([build_word_graph([5, 6, 7]), build_word_graph([8, 9])])
    assert t.span.tolist() == [[0, 1], [1, 2], [2, 3], [0, 1], [1, 2]]


def test_to_dense_with_empty_graphs():
    b = collate_graphs([build_word_graph([3, 4]), build_word_graph([]), build_word_graph([9])])
    x, mask = to_dense(b)
    assert x.tolist() == [[3, 4], [0, 0], [9, 0]]
    assert mask.tolist() == [[True, True], [False, False], [True, False]]
    v = collate_graphs([build_visual_graph(torch.randn(2, 4)), build_visual_graph(torch.randn(1, 4))])
    h = torch.randn(3, 7)
    xd, md = to_dense(v, x=h)
    assert xd.shape == (2, 2, 7) and torch.equal(xd[1, 0], h[2]) and torch.equal(xd[1, 1], torch.zeros(7))


def test_graph_builder_errors():
    with pytest.raises(ValueError, match="unknown edge mode"):
        build_word_graph([1, 2], edges="star")
    with pytest.raises(ValueError, match=r"boxes must be \[2, 4\]"):
        build_visual_graph(torch.randn(2, 3), boxes=torch.zeros(3, 4))


def scene():
    toks = "a black dog sits on a red sofa".split()
    return SceneGraph(
        tokens=toks,
        objects=[SGObject("dog", (1, 3)), SGObject("sofa", (5, 8))],
        attributes=[SGAttribute(0, "black", (1, 2)), SGAttribute(1, "red", (6, 7))],
        relations=[SGRelation(0, "sit on", 1, (3, 5))],
    )


def test_scene_graph_dict_and_networkx():
    sg = scene()
    assert sg.to_dict() == {
        "objects": ["dog", "sofa"],
        "attributes": [["dog", "black"], ["sofa", "red"]],
        "relations": [["dog", "sit on", "sofa"]],
    }
    g = sg.to_networkx()
    assert isinstance(g, nx.DiGraph) and g.number_of_nodes() == 5
    assert g.has_edge(("object", 0), ("relation", 0)) and g.has_edge(("relation", 0), ("object", 1))
    assert g.nodes[("attribute", 1)]["label"] == "red"


def test_scene_graph_validation_and_empty():
    with pytest.raises(ValueError, match="refers to objects"):
        SceneGraph(tokens=["a"], objects=[SGObject("a", (0, 1))], relations=[SGRelation(0, "on", 3, (0, 1))])
    with pytest.raises(ValueError, match="outside the 1 tokens"):
        SceneGraph(tokens=["a"], objects=[SGObject("a", (0, 2))])
    empty = SceneGraph(tokens=[], note="empty caption")
    assert empty.to_dict() == {"objects": [], "attributes": [], "relations": []}
    assert empty.to_networkx().number_of_nodes() == 0
