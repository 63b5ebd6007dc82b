"""The mean_conv plug-in layer: its update on a hand-written 4-node graph, and a short training +
evaluation through the command line with ``imports:`` in its config."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphmatch.nn.conv import GNN_LAYERS, build_gnn_layer
from graphmatch.plugins import import_plugins

HERE = Path(__file__).resolve().parent
import_plugins([str(HERE / "mean_conv.py")])  # as `imports:` and --import do


def test_update_on_a_four_node_graph():
    layer = build_gnn_layer("mean_conv", in_channels=3, out_channels=2, mix=0.5)
    assert isinstance(layer, GNN_LAYERS.get("mean_conv")) and repr(layer) == "MeanConv(3, 2, mix=0.5)"
    x = torch.randn(4, 3)
    edge_index = torch.tensor([[0, 1, 2, 1], [1, 0, 1, 2]])  # node 3 is isolated
    h = layer.lin(x)
    expected = h.clone()
    expected[0] += 0.5 * h[1]
    expected[1] += 0.5 * (h[0] + h[2]) / 2
    expected[2] += 0.5 * h[1]
    torch.testing.assert_close(layer(x, edge_index), expected)


def test_trains_and_evaluates_through_the_cli(tmp_path):
    sets = [f"output_dir={tmp_path / 'run'}", f"data.root={tmp_path / 'data'}", "data.n_train=60", "data.n_dev=20",
            "data.n_test=20", "train.epochs=1", "train.batch_size=32", "model.embed_dim=32", "model.text.word_dim=16"]
    cmd = [sys.executable, "-m", "graphmatch.cli", "train", str(HERE / "config.yaml"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "run" / "checkpoints" / "best" / "config.json").read_text())["config"]
    assert saved["model"]["image_gnn"]["name"] == "mean_conv" and saved["model"]["image_gnn"]["mix"] == 0.25
    r = subprocess.run([sys.executable, "-m", "graphmatch.cli", "eval", str(tmp_path / "run"), "--split", "test",
                        "--json", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_images"] == 20


def test_its_key_is_checked_like_core_keys():
    from graphmatch.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"unknown key 'model.image_gnn.mixx' for GNN layer 'mean_conv' "
                                          r"\(did you mean mix\?\)"):
        load_config(HERE / "config.yaml", ["model.image_gnn.mixx=1"])
