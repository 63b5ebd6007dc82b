import pytest

from graphmatch.registry import MATCHERS, Registry, list_all, list_encoders, list_matchers


def test_register_get_build():
    reg = Registry("thing")

    @reg.register()
    class A:
        def __init__(self, *, k=1):
            self.k = k

    reg.register("b", dict)
    assert reg.get("A") is A and "b" in reg and reg.names() == ["A", "b"]
    assert reg.build("A", k=3).k == 3
    assert reg.build(A, k=4).k == 4  # a class passes through
    assert reg.resolve(A) is A


def test_duplicate_and_unknown_names():
    reg = Registry("thing")
    reg.register("x", int)
    reg.register("x", int)  # same object again is fine
    with pytest.raises(KeyError, match="already registered"):
        reg.register("x", float)
    with pytest.raises(KeyError, match=r"unknown thing 'y'.*Registered: x"):
        reg.get("y")
    reg.register("scan_t2i", str)
    with pytest.raises(KeyError, match="Did you mean 'scan_t2i'"):
        reg.get("scan_t2")


def test_builtins_are_listed():
    assert "scan" in list_matchers()
    assert {"precomp_fc", "bigru"} <= set(list_encoders())
    everything = list_all()
    assert set(everything) == {"gnn_layers", "encoders", "matchers", "extractors", "parsers", "datasets",
                               "visual_edges"}
    assert {"polar", "knn", "iou", "relations"} <= set(everything["visual_edges"])
    assert MATCHERS.get("scan").__name__ == "SCAN"
