"""Benchmark: the graphmatch scene-graph parser vs. ``sng_parser`` (SceneGraphParser) on gold captions.

Both parsers run on the same captions in the same process with the same spaCy model: ours through
``SceneGraphParser.pipe`` (batched, unused pipeline components disabled), ``sng_parser`` through
its own API (``Parser('spacy', model=...).parse`` once per caption). The run is
:func:`parsers.benchmark.evaluate_parser` (what ``graphmatch eval-parser --baseline sng`` runs): a
warm-up on the first captions (not timed), then ``repeats`` timed passes of each, interleaved
(:func:`parsers.benchmark.run_timed`); the best one counts and the first one is scored. Scores
are micro P/R/F1 of :func:`parsers.evaluation.score_records` with one shared normaliser. Prints ONE JSON object:
captions/s and F1s of both, ``speed_ratio`` (ours / sng captions/s) and whether the targets
(relations F1 >= 60, all-tuples F1 >= 80, speed ratio >= 2) are met.

Usage::

    python experiments/benchmarks/bench_parser.py [--gold PATH] [--limit N] [--repeats R]
        [--model M] [--batch-size B]

Default gold: ``../shared/data/factual/dev.jsonl`` next to the repository if it exists, else
``tests/fixtures/factual_dev.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
try:
    import parsers.benchmark as bench
except ImportError:  # running from a checkout without installation
    sys.path.insert(0, str(REPO))
    import parsers.benchmark as bench
from parsers.parser import make_parser  # noqa: E402

TARGETS = {"relations_f1": 60.0, "all_f1": 80.0, "speed_ratio": 2.0}


def default_gold() -> Path:
    """The FACTUAL dev set next to the repository, else the copy in the test fixtures."""
    shared = REPO.parent / "shared" / "data" / "factual" / "dev.jsonl"
    return shared if shared.is_file() else REPO / "tests" / "fixtures" / "factual_dev.jsonl"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gold", type=Path, default=None, help="gold JSONL (default: see the module docstring)")
    p.add_argument("--limit", type=int, default=None, help="first N gold records only")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per parser (best counts)")
    p.add_argument("--model", default=None, help="spaCy model for both parsers (default: the parser's)")
    p.add_argument("--batch-size", type=int, default=None, help="nlp.pipe batch size of ours")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.gold is None:
        args.gold = default_gold()
    return args


def _scores(s: Dict[str, Any]) -> Dict[str, Any]:
    return {cat: {k: round(s[cat][k], 2) for k in ("precision", "recall", "f1")}
            for cat in ("objects", "attributes", "relations", "all")}


def _f1(s: Dict[str, Any]) -> Dict[str, float]:
    return {c: round(s[c]["f1"], 2) for c in ("objects", "attributes", "relations", "all")}


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    ours = make_parser(args.model, args.batch_size)
    # the same loading, warm-up, timing and scoring as `graphmatch eval-parser --baseline sng`
    ev = bench.evaluate_parser(args.gold, model=args.model, baseline="sng", limit=args.limit,
                            batch_size=args.batch_size, parser=ours, repeats=args.repeats)
    our, sng = ev["ours"], ev["sng"]
    ratio = ev["speed_ratio"]
    values = {"relations_f1": our["scores"]["relations"]["f1"], "all_f1": our["scores"]["all"]["f1"],
              "speed_ratio": ratio or 0.0}
    targets = {f"{k}>={t:g}": {"value": round(values[k], 2), "met": bool(values[k] >= t)} for k, t in TARGETS.items()}
    report = {
        "gold": ev["gold"],
        "n_captions": ev["n_captions"],
        "model": ev["model"],
        "repeats": args.repeats,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count()},
        "ours": {"version": our["version"], "batch_size": args.batch_size or getattr(ours, "batch_size", None),
                 "captions_per_s": round(our["captions_per_s"], 1), "times_s": our["times_s"],
                 "f1": _f1(our["scores"]), "scores": _scores(our["scores"])},
        "sng": {"version": sng["version"], "captions_per_s": round(sng["captions_per_s"], 1),
                "times_s": sng["times_s"], "errors": sng["errors"],
                "f1": _f1(sng["scores"]), "scores": _scores(sng["scores"])},
        "speed_ratio": round(ratio, 3) if ratio else None,
        "targets": targets,
        "all_targets_met": all(t["met"] for t in targets.values()),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
