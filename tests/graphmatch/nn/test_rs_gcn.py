"""RsGCN (``rs_gcn``): VSRN's region relation reasoning over a graph's edges, checked against a
per-node loop of its update rule and, on a complete graph, against VSRN's dense computation."""
from __future__ import annotations

import pytest
import torch

from graphmatch.nn.conv import build_gnn_layer
from graphmatch.nn.conv.rs_gcn import RsGCN

IN, OUT, INTER = 6, 6, 4

#: edges j -> i of a 4-node graph (node 3 has none)
EDGE_INDEX = torch.tensor([[0, 2, 1, 0], [1, 1, 0, 2]])


def x4() -> torch.Tensor:
    return torch.randn(4, IN, generator=torch.Generator().manual_seed(1))


def layer(out: int = OUT, **kw) -> RsGCN:
    """A layer in eval mode with a non-trivial BatchNorm (scale, shift and running statistics), so
    that the relation branch shows in the output."""
    torch.manual_seed(0)
    conv = RsGCN(IN, out, inter_channels=INTER, **kw)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        conv.bn.weight.copy_(torch.rand(out, generator=g) + 0.5)
        conv.bn.bias.copy_(torch.randn(out, generator=g))
        conv.bn.running_mean.copy_(torch.randn(out, generator=g))
        conv.bn.running_var.copy_(torch.rand(out, generator=g) + 0.5)
    return conv.eval()


def bn_eval(conv: RsGCN, z: torch.Tensor) -> torch.Tensor:
    bn = conv.bn
    return (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def loop_reference(conv: RsGCN, x, edge_index) -> torch.Tensor:
    """x_i' = BN(W_r sum_j R_hat_ij g(x_j) + b_r) + P x_i with R_ij = phi(x_i) . psi(x_j), node by
    node."""
    out = []
    for i in range(x.size(0)):
        nbrs = sorted({int(j) for j, t in edge_index.t().tolist() if t == i and j != i})
        if conv.self_loops:
            nbrs.append(i)
        r = torch.stack([conv.lin_phi(x[i]) @ conv.lin_psi(x[j]) for j in nbrs]) if nbrs else torch.zeros(0)
        if conv.normalize == "count" and nbrs:
            r = r / len(nbrs)
        elif conv.normalize == "softmax" and nbrs:
            r = torch.exp(r - r.max()) / torch.exp(r - r.max()).sum()
        y = sum((r[n] * conv.lin_g(x[j]) for n, j in enumerate(nbrs)), torch.zeros(INTER))
        out.append(bn_eval(conv, conv.lin_r(y)) + conv.res(x[i]))
    return torch.stack(out)


@pytest.mark.parametrize("normalize", ["count", "softmax", "none"])
@pytest.mark.parametrize("self_loops", [True, False])
def test_the_update_rule_node_by_node(normalize, self_loops):
    conv = layer(normalize=normalize, self_loops=self_loops)
    x = x4()
    out = conv(x, EDGE_INDEX)
    assert out.shape == (4, OUT)
    torch.testing.assert_close(out, loop_reference(conv, x, EDGE_INDEX), atol=1e-5, rtol=1e-5)


def test_a_complete_graph_is_vsrn_dense_reasoning():
    """On every ordered pair plus self-loops, with the count normalisation, the layer is VSRN's
    dense ``v* = W(R / N g) + v`` with ``R = phi(V) psi(V)^T`` over all N regions."""
    conv = layer()
    x = torch.randn(5, IN, generator=torch.Generator().manual_seed(3))
    src, dst = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    keep = src != dst
    complete = torch.stack([src[keep], dst[keep]])
    r = conv.lin_phi(x) @ conv.lin_psi(x).t()  # [N, N], row i: target
    dense = bn_eval(conv, conv.lin_r((r / 5) @ conv.lin_g(x))) + x
    torch.testing.assert_close(conv(x, complete), dense, atol=1e-5, rtol=1e-5)


def test_the_block_starts_as_the_identity():
    torch.manual_seed(0)
    conv = RsGCN(IN, IN)
    assert torch.equal(conv.bn.weight, torch.zeros(IN)) and torch.equal(conv.bn.bias, torch.zeros(IN))
    x = x4()
    for mode in (conv.train(), conv.eval()):
        torch.testing.assert_close(mode(x, EDGE_INDEX), x)
    # a different output size: the residual is a learned map P, still nothing else at initialisation
    wide = RsGCN(IN, 10)
    torch.testing.assert_close(wide(x, EDGE_INDEX), wide.res(x))


def test_an_isolated_node_and_a_graph_without_edges():
    conv = layer()
    x = x4()
    out = conv(x, EDGE_INDEX)
    own = bn_eval(conv, conv.lin_r((conv.lin_phi(x[3]) @ conv.lin_psi(x[3])) * conv.lin_g(x[3]))) + x[3]
    torch.testing.assert_close(out[3], own)
    empty = conv(x, torch.zeros(2, 0, dtype=torch.long))
    torch.testing.assert_close(empty[3], out[3])
    for i in range(4):
        torch.testing.assert_close(empty[i], conv(x[i:i + 1], torch.zeros(2, 0, dtype=torch.long))[0])
    # without self-loops an isolated node has y = 0
    plain = layer(self_loops=False)
    torch.testing.assert_close(plain(x, EDGE_INDEX)[3], bn_eval(plain, plain.lin_r.bias) + x[3])


def test_neighbours_matter_and_gradients_reach_everything():
    conv = layer(out=9).train()
    x = x4().requires_grad_()
    out = conv(x, EDGE_INDEX)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(4))).sum().backward()
    for name, p in [("x", x)] + list(conv.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    conv.eval()
    moved = x.detach().clone()
    moved[2] += 1.0  # node 2 sends to node 1 only (and to itself)
    changed = (conv(moved, EDGE_INDEX) - conv(x.detach(), EDGE_INDEX)).abs().sum(-1) > 1e-6
    assert changed.tolist() == [False, True, True, False]


def test_options_and_errors():
    conv = build_gnn_layer("rs_gcn", in_channels=IN, out_channels=OUT, inter_channels=3, normalize="softmax")
    assert (conv.inter_channels, conv.normalize, conv.lin_g.out_features) == (3, "softmax", 3)
    assert build_gnn_layer("rs_gcn", in_channels=IN, out_channels=OUT).inter_channels == IN
    with pytest.raises(ValueError, match="normalize must be one of"):
        RsGCN(IN, OUT, normalize="mean")
    with pytest.raises(ValueError, match="inter_channels must be a positive int"):
        RsGCN(IN, OUT, inter_channels=0)
