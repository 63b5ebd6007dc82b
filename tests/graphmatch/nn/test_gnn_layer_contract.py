"""The contract every registered GNN layer keeps, checked on hand-written graphs in the manner of
PyG's ``test/nn/conv/test_gcn_conv.py``. A new layer is covered by registering it in
:data:`graphmatch.nn.conv.GNN_LAYERS`."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch_geometric.data import Batch, Data

import graphmatch.nn.conv  # noqa: F401  (fills the registry)
from graphmatch.nn.conv import GNN_LAYERS, build_gnn_layer, takes_edge_features
from graphmatch.registry import UnknownNameError

IN, OUT, EDGE_DIM = 8, 16, 3
NAMES = GNN_LAYERS.names()


def _factory_takes_edge_dim(name: str) -> bool:
    obj = GNN_LAYERS.get(name)
    target = obj.__init__ if inspect.isclass(obj) else obj
    return "edge_dim" in inspect.signature(target).parameters


EDGE_NAMES = [n for n in NAMES if _factory_takes_edge_dim(n)]
BUILTIN = [n for n in NAMES if getattr(GNN_LAYERS.get(n), "__module__", "").startswith("graphmatch.")]

#: ``repr`` of every built-in layer built with in_channels=8, out_channels=16 and default options.
REPRS = {
    "gat": "GATConv(8, 16, heads=1)",
    "gatv2": "GATv2Conv(8, 16, heads=1)",
    "gcn": "GCNConv(8, 16)",
    "gin": (
        "GINConv(nn=Sequential(\n"
        "  (0): Linear(in_features=8, out_features=16, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(in_features=16, out_features=16, bias=True)\n"
        "))"
    ),
    "graph": "GraphConv(8, 16)",
    "transformer": "TransformerConv(8, 16, heads=1)",
}


def graph4(seed: int = 0):
    """PyG's test graph: node 0 linked both ways to nodes 1, 2 and 3."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, IN, generator=g)
    edge_index = torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]])
    edge_attr = torch.randn(edge_index.size(1), EDGE_DIM, generator=g)
    return x, edge_index, edge_attr


def layer_for(name: str, *, edge_dim=None, seed: int = 0):
    torch.manual_seed(seed)
    layer = build_gnn_layer(name, in_channels=IN, out_channels=OUT, edge_dim=edge_dim)
    return layer.eval()


def run(layer, x, edge_index, edge_attr=None):
    if edge_attr is not None:
        return layer(x, edge_index, edge_attr=edge_attr)
    return layer(x, edge_index)


def test_registry_holds_the_builtin_layers():
    assert {"gcn", "gat", "gatv2", "gin", "transformer", "graph"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    x, edge_index, _ = graph4()
    out = run(layer_for(name), x, edge_index)
    assert out.shape == (4, OUT)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_parameters_and_the_input(name):
    x, edge_index, _ = graph4()
    x.requires_grad_()
    layer = layer_for(name).train()
    out = run(layer, x, edge_index)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    params = [(n, p) for n, p in layer.named_parameters() if p.requires_grad]
    assert params, f"{name} has no trainable parameters"
    for pname, p in params:
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}.{pname}: zero gradient"


@pytest.mark.parametrize("name", NAMES)
def test_an_isolated_node_depends_on_itself_only(name):
    x, edge_index, _ = graph4()
    x5 = torch.cat([x, torch.randn(1, IN, generator=torch.Generator().manual_seed(2))])  # node 4: no edges
    layer = layer_for(name)
    out = run(layer, x5, edge_index)
    assert out.shape == (5, OUT) and torch.isfinite(out).all()
    others = x5.clone()
    others[:4] = torch.randn(4, IN, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(run(layer, others, edge_index)[4], out[4])
    changed = x5.clone()
    changed[4] += 1.0
    assert not torch.allclose(run(layer, changed, edge_index)[4], out[4])


@pytest.mark.parametrize("name", NAMES)
def test_a_graph_without_edges(name):
    x, _, _ = graph4()
    empty = torch.zeros(2, 0, dtype=torch.long)
    layer = layer_for(name)
    out = run(layer, x, empty)
    assert out.shape == (4, OUT) and torch.isfinite(out).all()
    for i in range(4):  # every node as a graph of its own
        torch.testing.assert_close(run(layer, x[i:i + 1], empty)[0], out[i], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_node_order_only_permutes_the_output(name):
    x, edge_index, _ = graph4()
    layer = layer_for(name)
    perm = torch.tensor([2, 0, 3, 1])  # new node k is old node perm[k]
    inverse = torch.argsort(perm)
    out = run(layer, x, edge_index)
    out_perm = run(layer, x[perm], inverse[edge_index])
    torch.testing.assert_close(out_perm, out[perm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_two_graphs_equals_the_graphs_alone(name):
    x, edge_index, _ = graph4()
    g = torch.Generator().manual_seed(4)
    small = Data(x=torch.randn(3, IN, generator=g), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]))
    big = Data(x=x, edge_index=edge_index)
    batch = Batch.from_data_list([small, big])
    layer = layer_for(name)
    out = run(layer, batch.x, batch.edge_index)
    torch.testing.assert_close(out[:3], run(layer, small.x, small.edge_index), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[3:], run(layer, big.x, big.edge_index), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_edge_features_are_used_when_the_layer_takes_them(name):
    x, edge_index, edge_attr = graph4()
    layer = layer_for(name, edge_dim=EDGE_DIM)
    assert takes_edge_features(layer)
    edge_attr.requires_grad_()
    out = run(layer, x, edge_index, edge_attr)
    assert out.shape == (4, OUT) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert edge_attr.grad is not None and edge_attr.grad.abs().sum() > 0
    other = run(layer, x, edge_index, edge_attr.detach() + 1.0)
    assert not torch.allclose(other, out)
    # the same layer without edge_dim takes no edge features (test_output_shape runs it)
    assert run(layer_for(name), x, edge_index).shape == (4, OUT)


@pytest.mark.parametrize("name", BUILTIN)
def test_pinned_repr(name):
    assert name in REPRS, f"built-in GNN layer {name!r}: pin its repr in REPRS"
    assert repr(layer_for(name)) == REPRS[name]


def test_options_reach_the_layer():
    layer = build_gnn_layer("gat", in_channels=IN, out_channels=OUT, heads=3, attention_dropout=0.25)
    assert (layer.heads, layer.dropout, layer.concat) == (3, 0.25, False)
    x, edge_index, _ = graph4()
    assert layer(x, edge_index).shape == (4, OUT)  # heads averaged: out size stays OUT
    assert build_gnn_layer("graph", in_channels=IN, out_channels=OUT, aggr="mean").aggr == "mean"
    gin = build_gnn_layer("gin", in_channels=IN, out_channels=OUT, hidden_channels=5)
    assert gin.nn[0].out_features == 5


def test_build_errors():
    with pytest.raises(UnknownNameError, match="unknown GNN layer 'gatt'.*Did you mean 'gat'"):
        build_gnn_layer("gatt", in_channels=IN, out_channels=OUT)
    with pytest.raises(ValueError, match=r"GNN layer 'gat' has no option 'hedas' \(did you mean heads\?\)"):
        build_gnn_layer("gat", in_channels=IN, out_channels=OUT, hedas=2)

    class NoChannels(torch.nn.Module):
        def __init__(self, size: int = 4):
            super().__init__()

    with pytest.raises(ValueError, match="must take in_channels and out_channels.*in_channels, out_channels"):
        build_gnn_layer(NoChannels, in_channels=IN, out_channels=OUT)


def test_edge_dim_is_passed_only_to_layers_that_name_it():
    seen = {}

    class Plain(torch.nn.Module):
        def __init__(self, in_channels, out_channels, **kwargs):
            super().__init__()
            seen["plain"] = kwargs

    class WithEdges(torch.nn.Module):
        def __init__(self, in_channels, out_channels, *, edge_dim=None):
            super().__init__()
            seen["edges"] = edge_dim

    build_gnn_layer(Plain, in_channels=IN, out_channels=OUT, edge_dim=EDGE_DIM)
    build_gnn_layer(WithEdges, in_channels=IN, out_channels=OUT, edge_dim=EDGE_DIM)
    assert seen == {"plain": {}, "edges": EDGE_DIM}
