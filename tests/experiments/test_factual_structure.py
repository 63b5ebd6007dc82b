"""The FACTUAL structure test end to end on the shipped fixtures, and its scores."""
import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.diagnostics import factual_structure as fs  # noqa: E402
from experiments.diagnostics import structure as st  # noqa: E402
from experiments.diagnostics.swaps import swap_cases  # noqa: E402
from graphmatch.data.annotated import (  # noqa: E402
    AnnotatedRelationEdges, NameEmbedder, annotated_visual_graph, build_predicate_vocab,
)
from graphmatch.data.vocab import Vocabulary  # noqa: E402

TRAIN = REPO / "tests" / "fixtures" / "factual_small.jsonl"
EVAL = REPO / "tests" / "fixtures" / "factual_dev.jsonl"
RETRIEVAL_KEYS = {"g2c_r1", "g2c_r5", "g2c_r10", "c2g_r1", "c2g_r5", "c2g_r10", "rsum"}
TINY = ["model.embed_dim=32", "model.text.word_dim=16"]


def test_winoground_scores_count_ties_as_wrong():
    s = torch.tensor([
        [[1.0, 0.0], [0.0, 1.0]],   # all right
        [[1.0, 0.0], [1.0, 0.0]],   # G' = G: text right, graph tie, group wrong
        [[1.0, 1.0], [0.0, 1.0]],   # caption tie: text wrong, graph right, group wrong
        [[0.0, 1.0], [1.0, 0.0]],   # all wrong
    ])
    assert st.winoground(s) == {"n": 4, "text": 50.0, "graph": 50.0, "group": 25.0}
    nearly = torch.tensor([[[1.0, 1.0 - 1e-8], [1.0 - 1e-8, 1.0]]], dtype=torch.float64)
    assert st.winoground(nearly)["text"] == 0.0           # within the tie tolerance
    assert st.winoground(nearly, tie_tol=0.0)["text"] == 100.0
    assert st.winoground(torch.empty(0, 2, 2)) == {"n": 0, "text": 0.0, "graph": 0.0, "group": 0.0}
    with pytest.raises(ValueError, match=r"\[n, 2, 2\]"):
        st.winoground(torch.zeros(3, 2))


def test_presets_build_configs():
    cfg = st.build_config("scan_gnn", TINY)
    assert cfg.model.image_gnn.name == "gat" and cfg.model.text_gnn.name == "gat"
    assert cfg.data.graph.text_graph.name == "dependency" and cfg.model.embed_dim == 32
    assert st.build_config("scan").data.graph.text_graph.name == "words"
    with pytest.raises(ValueError, match="no_such_matcher"):
        st.build_config("no_such_matcher")


def test_end_to_end_report_has_the_exact_keys(tmp_path):
    out = tmp_path / "report.json"
    rc = fs.main(["--train", str(TRAIN), "--eval", str(EVAL), "--max-eval", "120", "--matcher", "scan",
                  "--max-steps", "3", "--batch-size", "32", "--no-progress", "--word-dim", "16",
                  *[a for kv in TINY for a in ("--set", kv)], "--out", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert set(rep) == {"matcher", "n_eval", "retrieval", "swaps"}
    assert rep["matcher"] == "scan" and rep["n_eval"] == 120
    assert set(rep["retrieval"]) == RETRIEVAL_KEYS
    assert set(rep["swaps"]) == {"relation", "attribute", "object"}
    for kind, s in rep["swaps"].items():
        assert set(s) == {"n", "text", "graph", "group"}
        assert all(0.0 <= s[k] <= 100.0 for k in ("text", "graph", "group"))
    assert rep["swaps"]["relation"]["n"] > 50 and rep["swaps"]["object"]["n"] > 50
    r = rep["retrieval"]
    assert r["rsum"] == pytest.approx(sum(r[k] for k in RETRIEVAL_KEYS - {"rsum"}), abs=0.05)
    # a bag of nodes cannot tell G from G' on relation swaps: graph and group are 0 by construction
    assert rep["swaps"]["relation"]["graph"] == 0.0 and rep["swaps"]["relation"]["group"] == 0.0


def _trained(matcher, overrides):
    train = fs.read_records(TRAIN)
    evalset = fs.read_records(EVAL, 80)
    cfg = st.build_config(matcher, [*TINY, "train.epochs=1", "train.batch_size=32", "train.max_steps_per_epoch=2",
                                    *overrides])
    vocab = Vocabulary.build([c for c, _ in train])
    preds = build_predicate_vocab(g for _, g in train)
    emb = NameEmbedder(16)
    text = fs.CaptionGraphs(cfg.data.graph.text_graph.name, vocab, {})
    data = st.PairData(fs.build_graphs(train, emb, preds), text.graphs([c for c, _ in train]),
                       follow_batch=text.follow_batch)
    model, info = st.train_matcher(cfg, data, img_dim=32, vocab=vocab, edges=AnnotatedRelationEdges(16),
                                   show_progress=False)
    assert info["steps"] == 2
    cases = swap_cases(evalset, "relation")
    graphs = [(annotated_visual_graph(evalset[c.index][1], emb, preds), annotated_visual_graph(c.swapped_graph, emb, preds))
              for c in cases]
    caps = list(zip(text.graphs([c.caption for c in cases]), text.graphs([c.swapped_caption for c in cases])))
    return st.case_scores(model, graphs, caps, batch_size=16, follow_batch=text.follow_batch)


def test_bag_of_nodes_scores_twin_graphs_identically_a_relation_gnn_does_not():
    scan = _trained("scan", [])
    assert scan.shape[1:] == (2, 2) and scan.shape[0] > 20
    assert torch.equal(scan[:, 0], scan[:, 1])  # s(G, .) == s(G', .) exactly
    assert not torch.equal(scan[:, :, 0], scan[:, :, 1])  # the twin captions do differ
    gnn = _trained("scan", ["model.image_gnn.name=gat", "model.image_gnn.edge_features=true"])
    differs = (gnn[:, 0] - gnn[:, 1]).abs().amax(dim=1) > st.DEFAULT_TIE_TOL
    assert differs.float().mean() > 0.5  # message passing over the relation edges sees the direction


def test_dependency_text_graphs_parse_the_twin_captions(tmp_path):
    # the scan_gnn preset: GAT over relation edges (predicate features) and over dependency arcs
    rep = fs.run(TRAIN, EVAL, "scan_gnn", overrides=TINY, max_eval=40, batch_size=32, max_steps=2, word_dim=16,
                 parse_cache=str(tmp_path / "cache"), show_progress=False)
    assert rep["swaps"]["relation"]["n"] > 10
    assert set(rep["retrieval"]) == RETRIEVAL_KEYS


def test_table_driver_reports_matchers_that_cannot_run(tmp_path, capsys):
    rc = fs.main(["--train", str(TRAIN), "--eval", str(EVAL), "--max-eval", "40", "--table", "scan,no_such_matcher",
                  "--max-steps", "1", "--batch-size", "16", "--no-progress", "--word-dim", "16",
                  *[a for kv in TINY for a in ("--set", kv)], "--out-dir", str(tmp_path)])
    assert rc == 0
    table = (tmp_path / "table.md").read_text()
    assert "| scan |" in table and "| no_such_matcher | not run:" in table
    assert json.loads((tmp_path / "scan.json").read_text())["n_eval"] == 40
    assert not (tmp_path / "no_such_matcher.json").exists()
    assert table.strip() in capsys.readouterr().out


def test_bad_record_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"caption": "a cat", "objects": ["cat"], "attributes": [], "relations": []}\n'
                   '{"caption": "a dog", "objects": ["dog"], "attributes": [], "relations": [["dog", "on", "mat"]]}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: relations\[0\]\[2\]: 'mat'"):
        fs.read_records(bad)
