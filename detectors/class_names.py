"""Class and attribute vocabularies of the region extractors.

A vocabulary file has one class per line with comma-separated aliases; the first alias is the
class's name. Line ``i`` (0-based) is class id ``i + 1`` and id 0 is background, the
bottom-up-attention convention that every backend and ``Regions.labels`` follow. The Visual
Genome vocabularies of bottom-up attention ship with the package (``detectors/vocab/``, see
``vocab/PROVENANCE.txt``).
"""
from __future__ import annotations

import os
from typing import List, Optional

__all__ = ["default_class_names_path", "default_attribute_names_path", "load_class_names"]

_VOCAB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab")


def default_class_names_path() -> str:
    """The shipped Visual Genome 1600-class vocabulary (bottom-up attention); see ``vocab/PROVENANCE.txt``."""
    return os.path.join(_VOCAB_DIR, "objects_vocab.txt")


def default_attribute_names_path() -> str:
    """The shipped Visual Genome 400-attribute vocabulary (bottom-up attention)."""
    return os.path.join(_VOCAB_DIR, "attributes_vocab.txt")


def load_class_names(path: Optional[str] = None) -> List[str]:
    """Read a class vocabulary: one class per line, the first comma-separated alias is its name.

    Line ``i`` (0-based) is class id ``i + 1``; id 0 is background. Trailing blank lines are ignored;
    a blank line in the middle is an error (it would shift every later id).

    Args:
        path: the vocabulary file; default :func:`default_class_names_path`.
    """
    path = path or default_class_names_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class-names file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = []
    for i, line in enumerate(lines):
        name = line.split(",")[0].strip()
        if not name:
            raise ValueError(f"{path}: line {i + 1} is blank; every line must name a class")
        names.append(name)
    if not names:
        raise ValueError(f"{path}: no class names")
    return names
