"""Per-image relation triples for the ``relations`` visual edge builder.

``data.graph.visual_edges: {name: relations, file: "{root}/{split}_relations.jsonl"}`` builds each
image's edges from triples ``(subject_region, predicate_id, object_region)``, e.g. Visual Genome
annotations or a scene-graph predictor's output mapped onto the image's regions. The file is JSON
lines, one object per image that has relations::

    {"image_id": "synthetic_train_000001", "relations": [[0, 3, 2], [4, 1, 0]]}

Region indices count the image's regions in the order its region source gives them (for a precomp
split: its feature rows, all-zero padding rows left out). Images without a line get no edges.
Errors name the file and the line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from graphmatch.data.precomp import DataError

PathLike = Union[str, os.PathLike]
Triple = Tuple[int, int, int]

__all__ = ["read_relations"]


def read_relations(path: PathLike, image_ids: Sequence[str]) -> List[List[Triple]]:
    """The relation triples of every image of a split (``image_ids`` in row order).

    Raises:
        DataError: the file is missing; a line is not JSON, not an object with ``image_id`` and
            ``relations`` (a list of three integers each), names an image not in the split or
            repeats one; each naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"relation file {path} not found: data.graph.visual_edges 'relations' reads the relation "
                        "triples of each image from it (JSON lines {\"image_id\": ..., \"relations\": [[s, p, o], ...]};"
                        " set its 'file' option to where they are)", path=path, code="relations_missing")
    row = {str(i): k for k, i in enumerate(image_ids)}
    out: List[List[Triple]] = [[] for _ in image_ids]
    seen: Dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg})", path=path, record=f"line {lineno}",
                                code="relations_record") from None
            if not isinstance(rec, dict) or "image_id" not in rec or not isinstance(rec.get("relations"), list):
                raise DataError(f"{where}: expected an object with 'image_id' and a 'relations' list", path=path,
                                record=f"line {lineno}", code="relations_record")
            image_id = str(rec["image_id"])
            if image_id not in row:
                raise DataError(f"{where}: image id {image_id!r} is not an image of the split", path=path,
                                record=f"line {lineno}", code="relations_record")
            if image_id in seen:
                raise DataError(f"{where}: image id {image_id!r} repeats line {seen[image_id]}", path=path,
                                record=f"line {lineno}", code="relations_record")
            seen[image_id] = lineno
            triples = []
            for k, t in enumerate(rec["relations"]):
                if (not isinstance(t, list) or len(t) != 3
                        or not all(isinstance(v, int) and not isinstance(v, bool) for v in t)):
                    raise DataError(f"{where}: relations[{k}] = {t!r} is not [subject, predicate_id, object] "
                                    "(three integers)", path=path, record=f"line {lineno}", code="relations_record")
                triples.append((t[0], t[1], t[2]))
            out[row[image_id]] = triples
    return out
