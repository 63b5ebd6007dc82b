"""Atomic file and folder writes, so that a crash never leaves a half-written file, and the
flushing and disk-full vocabulary they share.

Files: :func:`atomic_path` (and :func:`atomic_write_text`, ``_json``, ``_save_npy``, ``_with``),
:func:`write_bytes`. Folders: :func:`atomic_dir` (a folder written beside its target and renamed
into place, :func:`replace_dir`). Flushing: :func:`fsync_file`, :func:`fsync_tree`,
:func:`fsync_dir`. Errors: :data:`NO_SPACE_ERRNOS`, :func:`os_error_text`. Hashes: :func:`file_sha256`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from graphmatch.utils.faults import fault_point

PathLike = Union[str, os.PathLike]
#: errno values of a full disk or an exhausted quota
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def os_error_text(e: OSError) -> str:
    """What went wrong in a few words: ``"no space left on device"`` / ``"disk quota exceeded"``
    for a full disk, else the system's message (or the exception's type name)."""
    if e.errno == errno.ENOSPC:
        return "no space left on device"
    if e.errno in NO_SPACE_ERRNOS:
        return "disk quota exceeded"
    return e.strerror or type(e).__name__


def write_bytes(path: PathLike, data: Any, *, fsync: bool = True, mode: int = 0o666) -> None:
    """Write ``data`` (any buffer) to a new file at ``path`` completely, or raise ``OSError``.

    Plain ``os.write`` calls in a loop, so a failed write (e.g. a full disk) is an ``OSError`` of
    the system's errno; ``fsync`` flushes the file to disk; ``mode`` is less the umask."""
    view = memoryview(data).cast("B")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        done = 0
        while done < len(view):
            n = os.write(fd, view[done:done + (64 << 20)])
            if n <= 0:
                raise OSError(errno.EIO, f"cannot write {path}: short write")
            done += n
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


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


def fsync_file(path: PathLike) -> None:
    """Flush a written file's data to disk (``OSError`` if that fails: the data may be lost)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: PathLike) -> None:
    """Flush every file under ``folder`` (sub-folders included), then the folders themselves,
    deepest first, so a folder about to be renamed into place is complete on disk."""
    folder = Path(folder)
    for dirpath, _dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                fsync_file(p)
        fsync_dir(dirpath)


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
        if e.errno in NO_SPACE_ERRNOS:  # otherwise a bare "[Errno 28] No space left on device" names no file
            raise OSError(e.errno, f"cannot write {path}: {os_error_text(e)}; {path} is unchanged") from e
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


@contextlib.contextmanager
def atomic_dir(path: PathLike, *, tmp_prefix: Optional[str] = None, fsync: bool = True) -> Iterator[Path]:
    """Write a folder atomically: yield a new empty temporary folder beside ``path``; when the block
    ends without an exception its files are flushed to disk (:func:`fsync_tree`, unless ``fsync``
    is False) and it replaces ``path`` (:func:`replace_dir`: at every moment ``path`` or
    ``<path>.old`` is a complete folder). On an exception the temporary folder is removed and
    ``path`` is left as it was.

    Args:
        path: the folder to write.
        tmp_prefix: name prefix of the temporary folder (default ``.<name>.tmp-``), e.g. for a
            clean-up that recognises interrupted writes by name.
        fsync: flush the files before the rename.

    Example::

        with atomic_dir(out) as tmp:
            (tmp / "meta.json").write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix or f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if fsync:
            fsync_tree(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
