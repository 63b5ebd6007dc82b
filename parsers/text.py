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
from typing import Any, Optional, Tuple

__all__ = ["MAX_CAPTION_CHARS", "TRUNCATED_PREFIX", "screen_caption", "clean_text", "is_truncated"]

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
