"""Caption cleaning and its character map (``parsers.text.clean_text_map``): token offsets of the
cleaned text carried back onto the caption as written."""
from __future__ import annotations

import random

import pytest

import parsers.text as text_mod
from parsers.text import MAX_CAPTION_CHARS, clean_text, clean_text_map, map_span


def spans_of_words(original: str, max_chars: int = MAX_CAPTION_CHARS):
    cleaned, _, cmap = clean_text_map(original, max_chars)
    out, pos = [], 0
    for w in cleaned.split(" "):
        if w:
            s, e = map_span(cmap, pos, pos + len(w))
            out.append(original[s:e])
        pos += len(w) + 1
    return out


@pytest.mark.parametrize("original, words", [
    ("a red dog", ["a", "red", "dog"]),
    ("  a  dog\t on the\nbed  ", ["a", "dog", "on", "the", "bed"]),
    ("<b>a red dog</b> on <i>the</i> table &amp; a cat", ["a", "red", "dog", "on", "the", "table", "&amp;", "a",
                                                          "cat"]),
    ("a dog\x00\x01 on\x1b the table\x7f", ["a", "dog", "on", "the", "table"]),
    ("\ufeffzero\u200bwidth dog", ["zero", "width", "dog"]),
    ("ﬁne ｆｕｌｌ café cafe\u0301", ["ﬁne", "ｆｕｌｌ", "café", "cafe\u0301"]),
    ("&#x41;&#66; &ampx &copy2", ["&#x41;&#66;", "&ampx", "&copy2"]),
])
def test_words_of_the_cleaned_text_map_back_to_the_caption(original, words):
    cleaned, note = clean_text(original)
    assert clean_text_map(original)[:2] == (cleaned, note)  # the cleaning itself is unchanged
    assert spans_of_words(original) == words


def test_identity_and_truncation():
    assert clean_text_map("a man riding a horse") == ("a man riding a horse", None, None)
    long = "word " * 20 + "end"
    cleaned, note, cmap = clean_text_map(long, 30)
    assert note.startswith("truncated to") and len(cmap) == len(cleaned) <= 30
    assert spans_of_words(long, 30) == ["word"] * (len(cleaned.split()))
    assert clean_text_map("   ")[:2] == ("", "empty caption (whitespace only)")
    assert map_span(None, 3, 7) == (3, 7) and map_span([], 0, 0) == (0, 0)


def test_random_captions_give_a_consistent_map_by_replaying_the_cleaning():
    """For random mixtures of markup, references, combining marks, compatibility characters,
    control characters and whitespace: the map has one ordered range per cleaned character, inside
    the caption, and the replay of the cleaning steps (not the fallback alignment) produced it."""
    rng = random.Random(0)
    pieces = list("ab c&;<>#x1\u0301\t\n\x00ﬁ가\u1161½ é") + ["&amp;", "<i>", "&#65;", "  ", "\u200b"]
    for _ in range(3000):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        cleaned, _, cmap = clean_text_map(s, 18)
        if cmap is None:
            assert cleaned == s
            continue
        assert len(cmap) == len(cleaned)
        assert all(0 <= a <= b <= len(s) for a, b in cmap)
        assert all(cmap[i][0] <= cmap[i + 1][0] for i in range(len(cmap) - 1))
        replay = text_mod._replay(s, 18)
        assert cleaned == "" or "".join(c for c, _, _ in replay) == cleaned, s


def test_fallback_alignment_when_the_replay_does_not_match(monkeypatch):
    monkeypatch.setattr(text_mod, "_replay", lambda text, max_chars: None)
    original = "<b>a  red</b> dog &amp; cat"
    cleaned, _, cmap = clean_text_map(original)
    assert cleaned == "a red dog & cat" and len(cmap) == len(cleaned)
    words = spans_of_words(original)
    assert words[:3] == ["a", "red", "dog"] and words[-1] == "cat"
