"""The one JSONL reader: records with their line numbers, errors naming file:line and the problem."""
from __future__ import annotations

import pytest

from graphmatch.utils.jsonl import JSONLError, loads_line, read_jsonl


def write(tmp_path, data: bytes):
    p = tmp_path / "f.jsonl"
    p.write_bytes(data)
    return p


def test_records_with_line_numbers(tmp_path):
    p = write(tmp_path, b'\xef\xbb\xbf{"a": 1}\n\n  \n{"b": "x\\u2028y \xe2\x80\xa8"}\r\n{"c": 3}')
    assert list(read_jsonl(p)) == [(1, {"a": 1}), (4, {"b": "x\u2028y \u2028"}), (5, {"c": 3})]
    assert list(read_jsonl(p, limit=2)) == [(1, {"a": 1}), (4, {"b": "x\u2028y \u2028"})]
    with pytest.raises(JSONLError, match=r"f.jsonl:2: JSONL line is not valid JSON"):
        list(read_jsonl(p, skip_blank=False))
    assert list(read_jsonl(write(tmp_path, b"[1]\n3\n"), objects=False)) == [(1, [1]), (2, 3)]


@pytest.mark.parametrize("data, line, kind, problem", [
    (b'{"a": 1}\n{"a": \n', 2, "json", "gold line is not valid JSON (Expecting value at column 8)"),
    (b'{"a": 1}\n["a"]\n', 2, "object", "gold line is not a JSON object (it is a list)"),
    (b'"text"\n', 1, "object", "gold line is not a JSON object (it is a string)"),
    (b'{"a": 1}\n{"a": "caf\xe9"}\n', 2, "utf8", "gold line is not valid UTF-8 (byte 0xe9 at byte 10 of the line"),
    (b'{"a": 1}\n{"a": "cut', 2, "truncated", "gold line is cut short: the file ends in the middle of a record"),
    (b'{"a": "\xc3', 1, "truncated", "cut short"),
])
def test_errors_name_the_file_line_and_problem(tmp_path, data, line, kind, problem):
    p = write(tmp_path, data)
    with pytest.raises(JSONLError) as e:
        list(read_jsonl(p, what="gold"))
    assert str(e.value).startswith(f"{p}:{line}: ") and problem in str(e.value)
    assert (e.value.path, e.value.lineno, e.value.kind) == (str(p), line, kind)
    assert isinstance(e.value, ValueError)


def test_missing_file_and_single_lines(tmp_path):
    with pytest.raises(FileNotFoundError, match="gold file not found"):
        list(read_jsonl(tmp_path / "nope.jsonl", what="gold"))
    assert loads_line(b'{"x": [1, 2]}\n', path="p", lineno=3) == {"x": [1, 2]}
    with pytest.raises(JSONLError, match=r"^p:3: record line is not valid JSON"):
        loads_line(b"{x}", path="p", lineno=3, what="record")
