"""fsync_file / fsync_tree and atomic_dir: a folder appears complete or not at all."""
import os

import pytest

from graphmatch.utils import atomic


def test_atomic_dir_replaces_the_folder_only_when_complete(tmp_path, monkeypatch):
    out = tmp_path / "data"
    with atomic.atomic_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".data.tmp-")
        (tmp / "a.txt").write_text("one")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("two")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "one" and (out / "sub" / "b.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    with pytest.raises(RuntimeError, match="half way"):
        with atomic.atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("changed")
            raise RuntimeError("half way")
    assert (out / "a.txt").read_text() == "one"  # the old folder is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # and no temporary is left

    synced = []
    monkeypatch.setattr(atomic, "fsync_file", lambda p: synced.append(os.path.relpath(p, tmp_path)))
    with atomic.atomic_dir(out, tmp_prefix=".data.custom-") as tmp:
        (tmp / "c.txt").write_text("three")
        (tmp / "d").mkdir()
        (tmp / "d" / "e.txt").write_text("four")
        name = tmp.name
    assert name.startswith(".data.custom-")
    assert sorted(synced) == sorted([f"{name}/c.txt", f"{name}/d/e.txt"])
    assert sorted(p.name for p in out.iterdir()) == ["c.txt", "d"]


def test_fsync_file_of_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic.fsync_file(tmp_path / "missing")
    (tmp_path / "x").write_text("x")
    atomic.fsync_file(tmp_path / "x")
    atomic.fsync_tree(tmp_path)
