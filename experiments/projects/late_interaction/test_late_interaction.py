"""The late-interaction plug-in: its maths on a hand computation, and a short training + evaluation
through the command line with ``imports:`` in its config (nothing in the package names it)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from graphmatch.models import MATCHERS
from graphmatch.plugins import import_plugins
from graphmatch.structures import NodeEmb

HERE = Path(__file__).resolve().parent
import_plugins([str(HERE / "late_interaction.py")])  # as `imports:` and --import do
LateInteraction = MATCHERS.get("late_interaction")


def _emb(rows, n):
    x = torch.zeros(len(rows), n, 2)
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    for b, r in enumerate(rows):
        x[b, : len(r)] = torch.tensor(r, dtype=torch.float)
        mask[b, : len(r)] = True
    return NodeEmb(x, mask)


def test_score_is_the_mean_best_cosine():
    m = LateInteraction(image_encoder=torch.nn.Identity(), text_encoder=torch.nn.Identity())
    img = _emb([[[1, 0], [0, 1]], [[1, 1]]], 3)
    cap = _emb([[[1, 0]], [[0, 2], [3, 0]]], 2)
    s = m.score(img, cap)
    c = 2 ** -0.5
    expected = torch.tensor([[1.0, 1.0], [c, c]])
    torch.testing.assert_close(s, expected)
    m.agg = "sum"
    torch.testing.assert_close(m.score(img, cap)[:, 1], 2 * expected[:, 1])


def test_trains_and_evaluates_through_the_cli(tmp_path):
    data = tmp_path / "data"
    sets = [f"output_dir={tmp_path / 'run'}", f"data.root={data}", "data.n_train=60", "data.n_dev=20",
            "data.n_test=20", "train.epochs=1", "train.batch_size=32", "model.embed_dim=32", "model.text.word_dim=16"]
    cmd = [sys.executable, "-m", "graphmatch.cli", "train", str(HERE / "config.yaml"), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "run" / "checkpoints" / "best" / "config.json").read_text())
    assert saved["config"]["model"]["matcher"] == {"name": "late_interaction", "temperature": 0.05, "agg": "mean"}
    assert saved["config"]["imports"] == [str(HERE / "late_interaction.py")]
    r = subprocess.run([sys.executable, "-m", "graphmatch.cli", "eval", str(tmp_path / "run"), "--split", "test",
                        "--json", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["n_images"] == 20 and 0 <= report["metrics"]["rsum"] <= 600


@pytest.mark.parametrize("override,needle", [
    ("model.matcher.temprature=0.1", "unknown key 'model.matcher.temprature' for matcher 'late_interaction' "
                                     "(did you mean temperature?)"),
    ("model.matcher.agg=max", "'model.matcher.agg' must be one of mean, sum, got 'max'"),
])
def test_its_keys_are_checked_like_core_keys(override, needle):
    from graphmatch.config import ConfigError, load_config

    with pytest.raises(ConfigError) as e:
        load_config(HERE / "config.yaml", [override])
    assert str(e.value).startswith(f"--set {override}: {needle}"), str(e.value)
