"""Tests of graphmatch.nn.functional.aggregation: masked pooling."""

from __future__ import annotations

import math

import pytest
import torch

from graphmatch.nn.functional import AGGREGATIONS, aggregate, check_aggregation


def plain(values: list, agg: str, lambda_lse: float) -> float:
    if agg == "lse":
        return math.log(sum(math.exp(lambda_lse * v) for v in values)) / lambda_lse
    if agg == "max":
        return max(values)
    if agg == "sum":
        return sum(values)
    return sum(values) / len(values)


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_pools_the_real_entries_only(agg):
    x = torch.tensor([[0.3, 1e4, -0.2, 0.9], [-1e4, 0.5, 1e4, 1e4]], dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True], [False, True, False, False]])
    out = aggregate(x, mask, agg, lambda_lse=4.0)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(plain([0.3, -0.2, 0.9], agg, 4.0), abs=1e-12)
    assert out[1].item() == pytest.approx(plain([0.5], agg, 4.0), abs=1e-12)
    single = aggregate(x[:, :1], None, agg, lambda_lse=4.0)  # one entry: every pooling gives it
    torch.testing.assert_close(single, x[:, 0], atol=1e-9, rtol=0)


def test_node_vectors_pool_over_the_node_axis():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 0, 0]], dtype=torch.bool)
    x = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, 1e3))
    for agg in AGGREGATIONS:
        out = aggregate(x, mask.unsqueeze(-1), agg, lambda_lse=2.0, dim=1)
        assert out.shape == (3, 4)
        for b in range(3):
            ref = aggregate(x[b][mask[b]], None, agg, lambda_lse=2.0, dim=0)
            torch.testing.assert_close(out[b], ref, atol=1e-12, rtol=0)


def test_lse_does_not_overflow():
    x = torch.tensor([[1.0, 0.5]])
    out = aggregate(x, None, "lse", lambda_lse=1000.0)
    assert torch.isfinite(out).all() and out.item() == pytest.approx(1.0, abs=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="lse.*mean.*max.*sum"):
        check_aggregation("median", 1.0)
    with pytest.raises(ValueError, match="lambda_lse"):
        aggregate(torch.zeros(2), None, "lse", lambda_lse=0.0)
    with pytest.raises(ValueError, match="bool"):
        aggregate(torch.zeros(2), torch.ones(2), "mean")
