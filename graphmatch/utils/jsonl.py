"""Reading JSON Lines files with errors that name the file and line.

:func:`read_jsonl` is the one reader of JSONL files (gold scene graphs, parse outputs and parse
sidecars, hard negatives, logs): it yields ``(line number, object)`` for every record, and raises
:class:`JSONLError` (a ``ValueError``) naming ``file:line`` and what is wrong with the line: not
valid UTF-8, not JSON, not a JSON object, or a last line cut short (no line break and not a
complete record: an interrupted write). :func:`loads_line` decodes one line the same way, for
readers that walk a file themselves (e.g. to keep byte offsets).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

__all__ = ["JSONLError", "read_jsonl", "loads_line"]

PathLike = Union[str, os.PathLike]


class JSONLError(ValueError):
    """A line of a JSONL file that is not a record. ``path``, ``lineno`` (1-based) and ``problem``
    repeat what the message (``"{path}:{lineno}: {what} line {problem}"``) says; ``kind`` is one of
    ``"utf8"``, ``"json"``, ``"object"``, ``"truncated"`` or ``"record"`` (a reader's own check of
    the object's content)."""

    def __init__(self, path: PathLike, lineno: int, problem: str, what: str = "JSONL", kind: str = "record") -> None:
        super().__init__(f"{path}:{lineno}: {what} line {problem}")
        self.path = str(path)
        self.lineno = lineno
        self.problem = problem
        self.kind = kind


def loads_line(raw: bytes, *, path: PathLike, lineno: int, what: str = "JSONL", objects: bool = True) -> Any:
    """Decode one line (bytes, with or without its line break) of a JSONL file.

    Args:
        raw: the line's bytes.
        path, lineno: where it comes from, for the error message.
        what: what the file holds, for the message (``"gold"``, ``"parse record"``).
        objects: require a JSON object (the default), else any JSON value.

    Raises:
        JSONLError: not valid UTF-8 (naming the byte), not valid JSON (naming the column), or not
            an object.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JSONLError(path, lineno, f"is not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start} of the line: "
                                       f"{e.reason})", what, "utf8") from None
    if lineno == 1 and text.startswith("\ufeff"):
        text = text[1:]
    try:
        obj = json.loads(text)
    except ValueError as e:
        col = f" at column {e.pos + 1}" if isinstance(e, json.JSONDecodeError) else ""
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        raise JSONLError(path, lineno, f"is not valid JSON ({msg}{col})", what, "json") from None
    if objects and not isinstance(obj, dict):
        raise JSONLError(path, lineno, f"is not a JSON object (it is {_kind(obj)})", what, "object")
    return obj


def read_jsonl(path: PathLike, *, what: str = "JSONL", skip_blank: bool = True, objects: bool = True,
               limit: Optional[int] = None) -> Iterator[Tuple[int, Any]]:
    """``(line number, object)`` for every record of the JSONL file ``path``, in order.

    Lines are split at ``\\n`` only (a ``\\r`` before it is JSON whitespace), so a record holding
    U+2028 or other Unicode line separators stays one line. A last line without a line break is
    read when it is a complete record; if it is not, the file was cut short (an interrupted
    write), which is reported as such.

    Args:
        what: what the file holds, for messages (``"gold"`` gives ``"gold line is not valid JSON"``).
        skip_blank: skip lines that are empty or whitespace only (else they are errors).
        objects: every record must be a JSON object.
        limit: stop after this many records.

    Raises:
        FileNotFoundError: ``path`` does not exist (naming it and ``what``).
        JSONLError: a line that is not a record (see :func:`loads_line`), naming ``file:line``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    n_records = 0
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if limit is not None and n_records >= limit:
                return
            if skip_blank and not raw.strip():
                continue
            try:
                obj = loads_line(raw, path=p, lineno=lineno, what=what, objects=objects)
            except JSONLError as e:
                if not raw.endswith(b"\n") and e.kind in ("utf8", "json"):
                    raise JSONLError(p, lineno, f"is cut short: the file ends in the middle of a record "
                                                f"(an interrupted write?); it {e.problem}", what, "truncated") from None
                raise
            n_records += 1
            yield lineno, obj


def _kind(obj: Any) -> str:
    names: Dict[type, str] = {list: "a list", str: "a string", bool: "a boolean", int: "a number",
                              float: "a number", type(None): "null"}
    return names.get(type(obj), type(obj).__name__)
