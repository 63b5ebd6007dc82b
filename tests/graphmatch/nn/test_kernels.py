import math

import torch

from graphmatch.nn.functional import angular_distance, polar_gaussian_weights


def test_angular_distance_wraps_around():
    a = torch.tensor([math.pi - 0.1, 0.3, -0.2])
    b = torch.tensor([-math.pi + 0.1, 0.1, 0.2])
    assert torch.allclose(angular_distance(a, b), torch.tensor([0.2, 0.2, 0.4]), atol=1e-6)


def test_weights_match_the_formula_and_sum_to_one_over_kernels():
    g = torch.Generator().manual_seed(0)
    rho, theta = torch.rand(5, generator=g), torch.rand(5, generator=g) * 6 - 3
    mr, mt = torch.rand(3, generator=g), torch.rand(3, generator=g) * 6 - 3
    sr, st = torch.rand(3, generator=g) + 0.1, torch.rand(3, generator=g) + 0.1
    raw = polar_gaussian_weights(rho, theta, mr, mt, sr, st, normalize=False)
    for e in range(5):
        for k in range(3):
            d = abs(float(theta[e] - mt[k]))
            d = min(d, abs(2 * math.pi - d))
            want = math.exp(-0.5 * (float(rho[e] - mr[k])) ** 2 / (1e-14 + float(sr[k]) ** 2)) * math.exp(
                -0.5 * d ** 2 / (1e-14 + float(st[k]) ** 2))
            assert math.isclose(float(raw[e, k]), want, rel_tol=1e-5, abs_tol=1e-12)
    norm = polar_gaussian_weights(rho, theta, mr, mt, sr, st)
    assert torch.allclose(norm.sum(-1), torch.ones(5), atol=1e-6)
    assert torch.allclose(norm, raw / raw.sum(-1, keepdim=True), atol=1e-6)


def test_underflow_gives_zero_weights_and_finite_gradients():
    mr = torch.zeros(2, requires_grad=True)
    w = polar_gaussian_weights(torch.tensor([50.0]), torch.tensor([0.0]), mr, torch.zeros(2),
                               torch.full((2,), 0.01), torch.ones(2))
    assert torch.equal(w, torch.zeros(1, 2))
    w.sum().backward()
    assert torch.isfinite(mr.grad).all()
