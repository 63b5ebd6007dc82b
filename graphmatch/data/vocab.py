"""Tokenisation and word vocabulary for captions, with no download and no external tokenizer.

The tokenizer is a small regular expression: text is lower-cased, the possessive / contraction
``'s`` is split off as its own token (``"man's"`` -> ``["man", "'s"]``, as in the PTB-style captions
of the SCAN lineage), runs of letters and digits become tokens, and all other characters
(punctuation, symbols, whitespace) are dropped. :func:`tokenize_with_offsets` gives the same tokens
with their character offsets in the caption: the one tokenisation that both the vocabulary ids and
the token spans of parsed caption graphs use.

A :class:`Vocabulary` maps tokens to integer ids with two reserved entries: id 0 is ``<pad>`` and
id 1 is ``<unk>``. It is saved as a small versioned JSON file.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

from graphmatch.utils.atomic import atomic_write_json

PathLike = Union[str, os.PathLike]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
VOCAB_FORMAT = "graphmatch.vocab"
VOCAB_FORMAT_VERSION = 1

# "'s" when not followed by a letter/digit (so "'sun" -> "sun"), else a run of letters/digits.
# [^\W_] is "word character except underscore", i.e. unicode letters and digits.
_TOKEN_RE = re.compile(r"'s(?![^\W_])|[^\W_]+", re.UNICODE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _normalise(text: str) -> tuple[str, Optional[list[int]]]:
    """The lower-cased text with apostrophes unified, and (only when lower-casing changed the
    length, e.g. for a dotted capital I) the index in ``text`` of every normalised character."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize() expects a str, got {type(text).__name__}")
    low = text.lower()
    if len(low) == len(text):
        return low.translate(_APOSTROPHES), None
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in ch.lower():
            chars.append(c)
            where.append(i)
    return "".join(chars).translate(_APOSTROPHES), where


def tokenize_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """The tokens of ``text`` (see :func:`tokenize`) with their ``[start, end)`` character offsets
    in ``text`` itself (before lower-casing)::

        >>> tokenize_with_offsets("A man's dog, 2 cats!")
        [('a', 0, 1), ('man', 2, 5), ("'s", 5, 7), ('dog', 8, 11), ('2', 13, 14), ('cats', 15, 19)]

    This is the one tokenisation of a caption: vocabulary ids come from it, and a parser's tokens
    are mapped onto it through their character offsets
    (:func:`graphmatch.graphs.text.align_scene_graph`).
    """
    norm, where = _normalise(text)
    if where is None:
        return [(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(norm)]
    out = []
    for m in _TOKEN_RE.finditer(norm):
        out.append((m.group(), where[m.start()], where[m.end() - 1] + 1))
    return out


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-case word tokens.

    Letters and digits are kept, ``'s`` becomes its own token, punctuation is dropped::

        >>> tokenize("A man's dog, 2 cats!")
        ['a', 'man', "'s", 'dog', '2', 'cats']

    The tokens of :func:`tokenize_with_offsets`.
    """
    norm, _ = _normalise(text)
    return _TOKEN_RE.findall(norm)


class VocabularyError(ValueError):
    """A vocabulary file or argument is malformed."""


class Vocabulary:
    """A bijection between word tokens and integer ids; id 0 is ``<pad>``, id 1 is ``<unk>``.

    Build it from captions with :meth:`build`, or load a saved one with :meth:`load`.
    """

    pad_token = PAD_TOKEN
    unk_token = UNK_TOKEN

    def __init__(self, words: Sequence[str]) -> None:
        """Create a vocabulary from ``words``, which must start with ``<pad>``, ``<unk>``.

        Raises :class:`VocabularyError` when the special tokens are missing or a word repeats.
        """
        words = list(words)
        if len(words) < 2 or words[0] != PAD_TOKEN or words[1] != UNK_TOKEN:
            raise VocabularyError(
                f"a vocabulary must start with {PAD_TOKEN!r}, {UNK_TOKEN!r}; got {words[:2]!r}")
        index: dict[str, int] = {}
        for i, w in enumerate(words):
            if not isinstance(w, str) or not w:
                raise VocabularyError(f"vocabulary entry {i} is not a non-empty string: {w!r}")
            if w in index:
                raise VocabularyError(
                    f"vocabulary word {w!r} appears twice (entries {index[w]} and {i})")
            index[w] = i
        self._words: list[str] = words
        self._index: dict[str, int] = index

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, captions: Iterable[Union[str, Sequence[str]]], *,
              min_count: int = 1) -> "Vocabulary":
        """Build a vocabulary from captions (strings, or already-tokenised token lists).

        Words occurring fewer than ``min_count`` times are left out (they encode to ``<unk>``).
        The order is deterministic: by count, descending, then alphabetically.
        """
        if min_count < 1:
            raise VocabularyError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[str] = Counter()
        for cap in captions:
            toks = tokenize(cap) if isinstance(cap, str) else list(cap)
            counts.update(toks)
        for special in (PAD_TOKEN, UNK_TOKEN):
            counts.pop(special, None)
        kept = sorted((w for w, c in counts.items() if c >= min_count),
                      key=lambda w: (-counts[w], w))
        return cls([PAD_TOKEN, UNK_TOKEN, *kept])

    # ------------------------------------------------------------------ mapping
    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (always 0)."""
        return 0

    @property
    def unk_id(self) -> int:
        """Id of ``<unk>`` (always 1)."""
        return 1

    @property
    def words(self) -> list[str]:
        """All words in id order (a copy)."""
        return list(self._words)

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._words == other._words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    def id_of(self, word: str) -> int:
        """The id of ``word``, or :attr:`unk_id` when it is not in the vocabulary."""
        return self._index.get(word, 1)

    def encode(self, text_or_tokens: Union[str, Sequence[str]]) -> list[int]:
        """Map a caption (tokenised with :func:`tokenize`) or a token list to ids.

        Unknown tokens map to :attr:`unk_id`.
        """
        toks = tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else text_or_tokens
        get = self._index.get
        return [get(t, 1) for t in toks]

    def decode_tokens(self, ids: Iterable[int], *, skip_pad: bool = True) -> list[str]:
        """Map ids back to tokens; ``<pad>`` ids are dropped unless ``skip_pad`` is False."""
        out: list[str] = []
        n = len(self._words)
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"token id {i} is out of range for a vocabulary of {n} words")
            if skip_pad and i == 0:
                continue
            out.append(self._words[i])
        return out

    def decode(self, ids: Iterable[int], *, skip_pad: bool = True) -> str:
        """Map ids back to a space-joined string (``<pad>`` dropped unless ``skip_pad=False``)."""
        return " ".join(self.decode_tokens(ids, skip_pad=skip_pad))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The JSON-serialisable form written by :meth:`save`."""
        return {"format": VOCAB_FORMAT, "version": VOCAB_FORMAT_VERSION,
                "pad_token": PAD_TOKEN, "unk_token": UNK_TOKEN, "words": list(self._words)}

    def save(self, path: PathLike) -> None:
        """Write the vocabulary to ``path`` as JSON, atomically."""
        atomic_write_json(path, self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Raises ``FileNotFoundError`` for a missing file and :class:`VocabularyError` (a
        ``ValueError``) naming the file and the problem for invalid JSON or a wrong format.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise VocabularyError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") \
                from e
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise VocabularyError(
                f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from e
        if not isinstance(obj, dict):
            raise VocabularyError(
                f"{path}: expected a JSON object with format {VOCAB_FORMAT!r}, "
                f"got {type(obj).__name__}")
        if obj.get("format") != VOCAB_FORMAT:
            raise VocabularyError(
                f"{path}: field 'format' is {obj.get('format')!r}, expected {VOCAB_FORMAT!r} "
                "(not a graphmatch vocabulary file)")
        version = obj.get("version")
        if version != VOCAB_FORMAT_VERSION:
            raise VocabularyError(
                f"{path}: field 'version' is {version!r}; this code reads version "
                f"{VOCAB_FORMAT_VERSION}")
        words = obj.get("words")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise VocabularyError(f"{path}: field 'words' must be a list of strings")
        try:
            return cls(words)
        except VocabularyError as e:
            raise VocabularyError(f"{path}: field 'words': {e}") from e
