"""The contract every registered GNN layer keeps, checked on hand-written graphs in the manner of
PyG's ``test/nn/conv/test_gcn_conv.py``. A new layer is covered by registering it in
:data:`graphmatch.nn.conv.GNN_LAYERS`.

Edge inputs: a layer that needs edge features (its constructor takes ``edge_dim`` without a
default) is built with ``edge_dim`` and runs with ``edge_attr`` in every test; a layer whose
``forward`` takes ``edge_type`` runs with the hand-written edge types below in every test; the
other layers get neither (edge features only in the edge-feature test)."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch_geometric.data import Batch, Data

import graphmatch.nn.conv  # noqa: F401  (fills the registry)
from graphmatch.nn.conv import GNN_LAYERS, build_gnn_layer, needs_edge_features, takes_edge_features, takes_edge_types
from graphmatch.registry import UnknownNameError

IN, OUT, EDGE_DIM = 8, 16, 3
NAMES = GNN_LAYERS.names()
#: layers whose edge features have a fixed size (their meaning is fixed): built with this edge_dim
FIXED_EDGE_DIM = {"spatial_kernel": 2}  # polar pseudo-coordinates (rho, theta)
#: hand-written edge types of the six edges of :func:`graph4` and the three of the small graph
EDGE_TYPES4 = torch.tensor([0, 2, 1, 1, 0, 2])
EDGE_TYPES3 = torch.tensor([1, 0, 2])


def edge_dim_of(name: str) -> int:
    return FIXED_EDGE_DIM.get(name, EDGE_DIM)


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
    "gine": (
        "GINEConv(nn=Sequential(\n"
        "  (0): Linear(in_features=8, out_features=16, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Linear(in_features=16, out_features=16, bias=True)\n"
        "))"
    ),
    "gated": "GatedGraphConv(16, num_layers=3)",
    "rgcn": "CheckedRGCNConv(8, 16, num_relations=64)",
    "gmm": "GMMConv(8, 16, dim=3)",
    "spatial_kernel": "SpatialKernelConv(8, 16, num_kernels=8, self_loops=True)",
    "rs_gcn": "RsGCN(8, 16, inter_channels=8, normalize='count')",
    "triple": "TripleConv(8, 16, edge_dim=3)",
}


def graph4(seed: int = 0):
    """PyG's test graph: node 0 linked both ways to nodes 1, 2 and 3."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, IN, generator=g)
    edge_index = torch.tensor([[0, 0, 0, 1, 2, 3], [1, 2, 3, 0, 0, 0]])
    edge_attr = torch.randn(edge_index.size(1), EDGE_DIM, generator=g)
    return x, edge_index, edge_attr


def layer_for(name: str, *, edge_dim=None, seed: int = 0):
    """The layer ``name`` (8 -> 16, default options, eval mode); a layer that needs edge features
    gets ``edge_dim`` even when none is asked for."""
    torch.manual_seed(seed)
    if edge_dim is None and needs_edge_features(name):
        edge_dim = edge_dim_of(name)
    layer = build_gnn_layer(name, in_channels=IN, out_channels=OUT, edge_dim=edge_dim)
    return layer.eval()


def edges(name: str, edge_attr, edge_type) -> dict:
    """The edge inputs ``name`` runs with in the tests (see the module docstring): ``edge_attr``
    (its first ``edge_dim`` columns) if the layer needs edge features, ``edge_type`` always (run()
    passes it to the layers that take it)."""
    out = {"edge_type": edge_type}
    if needs_edge_features(name):
        out["edge_attr"] = edge_attr[:, :edge_dim_of(name)]
    return out


def run(layer, x, edge_index, edge_attr=None, edge_type=None):
    kwargs = {}
    if edge_attr is not None:
        kwargs["edge_attr"] = edge_attr
    if takes_edge_types(layer):
        assert edge_type is not None, f"{type(layer).__name__} takes edge_type: the test must give it"
        kwargs["edge_type"] = edge_type
    return layer(x, edge_index, **kwargs)


TYPED_NAMES = [n for n in NAMES if takes_edge_types(layer_for(n))]


def test_registry_holds_the_builtin_layers():
    assert {"gcn", "gat", "gatv2", "gin", "gine", "transformer", "graph", "gated", "rgcn", "gmm",
            "spatial_kernel", "rs_gcn", "triple"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape(name):
    x, edge_index, edge_attr = graph4()
    out = run(layer_for(name), x, edge_index, **edges(name, edge_attr, EDGE_TYPES4))
    assert out.shape == (4, OUT)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_parameters_and_the_input(name):
    """Every parameter gets a gradient. A parameter initialised to all zeros (a gate such as the
    zero-initialised BatchNorm scale of ``rs_gcn``, or a zero bias) is first set to random values:
    at zero such a gate blocks the gradient of everything behind it by design."""
    x, edge_index, edge_attr = graph4()
    x.requires_grad_()
    layer = layer_for(name).train()
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for p in layer.parameters():
            if p.requires_grad and not p.any():
                p.copy_(torch.randn(p.shape, generator=g))
    out = run(layer, x, edge_index, **edges(name, edge_attr, EDGE_TYPES4))
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
    x, edge_index, edge_attr = graph4()
    e = edges(name, edge_attr, EDGE_TYPES4)
    x5 = torch.cat([x, torch.randn(1, IN, generator=torch.Generator().manual_seed(2))])  # node 4: no edges
    layer = layer_for(name)
    out = run(layer, x5, edge_index, **e)
    assert out.shape == (5, OUT) and torch.isfinite(out).all()
    others = x5.clone()
    others[:4] = torch.randn(4, IN, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(run(layer, others, edge_index, **e)[4], out[4])
    changed = x5.clone()
    changed[4] += 1.0
    assert not torch.allclose(run(layer, changed, edge_index, **e)[4], out[4])


@pytest.mark.parametrize("name", NAMES)
def test_a_graph_without_edges(name):
    x, _, _ = graph4()
    empty = torch.zeros(2, 0, dtype=torch.long)
    e = edges(name, torch.zeros(0, EDGE_DIM), torch.zeros(0, dtype=torch.long))
    layer = layer_for(name)
    out = run(layer, x, empty, **e)
    assert out.shape == (4, OUT) and torch.isfinite(out).all()
    for i in range(4):  # every node as a graph of its own
        torch.testing.assert_close(run(layer, x[i:i + 1], empty, **e)[0], out[i], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_node_order_only_permutes_the_output(name):
    x, edge_index, edge_attr = graph4()
    e = edges(name, edge_attr, EDGE_TYPES4)  # the edges keep their order, so their features and types
    layer = layer_for(name)
    perm = torch.tensor([2, 0, 3, 1])  # new node k is old node perm[k]
    inverse = torch.argsort(perm)
    out = run(layer, x, edge_index, **e)
    out_perm = run(layer, x[perm], inverse[edge_index], **e)
    torch.testing.assert_close(out_perm, out[perm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_two_graphs_equals_the_graphs_alone(name):
    x, edge_index, edge_attr = graph4()
    g = torch.Generator().manual_seed(4)
    small = Data(x=torch.randn(3, IN, generator=g), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]),
                 edge_attr=torch.randn(3, EDGE_DIM, generator=g), edge_type=EDGE_TYPES3)
    big = Data(x=x, edge_index=edge_index, edge_attr=edge_attr, edge_type=EDGE_TYPES4)
    batch = Batch.from_data_list([small, big])
    layer = layer_for(name)

    def on(d):
        return run(layer, d.x, d.edge_index, **edges(name, d.edge_attr, d.edge_type))

    out = on(batch)
    torch.testing.assert_close(out[:3], on(small), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[3:], on(big), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", EDGE_NAMES)
def test_edge_features_are_used_when_the_layer_takes_them(name):
    x, edge_index, edge_attr = graph4()
    edge_attr = edge_attr[:, :edge_dim_of(name)].clone()
    layer = layer_for(name, edge_dim=edge_dim_of(name))
    assert takes_edge_features(layer)
    edge_attr.requires_grad_()
    out = run(layer, x, edge_index, edge_attr, EDGE_TYPES4)
    assert out.shape == (4, OUT) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert edge_attr.grad is not None and edge_attr.grad.abs().sum() > 0
    other = run(layer, x, edge_index, edge_attr.detach() + 1.0, EDGE_TYPES4)
    assert not torch.allclose(other, out)
    if needs_edge_features(name):  # it cannot be built without them, and says so
        with pytest.raises(ValueError, match=rf"GNN layer '{name}' needs .*edge_dim"):
            build_gnn_layer(name, in_channels=IN, out_channels=OUT, edge_dim=None)
    else:  # the same layer without edge_dim takes no edge features (test_output_shape runs it)
        assert run(layer_for(name), x, edge_index, edge_type=EDGE_TYPES4).shape == (4, OUT)


@pytest.mark.parametrize("name", TYPED_NAMES)
def test_edge_types_are_used_when_the_layer_takes_them(name):
    x, edge_index, edge_attr = graph4()
    layer = layer_for(name)
    e = edges(name, edge_attr, EDGE_TYPES4)
    out = run(layer, x, edge_index, **e)
    e["edge_type"] = torch.tensor([0, 0, 0, 0, 0, 0])
    assert not torch.allclose(run(layer, x, edge_index, **e), out)
    e["edge_type"] = None
    with pytest.raises(ValueError, match="edge_type"):
        layer(x, edge_index, **{k: v for k, v in e.items() if v is not None})
    e["edge_type"] = torch.tensor([0, 1, 2, 3, 4, 10 ** 6])
    with pytest.raises(ValueError, match="edge_type 1000000 is out of range"):
        run(layer, x, edge_index, **e)


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
    gin = build_gnn_layer("gin", in_channels=IN, out_channels=OUT, mlp_channels=5)
    assert gin.nn[0].out_features == 5
    gine = build_gnn_layer("gine", in_channels=IN, out_channels=OUT, edge_dim=EDGE_DIM, mlp_channels=5, train_eps=True)
    assert gine.nn[0].out_features == 5 and gine.lin.in_channels == EDGE_DIM and gine.eps.requires_grad
    gated = build_gnn_layer("gated", in_channels=IN, out_channels=OUT, num_steps=2, aggr="mean")
    assert (gated.num_layers, gated.aggr, tuple(gated.weight.shape)) == (2, "mean", (2, OUT, OUT))
    rgcn = build_gnn_layer("rgcn", in_channels=IN, out_channels=OUT, num_relations=5, num_bases=2)
    assert (rgcn.num_relations, rgcn.num_bases, tuple(rgcn.weight.shape)) == (5, 2, (2, IN, OUT))
    gmm = build_gnn_layer("gmm", in_channels=IN, out_channels=OUT, edge_dim=EDGE_DIM, kernel_size=3,
                          separate_gaussians=True)
    assert (gmm.dim, gmm.kernel_size, tuple(gmm.mu.shape)) == (EDGE_DIM, 3, (IN, OUT, 3, EDGE_DIM))


def test_gated_maps_a_larger_input_down_first():
    """GatedGraphConv zero-pads its input, so in > out needs a learned map first."""
    x, edge_index, _ = graph4()
    small = build_gnn_layer("gated", in_channels=IN, out_channels=4)
    assert repr(small) == "ProjectedGatedGraphConv(8, 4, num_layers=3)" and small.proj.in_features == IN
    out = small(x, edge_index)
    assert out.shape == (4, 4)
    torch.testing.assert_close(out, super(type(small), small).forward(small.proj(x), edge_index))
    # in <= out: PyG's zero padding, no extra map
    assert not hasattr(build_gnn_layer("gated", in_channels=IN, out_channels=OUT), "proj")


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
