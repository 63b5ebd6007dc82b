"""Caption text before parsing: the one length limit, empty-caption screening and cleaning.

Shared by the parser (:func:`clean_text`, used by :class:`parsers.parser.SceneGraphParser`) and the
parse cache / ``graphmatch parse`` (:func:`screen_caption`), so that both treat a caption the same
way. This module does not import spaCy.

Length: the parser reads at most :data:`MAX_CAPTION_CHARS` characters of a caption. A longer
caption is cut at a word boundary and parsed; its graph's ``note`` starts with
``"truncated to N characters"`` (:data:`TRUNCATED_PREFIX`), and ``graphmatch parse`` warns about
such a line, naming it. Callers may in addition *screen out* captions over their own ``max_chars``
(``graphmatch parse --max-chars``): those get an empty graph and are not parsed at all.
"""
from __future__ import annotations

import html
import re
import unicodedata
from typing import Any, List, Optional, Tuple

__all__ = ["MAX_CAPTION_CHARS", "TRUNCATED_PREFIX", "screen_caption", "clean_text", "clean_text_map", "map_span",
           "is_truncated"]

#: The parser reads at most this many characters of a caption (longer ones are truncated).
MAX_CAPTION_CHARS = 20_000
#: How the note of a truncated caption's graph starts.
TRUNCATED_PREFIX = "truncated to "

_TAG = re.compile(r"<[^<>]{0,2000}>")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_WS = re.compile(r"\s+")


def screen_caption(text: str, max_chars: Optional[int] = None) -> Optional[str]:
    """Why ``text`` is not parsed at all (``None``: it is parsed): it is empty or whitespace only,
    or (only when ``max_chars`` is given) longer than ``max_chars`` characters."""
    if not text.strip():
        return "empty caption" if not text else "empty caption (whitespace only)"
    if max_chars is not None and len(text) > max_chars:
        return f"caption too long: {len(text)} characters (limit {max_chars}); not parsed"
    return None


def is_truncated(note: Optional[str]) -> bool:
    """Whether a graph's ``note`` says its caption was truncated before parsing."""
    return bool(note) and note.startswith(TRUNCATED_PREFIX)  # type: ignore[union-attr]


def clean_text(text: Any, max_chars: int = MAX_CAPTION_CHARS) -> Tuple[str, Optional[str]]:
    """Normalise a caption for parsing; returns ``(text, note)`` where ``note`` flags changes
    that matter (``"truncated to N characters"``) or why the text is unusable (``"empty caption"``,
    see :func:`screen_caption`; ``"no words in caption"``)."""
    if text is None:
        return "", "empty caption (None)"
    if not isinstance(text, str):
        try:
            text = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
        except Exception:  # pragma: no cover - exotic objects
            return "", "caption is not text"
    why = screen_caption(text)
    if why is not None:
        return "", why
    note = None
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    text = _CTRL.sub(" ", text)
    text = _WS.sub(" ", text).strip()
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars)
        text = text[: cut if cut > max_chars // 2 else max_chars]
        note = f"{TRUNCATED_PREFIX}{len(text)} characters"
    why = screen_caption(text)  # nothing left after removing markup and control characters
    if why is not None:
        return "", why
    if not any(c.isalpha() for c in text):
        return text, "no words in caption"
    return text, note


# --------------------------------------------------------------------------------------------
# where each character of the cleaned text comes from
# --------------------------------------------------------------------------------------------

#: Character references as :func:`html.unescape` finds them (the same pattern).
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")

CharMap = List[Tuple[int, int]]


def clean_text_map(text: str, max_chars: int = MAX_CAPTION_CHARS) -> Tuple[str, Optional[str], Optional[CharMap]]:
    """:func:`clean_text` of ``text`` and where each character of the result comes from.

    Returns ``(cleaned, note, char_map)``: ``cleaned`` and ``note`` are exactly
    :func:`clean_text`'s; ``char_map[i]`` is the ``[start, end)`` range of ``text`` that
    character ``i`` of ``cleaned`` was made from (a collapsed run of spaces, a removed tag or a
    character reference maps to its whole range), non-decreasing. ``char_map`` is ``None`` when
    ``cleaned == text`` (the identity). :func:`map_span` turns it into token offsets.

    The cleaning steps are replayed on ``(character, range)`` pieces; where they do not give
    ``cleaned`` back (a Unicode normalisation that joins characters across pieces in a way the
    replay does not follow), the map is read off an alignment of the two strings instead.
    """
    cleaned, note = clean_text(text, max_chars)
    if not isinstance(text, str) or cleaned == text:
        return cleaned, note, None
    chars = _replay(text, max_chars)
    if chars is None or "".join(c for c, _, _ in chars) != cleaned:
        return cleaned, note, _aligned_map(text, cleaned)
    return cleaned, note, [(a, b) for _, a, b in chars]


def map_span(char_map: Optional[CharMap], start: int, end: int) -> Tuple[int, int]:
    """The range of the original text that characters ``[start, end)`` of the cleaned text come
    from (``char_map`` from :func:`clean_text_map`; ``None``: the identity)."""
    if char_map is None:
        return start, end
    if not char_map:
        return 0, 0
    if end <= start:  # an empty range: where the character at ``start`` begins
        s = char_map[min(start, len(char_map) - 1)][0] if start < len(char_map) else char_map[-1][1]
        return s, s
    return char_map[start][0], char_map[end - 1][1]


def _replay(text: str, max_chars: int) -> Optional[List[Tuple[str, int, int]]]:
    """The steps of :func:`clean_text` on ``(piece, start, end)`` triples (``None`` where
    :func:`clean_text` does not clean, e.g. an empty caption)."""
    if screen_caption(text) is not None:
        return None
    pieces: List[Tuple[str, int, int]] = [(c, i, i + 1) for i, c in enumerate(text)]
    if "<" in text and ">" in text:  # pieces are still single characters: string index = piece index
        out, pos = [], 0
        for m in _TAG.finditer(text):
            out.extend(pieces[pos:m.start()])
            out.append((" ", m.start(), m.end()))
            pos = m.end()
        pieces = out + pieces[pos:]
    current = "".join(p for p, _, _ in pieces)
    if "&" in current:  # pieces are single characters here too
        out, pos = [], 0
        for m in _CHARREF.finditer(current):
            out.extend(pieces[pos:m.start()])
            out.append((html.unescape(m.group(0)), pieces[m.start()][1], pieces[m.end() - 1][2]))
            pos = m.end()
        pieces = out + pieces[pos:]
    pieces = _nfkc_pieces(pieces)
    if pieces is None:
        return None
    chars = [(c, a, b) for p, a, b in pieces for c in p]
    chars = [(" " if _CTRL.match(c) else c, a, b) for c, a, b in chars]
    collapsed: List[Tuple[str, int, int]] = []
    in_space = False  # the last piece is a run of whitespace collapsed to one space
    for c, a, b in chars:
        if _WS.match(c):
            if in_space:
                collapsed[-1] = (" ", collapsed[-1][1], b)
            else:
                collapsed.append((" ", a, b))
            in_space = True
        else:
            collapsed.append((c, a, b))
            in_space = False
    chars = collapsed
    while chars and chars[0][0].isspace():
        chars.pop(0)
    while chars and chars[-1][0].isspace():
        chars.pop()
    if len(chars) > max_chars:
        s = "".join(c for c, _, _ in chars)
        cut = s.rfind(" ", 0, max_chars)
        chars = chars[: cut if cut > max_chars // 2 else max_chars]
    return chars


def _nfkc_pieces(pieces: List[Tuple[str, int, int]]) -> Optional[List[Tuple[str, int, int]]]:
    """NFKC of the concatenated pieces, as pieces: each starter with the combining marks after it
    is normalised as one piece (their ranges joined); if that does not equal NFKC of the whole
    text, whitespace-separated runs are normalised as pieces instead; ``None`` if neither does."""
    whole = unicodedata.normalize("NFKC", "".join(p for p, _, _ in pieces))

    def grouped(starts_group: Any) -> List[Tuple[str, int, int]]:
        groups: List[List[Tuple[str, int, int]]] = []
        for p in pieces:
            if not groups or starts_group(p[0], groups[-1]):
                groups.append([p])
            else:
                groups[-1].append(p)
        return [(unicodedata.normalize("NFKC", "".join(p for p, _, _ in g)), g[0][1], g[-1][2]) for g in groups]

    def by_cluster(p: str, group: List[Tuple[str, int, int]]) -> bool:
        return not p or unicodedata.combining(p[0]) == 0 and not "\u1160" <= p[0] <= "\u11ff"

    def by_word(p: str, group: List[Tuple[str, int, int]]) -> bool:
        return p.isspace() or group[-1][0].isspace()

    for starts_group in (by_cluster, by_word):
        out = grouped(starts_group)
        if "".join(p for p, _, _ in out) == whole:
            return out
    return None


def _aligned_map(text: str, cleaned: str) -> CharMap:
    """A character map of ``cleaned`` into ``text`` read off their longest common blocks
    (:class:`difflib.SequenceMatcher`); a character outside every block maps to the gap between
    the blocks around it."""
    import difflib

    sm = difflib.SequenceMatcher(None, cleaned, text, autojunk=False)
    out: CharMap = []
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            out.extend((j1 + k, j1 + k + 1) for k in range(i2 - i1))
        elif tag in ("replace", "insert"):  # "insert": characters of cleaned not in text
            out.extend((j1, j2) for _ in range(i2 - i1))
    return out
