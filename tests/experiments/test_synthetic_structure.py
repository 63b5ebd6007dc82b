"""The structure test on the SYNTHETIC scenes (experiments/diagnostics/synthetic_structure.py)."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.diagnostics import synthetic_structure as ss  # noqa: E402

# the parameters of the session's tiny_synthetic folder (tests/conftest.py): the data is reused, not regenerated
TINY_DATA = ["data.n_train=240", "data.n_dev=40", "data.n_test=40", "data.captions_per_image=3",
             "data.n_regions=8", "data.feature_dim=48", "data.seed=0"]
TINY_MODEL = ["model.embed_dim=32", "model.text.word_dim=16"]


def _args(root, *extra):
    sets = [a for kv in TINY_DATA + TINY_MODEL for a in ("--set", kv)]
    return ["--root", str(root), "--max-steps", "3", "--epochs", "1", "--batch-size", "32", "--no-progress",
            *sets, *extra]


def test_report_shape_and_hard_negative_counts(tiny_synthetic, tmp_path):
    out = tmp_path / "r.json"
    assert ss.main(_args(tiny_synthetic, "--matcher", "scan", "--out", str(out))) == 0
    rep = json.loads(out.read_text())
    assert set(rep) == {"matcher", "n_eval", "retrieval", "swaps"} and rep["n_eval"] == 40
    assert set(rep["retrieval"]) == {"g2c_r1", "g2c_r5", "g2c_r10", "c2g_r1", "c2g_r5", "c2g_r10", "rsum"}
    assert list(rep["swaps"]) == list(ss.HARD_NEGATIVE_KINDS)
    negs = [json.loads(line) for line in (tiny_synthetic / "dev_hardneg.jsonl").read_text().splitlines()]
    for kind, s in rep["swaps"].items():
        assert s["n"] == sum(r["kind"] == kind for r in negs)
        assert s["graph"] is None and s["group"] is None and 0.0 <= s["text"] <= 100.0


def test_table_with_a_graph_preset_writes_parse_sidecars(tiny_synthetic, tmp_path):
    import shutil

    root = tmp_path / "synthetic"
    shutil.copytree(tiny_synthetic, root)  # the sidecars are written into the data folder
    assert ss.main(_args(root, "--table", "scan_gnn", "--out-dir", str(tmp_path / "t"),
                         "--parse-cache", str(tmp_path / "cache"))) == 0
    assert (root / "dev_graphs.jsonl").is_file() and (root / "train_graphs.jsonl").is_file()
    table = (tmp_path / "t" / "table.md").read_text()
    assert "| scan_gnn |" in table and "not run" not in table


def test_bad_hard_negative_record_names_line(tmp_path):
    f = tmp_path / "dev_hardneg.jsonl"
    f.write_text('{"image": 0, "caption": "a", "positive": "b", "kind": "relation_flip"}\n'
                 '{"image": 9, "caption": "a", "positive": "b", "kind": "relation_flip"}\n')
    with pytest.raises(ValueError, match="dev_hardneg.jsonl:2: image 9 is outside 0..4"):
        ss.read_hard_negatives(f, 5)
