"""Plug-ins: user code that registers components from outside the package.

Three ways in, all before anything is built:

* ``graphmatch train CONFIG --import my_matcher.py`` (also ``eval``, ``list``), or an ``imports:``
  list in the config, of files (``path/to/file.py``) or module names (``my_pkg.matchers``). A
  training run saves them in its ``config.yaml`` / checkpoint ``config.json`` (files as absolute
  paths), so ``graphmatch eval`` of its checkpoint imports them again;
* a third-party package declares an entry point in the group :data:`ENTRY_POINT_GROUP`
  (``graphmatch.plugins``); the entry point names a module (imported) or a callable (called with no
  arguments). :func:`load_entry_points` loads them, when ``graphmatch list`` runs or when a name is
  not among the built-in components.

A file is imported once per process (by its resolved path) as a module named
``graphmatch_plugins.<stem>_<hash>``, which is registered in ``sys.modules`` so that pickling and
worker processes find its classes. This module imports nothing of the package but the registry.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from graphmatch.registry import add_miss_hook

log = logging.getLogger(__name__)

#: The entry-point group through which installed packages register components.
ENTRY_POINT_GROUP = "graphmatch.plugins"

_FILES: Dict[str, str] = {}  # resolved path -> module name
_ENTRY_POINTS_LOADED = False
_ENTRY_POINT_ERRORS: Dict[str, str] = {}


class PluginError(ImportError, ValueError):
    """A plug-in that cannot be found or imported; the message names it and says why. A
    ``ValueError`` too: it comes from a command-line argument or a config value."""


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"graphmatch_plugins.{stem}_{digest}"


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def import_file(path: Path) -> str:
    """Import the Python file ``path`` (once); returns its module name."""
    path = path.resolve()
    key = str(path)
    if key in _FILES:
        return _FILES[key]
    name = _module_name(path)
    if "graphmatch_plugins" not in sys.modules:
        pkg = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("graphmatch_plugins", None, is_package=True))
        pkg.__path__ = []  # type: ignore[attr-defined]
        sys.modules["graphmatch_plugins"] = pkg
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{f.filename}:{f.lineno}" for f in reversed(tb) if Path(f.filename).resolve() == path), str(path))
        raise PluginError(f"importing {path} failed at {where}: {type(e).__name__}: {e}") from e
    _FILES[key] = name
    return name


def import_plugins(specs: Sequence[str], *, base_dir: Optional[Path] = None) -> List[str]:
    """Import each of ``specs`` (files or module names) once; returns the specs as they are to be
    saved: files as absolute paths, modules unchanged.

    A relative file is looked up from the working directory, then from ``base_dir`` (the folder of
    the config file that names it).

    Raises:
        PluginError: a file that does not exist, a module that cannot be found, or an error while
            importing (the message names the file and line).
    """
    out: List[str] = []
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise PluginError(f"a plug-in must be a file or module name, got {spec!r}")
        spec = spec.strip()
        if _is_file_spec(spec):
            p = Path(spec).expanduser()
            candidates = [p] if p.is_absolute() else [Path.cwd() / p] + ([base_dir / p] if base_dir else [])
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise PluginError(f"plug-in file not found: {spec}"
                                  + (f" (looked in {', '.join(str(c.parent) for c in candidates)})" if not p.is_absolute() else ""))
            import_file(found)
            out.append(str(found.resolve()))
            continue
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as e:
            if e.name and spec.startswith(e.name):
                raise PluginError(f"plug-in module {spec!r} not found (for a file, give its path ending in .py)") from None
            raise PluginError(f"importing plug-in module {spec!r} failed: {type(e).__name__}: {e}") from e
        except Exception as e:
            raise PluginError(f"importing plug-in module {spec!r} failed: {type(e).__name__}: {e}") from e
        out.append(spec)
    return out


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> Dict[str, str]:
    """Load every entry point of ``group`` once per process. A plug-in that fails to load is
    logged as a warning and skipped (it cannot break the components that do load); returns the
    failures, ``{entry point: reason}``."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED and group == ENTRY_POINT_GROUP:
        return dict(_ENTRY_POINT_ERRORS)
    from importlib.metadata import entry_points

    errors: Dict[str, str] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(sys)):
                obj()
        except Exception as e:  # a broken third-party plug-in must not take the package down
            errors[f"{ep.name} = {ep.value}"] = f"{type(e).__name__}: {e}"
            log.warning("graphmatch plug-in %s (%s) not loaded: %s: %s", ep.name, ep.value, type(e).__name__, e)
    if group == ENTRY_POINT_GROUP:
        _ENTRY_POINTS_LOADED = True
        _ENTRY_POINT_ERRORS.update(errors)
    return errors


def _load_on_miss() -> None:
    load_entry_points()


add_miss_hook(_load_on_miss)
