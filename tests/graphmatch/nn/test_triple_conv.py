"""TripleConv (``triple``): SGM's triple convolution over (subject, predicate, object), checked
against a per-node loop of its update rule on a hand-written scene graph."""
from __future__ import annotations

import pytest
import torch

from graphmatch.nn.conv import build_gnn_layer
from graphmatch.nn.conv.triple import TripleConv

IN, OUT, EDGE_DIM = 5, 7, 3

#: triples subject -> object of a 4-node graph: 0 -> 1, 1 -> 2, 0 -> 2; node 3 takes part in none
EDGE_INDEX = torch.tensor([[0, 1, 0], [1, 2, 2]])


def x4() -> torch.Tensor:
    return torch.randn(4, IN, generator=torch.Generator().manual_seed(1))


def e3() -> torch.Tensor:
    return torch.randn(3, EDGE_DIM, generator=torch.Generator().manual_seed(2))


def layer(**kw) -> TripleConv:
    torch.manual_seed(0)
    return TripleConv(IN, OUT, edge_dim=EDGE_DIM, **kw)


def loop_reference(conv: TripleConv, x, edge_index, edge_attr) -> torch.Tensor:
    """x_i' = W_0 x_i + b + (sum over triples (s, p, i) of MLP_o + sum over triples (i, p, o) of
    MLP_s) / (number of those triples), node by node."""
    out = []
    for i in range(x.size(0)):
        msgs = []
        for e, (s, o) in enumerate(edge_index.t().tolist()):
            t = torch.cat([x[s], edge_attr[e], x[o]])
            if o == i:
                msgs.append(conv.mlp_object(t))
            if s == i:
                msgs.append(conv.mlp_subject(t))
        agg = torch.stack(msgs).mean(0) if msgs else torch.zeros(OUT)
        out.append(conv.lin_root(x[i]) + agg)
    return torch.stack(out)


def test_the_update_rule_node_by_node():
    conv = layer(mlp_channels=4)
    x, e = x4(), e3()
    out = conv(x, EDGE_INDEX, e)
    assert out.shape == (4, OUT)
    torch.testing.assert_close(out, loop_reference(conv, x, EDGE_INDEX, e), atol=1e-6, rtol=1e-5)


def test_a_self_loop_sends_both_messages_to_its_node():
    conv = layer()
    x = x4()
    ei = torch.cat([EDGE_INDEX, torch.tensor([[3], [3]])], dim=1)
    e = torch.cat([e3(), torch.randn(1, EDGE_DIM, generator=torch.Generator().manual_seed(5))])
    out = conv(x, ei, e)
    torch.testing.assert_close(out, loop_reference(conv, x, ei, e), atol=1e-6, rtol=1e-5)
    t = torch.cat([x[3], e[3], x[3]])
    torch.testing.assert_close(out[3], conv.lin_root(x[3]) + (conv.mlp_object(t) + conv.mlp_subject(t)) / 2)


def test_an_isolated_node_and_a_graph_without_edges_keep_the_root_map():
    conv = layer()
    x = x4()
    out = conv(x, EDGE_INDEX, e3())
    torch.testing.assert_close(out[3], conv.lin_root(x[3]))
    empty = conv(x, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, EDGE_DIM))
    torch.testing.assert_close(empty, conv.lin_root(x))


def test_direction_and_predicates_matter():
    conv = layer()
    x, e = x4(), e3()
    out = conv(x, EDGE_INDEX, e)
    # reversing one triple (0 -> 1 becomes 1 -> 0) swaps the roles, so nodes 0 and 1 change
    reversed_ = EDGE_INDEX.clone()
    reversed_[:, 0] = torch.tensor([1, 0])
    changed = (conv(x, reversed_, e) - out).abs().sum(-1) > 1e-6
    assert changed.tolist() == [True, True, False, False]
    # one predicate changed: its subject and object change, no other node
    e2 = e.clone()
    e2[1] += 1.0  # triple 1 -> 2
    changed = (conv(x, EDGE_INDEX, e2) - out).abs().sum(-1) > 1e-6
    assert changed.tolist() == [False, True, True, False]


def test_gradients_reach_the_inputs_the_predicates_and_both_mlps():
    conv = layer()
    x, e = x4().requires_grad_(), e3().requires_grad_()
    out = conv(x, EDGE_INDEX, e)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(3))).sum().backward()
    for name, p in [("x", x), ("edge_attr", e)] + list(conv.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_options_and_errors():
    conv = build_gnn_layer("triple", in_channels=IN, out_channels=OUT, edge_dim=EDGE_DIM, mlp_channels=11,
                           bias=False)
    assert conv.mlp_object[0].out_features == 11 and conv.mlp_subject[0].in_features == 2 * IN + EDGE_DIM
    assert conv.lin_root.bias is None
    with pytest.raises(ValueError, match="needs predicate features as edge features"):
        build_gnn_layer("triple", in_channels=IN, out_channels=OUT)
    with pytest.raises(ValueError, match="needs edge_attr"):
        layer()(x4(), EDGE_INDEX)
    with pytest.raises(ValueError, match=r"edge_attr has shape \(3, 2\), expected \(3, 3\)"):
        layer()(x4(), EDGE_INDEX, torch.zeros(3, 2))
