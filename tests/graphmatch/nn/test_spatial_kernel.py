"""SpatialKernelConv (``spatial_kernel``): GSMN's spatial graph convolution over polar
pseudo-coordinates, checked against a per-node loop of its update rule on a hand-written graph."""
from __future__ import annotations

import math

import pytest
import torch

from graphmatch.nn.conv import build_gnn_layer
from graphmatch.nn.conv.spatial_kernel import SpatialKernelConv

IN, OUT, K = 5, 6, 3

#: edges j -> i of a 4-node graph (node 3 has none); rho, theta of each edge, two angles near +-pi
EDGE_INDEX = torch.tensor([[0, 2, 1, 0], [1, 1, 0, 2]])
EDGE_ATTR = torch.tensor([[0.5, 0.3], [0.2, -3.1], [0.5, -2.8], [0.9, 3.05]])


def layer(**kw) -> SpatialKernelConv:
    torch.manual_seed(0)
    conv = SpatialKernelConv(IN, OUT, edge_dim=2, num_kernels=K, **kw)
    with torch.no_grad():  # kernels placed so that every edge has sizeable weights, one mean near -pi
        conv.mean_rho.copy_(torch.tensor([0.1, 0.5, 0.8]))
        conv.mean_theta.copy_(torch.tensor([-3.0, 0.0, 1.5]))
        conv.sigma_rho.copy_(torch.tensor([0.4, 0.6, 0.5]))
        conv.sigma_theta.copy_(torch.tensor([0.7, 1.2, 0.9]))
    return conv


def x4() -> torch.Tensor:
    return torch.randn(4, IN, generator=torch.Generator().manual_seed(1))


def loop_reference(conv: SpatialKernelConv, x, edge_index, edge_attr, self_loops: bool) -> torch.Tensor:
    """x_i' = concat_k W_k sum_{j in N(i)} w_k(u_ij) x_j, node by node, kernel by kernel, with the
    Gaussians written out in Python floats."""
    mr, mt = conv.mean_rho.tolist(), conv.mean_theta.tolist()
    sr, st = conv.sigma_rho.tolist(), conv.sigma_theta.tolist()
    w_full = conv.lin.weight.detach()
    block = OUT // K
    out = torch.zeros(x.size(0), OUT)
    for i in range(x.size(0)):
        nbrs = [(int(j), edge_attr[e].tolist()) for e, (j, t) in enumerate(edge_index.t().tolist()) if t == i
                and not (self_loops and j == i)]
        if self_loops:
            nbrs.append((i, [0.0, 0.0]))
        for k in range(K):
            acc = torch.zeros(IN)
            for j, (rho, theta) in nbrs:
                g = []
                for kk in range(K):
                    d = abs(theta - mt[kk])
                    d = min(d, abs(2 * math.pi - d))
                    g.append(math.exp(-0.5 * (rho - mr[kk]) ** 2 / (1e-14 + sr[kk] ** 2))
                             * math.exp(-0.5 * d ** 2 / (1e-14 + st[kk] ** 2)))
                acc += g[k] / sum(g) * x[j]
            out[i, k * block:(k + 1) * block] = w_full[k * block:(k + 1) * block] @ acc
    if conv.bias is not None:
        out += conv.bias.detach()
    return out


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_the_update_rule_node_by_node(self_loops, bias):
    conv = layer(self_loops=self_loops, bias=bias)
    x = x4()
    out = conv(x, EDGE_INDEX, EDGE_ATTR)
    assert out.shape == (4, OUT)
    torch.testing.assert_close(out, loop_reference(conv, x, EDGE_INDEX, EDGE_ATTR, self_loops), atol=1e-5, rtol=1e-5)


def test_kernel_weights_sum_to_one_over_kernels_and_the_angle_wraps():
    conv = layer()
    w = conv.kernel_weights(EDGE_ATTR)
    assert w.shape == (4, K)
    torch.testing.assert_close(w.sum(-1), torch.ones(4))
    # the angle is periodic: theta and theta - 2 pi are the same direction (GMMConv would differ)
    near = conv.kernel_weights(torch.tensor([[0.1, 3.05]]))[0]
    torch.testing.assert_close(conv.kernel_weights(torch.tensor([[0.1, 3.05 - 2 * math.pi]]))[0], near)
    # theta = 3.05 is 2 pi - 6.05 ~ 0.23 from the kernel at -3.0, across the +-pi seam: that kernel wins
    assert near.argmax() == 0 and near[0] > 0.8


def test_an_isolated_node_and_a_graph_without_edges():
    conv = layer()
    x = x4()
    out = conv(x, EDGE_INDEX, EDGE_ATTR)
    # node 3 has no edge: its own term at u = (0, 0) only
    w0 = conv.kernel_weights(torch.zeros(1, 2))[0]
    blocks = conv.lin(x[3]).view(K, -1) * w0.unsqueeze(-1)
    torch.testing.assert_close(out[3], blocks.reshape(-1))
    empty = conv(x, torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 2))
    torch.testing.assert_close(empty[3], out[3])
    torch.testing.assert_close(empty, (conv.lin(x).view(4, K, -1) * w0.view(1, K, 1)).reshape(4, OUT))
    # without self-loops an isolated node gets nothing
    plain = layer(self_loops=False)
    assert torch.equal(plain(x, EDGE_INDEX, EDGE_ATTR)[3], torch.zeros(OUT))


def test_a_given_self_loop_is_replaced_by_the_one_at_the_origin():
    conv = layer()
    x = x4()
    looped = torch.cat([EDGE_INDEX, torch.tensor([[2], [2]])], dim=1)
    looped_attr = torch.cat([EDGE_ATTR, torch.tensor([[0.7, 1.0]])])
    torch.testing.assert_close(conv(x, looped, looped_attr), conv(x, EDGE_INDEX, EDGE_ATTR))


def test_edge_features_steer_the_output_and_gradients_reach_everything():
    conv = layer(bias=True)
    x = x4().requires_grad_()
    attr = EDGE_ATTR.clone().requires_grad_()
    out = conv(x, EDGE_INDEX, attr)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    for name, p in [("x", x), ("edge_attr", attr)] + list(conv.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    moved = EDGE_ATTR.clone()
    moved[0, 1] += 1.0  # one edge's angle: only its target (node 1) changes
    out2 = conv(x.detach(), EDGE_INDEX, moved)
    changed = (out2 - out.detach()).abs().sum(-1) > 1e-6
    assert changed.tolist() == [False, True, False, False]


def test_initialisation_as_released():
    torch.manual_seed(3)
    conv = SpatialKernelConv(IN, 64, edge_dim=2, num_kernels=64)
    assert 0 <= conv.mean_rho.min() and conv.mean_rho.max() <= 1
    assert -math.pi <= conv.mean_theta.min() and conv.mean_theta.max() <= math.pi and conv.mean_theta.min() < -1
    assert 0 <= conv.sigma_rho.min() and conv.sigma_theta.max() <= 1
    assert conv.bias is None and conv.lin.bias is None


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="out_channels=6 must be a multiple of num_kernels=4"):
        SpatialKernelConv(IN, 6, edge_dim=2, num_kernels=4)
    with pytest.raises(ValueError, match="edge_dim=2; got edge_dim=3"):
        SpatialKernelConv(IN, OUT, edge_dim=3)
    with pytest.raises(ValueError, match="needs polar pseudo-coordinates"):
        build_gnn_layer("spatial_kernel", in_channels=IN, out_channels=OUT)
    conv = layer()
    with pytest.raises(ValueError, match="needs edge_attr"):
        conv(x4(), EDGE_INDEX)
    with pytest.raises(ValueError, match=r"edge_attr has shape \(4, 3\), expected \(4, 2\)"):
        conv(x4(), EDGE_INDEX, torch.zeros(4, 3))


def test_options_through_the_registry():
    conv = build_gnn_layer("spatial_kernel", in_channels=IN, out_channels=OUT, edge_dim=2, num_kernels=2,
                           self_loops=False, bias=True)
    assert (conv.num_kernels, conv.self_loops, conv.bias.shape) == (2, False, (OUT,))
