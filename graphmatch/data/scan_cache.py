"""The cache of full data scans: results of expensive checks, keyed by the versions of their files.

Entries live in ``$GRAPHMATCH_CACHE/data-checks.json`` (default ``~/.cache/graphmatch/``), written
atomically; the data folder itself is never written, so a read-only folder works, and a cache
that cannot be read or written only costs a rescan. A file's version is its absolute path, size
and modification time.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

log = logging.getLogger(__name__)

__all__ = ["CACHE_ENV", "cached"]

CACHE_ENV = "GRAPHMATCH_CACHE"
CACHE_VERSION = 1
_CACHE_ENTRIES = 256


def _cache_path() -> Path:
    base = os.environ.get(CACHE_ENV)
    return (Path(base) if base else Path.home() / ".cache" / "graphmatch") / "data-checks.json"


def _fingerprint(paths: Sequence[Path]) -> str:
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    return json.dumps(parts)


def _cache_read(path: Path) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def cached(kind: str, paths: Sequence[Path], compute: Callable[[], Any]) -> Any:
    """``compute()``, cached under ``kind`` and the versions (path, size, mtime) of ``paths``.

    The cache is ``$GRAPHMATCH_CACHE/data-checks.json`` (see the module docstring); reading or
    writing it never fails the caller. Only JSON-able results can be cached."""
    from graphmatch.utils.atomic import atomic_write_json

    try:
        key = f"{kind}:{_fingerprint(paths)}"
    except OSError:
        return compute()
    path = _cache_path()
    entries = _cache_read(path)
    hit = entries.get(key)
    if isinstance(hit, dict) and "value" in hit:
        return hit["value"]
    value = compute()
    entries = _cache_read(path)  # another process may have added entries meanwhile
    entries[key] = {"value": value, "time": time.time()}
    if len(entries) > _CACHE_ENTRIES:
        keep = sorted(entries.items(), key=lambda kv: kv[1].get("time", 0) if isinstance(kv[1], dict) else 0)
        entries = dict(keep[-_CACHE_ENTRIES:])
    try:
        atomic_write_json(path, {"version": CACHE_VERSION, "entries": entries}, indent=0)
    except OSError as e:
        log.debug("data check cache %s not written (%s)", path, e)
    return value
