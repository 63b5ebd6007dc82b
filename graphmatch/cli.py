"""Command line: ``graphmatch {train,eval,demo,synth,check-data,list,parse,eval-parser,extract}``.

This module only parses arguments into calls of the library; all behaviour lives in the library.
It is the one place that reaches into ``parsers`` and ``detectors``, and only inside functions:
``import graphmatch.cli`` loads neither. The ``extract`` options are read by
``detectors.extract`` when that command runs; spaCy is loaded only by ``parse`` and ``eval-parser``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "configs" / "scan_synthetic.yaml"


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_train(args: argparse.Namespace) -> int:
    from graphmatch.config import load_config
    from graphmatch.engine.train import train_experiment

    cfg = load_config(args.config, args.set)
    summary = train_experiment(cfg, resume=args.resume, progress=not args.quiet, regions=_open_regions(cfg.data.regions))
    if summary["best_rsum"] is None:
        print(f"no epoch was trained (train.epochs={cfg.train.epochs}, {summary['epochs_done']} done)")
        return 0
    print(f"best epoch {summary['best_epoch']}  val rsum {summary['best_rsum']:.2f}")
    print(f"checkpoints: {summary['best_checkpoint']} (best), {summary['last_checkpoint']} (last)")
    _print_run_files(summary["output_dir"])
    return 0


def _print_run_files(output_dir: str) -> None:
    """Say where the training log and the curves of a run folder are."""
    run = Path(output_dir)
    curves = run / "curves.png"
    print(f"training log: {run / 'log.jsonl'}; curves: "
          + (str(curves) if curves.is_file() else "not drawn (matplotlib is not installed)"))


def _open_regions(path: Optional[str]) -> Any:
    """The region source for ``data.regions`` (HDF5 store, BUTD TSV, precomp folder), or None."""
    if not path:
        return None
    from detectors.readers import open_regions

    return open_regions(path)


def run_eval(checkpoint: str, data: Optional[str], split: str, *, fold5: bool = False, out: Optional[str] = None,
             device: str = "auto", max_images: Optional[int] = None, progress: bool = True,
             regions: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate a checkpoint on a split; write the JSON report; return it.

    ``data`` / ``regions`` default to the checkpoint config's ``data.root`` / ``data.regions``;
    ``regions=""`` reads the split's ``{split}_ims.npy``. ``max_images`` must be >= 1; with
    ``fold5`` the number of images must be a multiple of 5 (checked before any encoding), the
    report's protocol names the real fold size ("5-fold 1K" only for 1,000-image folds) and other
    fold sizes print a warning to stderr.
    """
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) < 1):
        raise ValueError(f"--max-images must be >= 1, got {max_images!r}")
    from graphmatch.engine.checkpoint import load_checkpoint, resolve_checkpoint_dir
    from graphmatch.engine.evaluator import evaluate, read_hard_negatives
    from graphmatch.engine.train import load_split, resolve_device
    from graphmatch.utils.io import atomic_write_json

    dev = resolve_device(device)
    model, cfg, vocab, state = load_checkpoint(checkpoint, map_location=dev)
    root = cfg.data.root = data or cfg.data.root
    if regions is not None:  # "" reads <split>_ims.npy even when the training config named a region file
        cfg.data.regions = regions or None
    cfg.train.num_workers = 0
    md = load_split(cfg, split, vocab, _open_regions(cfg.data.regions))
    img_dim = getattr(getattr(model, "image_encoder", None), "img_dim", None)
    if img_dim is not None and md.feature_dim != img_dim:
        raise ValueError(f"split {split!r} of {root} has {md.feature_dim}-d region features; "
                         f"the checkpoint expects {img_dim}")
    images = None if max_images is None else list(range(min(max_images, md.n_images)))
    protocol, fold_warning = "all", None
    if fold5:
        from graphmatch.metrics import fold_protocol

        try:
            protocol, fold_warning = fold_protocol(md.n_images if images is None else len(images), 5)
        except ValueError as e:
            raise ValueError(f"--fold5 on split {split!r} of {root}"
                             + (f" (--max-images {max_images})" if max_images is not None else "") + f": {e}") from None
        if fold_warning:
            print(f"graphmatch eval: warning: --fold5: {fold_warning}", file=sys.stderr)
    t0 = time.time()
    metrics = evaluate(model, md, fold5=fold5, batch_size=cfg.eval.batch_size, img_chunk=cfg.eval.img_chunk,
                       cap_chunk=cfg.eval.cap_chunk, device=dev, image_indices=images,
                       hard_negatives=read_hard_negatives(root, split), progress=progress)
    report = {
        "checkpoint": str(resolve_checkpoint_dir(checkpoint)),
        "data": str(root),
        "split": split,
        "protocol": protocol,
        "n_images": md.n_images if images is None else len(images),
        "n_captions": md.n_captions if images is None else int(sum(len(md.split.captions_of_image[i]) for i in images)),
        "epoch": state.get("epoch"),
        "seconds": round(time.time() - t0, 2),
        "metrics": metrics,
    }
    if fold_warning:
        report["warning"] = fold_warning
    out_path = Path(out) if out else resolve_checkpoint_dir(checkpoint) / f"eval_{split}{'_fold5' if fold5 else ''}.json"
    atomic_write_json(out_path, report)
    report["report_path"] = str(out_path)
    return report


def _print_report(report: Dict[str, Any]) -> None:
    from graphmatch.metrics import format_metrics_table

    m = report["metrics"]
    print(f"split {report['split']!r}, protocol: {report['protocol']}")
    print(format_metrics_table(m))
    if "hardneg_acc" in m:
        kinds = ", ".join(f"{k[len('hardneg_acc_'):]} {v:.1f}%" for k, v in m.items()
                          if k.startswith("hardneg_acc_"))
        print(f"hard negatives ranked below their true caption: {m['hardneg_acc']:.1f}% of {m['hardneg_n']} ({kinds})")
    print(f"report: {report['report_path']}")


def cmd_eval(args: argparse.Namespace) -> int:
    report = run_eval(args.checkpoint, args.data, args.split, fold5=args.fold5, out=args.out, device=args.device,
                      max_images=args.max_images, progress=not args.quiet, regions=args.regions)
    if args.json:
        _print_json(report)
    else:
        _print_report(report)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from graphmatch.config import load_config
    from graphmatch.engine.train import train_experiment

    out = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    overrides = [f"output_dir={out}", f"data.root={args.data}", *args.set]
    if args.minutes is not None:
        overrides.append(f"train.max_minutes={args.minutes}")
    cfg = load_config(args.config, overrides)
    print(f"graphmatch demo: SCAN (t2i) on SYNTHETIC scenes in {cfg.data.root} -> {cfg.output_dir}")
    t0 = time.time()
    summary = train_experiment(cfg, progress=not args.quiet, regions=_open_regions(cfg.data.regions))
    if summary["best_rsum"] is None:
        raise ValueError(f"no epoch was trained (train.epochs={cfg.train.epochs})")
    print(f"trained {summary['epochs_done']} epochs in {(time.time() - t0) / 60:.1f} min; "
          f"best validation rsum {summary['best_rsum']:.1f} (epoch {summary['best_epoch']})")
    report = run_eval(summary["best_checkpoint"], cfg.data.root, cfg.data.test_split, device=cfg.train.device,
                      progress=not args.quiet)
    _print_report(report)
    print(f"checkpoint: {summary['best_checkpoint']}")
    _print_run_files(cfg.output_dir)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from graphmatch.data.synthetic import generate_synthetic

    summary = generate_synthetic(args.out, n_train=args.n_train, n_dev=args.n_dev, n_test=args.n_test,
                                 captions_per_image=args.captions_per_image, n_regions=args.regions,
                                 feature_dim=args.feature_dim, seed=args.seed, progress=True)
    _print_json(summary)
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from graphmatch.data.check import check_data, verify_manifest, write_manifest

    if args.verify:
        problems = verify_manifest(args.dir, args.verify, progress=not args.quiet)
        for p in problems:
            print(f"MISMATCH [{p.code}] {p.message}")
        print(f"manifest {args.verify}: " + ("all files match" if not problems else f"{len(problems)} mismatches"))
        return 1 if problems else 0
    report = check_data(args.dir, args.split or None, full=not args.fast, progress=not args.quiet,
                        manifest=not args.no_manifest)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.format())
    if args.manifest:
        write_manifest(args.manifest, args.dir, report.manifest)
        print(f"manifest written to {args.manifest} (check it later with --verify {args.manifest})")
    return 0 if report.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    from graphmatch.registry import list_all

    for module in ("detectors", "parsers.parser"):  # their imports register extractors and parsers
        try:
            __import__(module)
        except ImportError as e:
            print(f"({module} not importable: {e})", file=sys.stderr)
    for kind, names in list_all().items():
        print(f"{kind}: {', '.join(names) if names else '(none)'}")
    return 0


def _parse_cache(args: argparse.Namespace, parser: Any) -> Any:
    """The parse cache for ``parse``: ``--cache DIR``, else ``$GRAPHMATCH_CACHE/parses``, else
    ``~/.cache/graphmatch/parses``; ``None`` with ``--no-cache``."""
    from parsers.cache import ParseCache

    if args.no_cache:
        return None
    return ParseCache.for_parser(parser, args.cache)


def cmd_parse(args: argparse.Namespace) -> int:
    from parsers.commands import make_parser, parse_file

    if not Path(args.captions).is_file():
        raise FileNotFoundError(f"captions file not found: {args.captions}")
    parser = make_parser(args.model, args.batch_size)
    cache = _parse_cache(args, parser)

    def warn(msg: str) -> None:
        from graphmatch.utils.progress import write

        write(f"graphmatch parse: warning: {msg}", file=sys.stderr)

    try:
        s = parse_file(args.captions, args.out, parser=parser, batch_size=args.batch_size, cache=cache,
                       strict=args.strict, overwrite=args.overwrite, chunk_size=args.chunk_size,
                       max_chars=args.max_chars, progress=not args.quiet, on_warning=warn)
    except KeyboardInterrupt:
        print(f"interrupted; every complete record in {args.out} is kept (run the same command again "
              f"to continue)", file=sys.stderr)
        return 130
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        _print_json(s)
        return 0
    if not s["written"] and s["resumed_from"] == s["lines"]:
        print(f"{s['output']}: already complete ({s['lines']} records)")
        return 0
    resumed = f", {s['resumed_from']} kept from an earlier run" if s["resumed_from"] else ""
    rate = f" ({s['captions_per_s']:.0f} captions/s)" if s["captions_per_s"] else ""
    print(f"{s['output']}: {s['lines']} records{resumed}; {s['written']} written in {s['seconds']:.1f} s{rate}; "
          f"{s['parsed']} captions parsed, {s['from_cache']} from the cache")
    if s["notes"]:
        print("notes: " + ", ".join(f"{n} {k}" for k, n in sorted(s["notes"].items())))
    if s["warnings"]:
        print(f"{s['warnings']} problem lines (see the warnings)")
    return 0


def cmd_eval_parser(args: argparse.Namespace) -> int:
    from parsers.commands import evaluate_parser, format_eval_table

    try:
        report = evaluate_parser(args.gold, model=args.model, baseline=args.baseline, limit=args.limit,
                                 batch_size=args.batch_size)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report))
    else:
        print(format_eval_table(report))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """The extract options are defined by ``detectors.extract`` and parsed here, so that other
    commands never import ``detectors``."""
    from detectors.extract import add_extract_arguments, run_extract

    ex = argparse.ArgumentParser(prog="graphmatch extract", description=EXTRACT_HELP)
    add_extract_arguments(ex)
    return run_extract(ex.parse_args(args.extract_args))


EXTRACT_HELP = ("extract Faster R-CNN region features of a folder of images into an HDF5 store (resumable, "
                "sharded with torchrun); `graphmatch extract -h` lists the options")


def _add_extract_parser(sub: Any) -> None:
    ex = sub.add_parser("extract", help=EXTRACT_HELP, add_help=False)
    ex.set_defaults(func=cmd_extract, extract_args=[])


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphmatch", description="Graph-based fine-grained image-sentence matching.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", help="YAML config file (see experiments/configs/)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    t.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/last")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint (retrieval R@K, rsum, medr/meanr)")
    e.add_argument("checkpoint", help="checkpoint folder (or a run folder: uses checkpoints/best)")
    e.add_argument("--data", help="precomp data folder (default: the one in the checkpoint's config)")
    e.add_argument("--regions", help="region file (HDF5 store, BUTD TSV) keyed by <split>_ids.txt, instead of "
                   "<split>_ims.npy (default: the checkpoint config's data.regions; '' for <split>_ims.npy)")
    e.add_argument("--split", default="test")
    e.add_argument("--fold5", action="store_true", help="MS-COCO 5-fold 1K protocol: metrics averaged over 5 "
                   "contiguous folds of n_images / 5 images (1K on the 5,000 COCO test images; n_images must "
                   "be a multiple of 5; default: all images at once, e.g. 5K)")
    e.add_argument("--out", help="JSON report path (default: <checkpoint>/eval_<split>.json)")
    e.add_argument("--device", default="auto")
    e.add_argument("--max-images", type=_positive_int, help="evaluate on the first N images only (N >= 1)")
    e.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("demo", help="generate SYNTHETIC data, train SCAN for a few minutes on CPU, evaluate")
    d.add_argument("--data", default="data/synthetic", help="where the synthetic data lives / is generated")
    d.add_argument("--out", help="run folder (default: runs/demo-<timestamp>)")
    d.add_argument("--config", default=str(DEMO_CONFIG))
    d.add_argument("--minutes", type=float, help="training time limit (default: the config's)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("synth", help="write the SYNTHETIC scenes data set in the precomp layout")
    s.add_argument("--out", default="data/synthetic")
    s.add_argument("--n-train", type=int, default=3000)
    s.add_argument("--n-dev", type=int, default=300)
    s.add_argument("--n-test", type=int, default=500)
    s.add_argument("--captions-per-image", type=int, default=5)
    s.add_argument("--regions", type=int, default=12)
    s.add_argument("--feature-dim", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_synth)

    cd = sub.add_parser("check-data", help="check a precomp data folder (counts, shapes, NaN / zero rows, ids "
                        "order, encodings, boxes) and print a checksum manifest; exit 1 on an error")
    cd.add_argument("dir", help="data folder (precomp layout, or captions + ids of a region store)")
    cd.add_argument("--split", action="append", default=[], help="split to check (repeatable; default: every "
                    "<split>_caps.txt)")
    cd.add_argument("--fast", action="store_true", help="headers and text files only; no scan of the arrays")
    cd.add_argument("--manifest", metavar="PATH", help="also write the manifest (JSON: file, bytes, sha256) to PATH")
    cd.add_argument("--verify", metavar="PATH", help="only compare the folder with a manifest (graphmatch JSON or "
                    "`sha256sum` output); exit 1 on a mismatch")
    cd.add_argument("--no-manifest", action="store_true", help="skip the checksums")
    cd.add_argument("--json", action="store_true", help="print the report as JSON")
    cd.add_argument("--quiet", action="store_true", help="no progress bars")
    cd.set_defaults(func=cmd_check_data)

    ls = sub.add_parser("list", help="list registered matchers, encoders, GNN layers, ...")
    ls.set_defaults(func=cmd_list)

    pa = sub.add_parser("parse", help="parse a captions file (one per line) into scene graphs (JSONL, resumable)")
    pa.add_argument("captions", help="UTF-8 text file, one caption per line")
    pa.add_argument("--out", required=True, help="output JSONL, one record per input line; an existing "
                    "partial file is continued")
    pa.add_argument("--model", help="spaCy model (default: the parser's)")
    pa.add_argument("--batch-size", type=_positive_int, help="captions per spaCy batch (default: the parser's, 256)")
    pa.add_argument("--cache", metavar="DIR", help="parse cache folder (default: $GRAPHMATCH_CACHE/parses, "
                    "else ~/.cache/graphmatch/parses)")
    pa.add_argument("--no-cache", action="store_true", help="neither read nor write the parse cache")
    pa.add_argument("--strict", action="store_true", help="stop with an error at a line that cannot be parsed "
                    "(invalid UTF-8, too long, parser failure) instead of writing an empty graph")
    pa.add_argument("--overwrite", action="store_true", help="start over instead of continuing --out")
    pa.add_argument("--chunk-size", type=_positive_int, default=1024, help="lines per write + fsync (default 1024)")
    pa.add_argument("--max-chars", type=_positive_int, default=None,
                    help="lines longer than this are not parsed (empty graph with a note); default: every line "
                    "is parsed, captions over 20,000 characters truncated with a warning")
    pa.add_argument("--json", action="store_true", help="print the summary as JSON")
    pa.add_argument("--quiet", action="store_true", help="no progress bar")
    pa.set_defaults(func=cmd_parse)

    ep = sub.add_parser("eval-parser", help="score the scene-graph parser against gold graphs (P/R/F1, speed)")
    ep.add_argument("--gold", required=True, help="gold JSONL (FACTUAL form: caption, objects, attributes, "
                    "relations)")
    ep.add_argument("--baseline", choices=("sng",), help="also run sng_parser (SceneGraphParser) on the same "
                    "captions")
    ep.add_argument("--model", help="spaCy model for both parsers (default: the parser's)")
    ep.add_argument("--limit", type=int, help="first N gold records only")
    ep.add_argument("--batch-size", type=_positive_int, help="captions per spaCy batch")
    ep.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ep.set_defaults(func=cmd_eval_parser)

    _add_extract_parser(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Nothing here imports torch before the arguments are read (``--help`` and argument errors are
    # immediate). The library's error classes derive from the builtins caught below
    # (ConfigError is a ValueError, CheckpointError a RuntimeError), so none is imported to catch it.
    # torch-geometric triggers this on import with recent torch; it is not actionable for users
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "extract":
        args.extract_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, RuntimeError, ArithmeticError) as e:
        if args.verbose:
            raise
        print(f"graphmatch {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is kept (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
