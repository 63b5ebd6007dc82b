"""Small file-system helpers: atomic writes so that a crash never leaves a half-written file."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import numpy as np

from graphmatch.utils.faults import fault_point

PathLike = Union[str, os.PathLike]
_NO_SPACE = {errno.ENOSPC: "no space left on device", getattr(errno, "EDQUOT", -1): "disk quota exceeded"}


def _default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: PathLike) -> None:
    """Flush a folder's entries (after a rename into it) to disk; a no-op where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same folder as ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left exactly as it was; a full
    disk (``ENOSPC``, ``EDQUOT``) is re-raised as an ``OSError`` of the same errno whose message
    names ``path``.
    ``os.replace`` is atomic on POSIX when both paths are on one file system, which is why the
    temporary file lives next to the target. The result gets the permissions a plainly created
    file would have (``mkstemp`` makes its files private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _default_file_mode())
        fault_point("before_replace", file=path.name)
        os.replace(tmp_path, path)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if e.errno in _NO_SPACE:  # otherwise a bare "[Errno 28] No space left on device" names no file
            raise OSError(e.errno, f"cannot write {path}: {_NO_SPACE[e.errno]}; {path} is unchanged") from e
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: PathLike, obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save a numpy array to ``path`` (``.npy``) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def atomic_write_with(path: PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def replace_dir(src: PathLike, dst: PathLike) -> None:
    """Move the finished folder ``src`` onto ``dst``, replacing an existing ``dst``.

    The previous ``dst`` is first renamed to ``<dst>.old`` and deleted only once ``src`` is in
    place, so at every moment either ``dst`` or ``<dst>.old`` is a complete folder. A swap that an
    earlier crash left half done (only ``<dst>.old``) is completed first, never deleted.
    """
    src, dst = Path(src), Path(dst)
    old = dst.with_name(dst.name + ".old")
    if old.exists() and not dst.exists():
        old.rename(dst)
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        dst.rename(old)
    try:
        src.rename(dst)
    except BaseException:
        if old.exists() and not dst.exists():
            old.rename(dst)
        raise
    fsync_dir(dst.parent)
    if old.exists():
        shutil.rmtree(old)


def file_sha256(path: PathLike, *, block_size: int = 1 << 20,
                on_block: Callable[[int], Any] = lambda n: None) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks of ``block_size``; ``on_block(n)`` is called
    with the size of every block read (e.g. a progress bar's ``update``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(block_size)
            if not block:
                break
            h.update(block)
            on_block(len(block))
    return h.hexdigest()
