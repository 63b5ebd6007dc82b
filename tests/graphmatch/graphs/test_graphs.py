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


def parsed():
    """'a black dog sits on a red sofa' with a hand-written dependency parse."""
    sg = scene()
    sg.heads = [2, 2, 3, 3, 3, 7, 7, 4]
    sg.deps = ["det", "amod", "nsubj", "ROOT", "prep", "det", "amod", "pobj"]
    return sg


def test_scene_graph_graph_nodes_edges_and_spans():
    from graphmatch.graphs import NODE_ATTRIBUTE, NODE_OBJECT, NODE_RELATION, build_text_graph

    sg = parsed()
    g = build_text_graph("scene", sg, list(range(10, 18)), item=4)
    assert g.num_nodes == 5
    assert g.node_type.tolist() == [NODE_OBJECT, NODE_OBJECT, NODE_ATTRIBUTE, NODE_ATTRIBUTE, NODE_RELATION]
    assert g.span.tolist() == [[1, 3], [5, 8], [1, 2], [6, 7], [3, 5]]
    edges = set(map(tuple, g.edge_index.t().tolist()))
    assert edges == {(2, 0), (3, 1), (0, 4), (4, 1)}  # black->dog, red->sofa, dog->sits on->sofa
    assert g.words.tolist() == list(range(10, 18))
    b = collate_graphs([g, g], follow_batch=["words"])
    assert b.words_batch.tolist() == [0] * 8 + [1] * 8
    words, mask = to_dense(b, "words")  # uses words_batch, not the node batch vector
    assert words.shape == (2, 8) and mask.all() and words[1].tolist() == list(range(10, 18))
    x, m = to_dense(build_word_graph([4, 5]))  # a plain Data is one graph
    assert x.tolist() == [[4, 5]] and m.tolist() == [[True, True]]
    assert b.edge_index.max().item() == 9 and b.span.max().item() == 8  # spans are not offset


def test_dependency_and_full_word_graphs():
    from graphmatch.graphs import DEP_LABELS, build_text_graph

    sg = parsed()
    g = build_text_graph("dependency", sg, list(range(8)))
    pairs = set(map(tuple, g.edge_index.t().tolist()))
    assert (3, 2) in pairs and (2, 3) in pairs and (4, 7) in pairs and (7, 4) in pairs
    assert g.edge_index.size(1) == 14  # 7 arcs (all but the root), both directions
    assert DEP_LABELS[g.edge_type[0]] == "det"
    f = build_text_graph("full", sg, list(range(8)))
    assert f.edge_index.size(1) == 8 * 7
    with pytest.raises(ValueError, match="no dependency parse"):
        build_text_graph("dependency", scene(), list(range(8)))
    with pytest.raises(ValueError, match="unknown text graph kind"):
        build_text_graph("tree", sg, list(range(8)))
    with pytest.raises(ValueError, match="7 token ids for 8 tokens"):
        build_text_graph("scene", sg, list(range(7)))


def test_caption_without_objects_gives_word_nodes():
    from graphmatch.graphs import NODE_WORD, build_text_graph

    sg = SceneGraph(tokens=["hello", "there"], note="no object found")
    g = build_text_graph("scene", sg, [5, 6])
    assert g.num_nodes == 2 and g.node_type.tolist() == [NODE_WORD] * 2 and g.edge_index.size(1) == 0
    empty = build_text_graph("scene", SceneGraph(tokens=[], note="empty caption"), [])
    assert empty.num_nodes == 0
    b = collate_graphs([g, empty], follow_batch=["words"])
    assert b.num_graphs == 2


def test_to_dense_of_a_scene_graph_batch_names_the_fields_to_ask_for():
    """The README's ``x, mask = to_dense(batch)`` on scene text graphs: no bare KeyError 'x'."""
    from graphmatch.graphs import NODE_OBJECT, GraphFieldError, build_text_graph

    sg = parsed()
    g = build_text_graph("scene", sg, list(range(10, 18)))
    b = collate_graphs([g, build_text_graph("scene", scene(), list(range(20, 28)))], follow_batch=["words"])
    with pytest.raises(GraphFieldError, match=r"no field 'x'.*to_dense\(batch, 'words'\)") as err:
        to_dense(b)
    assert isinstance(err.value, KeyError) and "node_type" in str(err.value) and not str(err.value).startswith("'")
    words, wmask = to_dense(b, "words")  # the field the message names works
    assert words.shape == (2, 8) and wmask.all()
    types, nmask = to_dense(b, "node_type")
    assert types.shape[0] == 2 and types[0, 0].item() == NODE_OBJECT and nmask[0].sum().item() == g.num_nodes
    # "words" batched without follow_batch would be padded along the node vector: refused, with the fix
    plain = collate_graphs([g, g])
    with pytest.raises(GraphFieldError, match=r"follow_batch=\['words'\]"):
        to_dense(plain, "words")


# ------------------------------------------------------------------ registries and graph needs
def test_every_recipe_value_is_a_registered_builder_with_its_declarations():
    from graphmatch.graphs import TEXT_GRAPHS, VISUAL_EDGES, needs_parse

    assert set(VISUAL_EDGES.names()) >= {"none", "full", "polar", "knn", "iou", "relations"}
    dims = {n: getattr(VISUAL_EDGES.get(n), "edge_dim") for n in ("none", "full", "polar", "knn", "iou", "relations")}
    assert dims == {"none": None, "full": None, "polar": 2, "knn": 5, "iou": 5, "relations": 5}
    assert set(TEXT_GRAPHS.names()) >= {"words", "full", "dependency", "scene"}
    assert [needs_parse(k) for k in ("words", "full", "dependency", "scene")] == [False, False, True, True]


def test_check_recipe_names_the_key_and_the_values_that_would_do():
    from graphmatch.config import load_config
    from graphmatch.graphs import GraphNeeds, check_recipe

    gsmn_like = GraphNeeds(visual_edges=("polar",), text_graphs=("dependency", "full"), edge_attr=True)
    default = load_config(None).data.graph
    with pytest.raises(ValueError, match=r"matcher 'gsmn' needs visual graphs with edges polar, but "
                                         r"data.graph.visual_edges is 'none'; set data.graph.visual_edges to 'polar'"):
        check_recipe(gsmn_like, default, "gsmn")
    polar_words = load_config(None, ["data.graph.visual_edges.name=polar"]).data.graph
    with pytest.raises(ValueError, match=r"needs dependency or full caption graphs, but data.graph.text_graph is "
                                         r"'words'"):
        check_recipe(gsmn_like, polar_words, "gsmn")
    ok = load_config(None, ["data.graph.visual_edges.name=polar", "data.graph.text_graph.name=dependency"]).data.graph
    check_recipe(gsmn_like, ok, "gsmn")
    check_recipe(None, default, "scan")
    check_recipe(GraphNeeds(), default, "scan")
    full_edges = load_config(None, ["data.graph.visual_edges.name=full"]).data.graph
    with pytest.raises(ValueError, match=r"reads visual edge features, but data.graph.visual_edges 'full' gives none; "
                                         r"use one of .*polar"):
        check_recipe(GraphNeeds(edge_attr=True), full_edges, "edgy")
    assert GraphNeeds(visual_edges="polar").visual_edges == ("polar",)
