"""graphmatch.utils.state_dict: one fit check of a state dict against a model."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from graphmatch.utils.state_dict import StateDictError, StateDictFit, check_state_dict, compare_state_dict


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_a_fitting_state_dict_passes_and_loads():
    m = model()
    fit = check_state_dict(m, model().state_dict(), source="weights file w.pth")
    assert fit.ok and fit.describe() == "fits" and fit == StateDictFit()


def test_mismatches_are_counted_and_named_in_order():
    m = model()
    state = dict(model().state_dict())
    del state["0.bias"], state["2.weight"]
    state["0.weight"] = torch.zeros(5, 4)
    state["1.running_mean"] = torch.zeros(7)
    state["head.weight"] = torch.zeros(1)
    fit = compare_state_dict(m, state)
    assert fit.missing == ["0.bias", "2.weight"]
    assert fit.unexpected == ["head.weight"]
    assert fit.mismatched == [("0.weight", (5, 4), (3, 4)), ("1.running_mean", (7,), (3,))]
    with pytest.raises(StateDictError) as ei:
        check_state_dict(m, state, source="weights file w.pth", what="tiny model")
    assert str(ei.value) == (
        "weights file w.pth does not fit the tiny model: 2 shape mismatches (e.g. 0.weight: file "
        "(5, 4) vs model (3, 4); 1.running_mean: file (7,) vs model (3,)); 2 missing keys (e.g. "
        "['0.bias', '2.weight']); 1 unexpected keys (e.g. ['head.weight'])")
    assert ei.value.fit == fit


def test_only_the_first_keys_are_shown_with_the_count():
    expected = {f"layer{i}.weight": torch.zeros(2) for i in range(10)}
    fit = compare_state_dict(expected, {})
    text = fit.describe(limit=2)
    assert text == "10 missing keys (e.g. ['layer0.weight', 'layer1.weight'])"
    wrong = {k: torch.zeros(3) for k in expected}
    assert compare_state_dict(expected, wrong).describe(limit=1).startswith(
        "10 shape mismatches (e.g. layer0.weight: file (3,) vs model (2,) ...)")


def test_ignore_patterns_hint_and_own_error_type():
    m = model()
    state = {k: v for k, v in model().state_dict().items() if not k.endswith("num_batches_tracked")}
    state["pixel_mean"] = torch.zeros(3)
    assert check_state_dict(m, state, ignore=["*.num_batches_tracked", "pixel_mean"]).ok

    class WeightsProblem(RuntimeError):
        pass

    state["0.weight"] = torch.zeros(9, 4)
    seen = []

    def hint(fit):
        seen.append(fit)
        return "pass the weights of this architecture" if fit.mismatched else None

    with pytest.raises(WeightsProblem, match=r"0\.weight: file \(9, 4\).*; pass the weights of this architecture$") as ei:
        check_state_dict(m, state, ignore=["*.num_batches_tracked", "pixel_mean"], hint=hint,
                         error=WeightsProblem)
    assert ei.value.fit is seen[0] and seen[0].mismatched[0][0] == "0.weight"


def test_values_that_are_not_tensors_are_mismatches():
    fit = compare_state_dict({"w": torch.zeros(2)}, {"w": 3})
    assert fit.mismatched == [("w", None, (2,))]
    assert "w: file not a tensor vs model (2,)" in fit.describe()
