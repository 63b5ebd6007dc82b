"""SCAN trains on dependency text graphs and polar visual graphs read through the parse sidecar
path (the graphs reach the batch; SCAN ignores the edges), and a missing sidecar is an error naming
the file and the command that writes it, before any training step."""
import shutil

import pytest
import torch

from graphmatch.config import load_config
from graphmatch.data import build_dataset
from graphmatch.engine.train import train_experiment
from graphmatch.engine.trainer import Trainer


@pytest.fixture()
def parsed(parsed_synthetic):
    return parsed_synthetic


def _cfg(root, out, *sets):
    return load_config(None, [f"data.root={root}", f"output_dir={out}", "data.graph.visual_edges=polar",
                              "data.graph.text_graph=dependency", "model.embed_dim=32", "model.text.word_dim=16",
                              "train.epochs=1", "train.batch_size=32", "train.max_steps_per_epoch=3",
                              "train.device=cpu", "data.max_val_images=10", *sets])


def test_scan_trains_on_dependency_and_polar_graphs(parsed, tmp_path, monkeypatch):
    cfg = _cfg(parsed, tmp_path / "run")
    data = build_dataset(cfg.data).load_split("train", build_dataset(cfg.data).build_vocab(["a"]))
    batch = data.pair_batch(list(range(12)))
    assert batch.images.edge_attr.shape[1] == 2 and batch.images.edge_index.shape[1] > 0  # polar (rho, theta)
    assert batch.captions.edge_index.shape[1] > 0 and "edge_type" in batch.captions  # dependency arcs

    seen = []
    real_step = Trainer.run_step

    def spy_step(self, batch):  # every training batch carries the recipe's graphs
        seen.append((batch.images.edge_attr.shape[1], int(batch.captions.edge_type.numel() > 0)))
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "run_step", spy_step)
    summary = train_experiment(cfg, progress=False)
    assert seen == [(2, 1)] * 3 and summary["best_rsum"] is not None
    assert torch.isfinite(torch.tensor(summary["best_rsum"]))


def test_a_missing_sidecar_names_the_file_and_the_command(tiny_synthetic, tmp_path):
    cfg = _cfg(tiny_synthetic, tmp_path / "run")
    with pytest.raises(ValueError) as e:
        train_experiment(cfg, progress=False)
    msg = str(e.value)
    assert str(tiny_synthetic / "train_graphs.jsonl") in msg
    assert f"graphmatch parse --precomp {tiny_synthetic}" in msg
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_stale_sidecar_is_named(parsed, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(parsed, root)
    caps = root / "dev_caps.txt"
    lines = caps.read_text().splitlines()
    caps.write_text("\n".join(["a red cat on a mat"] + lines[1:]) + "\n")  # edited after parsing
    with pytest.raises(ValueError, match="dev_graphs.jsonl") as e:
        train_experiment(_cfg(root, tmp_path / "run"), progress=False)
    assert "stale" in str(e.value) or "changed" in str(e.value)
