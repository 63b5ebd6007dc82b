"""The parser benchmark: quality and speed of a scene-graph parser on gold captions, against a
baseline.

:func:`evaluate_parser` (what ``graphmatch eval-parser`` and
``experiments/benchmarks/bench_parser.py`` run) parses the captions of a gold JSONL file with the
parser (and optionally the public ``sng_parser`` baseline), times both the same way
(:func:`run_timed`: a warm-up, then interleaved timed passes) and scores both with
:func:`parsers.evaluation.score_records` (SPICE-style tuple matching, one shared normaliser);
:func:`format_eval_table` prints the result. Gold files are read by :func:`load_gold`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from graphmatch.utils.jsonl import JSONLError, read_jsonl

from .parser import make_parser

__all__ = ["load_gold", "make_normalizer", "make_sng", "run_ours", "run_sng", "run_timed", "evaluate_parser",
           "format_eval_table", "BASELINES"]

PathLike = Union[str, os.PathLike]

#: Baselines :func:`evaluate_parser` can compare with.
BASELINES = ("sng",)


def make_normalizer(model: Optional[str] = None) -> Any:
    """The phrase normaliser used on both sides of a parser evaluation
    (:class:`parsers.evaluation.Normalizer`)."""
    from .evaluation import Normalizer

    return Normalizer(model)


def load_gold(path: PathLike, limit: Optional[int] = None) -> List[Dict[str, Any]]:
    """The records of a gold JSONL file (FACTUAL form: ``caption``, ``objects``, ``attributes``,
    ``relations``), read with :func:`graphmatch.utils.jsonl.read_jsonl` (blank lines skipped).
    A line that is not a JSON object with a ``caption`` string, or whose attributes / relations
    are not lists of 2 / 3, raises :class:`~graphmatch.utils.jsonl.JSONLError` naming
    ``file:line``."""
    path = Path(path)
    if limit is not None and limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    golds: List[Dict[str, Any]] = []
    for n, rec in read_jsonl(path, what="gold", limit=limit):
        if not isinstance(rec.get("caption"), str):
            raise JSONLError(path, n, "has no 'caption' string", "gold")
        for key, width in (("attributes", 2), ("relations", 3)):
            for t in rec.get(key) or []:
                if not isinstance(t, (list, tuple)) or len(t) < width:
                    raise JSONLError(path, n, f"has a {key} entry {t!r} that is not a list of {width}", "gold")
        golds.append(rec)
    return golds


def run_ours(parser: Any, captions: Sequence[str], batch_size: Optional[int] = None
             ) -> Tuple[List[Dict[str, Any]], float]:
    """Parse ``captions`` with ``parser.pipe`` (one batched pass); return the records of the
    graphs' FACTUAL-style view (:meth:`SceneGraph.to_dict` of
    :func:`graphmatch.structures.merge_instances`: one object per name, which is how FACTUAL
    annotates) and the seconds the parsing took (record conversion excluded)."""
    from graphmatch.structures import merge_instances

    captions = list(captions)
    t0 = time.perf_counter()
    graphs = list(parser.pipe(captions, batch_size=batch_size))
    secs = time.perf_counter() - t0
    if len(graphs) != len(captions):
        raise RuntimeError(f"parser.pipe returned {len(graphs)} graphs for {len(captions)} captions")
    return [merge_instances(g).to_dict() for g in graphs], secs


def make_sng(model: Optional[str]) -> Any:
    """The ``sng_parser`` baseline on the spaCy ``model`` (its own spaCy backend)."""
    try:
        import sng_parser
    except ImportError as e:
        raise RuntimeError("the sng baseline needs the 'SceneGraphParser' package (import sng_parser)") from e
    try:
        return sng_parser.Parser("spacy", model=model) if model else sng_parser.Parser("spacy")
    except (OSError, ImportError) as e:
        raise RuntimeError(f"sng_parser could not load spaCy model {model!r}: {e}") from e


def run_sng(sng: Any, captions: Sequence[str]) -> Tuple[List[Dict[str, Any]], float, int]:
    """Parse ``captions`` with ``sng.parse`` one caption at a time (as that package works); return
    the records (:func:`parsers.evaluation.sng_to_record`), the parse seconds (conversion
    excluded) and the number of captions it raised on (scored as empty graphs)."""
    from .evaluation import sng_to_record

    raw: List[Dict[str, Any]] = []
    errors = 0
    t0 = time.perf_counter()
    for c in captions:
        try:
            raw.append(sng.parse(c))
        except Exception:
            errors += 1
            raw.append({"entities": [], "relations": []})
    secs = time.perf_counter() - t0
    return [sng_to_record(g) for g in raw], secs, errors


def _rate(n: int, secs: float) -> Optional[float]:
    return n / secs if secs > 0 else None


def run_timed(parser: Any, captions: Sequence[str], *, sng: Any = None, batch_size: Optional[int] = None,
              warmup: int = 20, repeats: int = 1) -> Dict[str, Dict[str, Any]]:
    """Run the parser (and ``sng``, if given) on ``captions`` the way :func:`evaluate_parser` and
    the parser benchmark time them: a warm-up on the first ``warmup`` captions (not timed), then
    ``repeats`` timed passes of each system, interleaved (:func:`run_ours`, :func:`run_sng`).

    Returns ``{"ours": {"preds", "times"}, "sng": {"preds", "times", "errors"}}`` (``"sng"`` only
    with a baseline); ``preds`` are the records of the first timed pass, ``times`` the seconds of
    every pass."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    captions = list(captions)
    if warmup and captions:
        run_ours(parser, captions[:warmup], batch_size)
        if sng is not None:
            run_sng(sng, captions[:warmup])
    out: Dict[str, Dict[str, Any]] = {"ours": {"preds": None, "times": []}}
    if sng is not None:
        out["sng"] = {"preds": None, "times": [], "errors": 0}
    for _ in range(repeats):
        preds, secs = run_ours(parser, captions, batch_size)
        if out["ours"]["preds"] is None:
            out["ours"]["preds"] = preds
        out["ours"]["times"].append(secs)
        if sng is not None:
            spreds, ssecs, errors = run_sng(sng, captions)
            if out["sng"]["preds"] is None:
                out["sng"]["preds"], out["sng"]["errors"] = spreds, errors
            out["sng"]["times"].append(ssecs)
    return out


def evaluate_parser(gold: PathLike, *, model: Optional[str] = None, baseline: Optional[str] = None,
                    limit: Optional[int] = None, batch_size: Optional[int] = None, parser: Any = None,
                    normalizer: Any = None, warmup: int = 20, repeats: int = 1) -> Dict[str, Any]:
    """Score the parser (and the ``baseline``, ``"sng"`` or ``None``) on the captions of ``gold``.

    Both systems parse the same captions after a warm-up on the first ``warmup`` of them (model
    loading is not timed); the timed part is the parse call(s) only, record conversion excluded;
    with ``repeats`` > 1 the fastest of that many interleaved passes counts (:func:`run_timed`).
    Both are scored by :func:`parsers.evaluation.score_records` with one shared normaliser
    (default :func:`make_normalizer` for ``model``).

    Returns ``{"gold", "n_captions", "model", "ours": {"name", "version", "scores", "seconds",
    "times_s", "captions_per_s"}, "sng": {...} (with a baseline, plus "errors"), "speed_ratio"
    (ours / baseline captions/s)}``.
    """
    from .evaluation import score_records

    golds = load_gold(gold, limit)
    if not golds:
        raise ValueError(f"{gold}: no gold records" + (f" (--limit {limit})" if limit is not None else ""))
    captions = [g["caption"] for g in golds]
    if parser is None:
        parser = make_parser(model, batch_size)
    model_name = getattr(parser, "model_name", None) or model
    sng = None
    if baseline is not None:
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r} (known: {', '.join(BASELINES)})")
        sng = make_sng(model_name)
    if normalizer is None:
        normalizer = make_normalizer(model)
    runs = run_timed(parser, captions, sng=sng, batch_size=batch_size, warmup=warmup, repeats=repeats)

    def system(name: str, version: Optional[str], run: Dict[str, Any]) -> Dict[str, Any]:
        secs = min(run["times"])
        return {"name": name, "version": version, "scores": score_records(run["preds"], golds, normalizer),
                "seconds": round(secs, 4), "times_s": [round(t, 4) for t in run["times"]],
                "captions_per_s": _rate(len(captions), secs)}

    report: Dict[str, Any] = {
        "gold": str(gold), "n_captions": len(golds), "model": model_name,
        "ours": system("graphmatch", str(getattr(parser, "version", "")), runs["ours"]),
    }
    if sng is not None:
        report["sng"] = dict(system("sng_parser", _sng_version(), runs["sng"]), errors=runs["sng"]["errors"])
        a, b = report["ours"]["captions_per_s"], report["sng"]["captions_per_s"]
        report["speed_ratio"] = a / b if a and b else None
    return report


def _sng_version() -> Optional[str]:
    try:
        from importlib.metadata import version

        return version("SceneGraphParser")
    except Exception:
        return None


def format_eval_table(report: Dict[str, Any]) -> str:
    """The report of :func:`evaluate_parser` as a text table (P/R/F1 in percent per tuple kind,
    captions/s, and the speed ratio when there is a baseline)."""
    systems = [("ours", "graphmatch")] + ([("sng", "sng_parser")] if "sng" in report else [])
    col = 26
    lines = [f"gold: {report['gold']} ({report['n_captions']} captions); spaCy model: {report.get('model')}"]
    lines.append("; ".join(f"{name} {report[key].get('version') or '?'}" + (" (baseline)" if key == "sng" else "")
                           for key, name in systems))
    lines.append("")
    lines.append(f"{'':<12}" + "".join(f"{name:>{col}}" for _, name in systems))
    lines.append(f"{'':<12}" + "".join(f"{'P':>{col - 16}}{'R':>8}{'F1':>8}" for _ in systems))
    for cat in ("objects", "attributes", "relations", "all"):
        row = f"{cat:<12}"
        for key, _ in systems:
            sc = report[key]["scores"][cat]
            row += f"{sc['precision']:>{col - 16}.1f}{sc['recall']:>8.1f}{sc['f1']:>8.1f}"
        lines.append(row)
    row = f"{'captions/s':<12}"
    for key, _ in systems:
        r = report[key]["captions_per_s"]
        row += f"{(f'{r:.1f}' if r else '-'):>{col}}"
    lines.append(row)
    if "sng" in report:
        ratio = report.get("speed_ratio")
        lines.append("")
        lines.append(f"speed ratio (graphmatch / sng_parser captions/s): {f'{ratio:.2f}x' if ratio else '-'}")
        if report["sng"].get("errors"):
            lines.append(f"sng_parser raised on {report['sng']['errors']} captions (scored as empty graphs)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# structure-only minimal pairs
# --------------------------------------------------------------------------------------------

#: Most orderings :func:`canonical_graph` tries among objects its refinement cannot tell apart;
#: beyond it, the refined order alone is used (exact for every graph without such symmetric ties).
MAX_ORDERINGS = 5040


def _object_labels(sg: Any) -> List[Tuple[Any, ...]]:
    attrs: List[set] = [set() for _ in sg.objects]
    for a in sg.attributes:
        attrs[a.object].add(a.value)
    return [((o.lemma or o.name), o.quantity or "", tuple(sorted(attrs[i]))) for i, o in enumerate(sg.objects)]


def canonical_graph(sg: Any) -> Tuple[Tuple[Any, ...], Tuple[Tuple[int, str, int], ...]]:
    """An order-independent canonical form of a scene graph's structure: two graphs get the same
    form iff they are isomorphic as labelled directed graphs.

    Each object is labelled by ``(lemma, quantity, sorted attribute values)``; relations are
    labelled directed edges ``(subject, predicate, object)`` (duplicates count once). Tokens,
    spans and the order of objects, attributes and relations do not matter.

    Method: colour refinement (1-dimensional Weisfeiler-Leman) of the object labels over
    outgoing and incoming labelled edges, ``c_{t+1}(v) = (c_t(v), sorted{(p, c_t(w)) : v -p-> w},
    sorted{(p, c_t(u)) : u -p-> v})``, orders objects by colour; objects left with equal colours
    are ordered every possible way (up to :data:`MAX_ORDERINGS`) and the smallest resulting
    ``(labels, sorted relation triples)`` is the form, which makes it exact.

    Returns:
        ``(labels, relations)``: object labels in canonical order and sorted relation triples
        over canonical object numbers.
    """
    import itertools

    labels = _object_labels(sg)
    n = len(labels)
    edges = sorted({(r.subject, r.predicate, r.object) for r in sg.relations})
    colour: List[Any] = [repr(lab) for lab in labels]
    for _ in range(n):
        new = [repr((colour[v], sorted((p, colour[w]) for s, p, w in edges if s == v),
                     sorted((p, colour[u]) for u, p, w in edges if w == v))) for v in range(n)]
        stable = len(set(new)) == len(set(colour))
        colour = new
        if stable:
            break
    classes: Dict[str, List[int]] = {}
    for v in range(n):
        classes.setdefault(colour[v], []).append(v)
    groups = [classes[c] for c in sorted(classes)]
    n_orders = 1
    for g in groups:
        for k in range(2, len(g) + 1):
            n_orders *= k
    choices = [itertools.permutations(g) for g in groups] if n_orders <= MAX_ORDERINGS else [[tuple(g)] for g in groups]
    best = None
    for combo in itertools.product(*choices):
        order = [v for g in combo for v in g]
        pos = {v: k for k, v in enumerate(order)}
        form = (tuple(labels[v] for v in order), tuple(sorted((pos[s], p, pos[o]) for s, p, o in edges)))
        if best is None or form < best:
            best = form
    return best if best is not None else ((), ())


def load_pairs(path: PathLike) -> List[Dict[str, str]]:
    """The caption pairs of a JSONL file of ``{"a": caption, "b": caption, "kind": name}``
    (read with :func:`graphmatch.utils.jsonl.read_jsonl`; a bad line raises
    :class:`~graphmatch.utils.jsonl.JSONLError` naming ``file:line`` and the field)."""
    path = Path(path)
    pairs: List[Dict[str, str]] = []
    for n, rec in read_jsonl(path, what="caption pairs"):
        for key in ("a", "b", "kind"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise JSONLError(path, n, f"has no {key!r} string", "caption pairs")
        pairs.append({"a": rec["a"], "b": rec["b"], "kind": rec["kind"]})
    return pairs


def structure_pairs(parser: Any, pairs: Sequence[Dict[str, str]], *, view: str = "instances",
                    batch_size: Optional[int] = None) -> Dict[str, Any]:
    """How often the parser tells the captions of structure-only minimal pairs apart.

    Both captions of each pair are parsed (one batched ``parser.pipe``); a pair counts as told
    apart when the :func:`canonical_graph` forms of its two graphs differ. ``view`` is
    ``"instances"`` (the parser's graphs, one object per mention) or ``"merged"`` (after
    :func:`graphmatch.structures.merge_instances`, FACTUAL's one object per name).

    Returns:
        ``{"n", "differ", "rate", "view", "by_kind": {kind: {"n", "differ", "rate"}},
        "same": [pairs told apart by neither graph, with their forms]}`` (rates in percent).
    """
    from graphmatch.structures import merge_instances

    if view not in ("instances", "merged"):
        raise ValueError(f"view must be 'instances' or 'merged', got {view!r}")
    texts = [t for p in pairs for t in (p["a"], p["b"])]
    graphs = list(parser.pipe(texts, batch_size=batch_size))
    if view == "merged":
        graphs = [merge_instances(g) for g in graphs]
    by_kind: Dict[str, Dict[str, Any]] = {}
    same: List[Dict[str, Any]] = []
    differ = 0
    for k, p in enumerate(pairs):
        fa, fb = canonical_graph(graphs[2 * k]), canonical_graph(graphs[2 * k + 1])
        d = fa != fb
        differ += d
        slot = by_kind.setdefault(p["kind"], {"n": 0, "differ": 0})
        slot["n"] += 1
        slot["differ"] += d
        if not d:
            same.append({"a": p["a"], "b": p["b"], "kind": p["kind"], "graph": graphs[2 * k].to_dict()})
    for slot in by_kind.values():
        slot["rate"] = 100.0 * slot["differ"] / slot["n"]
    n = len(pairs)
    return {"n": n, "differ": differ, "rate": 100.0 * differ / n if n else 0.0, "view": view,
            "by_kind": dict(sorted(by_kind.items())), "same": same}
