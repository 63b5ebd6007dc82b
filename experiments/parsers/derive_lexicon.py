"""Count the train-derived tables of ``parsers/lexicon.py`` from FACTUAL *train*.

``parsers/lexicon.py`` marks these tables (or parts of them) as train-derived; this script counts
each with the criterion its comment there states:

* ``NON_OBJECTS`` — nouns the rules output >= 5 times that match a FACTUAL object in < 25 % of
  their captions;
* ``COMPOUND_ATTRIBUTES`` — compound modifiers whose attribute reading (head + attribute) occurs
  >= 3 times and at least as often as the compound name and the ``have`` reading together;
* ``NON_ATTRIBUTES`` — attribute values the rules output >= 5 times that match FACTUAL's
  attributes < 20 % of the time;
* ``PREDICATE_MAP`` — rule predicates for which one other FACTUAL predicate (same direction, or
  subject and object swapped) wins >= 4 times and in >= 50 % of their occurrences;
* ``CLOTHING`` — heads of FACTUAL objects that are the object of ``wear`` in >= 50 % (and >= 4) of
  the relations they are the object of (counted on the human graphs alone);
* ``NAME_MAP`` — rule object names that were the only unmatched object of their caption while
  FACTUAL's only unmatched object was one target name, >= 4 times and in >= 50 % of the name's
  occurrences, and that match a FACTUAL object in < 30 % of their captions;
* ``COMPOUND_OWNERS`` — compound modifiers whose ``(modifier, have, head)`` reading occurs >= 3
  times and at least as often as the compound name and the attribute reading together.

The rules already apply the current tables, so apart from ``CLOTHING`` (which does not depend on
the rules) the printed entries are what is still mis-mapped on top of them: candidates, reviewed
by hand before they go into ``parsers/lexicon.py``. The other tables of ``lexicon.py`` are hand
lists. Uses train only; never run it on dev or test.

    python experiments/parsers/derive_lexicon.py [--train ../shared/data/factual/train.jsonl] [--out tables.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from graphmatch.structures import merge_instances  # noqa: E402
from graphmatch.utils.jsonl import read_jsonl  # noqa: E402
from parsers import Normalizer, SceneGraphParser, graph_tuples  # noqa: E402

DEFAULT_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "factual" / "train.jsonl"


def load_train(path: Path) -> List[Dict[str, Any]]:
    """The records of a FACTUAL JSONL file (blank lines skipped; a bad line names file:line)."""
    return [rec for _, rec in read_jsonl(path, what="FACTUAL")]


class Counts:
    """What the criteria need, counted over (rule graph, human graph) pairs of train captions."""

    def __init__(self) -> None:
        self.pred_outcome: Dict[str, Counter] = defaultdict(Counter)   # rule predicate -> outcome
        self.obj_seen: Counter = Counter()          # rule object name -> captions it is output in
        self.obj_matched: Counter = Counter()       # ... and FACTUAL has it too
        self.name_target: Dict[str, Counter] = defaultdict(Counter)    # sole unmatched -> FACTUAL's
        self.compound: Dict[str, Counter] = defaultdict(Counter)       # modifier -> reading
        self.attr_seen: Counter = Counter()         # rule attribute value -> times output
        self.attr_matched: Counter = Counter()      # ... and FACTUAL has the (object, value) pair
        self.obj_relations: Counter = Counter()     # FACTUAL object head -> relations it is object of
        self.obj_worn: Counter = Counter()          # ... with predicate "wear"

    def add(self, graph: Any, gold: Dict[str, Any], norm: Any) -> None:
        """Count one caption: ``graph`` is the rules' SceneGraph, ``gold`` the FACTUAL record."""
        # FACTUAL's one-object-per-name view of the rules' instance graph, as eval-parser scores it
        pred, true = graph_tuples(merge_instances(graph).to_dict(), norm), graph_tuples(gold, norm)
        self._relations(pred["relations"], true["relations"])
        self._objects({o[0] for o in pred["objects"]}, {o[0] for o in true["objects"]})
        self._compounds(graph, true, norm)
        for a in pred["attributes"]:
            self.attr_seen[a[1]] += 1
            self.attr_matched[a[1]] += a in true["attributes"]
        self._clothing(gold.get("relations") or [], norm)

    def _relations(self, pred: Iterable[Tuple[str, str, str]], true: Iterable[Tuple[str, str, str]]) -> None:
        between: Dict[Tuple[str, str], set] = defaultdict(set)
        for s, p, o in true:
            between[(s, o)].add(p)
        for s, p, o in pred:
            if p in between[(s, o)]:
                outcome: Tuple[str, ...] = ("same",)
            elif between[(s, o)]:
                outcome = ("forward", sorted(between[(s, o)])[0])
            elif between[(o, s)]:
                outcome = ("reverse", sorted(between[(o, s)])[0])
            else:
                outcome = ("unmatched",)
            self.pred_outcome[p][outcome] += 1

    def _objects(self, pred: set, true: set) -> None:
        for o in pred:
            self.obj_seen[o] += 1
            self.obj_matched[o] += o in true
        only_pred, only_true = pred - true, true - pred
        if len(only_pred) == 1 and len(only_true) == 1:
            self.name_target[next(iter(only_pred))][next(iter(only_true))] += 1

    def _compounds(self, graph: Any, true: Dict[str, Any], norm: Any) -> None:
        true_objects = {o[0] for o in true["objects"]}
        for o in graph.objects:
            words = norm(o.lemma).split()
            if len(words) != 2:
                continue
            mod, head = words
            if (head, mod) in true["attributes"]:
                self.compound[mod]["attribute"] += 1
            elif (mod, "have", head) in true["relations"]:
                self.compound[mod]["have"] += 1
            elif f"{mod} {head}" in true_objects:
                self.compound[mod]["name"] += 1
            else:
                self.compound[mod]["other"] += 1

    def _clothing(self, relations: Sequence[Sequence[str]], norm: Any) -> None:
        for rel in relations:
            if len(rel) < 3:
                continue
            name = str(rel[2])
            # the last word as written and lemmatised: both "glasses" and "glass"
            heads = {words[-1] for words in (name.lower().split(), norm(name).split()) if words}
            worn = norm(str(rel[1])) == "wear"
            for h in heads:
                self.obj_relations[h] += 1
                self.obj_worn[h] += worn


def predicate_map(c: Counts) -> Dict[str, List[Any]]:
    out = {}
    for p, outcomes in c.pred_outcome.items():
        (best, n), = outcomes.most_common(1)
        if best[0] in ("forward", "reverse") and n >= 4 and n / sum(outcomes.values()) >= 0.5:
            out[p] = [best[1], best[0] == "reverse"]  # (FACTUAL predicate, reverse)
    return out


def non_objects(c: Counts) -> List[str]:
    return sorted(w for w, n in c.obj_seen.items() if n >= 5 and c.obj_matched[w] / n < 0.25)


def name_map(c: Counts) -> Dict[str, str]:
    out = {}
    for w, targets in c.name_target.items():
        (target, n), = targets.most_common(1)
        seen = c.obj_seen[w]
        if n >= 4 and n / seen >= 0.5 and c.obj_matched[w] / seen < 0.3:
            out[w] = target
    return out


def compound_readings(c: Counts, reading: str, others: Tuple[str, str]) -> List[str]:
    return sorted(m for m, r in c.compound.items() if r[reading] >= 3 and r[reading] >= r[others[0]] + r[others[1]])


def non_attributes(c: Counts) -> List[str]:
    return sorted(a for a, n in c.attr_seen.items() if n >= 5 and c.attr_matched[a] / n < 0.2)


def clothing(c: Counts) -> List[str]:
    return sorted(h for h, n in c.obj_relations.items() if c.obj_worn[h] >= 4 and c.obj_worn[h] / n >= 0.5)


def derive(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The candidate tables, keyed by their names in ``parsers/lexicon.py``."""
    parser = SceneGraphParser()
    norm = Normalizer(parser.nlp)
    counts = Counts()
    for graph, gold in zip(parser.pipe([r["caption"] for r in records]), records):
        counts.add(graph, gold, norm)
    return {
        "NON_OBJECTS": non_objects(counts),
        "COMPOUND_ATTRIBUTES": compound_readings(counts, "attribute", ("name", "have")),
        "NON_ATTRIBUTES": non_attributes(counts),
        "PREDICATE_MAP": predicate_map(counts),
        "CLOTHING": clothing(counts),
        "NAME_MAP": name_map(counts),
        "COMPOUND_OWNERS": compound_readings(counts, "have", ("name", "attribute")),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="FACTUAL train JSONL")
    ap.add_argument("--out", type=Path, help="write the tables here as JSON (default: stdout)")
    args = ap.parse_args(argv)
    text = json.dumps(derive(load_train(args.train)), indent=1, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
