"""Tests for graphmatch.data.vocab: tokenisation and the Vocabulary class."""
from __future__ import annotations

import json

import pytest

from graphmatch.data.vocab import Vocabulary, VocabularyError, tokenize


@pytest.mark.parametrize("text, expected", [
    ("A man's dog.", ["a", "man", "'s", "dog"]),
    ("Two dogs, 3 cats!!", ["two", "dogs", "3", "cats"]),
    ("A woman\u2019s hat", ["a", "woman", "'s", "hat"]),        # curly apostrophe
    ("  UPPER   lower\tMiXeD\n", ["upper", "lower", "mixed"]),
    ("t-shirt (red) & blue", ["t", "shirt", "red", "blue"]),
    ("it's 'sunny'", ["it", "'s", "sunny"]),                    # quote before a word is dropped
    ("the 2nd of 10", ["the", "2nd", "of", "10"]),
    ("café au lait", ["café", "au", "lait"]),
    ("snake_case", ["snake", "case"]),
    ("...?!", []),
    ("", []),
])
def test_tokenize(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_tokenize_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        tokenize(["a", "b"])  # type: ignore[arg-type]


def test_build_order_and_specials() -> None:
    caps = ["a dog and a cat", "A cat.", "a bird", "zebra zebra"]
    v = Vocabulary.build(caps)
    # counts: a=3, cat=2, zebra=2, and=1, bird=1, dog=1 -> count desc, then alphabetical
    assert v.words == ["<pad>", "<unk>", "a", "cat", "zebra", "and", "bird", "dog"]
    assert v.pad_id == 0 and v.unk_id == 1
    assert len(v) == 8
    assert "cat" in v and "cow" not in v
    # token lists are accepted too, and the result is deterministic
    assert Vocabulary.build([tokenize(c) for c in caps]) == v


def test_build_min_count() -> None:
    v = Vocabulary.build(["a b b c c c"], min_count=2)
    assert v.words == ["<pad>", "<unk>", "c", "b"]
    with pytest.raises(VocabularyError):
        Vocabulary.build(["a"], min_count=0)


def test_encode_decode() -> None:
    v = Vocabulary.build(["a small dog", "a big cat"])
    ids = v.encode("A small COW!")
    assert ids == [v.id_of("a"), v.id_of("small"), v.unk_id]
    assert v.encode(["small", "dog"]) == [v.id_of("small"), v.id_of("dog")]
    assert v.decode(ids) == "a small <unk>"
    assert v.decode([0, *ids, 0]) == "a small <unk>"
    assert v.decode([0, ids[0]], skip_pad=False) == "<pad> a"
    assert v.decode_tokens(ids) == ["a", "small", "<unk>"]
    with pytest.raises(IndexError, match="out of range"):
        v.decode([len(v)])


def test_constructor_validation() -> None:
    with pytest.raises(VocabularyError, match="must start with"):
        Vocabulary(["a", "b"])
    with pytest.raises(VocabularyError, match="appears twice"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])


def test_save_load_round_trip(tmp_path) -> None:
    v = Vocabulary.build(["a man's dog", "two dogs"])
    path = tmp_path / "sub" / "vocab.json"
    v.save(path)
    obj = json.loads(path.read_text(encoding="utf-8"))
    assert obj["format"] == "graphmatch.vocab" and obj["version"] == 1
    w = Vocabulary.load(path)
    assert w == v and w.words == v.words
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_load_missing_file(tmp_path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Vocabulary.load(path)


def test_load_invalid_json(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "graphmatch.vocab",\n "words": [', encoding="utf-8")
    with pytest.raises(VocabularyError, match=r"broken\.json.*invalid JSON at line 2"):
        Vocabulary.load(path)


@pytest.mark.parametrize("obj, message", [
    (["<pad>", "<unk>"], "expected a JSON object"),
    ({"format": "other", "version": 1, "words": ["<pad>", "<unk>"]}, "field 'format'"),
    ({"format": "graphmatch.vocab", "version": 99, "words": ["<pad>", "<unk>"]},
     "field 'version'"),
    ({"format": "graphmatch.vocab", "version": 1}, "field 'words'"),
    ({"format": "graphmatch.vocab", "version": 1, "words": ["<pad>", "<unk>", 3]},
     "field 'words'"),
    ({"format": "graphmatch.vocab", "version": 1, "words": ["a", "<unk>"]},
     "field 'words'.*must start with"),
])
def test_load_wrong_format(tmp_path, obj, message: str) -> None:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    with pytest.raises(VocabularyError, match=message) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value)


def test_load_not_utf8(tmp_path) -> None:
    path = tmp_path / "vocab.json"
    path.write_bytes(b'{"words": ["\xff"]}')
    with pytest.raises(VocabularyError, match="UTF-8"):
        Vocabulary.load(path)


def test_tokenize_with_offsets_is_the_one_tokenisation():
    from graphmatch.data.vocab import tokenize_with_offsets

    for text in ["A man's dog, 2 cats!", "  Two  kids\u2019s (boy) e-mail...", "\u0130stanbul at NIGHT", "", "!!"]:
        toks = tokenize_with_offsets(text)
        assert [t for t, _, _ in toks] == tokenize(text)
        for t, s, e in toks:
            assert 0 <= s < e <= len(text)
            assert text[s:e].lower().replace("\u2019", "'").startswith(t[0]) or text[s:e].lower() == t
    assert tokenize_with_offsets("A man's dog") == [("a", 0, 1), ("man", 2, 5), ("'s", 5, 7), ("dog", 8, 11)]
