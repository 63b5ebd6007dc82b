"""End-to-end: training lowers the loss and raises rsum; resume is exact; checkpoints are safe."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from graphmatch.cli import main
from graphmatch.config import load_config
from graphmatch.engine.checkpoint import CheckpointError, load_checkpoint
from graphmatch.engine.train import train_experiment


# a model that draws random numbers while training (GRU dropout), so resume must restore the RNG
DROPOUT = ("model.text.num_layers=2", "model.text.dropout=0.5")


def make_cfg(root, out, *overrides):
    return load_config(None, [
        f"data.root={root}", f"output_dir={out}", "model.embed_dim=32", "model.text.word_dim=16",
        "train.batch_size=32", "train.lr=0.002", "train.epochs=3", "train.lr_decay_epochs=[100]",
        "train.device=cpu", "train.log_every=0", "eval.batch_size=64", *overrides,
    ])


def test_training_lowers_loss_and_raises_rsum(tiny_synthetic, tmp_path):
    from graphmatch.data.dataset import MatchingData
    from graphmatch.data.precomp import load_precomp
    from graphmatch.data.vocab import Vocabulary
    from graphmatch.engine.evaluator import evaluate
    from graphmatch.models import build_matcher

    cfg = make_cfg(tiny_synthetic, tmp_path / "run", "train.epochs=4")
    # rsum of the untrained model, same seed and construction as train_experiment
    torch.manual_seed(cfg.train.seed)
    train = load_precomp(tiny_synthetic, "train")
    vocab = Vocabulary.build(train.captions)
    untrained = build_matcher(cfg.model, img_dim=train.feature_dim, vocab=vocab)
    rsum0 = evaluate(untrained, MatchingData(load_precomp(tiny_synthetic, "dev"), vocab))["rsum"]

    summary = train_experiment(cfg, progress=False)
    hist = summary["history"]
    assert len(hist) == 4
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
    assert summary["best_rsum"] > rsum0 + 30, (rsum0, [h["rsum"] for h in hist])
    out = tmp_path / "run"
    for f in ("config.yaml", "vocab.json", "log.jsonl", "curves.png", "checkpoints/best/model.safetensors",
              "checkpoints/last/trainer.pt"):
        assert (out / f).exists(), f
    assert len((out / "log.jsonl").read_text().splitlines()) == 4
    model, cfg2, vocab2, state = load_checkpoint(out / "checkpoints" / "best")
    assert state["best_epoch"] == summary["best_epoch"] and len(vocab2) == len(vocab)


def test_resume_continues_exactly(tiny_synthetic, tmp_path):
    full = make_cfg(tiny_synthetic, tmp_path / "full", "train.epochs=3", "train.seed=1", *DROPOUT)
    train_experiment(full, progress=False)

    part = make_cfg(tiny_synthetic, tmp_path / "part", "train.epochs=2", "train.seed=1", *DROPOUT)
    train_experiment(part, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train_experiment(part, progress=False)
    more = make_cfg(tiny_synthetic, tmp_path / "part", "train.epochs=3", "train.seed=1", *DROPOUT)
    summary = train_experiment(more, resume=True, progress=False)
    assert summary["epochs_done"] == 3 and len(summary["history"]) == 3

    a = load_file(str(tmp_path / "full/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "part/checkpoints/last/model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha = json.loads((tmp_path / "full/checkpoints/last/state.json").read_text())["history"]
    hb = json.loads((tmp_path / "part/checkpoints/last/state.json").read_text())["history"]
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]


def test_resume_mid_epoch_is_exact(tiny_synthetic, tmp_path):
    """Stop inside an epoch (a step checkpoint), resume, and land on the uninterrupted weights."""
    ref = make_cfg(tiny_synthetic, tmp_path / "ref", "train.epochs=1", "train.seed=2", *DROPOUT)
    train_experiment(ref, progress=False)

    cut = make_cfg(tiny_synthetic, tmp_path / "cut", "train.epochs=1", "train.seed=2", "train.checkpoint_every=10",
                   *DROPOUT)

    class Stop(Exception):
        pass

    from graphmatch.engine import hooks

    orig = hooks.CheckpointHook.after_step

    def crash_after_save(self):
        orig(self)
        if self.trainer.global_step == 10:
            raise Stop

    hooks.CheckpointHook.after_step = crash_after_save
    try:
        with pytest.raises(Stop):
            train_experiment(cut, progress=False)
    finally:
        hooks.CheckpointHook.after_step = orig
    state = json.loads((tmp_path / "cut/checkpoints/last/state.json").read_text())
    assert state["global_step"] == 10
    train_experiment(cut, resume=True, progress=False)
    a = load_file(str(tmp_path / "ref/checkpoints/last/model.safetensors"))
    b = load_file(str(tmp_path / "cut/checkpoints/last/model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_other_model_or_batch_order(tiny_synthetic, tmp_path):
    cfg = make_cfg(tiny_synthetic, tmp_path / "r", "train.epochs=1")
    train_experiment(cfg, progress=False)
    other = make_cfg(tiny_synthetic, tmp_path / "r", "train.epochs=2", "model.embed_dim=16")
    with pytest.raises(CheckpointError, match="'model' section"):
        train_experiment(other, resume=True, progress=False)
    reseeded = make_cfg(tiny_synthetic, tmp_path / "r", "train.epochs=2", "train.seed=5")
    with pytest.raises(CheckpointError, match="train.seed"):
        train_experiment(reseeded, resume=True, progress=False)


def test_checkpoint_swap_interrupted_between_renames_is_recovered(trained_run, tmp_path):
    """A save that stopped after moving the old checkpoint aside leaves only <name>.old: it is
    still loadable, and the next save keeps it until the new one is in place."""
    from graphmatch.engine.checkpoint import save_checkpoint

    ck = tmp_path / "last"
    shutil.copytree(trained_run / "checkpoints" / "best", tmp_path / "last.old")
    model, cfg, vocab, state = load_checkpoint(ck)  # resolves to last.old
    save_checkpoint(ck, model, cfg, vocab, model_meta={"img_dim": 48}, state={"epoch": 9})
    assert ck.is_dir() and not (tmp_path / "last.old").exists()
    assert json.loads((ck / "state.json").read_text())["epoch"] == 9
    load_checkpoint(ck)


@pytest.fixture(scope="module")
def trained_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    train_experiment(make_cfg(tiny_synthetic, out, "train.epochs=1"), progress=False)
    return out


def test_cli_eval_writes_report(trained_run, tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["eval", str(trained_run), "--data", str(tiny_synthetic), "--split", "test", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "R@1" in text and "rsum" in text and "hard negatives" in text
    report = json.loads(out.read_text())
    assert report["n_images"] == 40 and report["n_captions"] == 120
    for k in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "t2i_meanr"):
        assert k in report["metrics"]
    rc = main(["eval", str(trained_run), "--data", str(tiny_synthetic), "--split", "test", "--fold5",
               "--out", str(tmp_path / "f5.json"), "--quiet"])
    assert rc == 0
    f5 = json.loads((tmp_path / "f5.json").read_text())
    assert f5["protocol"] == "5-fold 8" and len(f5["metrics"]["folds"]) == 5  # 40 test images


def test_corrupted_and_foreign_checkpoints(trained_run, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(trained_run / "checkpoints" / "best", bad)
    (bad / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors: corrupted"):
        load_checkpoint(bad)
    rc = main(["eval", str(bad), "--quiet"])
    assert rc == 2 and "corrupted" in capsys.readouterr().err

    foreign = tmp_path / "foreign"
    shutil.copytree(trained_run / "checkpoints" / "best", foreign)
    cfg = json.loads((foreign / "config.json").read_text())
    cfg["config"]["model"]["embed_dim"] = 8
    (foreign / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_checkpoint(foreign)
    (foreign / "config.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a graphmatch checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing")


def test_cli_train_reports_config_errors(tiny_synthetic, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  epoch: 3\n")
    rc = main(["train", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown key 'train.epoch'" in err and str(cfg) in err
    rc = main(["train", str(cfg).replace("c.yaml", "none.yaml")])
    assert rc == 2
    cfg.write_text("{}\n")
    capsys.readouterr()
    rc = main(["train", str(cfg), "--set", "model.matcher.name=scn", "--set", f"output_dir={tmp_path / 'o'}",
               "--set", f"data.root={tiny_synthetic}", "--set", "train.device=cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown matcher 'scn'" in err and "Did you mean 'scan'" in err


def test_caption_blocks_do_not_change_scores(trained_run, tiny_synthetic):
    from graphmatch.data.dataset import MatchingData
    from graphmatch.data.precomp import load_precomp
    from graphmatch.engine.evaluator import similarity_matrix

    model, cfg, vocab, _ = load_checkpoint(trained_run)
    data = MatchingData(load_precomp(tiny_synthetic, "test"), vocab)
    full, img_of = similarity_matrix(model, data, cap_block=10_000)
    blocked, img_of2 = similarity_matrix(model, data, cap_block=7, img_chunk=5, cap_chunk=3, batch_size=4)
    assert full.shape == (40, 120) and (img_of == img_of2).all()
    assert abs(full - blocked).max() < 1e-5
    # a subset of images keeps their captions, renumbered
    sub, img_of3 = similarity_matrix(model, data, image_indices=[3, 1])
    assert sub.shape == (2, 6) and sorted(set(img_of3.tolist())) == [0, 1]
    cols = [c for c in range(120) if data.img_of_caption[c] in (3, 1)]
    assert abs(sub - full[[3, 1]][:, cols]).max() < 1e-5


def test_cli_demo_synth_and_list(tmp_path, capsys):
    data = tmp_path / "synth"
    assert main(["synth", "--out", str(data), "--n-train", "120", "--n-dev", "20", "--n-test", "20",
                 "--regions", "6", "--feature-dim", "24"]) == 0
    assert json.loads((data / "meta.json").read_text())["synthetic"] is True
    rc = main(["demo", "--data", str(data), "--out", str(tmp_path / "demo"), "--quiet",
               "--set", "data.name=precomp", "--set", "model.embed_dim=16", "--set", "model.text.word_dim=8",
               "--set", "train.epochs=1", "--set", "train.batch_size=32", "--set", "train.device=cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "SYNTHETIC" in out and "rsum" in out and "checkpoint:" in out
    assert (tmp_path / "demo" / "checkpoints" / "best" / "eval_test.json").exists()
    assert main(["list"]) == 0
    listed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    assert "scan" in listed["matchers"].split(", ") and "torchvision" in listed["extractors"].split(", ")


def test_dev_split_with_other_feature_size_fails_before_the_first_step(tiny_synthetic, tmp_path, monkeypatch):
    import numpy as np

    from graphmatch.engine.trainer import Trainer

    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    dev = np.load(root / "dev_ims.npy")
    np.save(root / "dev_ims.npy", np.ascontiguousarray(dev[:, :, :40]))

    def no_step(self, batch):
        raise AssertionError("a training step ran before the splits were checked")

    monkeypatch.setattr(Trainer, "run_step", no_step)
    with pytest.raises(ValueError) as e:
        train_experiment(make_cfg(root, tmp_path / "run"), progress=False)
    msg = str(e.value)
    assert "split 'dev' (data.val_split) has 40-d features" in msg and "'train' (data.train_split) has 48-d" in msg
    assert str(root) in msg
    assert not (tmp_path / "run" / "checkpoints").exists()
