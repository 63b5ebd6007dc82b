"""What the command line prints: plain progress lines off a terminal, ``--quiet``, where a run's
files went, evaluation argument checks, and no heavy import before the arguments are read."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from graphmatch.cli import main
from graphmatch.utils.progress import INTERVAL_ENV, PlainProgress, progress, write

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "graphmatch" / "configs" / "scan_synthetic.yaml"


def train_args(root: Path, out: Path, epochs: int = 2) -> list:
    """A tiny SCAN run on the tiny SYNTHETIC set (240 training images, batches of 32)."""
    return ["train", str(CONFIG), "--set", f"data.root={root}", "--set", "data.synthetic=false",
            "--set", f"output_dir={out}", "--set", "model.embed_dim=32", "--set", "model.text.word_dim=16",
            "--set", "train.batch_size=32", "--set", f"train.epochs={epochs}", "--set", "train.device=cpu",
            "--set", "train.log_every=0", "--set", "eval.batch_size=64"]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------
# the helper
# ------------------------------------------------------------------------------------------

def test_plain_progress_writes_sparse_newline_lines():
    buf = io.StringIO()
    bar = progress(total=50, desc="work", unit="img", file=buf, interval=0)
    assert isinstance(bar, PlainProgress)
    with bar:
        for _ in range(50):
            bar.update(1)
            bar.set_postfix(loss="0.125")
    text = buf.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    assert len(lines) == 10  # one per 10 % step, none repeated at close
    assert lines[0].startswith("work: 5/50 (10%)") and lines[-1].startswith("work: 50/50 (100%)")
    assert all("img/s" in ln and "loss=0.125" in ln for ln in lines)

    quiet = io.StringIO()  # within the interval: nothing at all
    for _ in PlainProgress(range(100), desc="fast", file=quiet, interval=3600):
        pass
    assert quiet.getvalue() == ""
    off = io.StringIO()
    with progress(total=5, file=off, disable=True, interval=0) as bar:
        bar.update(5)
    assert off.getvalue() == ""


def test_progress_is_a_tqdm_bar_on_a_terminal():
    from tqdm import tqdm

    tty = FakeTTY()
    with progress(total=3, desc="tty", file=tty) as bar:
        assert isinstance(bar, tqdm)
        bar.update(3)
    assert "\r" in tty.getvalue() or "tty" in tty.getvalue()
    out = io.StringIO()
    write("a line", file=out)
    assert out.getvalue() == "a line\n"


# ------------------------------------------------------------------------------------------
# train piped to a file, --quiet, where the run's files are
# ------------------------------------------------------------------------------------------

def test_train_piped_to_a_file_gives_plain_progress_lines(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    env = dict(os.environ, **{INTERVAL_ENV: "0"}, PYTHONPATH=str(REPO))
    with open(log, "wb") as f:  # stdout and stderr into one file: not a terminal
        rc = subprocess.run([sys.executable, "-m", "graphmatch.cli", *train_args(tiny_synthetic, out)],
                            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=tmp_path, timeout=300).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "\r" not in text
    lines = text.splitlines()
    prog = [ln for ln in lines if re.match(r"epoch [12]/2: \d+/\d+ \(\d+%\)", ln)]
    assert len(prog) >= 6, text  # a few lines per epoch
    assert all("it/s" in ln or "s/it" in ln for ln in prog)
    results = [i for i, ln in enumerate(lines) if re.match(r"epoch +[12]  loss ", ln)]
    assert len(results) == 2
    # in order: the first epoch's progress lines come before its result line
    assert lines.index(prog[0]) < results[0]
    assert f"training log: {out / 'log.jsonl'}; curves: {out / 'curves.png'}" in lines


@pytest.fixture(scope="module")
def quiet_run(tiny_synthetic, tmp_path_factory):
    """One quiet training run (1 epoch) in this process, with what it printed."""
    out = tmp_path_factory.mktemp("quiet") / "run"
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main([*train_args(tiny_synthetic, out, epochs=1), "--quiet"])
    return out, rc, so.getvalue(), se.getvalue()


def test_quiet_train_hides_bars_but_keeps_epoch_lines_and_says_where_the_log_is(quiet_run):
    out, rc, stdout, stderr = quiet_run
    assert rc == 0, stderr
    assert re.search(r"^epoch +1  loss \d", stdout, re.M), stdout
    assert not re.search(r"epoch 1/1: \d+/", stdout + stderr)  # no progress
    assert f"training log: {out / 'log.jsonl'}; curves: {out / 'curves.png'}" in stdout.splitlines()
    assert (out / "log.jsonl").is_file() and (out / "curves.png").is_file()


# ------------------------------------------------------------------------------------------
# eval argument checks
# ------------------------------------------------------------------------------------------

def test_eval_fold5_names_the_fold_size_and_warns(quiet_run, tiny_synthetic, tmp_path, capsys):
    run = quiet_run[0]
    rc = main(["eval", str(run), "--data", str(tiny_synthetic), "--split", "test", "--fold5", "--quiet",
               "--out", str(tmp_path / "f5.json")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    report = json.loads((tmp_path / "f5.json").read_text())
    assert report["protocol"] == "5-fold 8" and report["metrics"]["fold_size"] == 8  # 40 test images
    assert "protocol: 5-fold 8" in cap.out and "1K" not in cap.out
    assert "warning: --fold5: 40 images give 5 folds of 8 images, not the 1000" in cap.err
    assert "not comparable" in report["warning"]

    rc = main(["eval", str(run), "--data", str(tiny_synthetic), "--split", "test", "--fold5", "--quiet",
               "--max-images", "12", "--out", str(tmp_path / "f12.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "--fold5 on split 'test'" in err and "12 images are not divisible into 5" in err
    assert not (tmp_path / "f12.json").exists()


def test_eval_max_images_zero_is_an_argument_error(quiet_run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(quiet_run[0]), "--max-images", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--max-images: must be >= 1, got 0" in err and "concatenate" not in err
    from graphmatch.engine.evaluation import evaluate_checkpoint

    with pytest.raises(ValueError, match="max-images must be >= 1"):
        evaluate_checkpoint(str(quiet_run[0]), None, "test", max_images=0)


# ------------------------------------------------------------------------------------------
# nothing heavy before the arguments are read
# ------------------------------------------------------------------------------------------

PROBE = r"""
import contextlib, io, json, sys
import graphmatch.cli as cli
from graphmatch.cli import build_parser, main

sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
runs = [["--help"], [], ["train"], ["eval", "x", "--max-images", "0"], ["no-such-command"]]
runs += [[name, "--help"] for name in sub.choices if name != "extract"]
codes = []
for argv in runs:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as e:
            codes.append(e.code)
# the sub-commands of parsers / detectors plug in through entry points: their front-end modules are
# imported to build the parser, and nothing behind them
heavy = sorted(m for m in ("torch", "torch_geometric", "spacy", "numpy", "h5py", "PIL", "torchvision",
                           "parsers.parser", "parsers.job", "parsers.rules", "detectors.extract",
                           "detectors.store", "detectors.extractor") if m in sys.modules)
print(json.dumps({"codes": codes, "heavy": heavy, "commands": sorted(sub.choices)}))
"""


def test_help_and_argument_errors_import_nothing_heavy():
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["heavy"] == [], out
    assert {"train", "eval", "parse", "eval-parser", "extract"} <= set(out["commands"])
    assert all(c in (0, 2) for c in out["codes"]) and out["codes"][0] == 0 and out["codes"][2] == 2
    from graphmatch.config import ConfigError
    from graphmatch.engine.checkpoint import CheckpointError

    # main catches these through their builtin bases, without importing them first
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, RuntimeError)
