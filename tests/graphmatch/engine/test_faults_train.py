"""Faults of training, checkpoints and evaluation: kill -9 at exact points (through the test-only
``GRAPHMATCH_FAULT`` hook of :mod:`graphmatch.utils.faults`), a full disk while saving a checkpoint,
a swapped vocabulary, and the files a checkpoint replacement must keep."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graphmatch.cli import main
from graphmatch.config import load_config
from graphmatch.engine import checkpoint as ckpt
from graphmatch.engine.checkpoint import CheckpointError, CheckpointWriteError, load_checkpoint, save_checkpoint
from graphmatch.engine.train import train_experiment

REPO = Path(__file__).resolve().parents[3]
# a model that draws random numbers (GRU dropout) and batches built in a worker process
BASE = ["model.embed_dim=32", "model.text.word_dim=16", "model.text.num_layers=2", "model.text.dropout=0.5",
        "train.batch_size=32", "train.lr=0.002", "train.epochs=2", "train.lr_decay_epochs=[100]", "train.seed=3",
        "train.device=cpu", "train.log_every=0", "eval.batch_size=64", "train.checkpoint_every=10",
        "train.num_workers=1"]


def overrides(root, out, *extra):
    return [f"data.root={root}", f"output_dir={out}", *BASE, *extra]


def cli_args(cfg_file, root, out, *extra):
    args = [str(cfg_file), "--quiet"]
    for o in overrides(root, out, *extra):
        args += ["--set", o]
    return args


@pytest.fixture(scope="module")
def empty_cfg(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "empty.yaml"
    p.write_text("{}\n")
    return p


@pytest.fixture(scope="module")
def reference(tiny_synthetic, tmp_path_factory):
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train_experiment(load_config(None, overrides(tiny_synthetic, out)), progress=False)
    return out


def live_in_group(pgid):
    """Processes of process group ``pgid`` that are alive (zombies count as gone)."""
    live = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(d.name))
    return live


def run_killed(args, fault, timeout=300):
    """Run ``python -m graphmatch.cli *args`` with ``GRAPHMATCH_FAULT=fault`` in its own process group;
    assert it died of SIGKILL at the fault and that no process of its group (workers) outlives it."""
    env = {**os.environ, "GRAPHMATCH_FAULT": fault, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "graphmatch.cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, out.decode(errors="replace")[-3000:])
        deadline = time.monotonic() + 60  # DataLoader workers notice a dead parent within seconds
        while live_in_group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not live_in_group(proc.pid), "processes left behind by the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in live_in_group(proc.pid):
            os.kill(pid, signal.SIGKILL)


def log_epochs(run):
    return [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]


def assert_same_weights(a_run, b_run):
    for name in ("last", "best"):
        a = load_file(str(a_run / "checkpoints" / name / "model.safetensors"))
        b = load_file(str(b_run / "checkpoints" / name / "model.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    ha = json.loads((a_run / "checkpoints/last/state.json").read_text())["history"]
    hb = json.loads((b_run / "checkpoints/last/state.json").read_text())["history"]
    assert [(h["epoch"], h["loss"], h["rsum"]) for h in ha] == [(h["epoch"], h["loss"], h["rsum"]) for h in hb]


def test_kill_mid_epoch_then_resume_is_exact(reference, tiny_synthetic, empty_cfg, tmp_path, capsys):
    run = tmp_path / "run"
    # killed in epoch 1 at step 15; the step checkpoint of step 10 is the one to continue from
    run_killed(["train", *cli_args(empty_cfg, tiny_synthetic, run)], "after_step:step=15")
    assert json.loads((run / "checkpoints/last/state.json").read_text())["global_step"] == 10
    assert main(["train", *cli_args(empty_cfg, tiny_synthetic, run), "--resume"]) == 0
    assert_same_weights(reference, run)
    assert log_epochs(run) == [1, 2]


def test_kill_between_validation_and_checkpoint_then_resume(reference, tiny_synthetic, empty_cfg, tmp_path):
    run = tmp_path / "run"
    # epoch 2 is validated and logged, its best checkpoint is complete in its temporary folder: kill
    run_killed(["train", *cli_args(empty_cfg, tiny_synthetic, run)], "checkpoint_written:name=best,epoch=2")
    assert log_epochs(run) == [1, 2]
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".best.")]
    assert json.loads((run / "checkpoints/last/state.json").read_text())["epoch"] == 1
    assert main(["train", *cli_args(empty_cfg, tiny_synthetic, run), "--resume"]) == 0
    assert log_epochs(run) == [1, 2]  # epoch 2 redone, logged once
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"]
    assert_same_weights(reference, run)


def test_kill_eval_while_writing_report_then_rerun(reference, tmp_path):
    ref_report = tmp_path / "ref.json"
    assert main(["eval", str(reference), "--split", "test", "--out", str(ref_report), "--quiet"]) == 0
    report = reference / "checkpoints" / "best" / "eval_test.json"
    run_killed(["eval", reference, "--split", "test", "--quiet"], "before_replace:file=eval_test.json")
    assert not report.exists()
    assert main(["eval", str(reference), "--split", "test", "--quiet"]) == 0
    a, b = json.loads(ref_report.read_text()), json.loads(report.read_text())
    for r in (a, b):
        r.pop("seconds")
    assert a == b


# ----------------------------------------------------------------------------- disk full

def test_disk_full_while_saving_checkpoint_is_one_clear_error(tiny_synthetic, empty_cfg, tmp_path, monkeypatch,
                                                             capsys):
    run = tmp_path / "run"
    args = cli_args(empty_cfg, tiny_synthetic, run, "train.checkpoint_every=0", "train.num_workers=0",
                    "train.max_steps_per_epoch=4")
    real = ckpt.write_bytes
    calls = {"last": 0}

    def write(path, data, **kw):
        if path.parent.name.startswith(".last.") and path.name == "model.safetensors":
            calls["last"] += 1
            if calls["last"] == 2:  # the end-of-epoch-2 checkpoint
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data, **kw)

    monkeypatch.setattr(ckpt, "write_bytes", write)
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip()
    last = run / "checkpoints" / "last"
    assert err.count("\n") == 0 and "no space left on device" in err and str(last) in err, err
    assert "previous checkpoint" in err and "unchanged" in err
    # the epoch-1 checkpoint is intact and nothing temporary is left
    assert json.loads((last / "state.json").read_text())["epoch"] == 1
    load_checkpoint(last)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"]
    monkeypatch.setattr(ckpt, "write_bytes", real)
    assert main(["train", *args, "--resume"]) == 0
    assert json.loads((last / "state.json").read_text())["epoch"] == 2 and log_epochs(run) == [1, 2]


@pytest.fixture(scope="module")
def small_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    train_experiment(load_config(None, overrides(tiny_synthetic, out, "train.epochs=1", "train.num_workers=0",
                                                 "train.max_steps_per_epoch=3")), progress=False)
    return out


def test_disk_full_on_a_real_small_filesystem(small_run, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.decode(errors='replace').strip()}")
    try:
        ck = mnt / "ck"
        shutil.copytree(small_run / "checkpoints" / "best", ck)
        before = {p.name: p.read_bytes() for p in ck.iterdir()}
        with open(mnt / "filler", "wb") as f:  # fill the file system up
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as e:
                assert e.errno == errno.ENOSPC
        model, cfg, vocab, state = load_checkpoint(ck)
        with pytest.raises(CheckpointWriteError, match="no space left on device") as e:
            save_checkpoint(ck, model, cfg, vocab, model_meta={"img_dim": 48}, state={"epoch": 7})
        assert e.value.errno == errno.ENOSPC and str(ck) in str(e.value)
        assert sorted(p.name for p in mnt.iterdir()) == ["ck", "filler"]  # no temporary folder
        assert {p.name: p.read_bytes() for p in ck.iterdir()} == before
        (mnt / "filler").unlink()
        save_checkpoint(ck, model, cfg, vocab, model_meta={"img_dim": 48}, state={"epoch": 7})
        assert json.loads((ck / "state.json").read_text())["epoch"] == 7
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ----------------------------------------------------------------------------- vocabulary

def test_swapped_vocabulary_is_refused(small_run, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(small_run / "checkpoints" / "best", ck)
    vocab = json.loads((ck / "vocab.json").read_text())
    words = vocab["words"]
    words[2], words[3] = words[3], words[2]  # same size, two words swapped
    (ck / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="vocab.json: not the vocabulary this checkpoint was trained with"):
        load_checkpoint(ck)
    # a checkpoint written before the hash existed loads unchecked
    meta = json.loads((ck / "config.json").read_text())
    del meta["vocab_sha256"]
    (ck / "config.json").write_text(json.dumps(meta))
    load_checkpoint(ck)


def test_resume_refuses_swapped_vocabulary(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    f = run / "checkpoints" / "last" / "vocab.json"
    vocab = json.loads(f.read_text())
    vocab["words"][-1], vocab["words"][-2] = vocab["words"][-2], vocab["words"][-1]
    f.write_text(json.dumps(vocab))
    cfg = load_config(run / "config.yaml", ["train.epochs=2", f"output_dir={run}"])
    with pytest.raises(CheckpointError, match=str(f)):
        train_experiment(cfg, resume=True, progress=False)


# ----------------------------------------------------------------------------- small data losses

def test_reports_in_best_survive_a_new_best(tiny_synthetic, empty_cfg, tmp_path, caplog):
    run = tmp_path / "run"
    args = cli_args(empty_cfg, tiny_synthetic, run, "train.epochs=1", "train.num_workers=0", "train.checkpoint_every=0")
    assert main(["train", *args]) == 0
    best = run / "checkpoints" / "best"
    assert main(["eval", str(run), "--split", "test", "--quiet"]) == 0
    report = (best / "eval_test.json").read_bytes()
    (best / "notes.txt").write_text("mine")
    assert main(["train", *args, "--set", "train.epochs=2", "--resume"]) == 0
    assert json.loads((best / "state.json").read_text())["best_epoch"] == 2  # a new best was written
    kept = run / "checkpoints" / "best.files" / "epoch-1"
    assert (kept / "eval_test.json").read_bytes() == report and (kept / "notes.txt").read_text() == "mine"
    assert json.loads(report)["epoch"] == 1  # the report belongs to the checkpoint of epoch 1
    assert not (best / "eval_test.json").exists()
    assert "kept eval_test.json, notes.txt" in caplog.text


def test_fresh_start_after_a_kill_before_the_first_checkpoint(tiny_synthetic, tmp_path):
    """A run killed after its first validation record but before any checkpoint is started again
    (there is nothing to resume): its old log record and temporary folders go."""
    run = tmp_path / "run"
    (run / "checkpoints" / ".best.tmp-abcd1234").mkdir(parents=True)
    (run / "checkpoints" / ".last.x1y2z3w4").mkdir()  # name of an older writer version
    (run / "log.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "lo')
    cfg = load_config(None, overrides(tiny_synthetic, run, "train.epochs=1", "train.num_workers=0",
                                      "train.max_steps_per_epoch=2"))
    train_experiment(cfg, progress=False)
    assert log_epochs(run) == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "last"]


def test_atomic_write_on_a_full_disk_names_the_file(tmp_path):
    from graphmatch.utils.atomic import atomic_path

    target = tmp_path / "config.yaml"
    target.write_text("old")
    with pytest.raises(OSError) as e:
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert e.value.errno == errno.ENOSPC and f"cannot write {target}: no space left on device" in str(e.value)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
