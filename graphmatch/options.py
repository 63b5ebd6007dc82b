"""Constraints on config options: a valid range or a fixed set of choices, carried as dataclass field
metadata so that a component's options dataclass says everything about its keys in one place.

Example (a matcher's options, next to the matcher)::

    @dataclass
    class SCANConfig:
        direction: str = option("t2i", choices=("t2i", "i2t", "both"))
        lambda_lse: float = option(6.0, lo=0, lo_open=True)

The config loader (:mod:`graphmatch.config`) checks every key against these when a file or a
``--set`` override is read, so a bad value fails before any data is read. This module imports
nothing of the package.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: ``lo <= v`` (or ``lo < v`` when ``lo_open``), and the
    same for ``hi``; ``note`` says what a boundary value means. Floats must also be finite."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    note: str = ""

    def describe(self) -> str:
        parts = []
        if self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return " and ".join(parts) or "finite"

    def accepts(self, v: float) -> bool:
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        if self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi):
            return False
        return True


def option(default: Any = dataclasses.MISSING, *, lo: Optional[float] = None, hi: Optional[float] = None,
           lo_open: bool = False, hi_open: bool = False, note: str = "",
           choices: Optional[Sequence[Any]] = None, help: str = "") -> Any:
    """A dataclass field with a range (``lo`` / ``hi``) or a set of ``choices`` and a ``help`` text.

    A mutable default (list, dict) is copied for each instance.
    """
    meta: dict = {}
    if lo is not None or hi is not None or note:
        meta["range"] = Range(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, note=note)
    if choices is not None:
        meta["choices"] = tuple(choices)
    if help:
        meta["help"] = help
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_range(f: dataclasses.Field) -> Range:
    """The :class:`Range` of a dataclass field (unconstrained but finite when none is given)."""
    return f.metadata.get("range", Range())


def field_choices(f: dataclasses.Field) -> Optional[tuple]:
    return f.metadata.get("choices")
