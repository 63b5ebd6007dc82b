import dataclasses
import subprocess
import sys

import pytest

from graphmatch.options import option
from graphmatch.registry import Registry, accepted_kwargs, options_from_signature


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
    assert reg.resolve(A) is A and reg.name_of(A) == "A"


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
    with pytest.raises(TypeError, match="config= must be a dataclass"):
        reg.register("z", int, config=dict)


def test_options_from_a_dataclass_or_the_signature():
    reg = Registry("widget")

    @dataclasses.dataclass
    class Opts:
        width: int = option(3, lo=1)

    @reg.register("explicit", config=Opts)
    class Explicit:
        def __init__(self, *, width=3): ...

    @reg.register("derived")
    class Derived:
        def __init__(self, in_channels, *, width: int = 2, names: list = ["a"], scale: float = 1.0, **kw): ...

    assert reg.options("explicit") is Opts
    fields = {f.name: f for f in dataclasses.fields(reg.options("derived"))}
    assert list(fields) == ["width", "names", "scale"]  # no default: supplied by the builder, not a key
    assert fields["width"].type is int and reg.options("derived")().names == ["a"]
    assert reg.options("derived")().names is not reg.options("derived")().names  # mutable defaults copied

    def edges(boxes, image_size=None, *, k: int = 8): ...

    assert [f.name for f in dataclasses.fields(options_from_signature(edges))] == ["image_size", "k"]


def test_accepted_kwargs_passes_what_a_component_takes():
    class Takes:
        def __init__(self, *, embed_dim, vocab=None): ...

    class TakesAll:
        def __init__(self, **kw): ...

    avail = {"embed_dim": 8, "vocab": "v", "img_dim": 5}
    assert accepted_kwargs(Takes, avail) == {"embed_dim": 8, "vocab": "v"}
    assert accepted_kwargs(TakesAll, avail) == avail


def test_matchers_are_registered_on_importing_models_and_registry_is_alone():
    code = ("import sys; from graphmatch.models import MATCHERS; print(MATCHERS.get('scan').__name__); "
            "print('graphmatch.catalog' in sys.modules, 'parsers' in sys.modules, 'detectors' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["SCAN", "False", "False", "False"]


def test_catalogue_lists_builtins_and_plugin_packages():
    from graphmatch.catalog import list_all

    everything = list_all()
    assert {"gnn_layers", "encoders", "matchers", "losses", "datasets", "visual_edges", "text_graphs",
            "extractors", "parsers"} <= set(everything)
    assert "scan" in everything["matchers"] and {"precomp_fc", "bigru"} <= set(everything["encoders"])
    assert {"contrastive", "infonce"} <= set(everything["losses"])
    assert {"none", "full", "polar", "knn", "iou", "relations"} <= set(everything["visual_edges"])
    assert {"words", "full", "dependency", "scene"} <= set(everything["text_graphs"])
    assert {"precomp", "synthetic"} <= set(everything["datasets"])
    assert "torchvision" in everything["extractors"]  # through the graphmatch.plugins entry point
