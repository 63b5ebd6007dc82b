"""Structure test on the SYNTHETIC scenes: retrieval and the hard-negative kinds of the demo data.

The synthetic data (:mod:`graphmatch.data.synthetic`) has region features with boxes for images,
five true captions per image and, per image, one or two hard negative captions
(``{split}_hardneg.jsonl``): a true caption with a relation's direction flipped
(``relation_flip``), the attributes of two objects exchanged (``attribute_swap``) or an attribute
replaced (``attribute_replace``). A matcher is trained on the train split through the standard
data path (``data.name: synthetic``, the preset's graph recipe) and reported on the evaluation split:

* retrieval, graph (image) -> caption and caption -> graph, R@1/5/10 and rsum over all images and
  their captions;
* for each hard-negative kind, the *text* score: the percentage of (image ``I``, true caption ``C``,
  negative ``C'``) with ``s(I, C) > s(I, C')`` (ties wrong, as in
  :mod:`experiments.diagnostics.structure`). The data has no twin images, so *graph* and *group*
  are ``null``.

The report has the shape of the FACTUAL one (``experiments/diagnostics/factual_structure.py``)
where it fits; ``n_eval`` counts images::

    {"matcher", "n_eval", "retrieval": {...}, "swaps": {"relation_flip": {"n", "text", "graph": null,
     "group": null}, "attribute_swap": {...}, "attribute_replace": {...}}}

Text graphs that need parses read the parse sidecars ``{split}_graphs.jsonl``, written here with
the ``spacy_rules`` parser when missing; the true and negative captions of the hard-negative
cases are parsed the same way (cached), so neither has structure the other lacks.

Usage::

    python experiments/diagnostics/synthetic_structure.py --root data/synthetic --matcher scan --out report.json
    python experiments/diagnostics/synthetic_structure.py --table scan,scan_gnn,gsmn,sgm --out-dir runs/synthetic_structure

Matchers are the presets of the FACTUAL test with visual edges suited to region boxes
(:data:`VISUAL_EDGES`): ``scan`` none, ``scan_gnn`` kNN geometry, ``gsmn`` polar, ``sgm`` kNN.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[2]
try:
    import experiments.diagnostics.structure  # noqa: F401
except ImportError:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from experiments.diagnostics import structure as st  # noqa: E402
from graphmatch.data import build_dataset  # noqa: E402
from graphmatch.data.vocab import tokenize_with_offsets  # noqa: E402
from graphmatch.graphs import align_scene_graph  # noqa: E402
from graphmatch.utils.atomic import atomic_write_json  # noqa: E402
from graphmatch.utils.jsonl import read_jsonl  # noqa: E402

log = logging.getLogger("synthetic_structure")

#: The hard-negative kinds of the synthetic data, in report order.
HARD_NEGATIVE_KINDS = ("relation_flip", "attribute_swap", "attribute_replace")
#: Visual edges of each preset on region boxes.
VISUAL_EDGES = {"scan": "none", "scan_gnn": "knn", "gsmn": "polar", "sgm": "knn"}


def synthetic_config(matcher: str, root: str, overrides: Sequence[str] = (), *, imports: Sequence[str] = ()) -> Any:
    """The config of ``matcher`` (a preset or a matcher name) on the synthetic data in ``root``."""
    edges = VISUAL_EDGES.get(matcher, "none")
    return st.build_config(matcher, ["data.name=synthetic", f"data.root={root}",
                                     f"data.graph.visual_edges.name={edges}", *overrides], imports=imports)


def read_hard_negatives(path: Path, n_images: int) -> List[Dict[str, Any]]:
    """The records ``{"image", "caption", "positive", "kind"}`` of a hard-negative file (checked)."""
    out = []
    for lineno, rec in read_jsonl(path, what="hard negatives"):
        where = f"{path}:{lineno}"
        for key, tp in (("image", int), ("caption", str), ("positive", str), ("kind", str)):
            if not isinstance(rec.get(key), tp):
                raise ValueError(f"{where}: {key!r} must be a {tp.__name__}, got {rec.get(key)!r}")
        if not 0 <= rec["image"] < n_images:
            raise ValueError(f"{where}: image {rec['image']} is outside 0..{n_images - 1}")
        out.append(rec)
    return out


class _Parses:
    """Aligned parses of free texts (the hard-negative cases), parsed once through the cache."""

    def __init__(self, parse_cache: Optional[str]) -> None:
        from parsers import ParseCache, build_parser

        self.parser = build_parser("spacy_rules")
        self.cache = ParseCache.for_parser(self.parser, parse_cache)

    def __call__(self, texts: Sequence[str]) -> List[Any]:
        from parsers import parse_with_cache

        graphs = parse_with_cache(self.parser, list(texts), self.cache)
        return [align_scene_graph(g, tokenize_with_offsets(t)) for g, t in zip(graphs, texts)]


def run(root: str, matcher: str, *, overrides: Sequence[str] = (), train_split: str = "train",
        eval_split: str = "dev", epochs: int = 3, batch_size: int = 128, seed: int = 0,
        max_steps: Optional[int] = None, parse_cache: Optional[str] = None, tie_tol: float = st.DEFAULT_TIE_TOL,
        device: str = "cpu", imports: Sequence[str] = (), show_progress: bool = True) -> Dict[str, Any]:
    """Train ``matcher`` on ``train_split`` of the synthetic data in ``root`` and report on ``eval_split``."""
    cfg = synthetic_config(matcher, root, [f"train.epochs={epochs}", f"train.batch_size={batch_size}",
                                           f"train.seed={seed}",
                                           *([f"train.max_steps_per_epoch={max_steps}"] if max_steps else []),
                                           *overrides], imports=imports)
    ds = build_dataset(cfg.data)
    ds.prepare(progress=show_progress)
    kind = cfg.data.graph.text_graph.name
    parses = None
    from graphmatch.graphs.text import needs_parse

    if needs_parse(kind):
        parses = _Parses(parse_cache)
        missing = [s for s in (train_split, eval_split) if not (Path(root) / f"{s}_graphs.jsonl").is_file()]
        if missing:
            from parsers.job import parse_precomp

            parse_precomp(root, splits=missing, parser=parses.parser, cache=parses.cache)
    train_raw = ds.load_split(train_split)
    vocab = ds.build_vocab(train_raw.captions)
    train = ds.load_split(train_split, vocab)
    model, info = st.train_matcher(cfg, train, img_dim=train.feature_dim, vocab=vocab, device=device,
                                   show_progress=show_progress)
    log.info("trained %s: %d steps in %.1f s, last loss %.4f", matcher, info["steps"], info["seconds"],
             info["final_loss"])

    ev = ds.load_split(eval_split, vocab)
    images = [ev.image_graph(i) for i in range(ev.n_images)]
    retrieval = st.retrieval_report(model, images, [ev.caption_graph(c) for c in range(ev.n_captions)],
                                    follow_batch=ev.follow_batch, img_of_caption=ev.img_of_caption, device=device,
                                    show_progress=show_progress)
    negatives = read_hard_negatives(Path(root) / f"{eval_split}_hardneg.jsonl", ev.n_images)
    swaps: Dict[str, Any] = {}
    for hk in HARD_NEGATIVE_KINDS:
        recs = [r for r in negatives if r["kind"] == hk]
        pos_sg = parses([r["positive"] for r in recs]) if parses is not None else [None] * len(recs)
        neg_sg = parses([r["caption"] for r in recs]) if parses is not None else [None] * len(recs)
        caps = [(ev.text_graph(r["positive"], scene_graph=p), ev.text_graph(r["caption"], scene_graph=n))
                for r, p, n in zip(recs, pos_sg, neg_sg)]
        imgs = [(images[r["image"]], images[r["image"]]) for r in recs]  # no twin image
        scores = (st.case_scores(model, imgs, caps, follow_batch=ev.follow_batch, device=device,
                                 show_progress=show_progress, desc=hk) if recs else torch.empty(0, 2, 2))
        w = st.winoground(scores, tie_tol=tie_tol)
        swaps[hk] = {"n": w["n"], "text": w["text"], "graph": None, "group": None}
    return {"matcher": matcher, "n_eval": ev.n_images, "retrieval": retrieval, "swaps": swaps}


def synthetic_table(reports: Sequence[Tuple[str, Any]]) -> str:
    """A markdown table of synthetic reports (``(name, report or error message)``)."""
    lines = ["| matcher | i2t R@1 | t2i R@1 | rsum | " + " | ".join(f"{k} text" for k in HARD_NEGATIVE_KINDS) + " |",
             "|" + "---|" * (4 + len(HARD_NEGATIVE_KINDS))]
    for name, rep in reports:
        if isinstance(rep, str):
            lines.append(f"| {name} | {rep} |" + " |" * (2 + len(HARD_NEGATIVE_KINDS)))
            continue
        r, s = rep["retrieval"], rep["swaps"]
        lines.append(f"| {name} | {r['g2c_r1']:.1f} | {r['c2g_r1']:.1f} | {r['rsum']:.1f} | "
                     + " | ".join(f"{s[k]['text']:.1f} (n={s[k]['n']})" for k in HARD_NEGATIVE_KINDS) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="data/synthetic", help="the synthetic data folder (generated when absent)")
    ap.add_argument("--matcher", default="scan", help=f"a preset ({', '.join(st.PRESETS)}) or a registered matcher")
    ap.add_argument("--table", default=None, help="comma-separated presets / matchers to run in turn")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--import", dest="imports", action="append", default=[])
    ap.add_argument("--train-split", default="train")
    ap.add_argument("--eval-split", default="dev")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=None, help="at most N training steps per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parse-cache", default=None)
    ap.add_argument("--tie-tol", type=float, default=st.DEFAULT_TIE_TOL)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    common = dict(overrides=args.overrides, train_split=args.train_split, eval_split=args.eval_split,
                  epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, max_steps=args.max_steps,
                  parse_cache=args.parse_cache, tie_tol=args.tie_tol, device=args.device, imports=args.imports,
                  show_progress=not args.no_progress)
    if args.table is None:
        report = run(args.root, args.matcher, **common)
        if args.out is not None:
            atomic_write_json(args.out, report)
        print(json.dumps(report, indent=2))
        return 0
    if args.out_dir is None:
        ap.error("--table needs --out-dir")
    names = [n.strip() for n in args.table.split(",") if n.strip()]
    print(st.run_table(names, lambda name: run(args.root, name, **common), synthetic_table, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
