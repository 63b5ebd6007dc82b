"""Ensemble evaluation (``graphmatch eval CKPT CKPT ...``): the weighted mean of the members'
similarity matrices, checked against the members' own matrices."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from graphmatch.cli import main
from graphmatch.engine.checkpoint import load_checkpoint
from graphmatch.engine.evaluation import evaluate_checkpoint, evaluate_ensemble
from graphmatch.engine.evaluator import similarity_matrix
from graphmatch.metrics import retrieval_metrics
from graphmatch.data import build_dataset

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "graphmatch" / "configs" / "scan_synthetic.yaml"


def _train(root: Path, out: Path, seed: int) -> Path:
    # data.name=precomp: read the session's tiny set as it is (the synthetic data set would regenerate it
    # with the config's sizes)
    args = ["train", str(CONFIG), "--set", f"data.root={root}", "--set", "data.name=precomp", "--set", f"output_dir={out}",
            "--set", "model.embed_dim=16", "--set", "model.text.word_dim=8", "--set", "train.batch_size=32",
            "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=3", "--set", "train.device=cpu",
            "--set", "train.log_every=0", "--set", f"train.seed={seed}", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def two_runs(tiny_synthetic, tmp_path_factory):
    base = tmp_path_factory.mktemp("ens")
    return _train(tiny_synthetic, base / "a", 1), _train(tiny_synthetic, base / "b", 2)


def _sims(run: Path, root: Path):
    model, cfg, vocab, _ = load_checkpoint(str(run))
    cfg.data.root = str(root)
    md = build_dataset(cfg.data).load_split("test", vocab)
    return similarity_matrix(model, md)


def test_ensemble_is_the_weighted_mean_of_the_members(two_runs, tiny_synthetic, tmp_path):
    a, b = two_runs
    sa, ioc = _sims(a, tiny_synthetic)
    sb, _ = _sims(b, tiny_synthetic)
    assert not np.allclose(sa, sb)  # two different models
    rep = evaluate_ensemble([str(a), str(b)], str(tiny_synthetic), "test", weights=[0.25, 0.75],
                            out=str(tmp_path / "e.json"), progress=False)
    want = retrieval_metrics((0.25 * sa.astype(np.float64) + 0.75 * sb).astype(np.float32), ioc)
    for k in ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r10", "rsum"):
        assert rep["metrics"][k] == pytest.approx(want[k]), k
    assert json.loads((tmp_path / "e.json").read_text())["weights"] == [0.25, 0.75]
    assert "hardneg_acc" in rep["metrics"]


def test_an_ensemble_with_one_weight_on_a_member_is_that_member(two_runs, tiny_synthetic, tmp_path):
    a, b = two_runs
    single = evaluate_checkpoint(str(a), str(tiny_synthetic), "test", out=str(tmp_path / "s.json"), progress=False)
    ens = evaluate_ensemble([str(a), str(b)], str(tiny_synthetic), "test", weights=[1.0, 0.0],
                            out=str(tmp_path / "e.json"), progress=False)
    for k, v in single["metrics"].items():
        assert ens["metrics"][k] == pytest.approx(v), k


def test_cli_runs_an_ensemble_and_checks_its_arguments(two_runs, tiny_synthetic, tmp_path, capsys):
    a, b = two_runs
    rc = main(["eval", str(a), str(b), "--data", str(tiny_synthetic), "--quiet", "--out", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "ensemble of 2 checkpoints (weights 0.5, 0.5)" in out
    assert main(["eval", str(a), "--weights", "1", "--quiet"]) == 2
    assert "--weights is for an ensemble" in capsys.readouterr().err
    assert main(["eval", str(a), str(b), "--weights", "1,2,3", "--quiet"]) == 2
    assert "3 ensemble weights for 2 checkpoints" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least two checkpoints"):
        evaluate_ensemble([str(a)])
