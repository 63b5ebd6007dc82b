"""``graphmatch parse`` and ``graphmatch eval-parser`` through the ``graphmatch`` command (the
``graphmatch.commands`` entry point of ``parsers.cli``): resumable output, stale files, bad input,
scoring.

Most tests use a small fake parser (same interface as ``parsers.parser.SceneGraphParser``) so
they do not depend on the parsing rules; the ``--baseline sng`` and bad-input tests also run the
real parser and ``sng_parser``.
"""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Set

import pytest

import parsers.benchmark as benchmark
import parsers.job as job
from graphmatch.cli import main
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation
from graphmatch.utils.atomic import file_sha256
from graphmatch.utils.locks import WriterLock
from parsers.job import load_scene_graphs, read_parse_header, read_parse_records

REPO = Path(__file__).resolve().parents[2]
FIXTURE_GOLD = REPO / "tests" / "fixtures" / "factual_dev.jsonl"

NOUNS = {"dog", "cat", "table", "bed", "man", "hat", "shirt", "tree", "car", "road", "boat", "dock"}
ADJECTIVES = {"red", "white", "black", "big", "small", "green", "tall"}
PREPOSITIONS = {"on", "in", "near", "under", "with", "beside"}
NUMBERS = {"two": "2", "three": "3"}


def fake_graph(text: str) -> SceneGraph:
    """Objects: known nouns (``-s`` plurals lemmatised); an adjective right before a noun is its
    attribute; ``noun PREP ... noun`` is a relation; a number word before a noun is its quantity."""
    tokens = text.split()
    words = [t.lower() for t in tokens]
    lemmas = [w[:-1] if w.endswith("s") and w[:-1] in NOUNS else w for w in words]
    obj_of = {}
    objects: List[SGObject] = []
    for i, lem in enumerate(lemmas):
        if lem in NOUNS:
            obj_of[i] = len(objects)
            objects.append(SGObject(name=tokens[i], span=(i, i + 1), head=lem, lemma=lem,
                                    quantity=NUMBERS.get(words[i - 1]) if i else None))
    attributes = [SGAttribute(object=obj_of[i + 1], value=w, span=(i, i + 1))
                  for i, w in enumerate(words) if w in ADJECTIVES and i + 1 in obj_of]
    relations = []
    for i, w in enumerate(words):
        nxt = next((j for j in range(i + 1, len(words)) if j in obj_of), None)
        if w in PREPOSITIONS and i - 1 in obj_of and nxt is not None:
            relations.append(SGRelation(subject=obj_of[i - 1], predicate=w, object=obj_of[nxt], span=(i, i + 1)))
    offsets = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    return SceneGraph(tokens=tokens, objects=objects, attributes=attributes, relations=relations,
                      note=None if objects else "no objects found", lemmas=lemmas,
                      heads=list(range(len(tokens))), deps=["dep"] * len(tokens), text=text, offsets=offsets)


class FakeParser:
    """Same interface as ``SceneGraphParser`` (``version``, ``model_name``, ``parse``, ``pipe``).

    ``interrupt_after`` / ``crash_after``: raise ``KeyboardInterrupt`` / ``RuntimeError`` once that
    many captions have been parsed; ``fail_on``: raise ``ValueError`` on captions containing one
    of these strings.
    """

    model_name = "fake_model"

    def __init__(self, version: str = "fake-1", *, interrupt_after: Optional[int] = None,
                 crash_after: Optional[int] = None, fail_on: Iterable[str] = ()) -> None:
        self.version = version
        self.interrupt_after = interrupt_after
        self.crash_after = crash_after
        self.fail_on: Set[str] = set(fail_on)
        self.n_parsed = 0

    def parse(self, text: str) -> SceneGraph:
        if self.interrupt_after is not None and self.n_parsed >= self.interrupt_after:
            raise KeyboardInterrupt
        if self.crash_after is not None and self.n_parsed >= self.crash_after:
            raise RuntimeError("fake parser is broken")
        if any(s in text for s in self.fail_on):
            raise ValueError(f"cannot parse {text[:20]!r}")
        self.n_parsed += 1
        return fake_graph(text)

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]:
        for t in texts:
            yield self.parse(t)


class FakeNormalizer:
    """Lower-case and collapse spaces only, so scores can be computed by hand."""

    def __call__(self, phrase: str) -> str:
        return " ".join(str(phrase).lower().split())

    def normalize_many(self, phrases: Iterable[str]) -> List[str]:
        return [self(p) for p in phrases]


@pytest.fixture
def use_parser(monkeypatch, tmp_path):
    """Make the commands use the given fake parser (and keep the cache inside tmp_path)."""
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "gm-cache"))

    def install(parser: FakeParser) -> FakeParser:
        make = lambda model=None, batch_size=None: parser  # noqa: E731
        monkeypatch.setattr("parsers.parser.make_parser", make)
        monkeypatch.setattr(benchmark, "make_parser", make)
        return parser

    return install


CAPTIONS = [f"{c} {n}" for n in range(1, 6) for c in
            ("a red dog on the table", "two cats near a big car", "a man with a hat", "nothing here")]


def write_captions(path: Path, lines: List[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_parse(args: List[str]) -> int:
    return main(["parse", "--quiet", *args])


def test_parse_writes_a_header_and_one_record_per_line(tmp_path, use_parser, capsys):
    p = use_parser(FakeParser())
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    out = tmp_path / "out" / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out), "--chunk-size", "3"]) == 0
    assert read_parse_header(out) == {"format": "graphmatch.parses", "version": 2, "captions": "caps.txt",
                                      "captions_sha256": file_sha256(caps), "n": len(CAPTIONS), "parser": "fake-1"}
    assert list(json.loads(out.read_bytes().splitlines()[0])) == ["format", "version", "captions", "captions_sha256",
                                                                 "n", "parser"]
    recs = list(read_parse_records(out))
    assert [r["text"] for r in recs] == CAPTIONS
    assert list(recs[0]) == ["text", "tokens", "offsets", "objects", "attributes", "relations", "lemmas", "heads",
                             "deps"]
    assert SceneGraph.from_record(recs[0]).to_dict()["relations"] == [["dog", "on", "table"]]
    assert recs[1]["objects"][0]["quantity"] == "2"
    assert recs[3]["note"] == "no objects found"
    assert load_scene_graphs(out) == [fake_graph(c) for c in CAPTIONS]
    assert f"{len(CAPTIONS)} records" in capsys.readouterr().out
    assert not Path(str(out) + ".lock").exists()  # the writer lock is released
    # a second run finds the file complete and parses nothing; the cache served the rest
    n = p.n_parsed
    assert run_parse([str(caps), "--out", str(out)]) == 0 and p.n_parsed == n
    assert "already complete" in capsys.readouterr().out
    out2 = tmp_path / "again.jsonl"
    assert run_parse([str(caps), "--out", str(out2), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["from_cache"] == len(CAPTIONS) and p.n_parsed == n and summary["parser"] == "fake-1"
    assert out2.read_bytes() == out.read_bytes()


def test_parse_command_is_the_parsers_entry_point(tmp_path):
    """``graphmatch parse -h`` and ``eval-parser -h`` come from ``parsers.cli`` through the
    installed ``graphmatch.commands`` entry point."""
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="graphmatch.commands")}
    assert eps.get("parsers") == "parsers.cli:add_commands"
    assert {ep.name: ep.value for ep in entry_points(group="graphmatch.plugins")}.get("parsers") == "parsers.registry"
    exe = Path(sys.executable).parent / "graphmatch"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "graphmatch.cli"]
    for sub, words in (("parse", ["--precomp", "--split", "--overwrite", "_graphs.jsonl"]),
                       ("eval-parser", ["--gold", "--baseline"])):
        res = subprocess.run(cmd + [sub, "-h"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert res.returncode == 0, res.stderr
        for w in words:
            assert w in res.stdout, (sub, w)


@pytest.mark.parametrize("cache", [False, True])
def test_resume_after_interrupt_and_crash_gives_the_uninterrupted_file(tmp_path, use_parser, capsys, cache):
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    cache_args = ["--cache", str(tmp_path / "c")] if cache else ["--no-cache"]
    ref = tmp_path / "ref.jsonl"
    use_parser(FakeParser())
    assert run_parse([str(caps), "--out", str(ref), "--no-cache"]) == 0
    expected = ref.read_bytes()

    out = tmp_path / "graphs.jsonl"
    use_parser(FakeParser(interrupt_after=7))  # Ctrl-C after 7 captions
    assert run_parse([str(caps), "--out", str(out), "--chunk-size", "3", *cache_args]) == 130
    assert "interrupted" in capsys.readouterr().err
    partial = out.read_bytes()
    lines = expected.splitlines(keepends=True)  # the header, then one record per caption
    assert partial == b"".join(lines[:1 + 6])  # two complete chunks

    use_parser(FakeParser(crash_after=3))  # a broken parser: error, complete chunks kept
    assert run_parse([str(caps), "--out", str(out), "--chunk-size", "3", *cache_args]) == 2
    assert "failed on every caption" in capsys.readouterr().err
    assert out.read_bytes() == b"".join(lines[:1 + 9])

    # a crash in the middle of a write: the partial last line is discarded
    with open(out, "ab") as f:
        f.write(lines[1 + 9][:25])
    p = use_parser(FakeParser())
    assert run_parse([str(caps), "--out", str(out), "--chunk-size", "3", *cache_args]) == 0
    assert out.read_bytes() == expected
    assert p.n_parsed == len(CAPTIONS) - 9
    assert "9 kept from an earlier run" in capsys.readouterr().out

    # an output truncated anywhere (in the header, inside a multi-byte character) is finished correctly
    for cut in (1, len(lines[0]) - 1, len(lines[0]), len(expected) // 2, len(expected) - 1):
        out.write_bytes(expected[:cut])
        assert run_parse([str(caps), "--out", str(out), "--chunk-size", "4", *cache_args]) == 0
        assert out.read_bytes() == expected
    if cache:  # every caption is cached by now: truncated outputs are rebuilt without parsing
        assert p.n_parsed == len(CAPTIONS) - 9


def test_a_stale_file_is_refused_and_replaced_only_with_overwrite(tmp_path, use_parser, capsys):
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    out = tmp_path / "graphs.jsonl"
    use_parser(FakeParser())
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 0
    before = out.read_bytes()
    # the caption file changes after parsing: the file is stale, named, and left as it is
    write_captions(caps, ["a cat"] + CAPTIONS[1:])
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert f"{out} is stale" in err and "captions changed after parsing" in err and "--overwrite" in err
    assert out.read_bytes() == before
    with pytest.raises(job.StaleParsesError, match="is stale"):
        job.parse_file(caps, out, parser=FakeParser(), progress=False)
    assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite"]) == 0
    assert "replaced: " in capsys.readouterr().out and [r["text"] for r in read_parse_records(out)][0] == "a cat"
    # another parser version
    use_parser(FakeParser("fake-2"))
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "written by parser 'fake-1'" in err and "'fake-2'" in err
    assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite"]) == 0
    assert read_parse_header(out)["parser"] == "fake-2"
    # the same bytes under another name
    other = tmp_path / "renamed.txt"
    other.write_bytes(caps.read_bytes())
    assert run_parse([str(other), "--out", str(out), "--no-cache"]) == 2
    assert "holds the parses of 'caps.txt', not of renamed.txt" in capsys.readouterr().err
    # records of other captions under a matching header
    good = out.read_bytes().splitlines(keepends=True)
    bad_rec = json.dumps(dict(json.loads(good[2]), text="something else"), separators=(",", ":")).encode() + b"\n"
    out.write_bytes(b"".join(good[:2]) + bad_rec)
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
    assert f"{out}:3: the record is for 'something else', but line 2 of" in capsys.readouterr().err
    assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite"]) == 0

    assert run_parse([str(caps), "--out", str(caps)]) == 2
    assert "is the captions file itself" in capsys.readouterr().err
    with WriterLock(out, what="parse output"):  # another run holds the output
        assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite"]) == 2
        assert "locked by another writer" in capsys.readouterr().err
    assert len(list(read_parse_records(out))) == len(CAPTIONS)
    assert run_parse([str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_parse_needs_a_captions_file_or_a_precomp_folder(tmp_path, use_parser, capsys):
    use_parser(FakeParser())
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    for args, msg in (([], "give CAPTIONS --out FILE"), ([str(caps)], "give CAPTIONS --out FILE"),
                      ([str(caps), "--out", "x", "--precomp", str(tmp_path)], "not both"),
                      ([str(caps), "--out", "x", "--split", "dev"], "--split needs --precomp"),
                      (["--precomp", str(tmp_path / "nope")], "precomp folder not found")):
        assert run_parse(args) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.parametrize("data, problem", [
    (b"a red dog\nbad \xff\xfe bytes on a table\n", "line 2 is not valid UTF-8"),
    (b"a red dog\nnul \x00 byte\n", "contains NUL bytes"),
    ("a red dog\n".encode("utf-16"), "UTF-16 LE"),
    (b"a red dog\nsecond\rthird\n", "carriage return"),
])
def test_captions_the_training_loader_refuses_are_refused(tmp_path, use_parser, capsys, data, problem):
    """Captions are read as the training loader reads them, so the records line up with its
    captions; a file it refuses is refused here too, with its error, and nothing is written."""
    from graphmatch.data.precomp import DataError, read_text_lines

    use_parser(FakeParser())
    caps = tmp_path / "caps.txt"
    caps.write_bytes(data)
    with pytest.raises(DataError):
        read_text_lines(caps)
    out = tmp_path / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{caps}" in err and problem in err
    assert not out.exists()


def test_cr_only_captions_are_split_like_the_loader(tmp_path, use_parser, capsys):
    use_parser(FakeParser())
    caps = tmp_path / "caps.txt"
    caps.write_bytes(b"a red dog\ra cat on a bed\r")
    out = tmp_path / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out)]) == 0
    assert "CR-only" in capsys.readouterr().err
    assert [r["text"] for r in read_parse_records(out)] == ["a red dog", "a cat on a bed"]


BAD_LINES = [
    "",
    "   \t ",
    " ".join(["a red dog on the table"] * 1000),  # 6000 words
    "ein roter Hund auf dem Tisch",
    "一只狗在桌子上",
    "🐶 on the bed 🛏️",
    "<b>a red dog</b> on <i>the</i> table &amp; a cat",
    "a dog\x01\x07 on\x1b[31m the table\x7f",
    "a dog\u2028on a bed\u2029 and\x85 a cat",
    "a dog\x0con a\x0b bed\x1c",
    "a dog on a bed\r",  # CRLF line ending
    "\ufeffzero\u200bwidth dog",
]


def _bad_input_file(tmp_path: Path) -> Path:
    caps = tmp_path / "bad.txt"
    caps.write_bytes(b"\n".join(s.encode("utf-8") for s in BAD_LINES) + b"\nlast line no newline")
    return caps


def test_bad_input_never_drops_a_line_fake_parser(tmp_path, use_parser, capsys):
    use_parser(FakeParser(fail_on={"Hund"}))
    caps = _bad_input_file(tmp_path)
    out = tmp_path / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out), "--max-chars", "20000"]) == 0
    err = capsys.readouterr().err
    recs = list(read_parse_records(out))
    n_in = len(BAD_LINES) + 1
    assert len(recs) == n_in == len(out.read_bytes().splitlines()) - 1
    assert recs[0]["note"] == "empty caption" and recs[1]["note"].startswith("empty caption")
    assert recs[1]["text"] == "   \t " and recs[1]["tokens"] == []
    assert "too long" in recs[2]["note"] and "line 3" in err
    assert "parser error" in recs[3]["note"] and "line 4" in err  # the parser raised on this caption only
    assert recs[10]["text"] == "a dog on a bed"  # the CR of a CRLF line end is not part of the caption
    assert recs[-1]["text"] == "last line no newline"
    assert all(r["text"] == s for r, s in zip(recs[3:10], BAD_LINES[3:10]))


def test_bad_input_real_parser(tmp_path, monkeypatch, capsys):
    pytest.importorskip("spacy")
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "gm-cache"))
    caps = _bad_input_file(tmp_path)
    out = tmp_path / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out), "--batch-size", "4", "--chunk-size", "5"]) == 0
    recs = list(read_parse_records(out))
    assert len(recs) == len(BAD_LINES) + 1
    assert [r["text"] for r in recs[:10]] == BAD_LINES[:10]
    graphs = load_scene_graphs(out)
    for g in graphs:
        assert g.objects or g.note, g.text[:40]
        assert len(g.offsets) == len(g.tokens)  # offsets into the caption as written, also after cleaning
    assert "dog" in graphs[2].to_dict()["objects"] and "table" in graphs[6].to_dict()["objects"]
    markup = graphs[6]  # "<b>a red dog</b> on <i>the</i> table &amp; a cat"
    spans = [markup.text[s:e] for s, e in markup.offsets]
    assert spans[:6] == ["a", "red", "dog", "on", "the", "table"] and "&amp;" in spans
    err = capsys.readouterr().err
    assert "line 3" in err and "truncated to" in err  # 23,000 characters: parsed truncated, with a warning


GOLD = [
    {"caption": "red dog on table", "objects": ["dog", "table"], "attributes": [["dog", "red"]],
     "relations": [["dog", "on", "table"]]},
    {"caption": "white cat near big bed", "objects": ["cat", "bed"], "attributes": [["cat", "white"]],
     "relations": [["cat", "near", "bed"]]},
    {"caption": "man in hat", "objects": ["man", "hat", "shirt"], "attributes": [],
     "relations": [["man", "wear", "hat"]]},
]


def test_eval_parser_hand_computed_scores(tmp_path, use_parser, monkeypatch, capsys):
    use_parser(FakeParser())
    monkeypatch.setattr(benchmark, "make_normalizer", lambda model=None: FakeNormalizer())
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(g) for g in GOLD) + "\n\n", encoding="utf-8")
    assert main(["eval-parser", "--gold", str(gold), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    s = rep["ours"]["scores"]
    assert rep["n_captions"] == 3 and s["n_captions"] == 3
    # objects: 6 predicted, 7 gold, 6 right; attributes: 3 / 2 / 2; relations: 3 / 3 / 2
    assert (s["objects"]["tp"], s["objects"]["n_pred"], s["objects"]["n_gold"]) == (6, 6, 7)
    assert s["objects"]["precision"] == pytest.approx(100.0)
    assert s["objects"]["recall"] == pytest.approx(600 / 7)
    assert s["objects"]["f1"] == pytest.approx(1200 / 13)
    assert (s["attributes"]["precision"], s["attributes"]["recall"], s["attributes"]["f1"]) == \
        pytest.approx((200 / 3, 100.0, 80.0))
    assert (s["relations"]["precision"], s["relations"]["recall"], s["relations"]["f1"]) == \
        pytest.approx((200 / 3, 200 / 3, 200 / 3))
    # all tuples per caption: (4, 4, 4) + (5 pred, 4 gold, 4) + (3 pred, 4 gold, 2)
    assert (s["all"]["tp"], s["all"]["n_pred"], s["all"]["n_gold"]) == (10, 12, 12)
    assert s["all"]["f1"] == pytest.approx(250 / 3)
    assert rep["ours"]["captions_per_s"] > 0 and "sng" not in rep
    assert main(["eval-parser", "--gold", str(gold), "--limit", "2"]) == 0
    table = capsys.readouterr().out
    assert "(2 captions)" in table and "captions/s" in table
    row = next(line for line in table.splitlines() if line.startswith("relations"))
    assert row.split()[1:] == ["100.0", "100.0", "100.0"]


def test_eval_parser_bad_gold_lines_name_the_line(tmp_path, use_parser, monkeypatch, capsys):
    use_parser(FakeParser())
    monkeypatch.setattr(benchmark, "make_normalizer", lambda model=None: FakeNormalizer())
    good = json.dumps(GOLD[0])
    for i, bad in enumerate(['{"caption": "a dog", ', '{"objects": ["dog"]}', '["a dog"]',
                             '{"caption": "x", "relations": [["a", "b"]]}']):
        gold = tmp_path / f"gold{i}.jsonl"
        gold.write_text(f"{good}\n\n{bad}\n{good}\n", encoding="utf-8")
        assert main(["eval-parser", "--gold", str(gold)]) == 2
        err = capsys.readouterr().err
        assert f"{gold}:3: gold line" in err, err
    assert main(["eval-parser", "--gold", str(tmp_path / "nope.jsonl")]) == 2
    assert "not found" in capsys.readouterr().err


def test_eval_parser_sng_baseline_on_real_captions(capsys):
    """Real parser and the real ``sng_parser`` on 5 FACTUAL captions (both installed here)."""
    assert main(["eval-parser", "--gold", str(FIXTURE_GOLD), "--limit", "5", "--baseline", "sng", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_captions"] == 5 and rep["model"]
    for key in ("ours", "sng"):
        s = rep[key]["scores"]
        assert s["n_captions"] == 5 and s["objects"]["n_gold"] > 0
        assert 0 <= s["all"]["f1"] <= 100 and rep[key]["captions_per_s"] > 0
    assert rep["sng"]["errors"] == 0
    assert rep["speed_ratio"] == pytest.approx(rep["ours"]["captions_per_s"] / rep["sng"]["captions_per_s"])
    assert main(["eval-parser", "--gold", str(FIXTURE_GOLD), "--limit", "5", "--baseline", "sng"]) == 0
    table = capsys.readouterr().out
    assert "sng_parser" in table and "speed ratio" in table


def test_cli_imports_no_spacy():
    """Building the command line (which adds ``parse`` through the entry point) loads neither
    spaCy nor the parser, the parse job or torch."""
    code = ("import sys, graphmatch.cli; graphmatch.cli.build_parser(); "
            "bad = [m for m in ('spacy', 'torch', 'parsers.parser', 'parsers.job', 'parsers.benchmark') "
            "if m in sys.modules]; assert 'parsers.cli' in sys.modules; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_parse_never_truncates_a_file_that_is_not_parse_output(tmp_path, use_parser, capsys):
    use_parser(FakeParser())
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    gold_copy = tmp_path / "dev_copy.jsonl"
    gold_copy.write_bytes(FIXTURE_GOLD.read_bytes())
    text = tmp_path / "notes.txt"
    text.write_text("some notes\nmore notes\n", encoding="utf-8")
    one_line = tmp_path / "one_line.txt"
    one_line.write_text("a line without a line break", encoding="utf-8")
    for out in (gold_copy, text, one_line):
        before = out.read_bytes()
        assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
        err = capsys.readouterr().err
        assert f"{out}:1: not a graphmatch parse file" in err and "--overwrite" in err
        assert out.read_bytes() == before
    # parse output followed by a foreign complete line: refused at that line, nothing lost
    out = tmp_path / "graphs.jsonl"
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 0
    good = b"".join(out.read_bytes().splitlines(keepends=True)[:4])  # the header and 3 records
    out.write_bytes(good + b"not a record\n")
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
    assert f"{out}:5: not a graphmatch parse file" in capsys.readouterr().err
    assert out.read_bytes() == good + b"not a record\n"
    assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite"]) == 0
    assert len(list(read_parse_records(out))) == len(CAPTIONS)


def test_a_run_that_finds_the_output_locked_changes_nothing(tmp_path, use_parser, capsys):
    """Another run holds the writer lock (and has begun the file): this run stops before opening
    the output, naming the lock and its holder, and the other run's file is left as it is."""
    use_parser(FakeParser())
    caps = write_captions(tmp_path / "caps.txt", CAPTIONS)
    out = tmp_path / "graphs.jsonl"
    with WriterLock(out, what="parse output") as other:
        out.write_bytes(b'{"format":"graphmatch.parses"')  # the other run's header, half written
        assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 2
        err = capsys.readouterr().err
        assert str(other.path) in err and "locked by another writer" in err
        assert out.read_bytes() == b'{"format":"graphmatch.parses"'
    assert run_parse([str(caps), "--out", str(out), "--no-cache"]) == 0  # then it continues that file
    assert len(list(read_parse_records(out))) == len(CAPTIONS)


class TruncatingParser(FakeParser):
    """A fake parser that cuts captions like the real one, at 30 characters."""

    def parse(self, text: str) -> SceneGraph:
        from parsers.text import clean_text

        cut, note = clean_text(text, 30)
        g = super().parse(cut)
        return dataclasses.replace(g, note=note or g.note, text=text)  # offsets of the cut text hold in text


def test_truncated_lines_are_reported(tmp_path, use_parser, capsys):
    use_parser(TruncatingParser())
    long = "a red dog on the table near a big car " * 3
    caps = write_captions(tmp_path / "caps.txt", ["a red dog", long, "a cat"])
    out = tmp_path / "graphs.jsonl"
    for strict in ([], ["--strict"]):  # a warning, not an error, even with --strict
        assert run_parse([str(caps), "--out", str(out), "--no-cache", "--overwrite", *strict]) == 0
        err = capsys.readouterr().err
        assert "line 2" in err and "truncated to" in err and "line 1" not in err and "line 3" not in err
        recs = list(read_parse_records(out))
        assert recs[1]["note"].startswith("truncated to") and recs[1]["objects"] and recs[1]["text"] == long


def test_one_length_limit_and_one_screening_helper():
    import parsers.cache as cache
    import parsers.parser as parser
    import parsers.text as text

    assert parser.MAX_CHARS == cache.MAX_CAPTION_CHARS == text.MAX_CAPTION_CHARS
    assert job.screen_caption is cache.screen_caption is text.screen_caption
    for s in ("", "   ", "\t"):
        assert text.clean_text(s) == ("", text.screen_caption(s))
    assert text.screen_caption("x" * (text.MAX_CAPTION_CHARS + 1)) is None  # the parser truncates
    assert "too long" in text.screen_caption("x" * 50, 40)
