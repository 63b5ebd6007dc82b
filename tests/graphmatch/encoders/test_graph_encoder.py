"""Tests of graphmatch.encoders.graph: the GNN stack and the graph encoder (base encoder + stack)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from graphmatch.config import GNNStackConfig, config_from_dict
from graphmatch.encoders.graph import STACK_KEYS, GNNStack, GraphEncoder, build_gnn_stack
from graphmatch.encoders.image import PrecompRegionEncoder
from graphmatch.structures import NodeEmb

IMG_DIM, DIM, EDGE_DIM = 6, 8, 3


def graph(n: int, seed: int, edges=None) -> Data:
    """``n`` nodes on a ring (both directions) unless ``edges`` is given; features and edge
    features random."""
    g = torch.Generator().manual_seed(seed)
    if edges is None:
        src = torch.arange(n)
        dst = (src + 1) % n
        edges = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])]) if n > 1 else torch.zeros(2, 0, dtype=torch.long)
    edge_index = torch.as_tensor(edges, dtype=torch.long).reshape(2, -1)
    return Data(x=torch.randn(n, IMG_DIM, generator=g), edge_index=edge_index,
                edge_attr=torch.randn(edge_index.size(1), EDGE_DIM, generator=g), num_nodes=n)


def encoder(layer: str = "gat", *, seed: int = 0, **stack) -> GraphEncoder:
    torch.manual_seed(seed)
    base = PrecompRegionEncoder(img_dim=IMG_DIM, embed_dim=DIM)
    return GraphEncoder(base, build_gnn_stack(layer, dim=DIM, **stack)).eval()


def batch(*graphs: Data) -> Batch:
    return Batch.from_data_list(list(graphs))


# ------------------------------------------------------------------------------------ encoder
@pytest.mark.parametrize("layer", ["gcn", "gat", "transformer", "gin"])
def test_a_batch_of_two_graphs_equals_the_graphs_alone(layer):
    small, big = graph(2, 1), graph(5, 2)
    enc = encoder(layer, num_layers=2, norm="layer")
    both = enc(batch(small, big))
    assert isinstance(both, NodeEmb) and both.x.shape == (2, 5, DIM) and both.mask.shape == (2, 5)
    alone_small, alone_big = enc(batch(small)), enc(batch(big))
    torch.testing.assert_close(both.x[0, :2], alone_small.x[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(both.x[1], alone_big.x[0], atol=1e-6, rtol=1e-5)
    assert torch.equal(both.x[0, 2:], torch.zeros(3, DIM))  # padding rows are zero


class HolesEncoder(nn.Module):
    """A base encoder whose real nodes are not a prefix of each row and whose padding is junk."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(IMG_DIM, DIM)

    def forward(self, graphs: Batch) -> NodeEmb:
        h = self.fc(graphs.x)
        counts = torch.bincount(graphs.batch, minlength=graphs.num_graphs).tolist()
        width = max(counts) + 2
        x = torch.full((graphs.num_graphs, width, DIM), 1e4)
        mask = torch.zeros(graphs.num_graphs, width, dtype=torch.bool)
        start = 0
        for b, n in enumerate(counts):
            slots = torch.arange(n) * 2 % width if 2 * n <= width else torch.arange(n)
            mask[b, slots] = True
            x[b, slots] = h[start:start + n]
            start += n
        return NodeEmb(x, mask)


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_padding_never_changes_the_real_nodes(norm):
    """Real nodes are taken in batch order from any mask layout; junk padding reaches no layer,
    not even batch-norm statistics (train mode)."""
    torch.manual_seed(0)
    stack = build_gnn_stack("gat", dim=DIM, num_layers=2, norm=norm)
    enc = GraphEncoder(HolesEncoder(), stack).train()
    b = batch(graph(2, 3), graph(1, 4), graph(4, 5))
    emb = enc(b)
    h = enc.base(b)
    expected = stack(h.x[h.mask], b.edge_index)
    torch.testing.assert_close(emb.x[emb.mask], expected)
    assert torch.equal(emb.mask, h.mask)
    assert torch.equal(emb.x[~emb.mask], torch.zeros_like(emb.x[~emb.mask]))
    assert torch.isfinite(emb.x).all()


def test_residual_adds_the_block_to_its_input():
    torch.manual_seed(0)
    plain = build_gnn_stack("graph", dim=DIM, residual=False, activation="gelu").eval()
    res = build_gnn_stack("graph", dim=DIM, residual=True, activation="gelu").eval()
    res.load_state_dict(plain.state_dict())
    b = batch(graph(4, 6))
    x = torch.randn(4, DIM)
    torch.testing.assert_close(res(x, b.edge_index), x + plain(x, b.edge_index))


def test_gradients_reach_the_base_encoder_and_every_layer():
    enc = encoder("gat", num_layers=2).train()
    out = enc(batch(graph(3, 7), graph(4, 8)))
    (out.x * torch.randn(out.x.shape)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_normalize():
    enc = encoder("gcn")
    enc.normalize = True
    emb = enc(batch(graph(3, 9), graph(1, 10)))
    torch.testing.assert_close(emb.x[emb.mask].norm(dim=-1), torch.ones(4))


def test_a_graph_without_edges_and_an_isolated_node():
    enc = encoder("gat", num_layers=2)
    lonely = graph(3, 11, edges=[[0], [1]])  # node 2 has no edge
    empty = graph(2, 12, edges=torch.zeros(2, 0, dtype=torch.long))
    emb = enc(batch(lonely, empty))
    assert emb.x.shape == (2, 3, DIM) and torch.isfinite(emb.x).all()
    assert emb.mask.tolist() == [[True, True, True], [True, True, False]]


def test_node_count_mismatch_is_an_error():
    class DropsANode(nn.Module):
        def forward(self, graphs):
            x, mask = torch.zeros(graphs.num_graphs, 4, DIM), torch.zeros(graphs.num_graphs, 4, dtype=torch.bool)
            mask[:, 0] = True
            return NodeEmb(x, mask)

    enc = GraphEncoder(DropsANode(), build_gnn_stack("gcn", dim=DIM))
    with pytest.raises(ValueError, match="gave 2 real nodes for a batch of 5 graph nodes"):
        enc(batch(graph(2, 1), graph(3, 2)))


# ------------------------------------------------------------------------------ edge features
def test_edge_features_reach_layers_that_take_them():
    enc = encoder("gat", edge_dim=EDGE_DIM)
    assert enc.stack.uses_edge_attr == [True]
    b = batch(graph(3, 1), graph(4, 2))
    out = enc(b).x
    b2 = b.clone()
    b2.edge_attr = b.edge_attr + 1.0
    assert not torch.allclose(enc(b2).x, out)
    # edge_features: false, or a stack without edge_dim, leaves them out
    for off in (encoder("gat", edge_dim=EDGE_DIM, edge_features=False), encoder("gat")):
        assert off.stack.uses_edge_attr == [False] and off.stack.layers[0].lin_edge is None
        torch.testing.assert_close(off(b2).x, off(b).x)
    # layers without edge features ignore them whatever the stack is told
    assert encoder("gcn", edge_dim=EDGE_DIM).stack.uses_edge_attr == [False]


def test_edge_feature_errors_name_the_fix():
    enc = encoder("transformer", edge_dim=EDGE_DIM)
    b = batch(graph(3, 1))
    del b.edge_attr
    with pytest.raises(ValueError, match="edge features of size 3.*no edge_attr.*edge_features: false"):
        enc(b)
    b = batch(graph(3, 1))
    b.edge_attr = torch.randn(b.edge_index.size(1), 5)
    with pytest.raises(ValueError, match=r"edge_attr has shape \(6, 5\), expected \(6, 3\)"):
        enc(b)


# ------------------------------------------------------------------------------ stack building
def test_stack_defaults_are_the_config_defaults():
    """The config section's stack keys and GNNStack's keyword arguments are the same set with the
    same defaults, so a config without them builds the default stack."""
    fields = {f.name: f.default for f in dataclasses.fields(GNNStackConfig)}
    assert set(STACK_KEYS) == set(fields)
    stack = GNNStack("gcn", DIM)
    assert (stack.num_layers, stack.residual, stack.dropout_p, stack.norm_kind, stack.edge_features,
            stack.activation_kind) == tuple(fields[k] for k in
                                            ("num_layers", "residual", "dropout", "norm", "edge_features", "activation"))


def test_build_from_a_config_section():
    cfg = config_from_dict({"model": {"embed_dim": DIM, "image_gnn": {
        "name": "gat", "heads": 2, "attention_dropout": 0.1, "num_layers": 3, "dropout": 0.2, "norm": "batch",
        "activation": "elu"}}})
    stack = build_gnn_stack(cfg.model.image_gnn, dim=DIM, edge_dim=EDGE_DIM)
    assert len(stack.layers) == 3 and stack.dropout_p == 0.2
    assert isinstance(stack.norms[0], nn.BatchNorm1d) and isinstance(stack.act, nn.ELU)
    layer = stack.layers[0]
    assert (layer.heads, layer.dropout, layer.lin_edge is not None) == (2, 0.1, True)
    assert repr(stack).splitlines()[1].strip() == (
        "'gat', 8, num_layers=3, residual=True, norm='batch', activation='elu', dropout=0.2, edge_dim=3")


def test_build_from_plain_arguments_and_mappings():
    a = build_gnn_stack("gat", dim=DIM, num_layers=2, heads=4)
    b = build_gnn_stack({"name": "gat", "num_layers": 2, "heads": 4}, dim=DIM)
    for s in (a, b):
        assert len(s.layers) == 2 and s.layers[0].heads == 4
    with pytest.raises(ValueError, match="needs 'name'"):
        build_gnn_stack({"num_layers": 2}, dim=DIM)
    with pytest.raises(ValueError, match="has no option 'hedas'"):
        build_gnn_stack("gat", dim=DIM, hedas=4)


def test_a_layer_option_named_like_a_stack_key_is_the_layers():
    class OwnDropout(nn.Module):
        def __init__(self, in_channels, out_channels, *, dropout: float = 0.0):
            super().__init__()
            self.lin, self.p = nn.Linear(in_channels, out_channels), dropout

        def forward(self, x, edge_index):
            return self.lin(x)

    s = build_gnn_stack(OwnDropout, dim=DIM, dropout=0.3, num_layers=2)
    assert s.layers[0].p == 0.3 and s.dropout_p == 0.0 and len(s.layers) == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"num_layers": 0}, "num_layers must be an int >= 1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"norm": "group"}, "norm must be one of"),
    ({"activation": "tanh"}, "activation must be one of"),
    ({"edge_dim": 0}, "edge_dim must be a positive int"),
])
def test_stack_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GNNStack("gcn", DIM, **kwargs)


def test_a_layer_with_the_wrong_output_size_is_named():
    class Wrong(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.lin = nn.Linear(in_channels, out_channels + 1)

        def forward(self, x, edge_index):
            return self.lin(x)

    stack = GNNStack(Wrong, DIM)
    with pytest.raises(ValueError, match=r"'.*Wrong' \(layer 0 of the stack\) returned \(3, 9\); expected \(3, 8\)"):
        stack(torch.randn(3, DIM), torch.zeros(2, 0, dtype=torch.long))


# ---------------------------------------------------------------------------- hidden channels
def test_hidden_channels_sizes_and_residual_only_where_sizes_agree():
    """dim -> H -> H -> dim: the first and last blocks change the size and have no residual, the
    middle one keeps it; norms have their layer's output size."""
    torch.manual_seed(0)
    stack = build_gnn_stack("graph", dim=DIM, num_layers=3, hidden_channels=5, norm="layer").eval()
    assert stack.sizes == [DIM, 5, 5, DIM] and stack.residual_blocks == [False, True, False]
    assert [(m.in_channels, m.out_channels) for m in stack.layers] == [(DIM, 5), (5, 5), (5, DIM)]
    assert [m.normalized_shape for m in stack.norms] == [(5,), (5,), (DIM,)]
    x, ei = torch.randn(4, DIM), batch(graph(4, 6)).edge_index

    def block(i, h):
        return stack.act(stack.norms[i](stack.layers[i](h, ei)))

    h0 = block(0, x)
    h1 = h0 + block(1, h0)
    torch.testing.assert_close(stack(x, ei), block(2, h1))
    assert "hidden_channels=5" in repr(stack)


def test_hidden_channels_equal_to_dim_and_a_single_layer_are_the_plain_stack():
    torch.manual_seed(0)
    plain = build_gnn_stack("gcn", dim=DIM, num_layers=2)
    same = build_gnn_stack("gcn", dim=DIM, num_layers=2, hidden_channels=DIM)
    one = build_gnn_stack("gcn", dim=DIM, num_layers=1, hidden_channels=3)
    assert same.residual_blocks == [True, True] and one.sizes == [DIM, DIM] and one.residual_blocks == [True]
    same.load_state_dict(plain.state_dict())
    x, ei = torch.randn(4, DIM), batch(graph(4, 6)).edge_index
    torch.testing.assert_close(same(x, ei), plain(x, ei))


def test_hidden_channels_from_a_config_section_even_for_gin():
    """``hidden_channels`` is the stack's key; gin's MLP size is its own ``mlp_channels``."""
    cfg = config_from_dict({"model": {"embed_dim": DIM, "image_gnn": {
        "name": "gin", "num_layers": 2, "hidden_channels": 12, "mlp_channels": 3}}})
    stack = build_gnn_stack(cfg.model.image_gnn, dim=DIM)
    assert stack.sizes == [DIM, 12, DIM]
    assert [(m.nn[0].in_features, m.nn[0].out_features, m.nn[2].out_features) for m in stack.layers] == [
        (DIM, 3, 12), (12, 3, DIM)]
    enc = GraphEncoder(PrecompRegionEncoder(img_dim=IMG_DIM, embed_dim=DIM), stack)
    assert enc(batch(graph(3, 1), graph(2, 2))).x.shape == (2, 3, DIM)
    with pytest.raises(ValueError, match="hidden_channels must be a positive int"):
        GNNStack("gcn", DIM, hidden_channels=0)


def test_gated_layers_with_a_hidden_size_below_and_above_dim():
    """GatedGraphConv pads up; going down it maps the input first (ProjectedGatedGraphConv)."""
    for hidden in (4, 12):
        enc = encoder("gated", num_layers=2, hidden_channels=hidden, num_steps=2)
        out = enc(batch(graph(3, 1), graph(4, 2)))
        assert out.x.shape == (2, 4, DIM) and torch.isfinite(out.x).all()


# -------------------------------------------------------------------------------- edge types
def typed(n: int, seed: int, types) -> Data:
    d = graph(n, seed)
    d.edge_type = torch.as_tensor(types, dtype=torch.long)
    assert d.edge_type.numel() == d.edge_index.size(1)
    return d


def test_edge_types_reach_layers_that_take_them():
    enc = encoder("rgcn", num_layers=2, num_relations=3)
    assert enc.stack.uses_edge_type == [True, True]
    b = batch(typed(3, 1, [0, 1, 2, 2, 1, 0]), typed(2, 2, [1, 2, 0, 1]))
    out = enc(b)
    assert out.x.shape == (2, 3, DIM) and torch.isfinite(out.x).all()
    # the stack gets graphs.edge_type: the same as calling it by hand, and other types give other outputs
    base = enc.base(b)
    torch.testing.assert_close(out.x[out.mask], enc.stack(base.x[base.mask], b.edge_index, None, b.edge_type))
    b2 = b.clone()
    b2.edge_type = torch.zeros_like(b.edge_type)
    assert not torch.allclose(enc(b2).x, out.x)
    # layers without edge types never see them
    assert encoder("gcn").stack.uses_edge_type == [False]
    torch.testing.assert_close(encoder("gcn")(b2).x, encoder("gcn")(b).x)


def test_edge_type_errors_name_the_fix():
    enc = encoder("rgcn", num_relations=3)
    b = batch(graph(3, 1))
    with pytest.raises(ValueError, match=r"needs edge types \(edge_type \[E\]\) but the batch has none"):
        enc(b)
    b.edge_type = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"edge_type has shape \(4,\), expected \(6,\)"):
        enc(b)
    b.edge_type = torch.zeros(6)
    with pytest.raises(ValueError, match="edge_type must hold integers"):
        enc(b)
    b.edge_type = torch.tensor([0, 1, 2, 3, 0, 0])
    with pytest.raises(ValueError, match="edge_type 3 is out of range for num_relations=3"):
        enc(b)


def test_a_layer_that_needs_edge_features_names_the_fix():
    with pytest.raises(ValueError, match="'gmm' needs edge features but the graphs carry no edge features"):
        build_gnn_stack("gmm", dim=DIM)
    with pytest.raises(ValueError, match="'triple' needs edge features but the stack has edge_features: false"):
        build_gnn_stack("triple", dim=DIM, edge_dim=EDGE_DIM, edge_features=False)
    for name in ("gmm", "gine", "triple"):
        enc = encoder(name, edge_dim=EDGE_DIM, num_layers=2, hidden_channels=4)
        assert enc.stack.uses_edge_attr == [True, True]
        assert torch.isfinite(enc(batch(graph(3, 1), graph(4, 2))).x).all()


def test_a_stack_after_a_normalising_encoder_normalises_its_output():
    from types import SimpleNamespace

    from graphmatch.encoders import build_encoder, normalizes
    from graphmatch.graphs import build_visual_graph, collate_graphs

    def section(**kw):
        return SimpleNamespace(name="precomp_fc", kwargs=lambda: dict(kw))

    gnn = {"name": "gcn", "num_layers": 2}
    torch.manual_seed(0)
    enc = build_encoder(section(), embed_dim=8, img_dim=5, gnn=gnn)
    raw = build_encoder(section(no_imgnorm=True), embed_dim=8, img_dim=5, gnn=gnn)
    assert enc.normalize and not raw.normalize
    assert normalizes(PrecompRegionEncoder(img_dim=5, embed_dim=8)) and not normalizes(torch.nn.Linear(2, 2))
    g = build_visual_graph(torch.randn(4, 5), boxes=torch.tensor([[0., 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6], [0, 4, 1, 6]]),
                           image_size=(10, 10), edges="knn", k=2)
    out = enc(collate_graphs([g]))
    torch.testing.assert_close(out.x[out.mask].norm(dim=-1), torch.ones(4))
