"""The ``graphmatch extract`` command: argument parsing and the front end of the extraction job.

It plugs into the ``graphmatch`` command line through the ``graphmatch.commands`` entry point
(``detectors = detectors.cli:add_commands`` in ``setup.cfg``): :func:`add_commands` adds the
``extract`` sub-command, whose handler :func:`run_extract` builds the extractor from the arguments
and runs :func:`detectors.extract.extract_images` (or :func:`detectors.extract.merge_shards` with
``--merge-only``). Without the ``graphmatch`` command: ``python -m detectors.cli ARGS`` (also
under ``torchrun``; ``-m detectors.extract`` is the same).

Importing this module needs only the standard library, so that ``graphmatch --help`` and
argument errors stay immediate: torch, the extractor and the store are imported when the command
runs. Exit status: 0 done, 2 an error (one line ``graphmatch extract: error: ...`` on stderr),
143 stopped by ``SIGTERM`` (the finished images are committed; ``--resume`` continues).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

__all__ = ["EXTRACT_HELP", "add_commands", "add_extract_arguments", "run_extract", "main"]

EXTRACT_HELP = ("extract Faster R-CNN region features of a folder of images into an HDF5 store "
                "(resumable, sharded with torchrun)")
EXTRACT_DESCRIPTION = (
    "Extract Faster R-CNN region features (boxes, pooled features, class and attribute "
    "predictions) of a folder of images into an HDF5 region store. The store is crash safe "
    "(--resume continues after a kill), images that cannot be read are listed in "
    "<out>.failures.tsv, and with torchrun (or --world-size / --rank) each rank writes a shard "
    "that rank 0 merges into --out.")


def add_commands(subparsers: Any) -> None:
    """Add the ``extract`` sub-command to the ``graphmatch`` command line (entry point of the
    ``graphmatch.commands`` group).

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("extract", help=EXTRACT_HELP, description=EXTRACT_DESCRIPTION)
    add_extract_arguments(p)
    p.set_defaults(func=run_extract)


def add_extract_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``graphmatch extract`` to ``parser``; returns it."""
    p = parser
    p.add_argument("--images", help="folder of images (walked recursively, sorted)")
    p.add_argument("--out", required=True, help="region store to write, e.g. regions.h5")
    p.add_argument("--backend", default="torchvision", help="registered extractor (default: torchvision)")
    p.add_argument("--weights", help="local weights file (.safetensors, or .pth/.pt)")
    p.add_argument("--random-weights", action="store_true",
                   help="randomly initialised model (tests / smoke runs: the features are meaningless)")
    p.add_argument("--batch-size", type=int, help="images per forward pass (default: the extractor's)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--num-regions", type=int, help="fixed number of regions per image (default 36)")
    g.add_argument("--adaptive", action="store_true",
                   help="adaptive number of regions (10-100 above a confidence threshold)")
    p.add_argument("--min-size", type=int, help="shorter image side after resizing")
    p.add_argument("--max-size", type=int, help="longest image side after resizing")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other extractor option, e.g. conf_threshold=0.3 (value read as JSON "
                        "if possible)")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:N (under torchrun, cuda means cuda:LOCAL_RANK)")
    p.add_argument("--fp16", action="store_true", help="store features as float16")
    p.add_argument("--num-workers", type=int, default=2, help="background image-decoding processes")
    p.add_argument("--resume", action="store_true", help="continue an existing store, skipping stored images")
    p.add_argument("--ids-from-filename", action="store_true",
                   help="image id from the file name (trailing digits as an integer, e.g. "
                        "COCO_val2014_000000391895.jpg -> 391895) instead of the relative path")
    p.add_argument("--commit-every", type=int, default=256,
                   help="images per committed segment (work lost on a crash is at most this)")
    p.add_argument("--world-size", type=int, help="number of shards (default: $WORLD_SIZE or 1)")
    p.add_argument("--rank", type=int, help="this process's shard (default: $RANK or 0)")
    p.add_argument("--merge-wait", type=float, default=0.0,
                   help="without torchrun: seconds rank 0 waits for the other ranks before merging")
    p.add_argument("--keep-shards", action="store_true", help="keep <out>.rank{r} after merging")
    p.add_argument("--merge-only", action="store_true",
                   help="do not extract; merge the finished shards <out>.rank{r} into <out>")
    p.add_argument("--max-failures-in-a-row", type=int, default=None, metavar="N",
                   help="stop when N images in a row fail in the extractor with the same type of "
                        "error (default: the batch size, at least 2; 0: never stop)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _check_options(backend: str, opts: Dict[str, Any]) -> None:
    """Refuse ``--option`` keys that neither :class:`ExtractorOptions` nor the backend knows."""
    import difflib
    import inspect

    from detectors.extractor import EXTRACTORS, ExtractorOptions, load_builtin_backends

    load_builtin_backends()

    try:
        cls = EXTRACTORS.resolve(backend)
    except KeyError:
        return  # build_extractor names the unknown backend
    known = set(ExtractorOptions.field_names())
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known |= {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL} - {"options"}
    for key in opts:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise ValueError(f"--option {key}=...: unknown option {key!r} of the {backend!r} "
                             f"extractor" + (f" (did you mean {close[0]}?)" if close else "")
                             + f"; known options: {', '.join(sorted(known))}")


class _Terminated(BaseException):
    """``SIGTERM`` received: stop cleanly (the finished images are committed). A BaseException,
    like KeyboardInterrupt, so that no handler of image or extractor errors takes it."""


@contextlib.contextmanager
def _sigterm_stops_cleanly() -> Any:
    """In the main thread: turn ``SIGTERM`` into :class:`_Terminated` while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _parse_options(pairs: Sequence[str]) -> Dict[str, Any]:
    opts: Dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            opts[key.strip()] = json.loads(value)
        except ValueError:
            opts[key.strip()] = value
    return opts


def run_extract(args: argparse.Namespace) -> int:
    """Run ``graphmatch extract`` from parsed arguments; prints the summary; returns the exit code."""
    try:
        with _sigterm_stops_cleanly():
            return _run_extract(args)
    except _Terminated:
        print(f"graphmatch extract: terminated (SIGTERM); the images finished so far are "
              f"committed in {args.out}; rerun with --resume to continue", file=sys.stderr)
        return 128 + int(signal.SIGTERM)


def _run_extract(args: argparse.Namespace) -> int:
    from detectors.extract import (
        ExtractionError, extract_images, list_images, merge_shards, resolve_rank,
    )
    from detectors.store import StoreError, check_store_path
    from detectors.weights import WeightsError

    try:
        rank, world, launched = resolve_rank(args.rank, args.world_size)
        if args.merge_only:
            if world < 2:
                raise ValueError("--merge-only needs --world-size N (N >= 2)")
            order = None
            if args.images:
                order = [e.image_id for e in list_images(
                    args.images, ids_from_filename=args.ids_from_filename)[0]]
            n = merge_shards(args.out, world, order=order, keep_shards=args.keep_shards)
            print(f"merged {world} shards into {args.out} ({n} images)")
            return 0
        if not args.images:
            raise ValueError("--images DIR is required (unless --merge-only)")
        check_store_path(args.out)  # before the model is built
        if not Path(args.images).is_dir():
            raise FileNotFoundError(f"images folder not found: {args.images}")
        distributed = False
        device = args.device
        if launched and world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                import datetime

                dist.init_process_group(backend="gloo", timeout=datetime.timedelta(days=7))
            distributed = True
            if device == "cuda":
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        from detectors.extractor import build_extractor

        opts = _parse_options(args.option)
        _check_options(args.backend, opts)
        opts.update(device=device, random_weights=args.random_weights)
        for key in ("weights", "batch_size", "min_size", "max_size", "num_regions"):
            if getattr(args, key) is not None:
                opts[key] = getattr(args, key)
        if args.adaptive:
            opts["num_regions"] = None
        try:
            extractor = build_extractor(args.backend, **opts)
        except ImportError as e:  # an optional backend that is not installed
            raise ValueError(str(e)) from e
        except TypeError as e:  # an option of the wrong kind for the backend
            raise ValueError(f"--backend {args.backend} with options {sorted(opts)}: {e}") from e
        summary = extract_images(
            args.images, args.out, extractor, resume=args.resume, batch_size=args.batch_size,
            num_workers=args.num_workers, ids_from_filename=args.ids_from_filename, rank=rank,
            world_size=world, distributed=distributed,
            feature_dtype="float16" if args.fp16 else "float32", commit_every=args.commit_every,
            progress=not args.quiet, merge_wait=args.merge_wait, keep_shards=args.keep_shards,
            max_failures_in_a_row=args.max_failures_in_a_row)
    except (StoreError, ExtractionError, WeightsError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"graphmatch extract: error: {msg}", file=sys.stderr)
        return 2
    finally:
        with contextlib.suppress(Exception):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()
    print(summary.format())
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m detectors.cli ...``: the arguments of ``graphmatch extract``."""
    import warnings

    # torch-geometric (imported by the core's data package) warns about torch.jit.script on
    # import with recent torch; it is not actionable, and the graphmatch command hides it too
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    parser = add_extract_arguments(argparse.ArgumentParser(
        prog="graphmatch extract", description=EXTRACT_DESCRIPTION))
    return run_extract(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
