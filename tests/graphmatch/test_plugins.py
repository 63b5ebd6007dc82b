"""Components written outside the package, in a user's own file, train and evaluate through the
command line with ``--import``, with their own config keys checked like core keys."""
import json
import subprocess
import sys
import textwrap

import pytest

from graphmatch.plugins import PluginError, import_plugins

TOY = textwrap.dedent('''
    """A user's own matcher and GNN layer."""
    from dataclasses import dataclass

    import torch
    from torch_geometric.nn import MessagePassing

    from graphmatch.models import MATCHERS, Matcher
    from graphmatch.nn.conv import GNN_LAYERS
    from graphmatch.options import option


    @dataclass
    class ToyOptions:
        scale: float = option(1.0, lo=0, lo_open=True)


    @MATCHERS.register("toy_cosine", config=ToyOptions)
    class ToyCosine(Matcher):
        """Cosine of the mean region and the mean word, times ``scale``."""

        def __init__(self, *, image_encoder, text_encoder, scale=1.0):
            super().__init__()
            self.image_encoder, self.text_encoder, self.scale = image_encoder, text_encoder, scale

        def score(self, img, cap):
            def mean(e):
                m = e.mask.unsqueeze(-1).float()
                return torch.nn.functional.normalize((e.x * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)
            return self.scale * mean(img) @ mean(cap).t()


    @GNN_LAYERS.register("toy_mean_conv")
    class ToyMeanConv(MessagePassing):
        """x_i' = W x_i + mix * mean_j W x_j."""

        def __init__(self, in_channels, out_channels, *, mix: float = 0.5):
            super().__init__(aggr="mean")
            self.lin = torch.nn.Linear(in_channels, out_channels)
            self.mix = mix

        def forward(self, x, edge_index):
            h = self.lin(x)
            return h + self.mix * self.propagate(edge_index, x=h)
''')

CONFIG = textwrap.dedent('''
    data:
      name: synthetic
      root: {data}
      n_train: 60
      n_dev: 20
      n_test: 20
      graph:
        visual_edges: {{name: knn, k: 3}}
    model:
      embed_dim: 32
      text: {{name: bigru, word_dim: 16}}
      matcher: {{name: toy_cosine, scale: 5.0}}
      image_gnn: {{name: toy_mean_conv, num_layers: 2, mix: 0.25}}
    train: {{epochs: 1, batch_size: 32, device: cpu}}
    output_dir: {run}
''')


def _run(*args):
    return subprocess.run([sys.executable, "-m", "graphmatch.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The plug-in file outside the package (one per test module: a process registers its names once)."""
    tmp_path = tmp_path_factory.mktemp("toy")
    plugin = tmp_path / "elsewhere" / "toy_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(TOY)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data", run=tmp_path / "run"))
    return plugin, cfg, tmp_path


def test_toy_matcher_and_gnn_layer_train_and_evaluate_through_the_cli(toy):
    plugin, cfg, tmp = toy
    r = _run("train", str(cfg), "--import", str(plugin), "--quiet")
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp / "run" / "checkpoints" / "best" / "config.json").read_text())["config"]
    assert saved["model"]["matcher"] == {"name": "toy_cosine", "scale": 5.0}
    assert saved["model"]["image_gnn"]["name"] == "toy_mean_conv" and saved["model"]["image_gnn"]["mix"] == 0.25
    assert saved["imports"] == [str(plugin.resolve())]
    # the checkpoint names its plug-in: eval imports it again by itself
    r = _run("eval", str(tmp / "run"), "--split", "test", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_images"] == 20
    r = _run("list", "--import", str(plugin))
    assert r.returncode == 0 and "toy_cosine" in r.stdout and "toy_mean_conv" in r.stdout


@pytest.mark.parametrize("override,needle", [
    ("model.matcher.scal=2", "unknown key 'model.matcher.scal' for matcher 'toy_cosine' (did you mean scale?)"),
    ("model.matcher.scale=0", "'model.matcher.scale' must be > 0, got 0"),
    ("model.image_gnn.mixx=1", "unknown key 'model.image_gnn.mixx' for GNN layer 'toy_mean_conv' (did you mean mix?)"),
    ("model.image_gnn.num_layers=0", "'model.image_gnn.num_layers' must be >= 1"),
])
def test_a_wrong_key_of_a_plugin_reads_like_a_core_key(toy, override, needle, capsys, tmp_path):
    from graphmatch.cli import main

    plugin, cfg, _ = toy
    rc = main(["train", str(cfg), "--import", str(plugin), "--set", override, "--set", f"output_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--set {override}: {needle}" in err, err
    assert not (tmp_path / "r").exists()


def test_unknown_name_says_how_to_register_one(tmp_path, capsys):
    from graphmatch.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  matcher: {name: never_registered_matcher}\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: 'model.matcher.name': unknown matcher 'never_registered_matcher'" in err
    assert "--import FILE" in err


def test_import_errors_name_the_plugin(tmp_path):
    with pytest.raises(PluginError, match="plug-in file not found"):
        import_plugins([str(tmp_path / "missing.py")])
    with pytest.raises(PluginError, match="plug-in module 'no_such_module_xyz' not found"):
        import_plugins(["no_such_module_xyz"])
    bad = tmp_path / "bad_plugin.py"
    bad.write_text("import torch\n\n1 / 0\n")
    with pytest.raises(PluginError, match=r"bad_plugin.py:3: ZeroDivisionError"):
        import_plugins([str(bad)])
    assert import_plugins(["json"]) == ["json"]
