"""How often the parser's scene graphs tell structure-only minimal caption pairs apart.

Each pair is two captions with (nearly) the same words and a different structure: a relation's
direction swapped, attributes exchanged between two entities, two entities of the same name told
apart by attributes or prepositional phrases, or a pronoun / repeated noun referring to another
entity. A pair is told apart when the canonical forms of its two graphs differ
(:func:`parsers.benchmark.canonical_graph`: objects with their attributes and the labelled
relations between them, independent of node order; :func:`parsers.benchmark.structure_pairs`).
Prints ONE JSON object: the rate in percent, per kind, and the pairs not told apart.

    python experiments/parsers/structure_pairs.py [--pairs tests/fixtures/structure_pairs.jsonl]
        [--view instances|merged] [--model M] [--out report.json]

``--view merged`` scores the FACTUAL-style one-object-per-name view
(:func:`graphmatch.structures.merge_instances`) of the same parses, for comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from parsers.benchmark import load_pairs, structure_pairs  # noqa: E402
from parsers.parser import make_parser  # noqa: E402

DEFAULT_PAIRS = REPO / "tests" / "fixtures" / "structure_pairs.jsonl"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS, help="JSONL of {a, b, kind} (default: the fixture)")
    p.add_argument("--view", choices=("instances", "merged"), default="instances",
                   help="the parser's graphs (instances, default) or their one-object-per-name view (merged)")
    p.add_argument("--model", default=None, help="spaCy model (default: the parser's)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    parser = make_parser(args.model)
    report = structure_pairs(parser, load_pairs(args.pairs), view=args.view)
    report = {"pairs": str(args.pairs), "parser": parser.version, **report}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
