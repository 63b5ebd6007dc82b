import math

import pytest
import torch

from graphmatch.graphs import build_visual_graph, collate_graphs
from graphmatch.structures import Regions
from graphmatch.graphs import VISUAL_EDGES, pairwise_iou, polar_features, relative_geometry

# three boxes in a 200 x 100 image: A left, B right of A (same row), C overlapping A
BOXES = torch.tensor([[0.0, 0.0, 20.0, 20.0], [100.0, 0.0, 120.0, 20.0], [10.0, 0.0, 30.0, 20.0]])
SIZE = (200, 100)


def regions():
    return Regions(boxes=BOXES, features=torch.randn(3, 4), image_size=SIZE)


def test_polar_pseudo_coordinates_by_hand():
    g = build_visual_graph(regions(), edges="polar")
    assert g.edge_index.size(1) == 6 and g.edge_attr.shape == (6, 2)
    pairs = {tuple(e): a for e, a in zip(g.edge_index.t().tolist(), g.edge_attr.tolist())}
    # centres normalised: A (0.05, 0.1), B (0.55, 0.1), C (0.1, 0.1)
    rho, theta = pairs[(0, 1)]  # A -> B: vector (0.5, 0)
    assert rho == pytest.approx(0.5) and theta == pytest.approx(0.0)
    rho, theta = pairs[(1, 0)]  # B -> A: vector (-0.5, 0)
    assert rho == pytest.approx(0.5) and abs(theta) == pytest.approx(math.pi)
    up = polar_features(torch.tensor([[0.0, 50, 10, 60], [0, 0, 10, 10]]), (100, 100), torch.tensor([[0], [1]]))
    assert up[0, 1].item() == pytest.approx(-math.pi / 2)  # target above source: dy < 0 in image coordinates


def test_iou_and_relative_geometry_by_hand():
    iou = pairwise_iou(BOXES, BOXES)
    assert iou[0, 2].item() == pytest.approx(200 / 600)  # overlap 10x20, union 400+400-200
    assert iou[0, 1].item() == 0.0
    geo = relative_geometry(BOXES, torch.tensor([[0], [2]]))
    assert geo[0].tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0, 200 / 600])


def test_knn_and_iou_graphs():
    g = build_visual_graph(regions(), edges="knn", k=1)
    assert sorted(map(tuple, g.edge_index.t().tolist())) == [(0, 2), (2, 0), (2, 1)]
    assert g.edge_attr.shape == (3, 5)
    g = build_visual_graph(regions(), edges="iou", iou_threshold=0.1)
    assert sorted(map(tuple, g.edge_index.t().tolist())) == [(0, 2), (2, 0)]
    big_k = build_visual_graph(regions(), edges="knn", k=10)
    assert big_k.edge_index.size(1) == 6  # k is capped at n - 1


def test_relation_hook_and_custom_builder():
    g = build_visual_graph(regions(), edges="relations", relations=[(0, 7, 1), (2, 3, 0)])
    assert g.edge_index.tolist() == [[0, 2], [1, 0]] and g.edge_type.tolist() == [7, 3]
    g = build_visual_graph(regions(), edges="relations", relations=iter([(0, 7, 1), (2, 3, 0)]))
    assert g.edge_index.tolist() == [[0, 2], [1, 0]] and g.edge_type.tolist() == [7, 3]
    with pytest.raises(ValueError, match="outside 0..2"):
        build_visual_graph(regions(), edges="relations", relations=[(0, 1, 5)])

    @VISUAL_EDGES.register("test_chain")
    def chain(boxes, image_size):
        n = boxes.size(0)
        ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
        return ei, torch.ones(n - 1, 1)

    g = build_visual_graph(regions(), edges="test_chain")
    assert g.edge_index.tolist() == [[0, 1], [1, 2]]


@pytest.mark.parametrize("mode", ["polar", "knn", "iou", "relations", "full", "none"])
def test_zero_and_one_region(mode):
    for n in (0, 1):
        r = Regions(boxes=torch.zeros(n, 4), features=torch.zeros(n, 3), image_size=SIZE)
        g = build_visual_graph(r, edges=mode)
        assert g.edge_index.shape == (2, 0)
    b = collate_graphs([build_visual_graph(regions(), edges="polar"),
                        build_visual_graph(Regions(boxes=torch.zeros(0, 4), features=torch.zeros(0, 4),
                                                   image_size=SIZE), edges="polar")])
    assert b.num_graphs == 2 and b.edge_attr.size(0) == 6


def test_errors():
    with pytest.raises(ValueError, match="needs region boxes"):
        build_visual_graph(torch.randn(3, 4), edges="polar")
    with pytest.raises(ValueError, match="image size"):
        build_visual_graph(torch.randn(3, 4), boxes=BOXES, edges="polar")
    with pytest.raises(KeyError, match="unknown visual edge builder"):
        build_visual_graph(regions(), edges="delaunay")
    with pytest.raises(ValueError, match="takes no options"):
        build_visual_graph(regions(), edges="full", k=3)


# ------------------------------------------------------------------ bad and degenerate boxes
@pytest.mark.parametrize("field, bad, message", [
    ("boxes", [[0.0, 0, 10, 10], [float("nan"), 0, 5, 5]], r"Regions.boxes: row 1 contains NaN or inf"),
    ("boxes", [[0.0, 0, 10, 10], [0, 0, 5, float("inf")]], r"Regions.boxes: row 1 contains NaN or inf"),
    ("boxes", [[0.0, 0, 10, 10], [20, 0, 5, 5]], r"Regions.boxes: row 1 .* is inverted"),
    ("boxes", [[0.0, 30, 10, 10], [0, 0, 5, 5]], r"Regions.boxes: row 0 .* is inverted"),
    ("features", [[1.0, 2.0], [float("nan"), 0.0]], r"Regions.features: row 1 contains NaN or inf"),
])
def test_regions_reject_nonfinite_and_inverted(field, bad, message):
    kw = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 5, 5]]), "features": torch.ones(2, 2)}
    kw[field] = torch.tensor(bad)
    with pytest.raises(ValueError, match=message):
        Regions(image_size=SIZE, **kw)


def test_edge_builders_reject_nonfinite_boxes():
    boxes = BOXES.clone()
    boxes[2, 3] = float("nan")
    for mode in ("polar", "knn", "iou"):
        with pytest.raises(ValueError, match=r"boxes: row 2 .* NaN or inf"):
            build_visual_graph(torch.randn(3, 4), boxes=boxes, image_size=SIZE, edges=mode)


@pytest.mark.parametrize("mode", ["polar", "knn", "iou"])
def test_zero_area_boxes_give_finite_edge_features(mode):
    # a point, a zero-width and a zero-height box next to a normal one
    boxes = torch.tensor([[5.0, 5, 5, 5], [10, 0, 10, 30], [0, 20, 40, 20], [0, 0, 20, 20]])
    r = Regions(boxes=boxes, features=torch.randn(4, 3), image_size=SIZE)
    g = build_visual_graph(r, edges=mode, **({"iou_threshold": -1.0} if mode == "iou" else {}))
    assert g.edge_attr.size(0) > 0 and torch.isfinite(g.edge_attr).all()
    if mode != "polar":
        assert g.edge_attr.abs().max() < 1e3  # widths below one pixel count as one pixel
    geo = relative_geometry(boxes, torch.tensor([[0, 1], [1, 0]]))
    assert torch.isfinite(geo).all() and geo[:, 2:4].abs().max() < 5
