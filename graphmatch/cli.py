"""Command line: ``graphmatch {train,eval,demo,synth,check-data,list}`` plus the sub-commands of other
packages (``parse`` / ``eval-parser`` from ``parsers``, ``extract`` from ``detectors``), which plug in
through the ``graphmatch.commands`` entry-point group: each entry point is a function
``add_commands(subparsers)`` that adds its sub-parsers with ``set_defaults(func=handler)``.

This module only parses arguments into calls of the library (evaluation of a checkpoint is
:func:`graphmatch.engine.evaluation.evaluate_checkpoint`); it imports nothing heavy before the
arguments are read, so ``--help`` and argument errors are immediate.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: Where the command line's sub-commands of other packages come from.
COMMANDS_ENTRY_POINT_GROUP = "graphmatch.commands"


def demo_config_path() -> str:
    """The demo config (package data: it is inside the installed package)."""
    return str(resources.files("graphmatch") / "configs" / "scan_synthetic.yaml")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_train(args: argparse.Namespace) -> int:
    from graphmatch.config import load_config
    from graphmatch.engine.train import train_experiment

    cfg = load_config(args.config, args.set, imports=args.imports)
    summary = train_experiment(cfg, resume=args.resume, progress=not args.quiet)
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


def _print_report(report: Dict[str, Any]) -> None:
    from graphmatch.metrics import format_metrics_table

    m = report["metrics"]
    if "checkpoints" in report:
        ws = ", ".join(f"{w:g}" for w in report["weights"])
        print(f"ensemble of {len(report['checkpoints'])} checkpoints (weights {ws})")
    print(f"split {report['split']!r}, protocol: {report['protocol']}")
    print(format_metrics_table(m))
    if "hardneg_acc" in m:
        kinds = ", ".join(f"{k[len('hardneg_acc_'):]} {v:.1f}%" for k, v in m.items()
                          if k.startswith("hardneg_acc_"))
        print(f"hard negatives ranked below their true caption: {m['hardneg_acc']:.1f}% of {m['hardneg_n']} ({kinds})")
    print(f"report: {report['report_path']}")


def cmd_eval(args: argparse.Namespace) -> int:
    from graphmatch.engine.evaluation import evaluate_checkpoint, evaluate_ensemble

    common = dict(fold5=args.fold5, out=args.out, device=args.device, max_images=args.max_images,
                  progress=not args.quiet, regions=args.regions, imports=args.imports)
    if len(args.checkpoint) > 1:
        report = evaluate_ensemble(args.checkpoint, args.data, args.split, weights=args.weights, **common)
    else:
        if args.weights is not None:
            raise ValueError("--weights is for an ensemble of two or more checkpoints")
        report = evaluate_checkpoint(args.checkpoint[0], args.data, args.split, **common)
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
    cfg = load_config(args.config or demo_config_path(), overrides)
    print(f"graphmatch demo: SCAN (t2i) on SYNTHETIC scenes in {cfg.data.root} -> {cfg.output_dir}")
    t0 = time.time()
    summary = train_experiment(cfg, progress=not args.quiet)
    if summary["best_rsum"] is None:
        raise ValueError(f"no epoch was trained (train.epochs={cfg.train.epochs})")
    print(f"trained {summary['epochs_done']} epochs in {(time.time() - t0) / 60:.1f} min; "
          f"best validation rsum {summary['best_rsum']:.1f} (epoch {summary['best_epoch']})")
    from graphmatch.engine.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(summary["best_checkpoint"], cfg.data.root, cfg.data.test_split,
                                 device=cfg.train.device, progress=not args.quiet)
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
    from graphmatch.catalog import list_all
    from graphmatch.plugins import import_plugins, load_entry_points

    import_plugins(list(args.imports))
    for name, reason in load_entry_points().items():
        print(f"(plug-in {name} not loaded: {reason})", file=sys.stderr)
    for kind, names in list_all().items():
        print(f"{kind}: {', '.join(names) if names else '(none)'}")
    return 0


def add_plugin_commands(sub: Any) -> List[str]:
    """Add the sub-commands of the ``graphmatch.commands`` entry points; returns the problems of
    entry points that could not be loaded (their commands are then missing)."""
    from importlib.metadata import entry_points

    problems = []
    for ep in sorted(entry_points(group=COMMANDS_ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as e:  # one broken plug-in must not take the whole command line down
            problems.append(f"commands of {ep.name} ({ep.value}) not available: {type(e).__name__}: {e}")
    return problems


def _float_list(text: str) -> list:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE",
                   help="import a plug-in (a .py file or a module name) that registers components, before "
                   "anything is built (repeatable; also 'imports:' in the config)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphmatch", description="Graph-based fine-grained image-sentence matching.")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", help="YAML config file (see experiments/configs/)")
    _add_import(t)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    t.add_argument("--resume", action="store_true", help="continue from <output_dir>/checkpoints/last")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint (retrieval R@K, rsum, medr/meanr)")
    e.add_argument("checkpoint", nargs="+", help="checkpoint folder (or a run folder: uses checkpoints/best); "
                   "two or more: evaluate their ensemble (the weighted mean of their similarity matrices)")
    e.add_argument("--weights", type=_float_list, help="ensemble weights, comma-separated (default: equal)")
    _add_import(e)
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
    d.add_argument("--config", help="config file (default: the package's scan_synthetic.yaml)")
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
    _add_import(ls)
    ls.set_defaults(func=cmd_list)

    problems = add_plugin_commands(sub)
    p.set_defaults(plugin_problems=problems)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Nothing here imports torch before the arguments are read (``--help`` and argument errors are
    # immediate). The library's error classes derive from the builtins caught below
    # (ConfigError is a ValueError, CheckpointError a RuntimeError), so none is imported to catch it.
    # torch-geometric triggers this on import with recent torch; it is not actionable for users
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    for problem in getattr(args, "plugin_problems", []):
        print(f"graphmatch: warning: {problem}", file=sys.stderr)
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
