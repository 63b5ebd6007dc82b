"""Parse sidecars of a precomp folder: ``graphmatch parse --precomp ROOT [--split S]`` writes
``{ROOT}/{S}_graphs.jsonl`` (header + one record per caption line), resumable, stale files
detected; the core's reader (:mod:`graphmatch.data.parses`) reads what it writes."""
from __future__ import annotations

import json
import re
import shutil
from typing import Iterable, Iterator, List, Optional

import pytest

import parsers.job as job
from graphmatch.cli import main
from graphmatch.data.parses import load_parses, read_parses
from graphmatch.data.precomp import DataError, read_text_lines
from graphmatch.structures import SceneGraph, SGObject, SGRelation
from graphmatch.utils.atomic import file_sha256

NOUNS = {"dog", "cat", "bed", "table", "man", "horse", "car"}


def word_graph(text: str) -> SceneGraph:
    """Objects are the known nouns; ``noun on/near ... noun`` a relation."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    tokens = [text[s:e] for s, e in spans]
    words = [t.lower().strip(".,") for t in tokens]
    obj_of = {}
    objects: List[SGObject] = []
    for i, w in enumerate(words):
        if w in NOUNS:
            obj_of[i] = len(objects)
            objects.append(SGObject(name=tokens[i], span=(i, i + 1), lemma=w))
    relations = []
    for i, w in enumerate(words):
        nxt = next((j for j in range(i + 1, len(words)) if j in obj_of), None)
        prev = max((j for j in obj_of if j < i), default=None)
        if w in ("on", "near") and prev is not None and nxt is not None:
            relations.append(SGRelation(obj_of[prev], w, obj_of[nxt], (i, i + 1)))
    return SceneGraph(tokens=tokens, objects=objects, relations=relations, note=None if objects else "no objects",
                      heads=list(range(len(tokens))), deps=["dep"] * len(tokens), text=text, offsets=spans)


class WordParser:
    """A parser with the interface of ``SceneGraphParser``; ``interrupt_after`` raises
    ``KeyboardInterrupt`` once that many captions were parsed."""

    name = "words"
    model_name = "none"

    def __init__(self, version: str = "1", interrupt_after: Optional[int] = None) -> None:
        self.version = version
        self.interrupt_after = interrupt_after
        self.n_parsed = 0

    def parse(self, text: str) -> SceneGraph:
        return next(self.pipe([text]))

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]:
        for t in texts:
            if self.interrupt_after is not None and self.n_parsed >= self.interrupt_after:
                raise KeyboardInterrupt
            self.n_parsed += 1
            yield word_graph(t)


SPLITS = {
    "train": [f"a dog on the bed {i}" for i in range(12)] + ["", "the man, near a horse."],
    "dev": ["A cat near a car", "nothing to see", "a dog on a table", "Two men's hats"],
    "test": ["a horse", "a car on a table"],
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "cache"))
    r = tmp_path / "precomp"
    r.mkdir()
    for split, lines in SPLITS.items():
        (r / f"{split}_caps.txt").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (r / "notes_caps.bak").write_text("not a split\n", encoding="utf-8")
    return r


def test_every_split_gets_a_sidecar_the_core_reads(root):
    results = job.parse_precomp(root, parser=WordParser(), cache=None, progress=False)
    assert list(results) == ["train", "dev", "test"]  # train, dev, test first (as check-data orders them)
    for split, lines in SPLITS.items():
        caps, side = root / f"{split}_caps.txt", root / f"{split}_graphs.jsonl"
        assert results[split]["output"] == str(side) and results[split]["lines"] == len(lines)
        header = json.loads(side.read_bytes().splitlines()[0])
        assert header == {"format": "graphmatch.parses", "version": 2, "captions": f"{split}_caps.txt",
                          "captions_sha256": file_sha256(caps), "n": len(lines), "parser": "words/1"}
        assert [r["text"] for r in job.read_parse_records(side)] == lines  # caption-line order, one per line
        # the core reads it: header checked against the caption file, records carried onto its tokens
        _, graphs = read_parses(side, caps, len(lines))
        assert graphs == [word_graph(t) if t else SceneGraph(tokens=[], note="empty caption", text="", offsets=[])
                          for t in lines]  # an empty caption is not given to the parser
        aligned = load_parses(side, caps, read_text_lines(caps)[0])
        assert len(aligned) == len(lines)
    dev = load_parses(root / "dev_graphs.jsonl", root / "dev_caps.txt", SPLITS["dev"])
    assert dev[0].tokens == ["a", "cat", "near", "a", "car"] and dev[0].relations[0].predicate == "near"
    assert dev[3].tokens == ["two", "men", "'s", "hats"]  # the core tokenisation, not the parser's
    assert not (root / "notes_graphs.jsonl").exists()


def test_given_splits_only_and_errors_naming_the_files(root):
    res = job.parse_precomp(root, ["dev", "dev"], parser=WordParser(), cache=None, progress=False)
    assert list(res) == ["dev"] and not (root / "train_graphs.jsonl").exists()
    with pytest.raises(FileNotFoundError, match=r"val_caps.txt not found: split 'val' has no captions .*"
                                                r"splits there: train, dev, test"):
        job.parse_precomp(root, ["test", "val"], parser=WordParser(), cache=None, progress=False)
    assert not (root / "test_graphs.jsonl").exists()  # checked before anything is parsed
    empty = root.parent / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no <split>_caps.txt"):
        job.parse_precomp(empty, parser=WordParser(), progress=False)
    with pytest.raises(FileNotFoundError, match="precomp folder not found"):
        job.parse_precomp(root / "missing", parser=WordParser(), progress=False)


def test_a_killed_run_continues_and_gives_the_uninterrupted_file(root, tmp_path):
    ref_root = tmp_path / "ref"
    shutil.copytree(root, ref_root)
    job.parse_precomp(ref_root, ["train"], parser=WordParser(), cache=None, chunk_size=4, progress=False)
    expected = (ref_root / "train_graphs.jsonl").read_bytes()

    side = root / "train_graphs.jsonl"
    with pytest.raises(KeyboardInterrupt):
        job.parse_precomp(root, ["train"], parser=WordParser(interrupt_after=9), cache=None, chunk_size=4,
                          progress=False)
    lines = expected.splitlines(keepends=True)
    assert side.read_bytes() == b"".join(lines[:1 + 8])  # the header and two complete chunks
    with open(side, "ab") as f:  # and a record cut short by the kill
        f.write(lines[9][:17])
    p = WordParser()
    res = job.parse_precomp(root, ["train"], parser=p, cache=None, chunk_size=4, progress=False)
    assert res["train"]["resumed_from"] == 8
    assert p.n_parsed == len(SPLITS["train"]) - 8 - 1  # the rest, but for the empty caption (never parsed)
    assert side.read_bytes() == expected
    # the core refuses an unfinished sidecar, naming it
    side.write_bytes(b"".join(lines[:5]))
    with pytest.raises(DataError, match="has 4 records but its header and train_caps.txt have 14"):
        read_parses(side, root / "train_caps.txt", 14)


def test_a_changed_caption_file_makes_the_sidecar_stale(root, capsys):
    job.parse_precomp(root, ["dev"], parser=WordParser(), cache=None, progress=False)
    side, caps = root / "dev_graphs.jsonl", root / "dev_caps.txt"
    before = side.read_bytes()
    caps.write_text("A cat near a car\nsomething new\n", encoding="utf-8")
    with pytest.raises(job.StaleParsesError, match=rf"{re.escape(str(side))} is stale: .*captions changed"):
        job.parse_precomp(root, ["dev"], parser=WordParser(), cache=None, progress=False)
    assert side.read_bytes() == before  # never changed without --overwrite
    with pytest.raises(DataError, match="is stale"):  # the core says so too
        read_parses(side, caps, 2)
    res = job.parse_precomp(root, ["dev"], parser=WordParser(), cache=None, overwrite=True, progress=False)
    assert "is stale" in res["dev"]["replaced"]
    _, graphs = read_parses(side, caps, 2)
    assert [g.text for g in graphs] == ["A cat near a car", "something new"]


def test_parse_precomp_through_the_graphmatch_command(root, monkeypatch, capsys):
    monkeypatch.setattr("parsers.parser.make_parser", lambda model=None, batch_size=None: WordParser())
    assert main(["parse", "--precomp", str(root), "--split", "test", "--split", "dev", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary) == ["test", "dev"] and summary["dev"]["written"] == len(SPLITS["dev"])
    assert main(["parse", "--precomp", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{root / 'dev_graphs.jsonl'}: already complete (4 records)" in out
    assert f"{root / 'train_graphs.jsonl'}: 14 records" in out
    (root / "test_caps.txt").write_text("a horse\n", encoding="utf-8")
    assert main(["parse", "--precomp", str(root), "--split", "test", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "test_graphs.jsonl is stale" in err and "--overwrite" in err
    assert main(["parse", "--precomp", str(root), "--split", "test", "--quiet", "--overwrite"]) == 0
    assert "replaced: " in capsys.readouterr().out


def test_real_parser_sidecar_of_synthetic_captions_is_aligned_by_the_core(tiny_synthetic, tmp_path, monkeypatch):
    pytest.importorskip("spacy")
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "syn"
    root.mkdir()
    shutil.copy(tiny_synthetic / "dev_caps.txt", root / "dev_caps.txt")
    res = job.parse_precomp(root, progress=False)
    assert list(res) == ["dev"] and res["dev"]["parser"].startswith("spacy_rules/rules-")
    captions = read_text_lines(root / "dev_caps.txt")[0]
    graphs = load_parses(root / "dev_graphs.jsonl", root / "dev_caps.txt", captions)
    assert len(graphs) == len(captions) and sum(len(g.relations) for g in graphs) > len(captions) // 4
    for g in graphs:
        assert all(0 <= o.span[0] < o.span[1] <= len(g.tokens) for o in g.objects)
