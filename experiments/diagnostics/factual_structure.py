"""Structure test on real human annotation: FACTUAL's Visual Genome region captions and their scene graphs.

The "image" of a caption is its human scene graph as a visual graph
(:func:`graphmatch.data.annotated.annotated_visual_graph`: object nodes with name and attribute
features, directed relation edges with predicate features); the caption goes through the core
tokenizer and vocabulary into any text graph kind (``words``, ``full``, ``dependency``, ``scene``;
the last two parsed with the ``spacy_rules`` parser, cached, and aligned to the core tokens with
:func:`graphmatch.graphs.align_scene_graph`). A matcher is trained on TRAIN (one caption per graph)
and reported on EVAL: retrieval in both directions, and Winoground-style text / graph / group scores
on relation, attribute and object swaps (:mod:`experiments.diagnostics.swaps`,
:mod:`experiments.diagnostics.structure`). Twin captions are parsed again for graphs that need parses.

Usage::

    python experiments/diagnostics/factual_structure.py --train ../shared/data/factual/train.jsonl \\
        --eval ../shared/data/factual/dev.jsonl --matcher scan --out report.json
    python experiments/diagnostics/factual_structure.py --table scan,scan_gnn,gsmn,sgm --out-dir runs/structure

``--matcher`` takes a preset (``scan``, ``scan_gnn``, ``gsmn``, ``sgm``; see
:data:`experiments.diagnostics.structure.PRESETS`) or a registered matcher name; ``--set KEY=VALUE``
overrides any config key (``model.embed_dim=512``, ``model.image_gnn.name=gcn``). The report::

    {"matcher": ..., "n_eval": ...,
     "retrieval": {"g2c_r1", "g2c_r5", "g2c_r10", "c2g_r1", "c2g_r5", "c2g_r10", "rsum"},
     "swaps": {"relation": {"n", "text", "graph", "group"}, "attribute": {...}, "object": {...}}}

Scores are percentages. ``--table`` trains and reports each named matcher in turn, writes
``<out-dir>/<name>.json`` and prints a markdown table (a matcher that cannot be built is a row
saying why). The graphs have no boxes, so matchers that need box geometry (polar edges) fail with
the build error of their graph needs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
try:
    import experiments.diagnostics.structure  # noqa: F401
except ImportError:  # run as a script from a checkout: the repository root is not on the path
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from experiments.diagnostics import structure as st  # noqa: E402
from experiments.diagnostics.swaps import SWAP_KINDS, SwapCase, swap_cases  # noqa: E402
from graphmatch.data.annotated import (  # noqa: E402
    AnnotatedGraph, AnnotatedRelationEdges, NameEmbedder, annotated_visual_graph, build_predicate_vocab,
)
from graphmatch.data.vocab import Vocabulary, tokenize_with_offsets  # noqa: E402
from graphmatch.graphs import TEXT_GRAPHS, align_scene_graph  # noqa: E402
from graphmatch.utils.atomic import atomic_write_json  # noqa: E402
from graphmatch.utils.jsonl import read_jsonl  # noqa: E402

log = logging.getLogger("factual_structure")

SHARED = REPO.parent / "shared" / "data" / "factual"
DEFAULT_TRAIN = SHARED / "train.jsonl"
DEFAULT_EVAL = SHARED / "dev.jsonl"
TABLE_DEFAULT = ("scan", "scan_gnn", "gsmn", "sgm")


# ------------------------------------------------------------------------------------------ data
def read_records(path: Path, limit: Optional[int] = None) -> List[Tuple[str, AnnotatedGraph]]:
    """``(caption, graph)`` of each record of a FACTUAL-format JSONL file; records with no object
    or a caption without words are left out (logged)."""
    out, skipped = [], 0
    for lineno, rec in read_jsonl(path, what="FACTUAL"):
        where = f"{path}:{lineno}"
        caption = rec.get("caption")
        if not isinstance(caption, str):
            raise ValueError(f"{where}: 'caption' must be a string, got {type(caption).__name__}")
        graph = AnnotatedGraph.from_record(rec, where=where)
        if not graph.objects or not tokenize_with_offsets(caption):
            skipped += 1
            continue
        out.append((caption, graph))
        if limit is not None and len(out) >= limit:
            break
    if skipped:
        log.info("%s: %d records without objects or words left out", path, skipped)
    if not out:
        raise ValueError(f"{path}: no usable record (each needs a caption with words and at least one object)")
    return out


class CaptionGraphs:
    """Caption -> text graph of one kind, with the parses that kind needs (parsed once, cached)."""

    def __init__(self, kind: str, vocab: Vocabulary, options: Dict[str, Any], *, parse_cache: Optional[str] = None,
                 batch_size: int = 256) -> None:
        self.kind, self.vocab, self.options = kind, vocab, options
        self.builder = TEXT_GRAPHS.get(kind)
        self.needs_parse = bool(getattr(self.builder, "needs_parse", True))
        self.follow_batch = ["words"] if kind == "scene" else None
        self._parser: Any = None
        self._cache: Any = None
        self.parse_cache, self.batch_size = parse_cache, batch_size

    def _parse(self, texts: Sequence[str]) -> List[Any]:
        if self._parser is None:
            from parsers import ParseCache, build_parser

            self._parser = build_parser("spacy_rules")
            self._cache = ParseCache.for_parser(self._parser, self.parse_cache)
        from parsers import parse_with_cache

        return parse_with_cache(self._parser, list(texts), self._cache, batch_size=self.batch_size)

    def graphs(self, texts: Sequence[str]) -> List[Any]:
        parses: List[Any] = [None] * len(texts)
        if self.needs_parse:
            parses = [align_scene_graph(sg, tokenize_with_offsets(t)) for sg, t in zip(self._parse(texts), texts)]
        out = []
        for c, (t, sg) in enumerate(zip(texts, parses)):
            ids = torch.tensor(self.vocab.encode(t), dtype=torch.long)
            out.append(self.builder(ids, sg, item=c, **self.options))
        return out


def build_graphs(records: Sequence[Tuple[str, AnnotatedGraph]], embedder: NameEmbedder, predicates: Vocabulary) -> List[Any]:
    return [annotated_visual_graph(g, embedder, predicates, item=i) for i, (_, g) in enumerate(records)]


# ------------------------------------------------------------------------------------------ one run
def run(train_path: Path, eval_path: Path, matcher: str, *, overrides: Sequence[str] = (), epochs: int = 3,
        max_train: Optional[int] = None, max_eval: Optional[int] = None, batch_size: int = 128, seed: int = 0,
        max_steps: Optional[int] = None, word_dim: int = 300, word_vectors: Optional[str] = None,
        parse_cache: Optional[str] = None, tie_tol: float = st.DEFAULT_TIE_TOL, device: str = "cpu",
        imports: Sequence[str] = (), show_progress: bool = True) -> Dict[str, Any]:
    """Train ``matcher`` on ``train_path`` and return its report on ``eval_path`` (module docstring)."""
    started = time.time()
    cfg = st.build_config(matcher, [f"train.epochs={epochs}", f"train.batch_size={batch_size}", f"train.seed={seed}",
                                    *([f"train.max_steps_per_epoch={max_steps}"] if max_steps else []),
                                    *overrides], imports=imports)
    train = read_records(train_path, max_train)
    evalset = read_records(eval_path, max_eval)
    log.info("%d training pairs from %s, %d evaluation pairs from %s", len(train), train_path, len(evalset), eval_path)

    vocab = Vocabulary.build([c for c, _ in train], min_count=cfg.data.vocab_min_count)
    predicates = build_predicate_vocab(g for _, g in train)
    if word_vectors:
        names = {n for _, g in [*train, *evalset] for n in [*g.objects, *(v for _, v in g.attributes),
                                                           *(p for _, p, _ in g.relations)]}
        embedder = NameEmbedder.from_word_vectors(word_vectors, names, seed=seed)
        log.info("name embeddings: %d words from %s", embedder.n_file_words, word_vectors)
    else:
        embedder = NameEmbedder(word_dim, seed=seed)
    text = CaptionGraphs(cfg.data.graph.text_graph.name, vocab, cfg.data.graph.text_graph.kwargs(),
                         parse_cache=parse_cache)

    data = st.PairData(build_graphs(train, embedder, predicates), text.graphs([c for c, _ in train]),
                       follow_batch=text.follow_batch)
    try:
        model, info = st.train_matcher(cfg, data, img_dim=2 * embedder.dim, vocab=vocab,
                                       edges=AnnotatedRelationEdges(embedder.dim), device=device,
                                       show_progress=show_progress)
    except ValueError as e:
        if "needs visual graphs with edges" not in str(e):
            raise
        raise ValueError(f"{e}. The annotated graphs have no boxes: their only edges are the annotated relations "
                         "('relations', with predicate features), so this matcher cannot run on them") from None
    log.info("trained %s: %d steps in %.1f s, last loss %.4f", matcher, info["steps"], info["seconds"],
             info["final_loss"])

    eval_images = build_graphs(evalset, embedder, predicates)
    eval_captions = text.graphs([c for c, _ in evalset])
    retrieval = st.retrieval_report(model, eval_images, eval_captions, follow_batch=text.follow_batch, device=device,
                                    show_progress=show_progress)
    cases: Dict[str, Any] = {}
    for kind in SWAP_KINDS:
        found: List[SwapCase] = swap_cases(evalset, kind)
        twins = text.graphs([c.swapped_caption for c in found])
        twin_graphs = [annotated_visual_graph(c.swapped_graph, embedder, predicates, item=c.index) for c in found]
        cases[kind] = ([(eval_images[c.index], g) for c, g in zip(found, twin_graphs)],
                       [(eval_captions[c.index], t) for c, t in zip(found, twins)])
    swaps = st.swap_report(model, cases, tie_tol=tie_tol, follow_batch=text.follow_batch, device=device,
                           show_progress=show_progress)
    log.info("%s done in %.1f s", matcher, time.time() - started)
    return {"matcher": matcher, "n_eval": len(evalset), "retrieval": retrieval, "swaps": swaps}


# ------------------------------------------------------------------------------------------ table
def markdown_table(reports: Sequence[Tuple[str, Any]]) -> str:
    """A markdown table of reports (``(name, report or error message)``)."""
    head = ("| matcher | g2c R@1 | c2g R@1 | rsum | relation text / graph / group | "
            "attribute text / graph / group | object text / graph / group |")
    lines = [head, "|" + "---|" * 7]
    for name, rep in reports:
        if isinstance(rep, str):
            lines.append(f"| {name} | {rep} |" + " |" * 5)
            continue
        r, s = rep["retrieval"], rep["swaps"]
        cells = [f"{s[k]['text']:.1f} / {s[k]['graph']:.1f} / {s[k]['group']:.1f} (n={s[k]['n']})" for k in SWAP_KINDS]
        lines.append(f"| {name} | {r['g2c_r1']:.1f} | {r['c2g_r1']:.1f} | {r['rsum']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=Path, default=DEFAULT_TRAIN, help="FACTUAL-format JSONL to train on")
    ap.add_argument("--eval", type=Path, default=DEFAULT_EVAL, help="FACTUAL-format JSONL to report on")
    ap.add_argument("--matcher", default="scan", help=f"a preset ({', '.join(st.PRESETS)}) or a registered matcher")
    ap.add_argument("--table", default=None,
                    help=f"comma-separated presets / matchers to run in turn (e.g. {','.join(TABLE_DEFAULT)})")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override (repeatable), applied after the preset")
    ap.add_argument("--import", dest="imports", action="append", default=[], help="plug-in file or module")
    ap.add_argument("--out", type=Path, default=None, help="report JSON (one matcher)")
    ap.add_argument("--out-dir", type=Path, default=None, help="folder of <matcher>.json reports and table.md (--table)")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs (3: about 4 min for SCAN on one CPU thread)")
    ap.add_argument("--max-train", type=int, default=None, help="train on the first N records")
    ap.add_argument("--max-eval", type=int, default=None, help="report on the first N records")
    ap.add_argument("--max-steps", type=int, default=None, help="at most N training steps per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--word-dim", type=int, default=300, help="size of the random name embeddings (no --word-vectors)")
    ap.add_argument("--word-vectors", default=None, help="GloVe-format text file embedding the names")
    ap.add_argument("--parse-cache", default=None, help="parse cache folder (default: $GRAPHMATCH_CACHE/parses)")
    ap.add_argument("--tie-tol", type=float, default=st.DEFAULT_TIE_TOL,
                    help="score differences up to this count as ties (wrong)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    for p in (args.train, args.eval):
        if not p.is_file():
            ap.error(f"no such file: {p}")
    common = dict(overrides=args.overrides, epochs=args.epochs, max_train=args.max_train, max_eval=args.max_eval,
                  batch_size=args.batch_size, seed=args.seed, max_steps=args.max_steps, word_dim=args.word_dim,
                  word_vectors=args.word_vectors, parse_cache=args.parse_cache, tie_tol=args.tie_tol,
                  device=args.device, imports=args.imports, show_progress=not args.no_progress)
    if args.table is None:
        report = run(args.train, args.eval, args.matcher, **common)
        text = json.dumps(report, indent=2)
        if args.out is not None:
            atomic_write_json(args.out, report)
        print(text)
        return 0
    if args.out_dir is None:
        ap.error("--table needs --out-dir")
    names = [n.strip() for n in args.table.split(",") if n.strip()]
    print(st.run_table(names, lambda name: run(args.train, args.eval, name, **common), markdown_table, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
