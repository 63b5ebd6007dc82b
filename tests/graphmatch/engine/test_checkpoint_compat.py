"""Runs and checkpoints written before component sections (config version 1) load, evaluate to the
numbers that version computed, and resume."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from graphmatch.config import load_config
from graphmatch.engine.checkpoint import load_checkpoint
from graphmatch.engine.evaluation import evaluate_checkpoint
from graphmatch.engine.evaluator import similarity_matrix
from graphmatch.engine.train import load_split, train_experiment

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "v1_run"


@pytest.fixture()
def v1(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "v1")
    return tmp_path / "v1"


def test_v1_checkpoint_config_is_migrated():
    _, cfg, _, _ = load_checkpoint(FIXTURE / "run")
    assert cfg.train.loss.name == "contrastive"
    assert cfg.train.loss.margin == pytest.approx(0.2) and cfg.train.loss.warmup_epochs == 1
    assert cfg.model.matcher.name == "scan" and cfg.model.matcher.direction == "both"
    assert cfg.to_dict()["version"] == 2 and "margin" not in cfg.to_dict()["train"]


def test_v1_checkpoint_scores_as_before(v1):
    model, cfg, vocab, _ = load_checkpoint(v1 / "run")
    cfg.data.root = str(v1 / "data")
    sims, _ = similarity_matrix(model, load_split(cfg, "test", vocab), batch_size=16)
    np.testing.assert_allclose(sims, np.load(v1 / "run" / "sims_test.npy"), rtol=0, atol=1e-6)


def test_v1_run_evaluates_to_the_same_report(v1):
    before = json.loads((v1 / "run" / "checkpoints" / "best" / "eval_test.json").read_text())
    report = evaluate_checkpoint(str(v1 / "run"), str(v1 / "data"), "test", out=str(v1 / "eval.json"),
                                 device="cpu", progress=False)
    for k, v in before["metrics"].items():
        assert report["metrics"][k] == pytest.approx(v, abs=1e-9), k


def _point_checkpoints_at(run: Path, data: Path) -> None:
    """The data folder moved with the run: record its new place, as a user would after a move."""
    for f in run.glob("checkpoints/*/config.json"):
        meta = json.loads(f.read_text())
        meta["config"]["data"]["root"] = str(data)
        meta["config"]["output_dir"] = str(run)
        f.write_text(json.dumps(meta))


def test_v1_run_folder_resumes(v1):
    _point_checkpoints_at(v1 / "run", v1 / "data")
    cfg = load_config(v1 / "run" / "config.yaml", [f"output_dir={v1 / 'run'}", f"data.root={v1 / 'data'}",
                                                   "train.epochs=3"])
    assert cfg.train.loss.margin == pytest.approx(0.2)
    summary = train_experiment(cfg, resume=True, progress=False)
    assert summary["epochs_done"] == 3
    epochs = [json.loads(line)["epoch"] for line in (v1 / "run" / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
