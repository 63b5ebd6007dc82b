"""The ``graphmatch parse`` and ``graphmatch eval-parser`` commands: argument parsing and output.

They plug into the ``graphmatch`` command line through the ``graphmatch.commands`` entry point
(``parsers = parsers.cli:add_commands`` in ``setup.cfg``): :func:`add_commands` adds both
sub-commands; their handlers call the library (:func:`parsers.job.parse_file`,
:func:`parsers.job.parse_precomp`, :func:`parsers.benchmark.evaluate_parser`). Without the
``graphmatch`` command: ``python -m parsers.cli parse ...``.

Importing this module needs only the standard library, so that ``graphmatch --help`` and
argument errors stay immediate: spaCy, torch and the parser are imported when a command runs.
Exit status: 0 done, 2 an error (one line ``graphmatch parse: error: ...`` on stderr, printed by
the ``graphmatch`` command), 130 interrupted (every complete record is kept).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

__all__ = ["add_commands", "cmd_parse", "cmd_eval_parser", "main", "PARSE_HELP", "EVAL_PARSER_HELP"]

PARSE_HELP = ("parse captions into scene graphs: a captions file (one per line) into a parse file, or "
              "every split of a precomp folder into its {split}_graphs.jsonl sidecar (resumable)")
EVAL_PARSER_HELP = "score the scene-graph parser against gold graphs (P/R/F1, speed)"
PARSE_DESCRIPTION = (
    "Parse captions into scene graphs. `graphmatch parse CAPTIONS --out FILE` parses a captions file "
    "(one caption per line) into FILE; `graphmatch parse --precomp ROOT [--split S ...]` writes the parse "
    "sidecar ROOT/{S}_graphs.jsonl of every split found in ROOT (or of the given ones), which scene and "
    "dependency text graphs read. A parse file is a header line (caption file name and sha256, line count, "
    "parser) and one scene-graph record per caption line, in order. A killed run continues where it stopped "
    "when run again; a file whose header does not match (the captions changed after parsing, or another "
    "parser) is stale: it is an error naming the file, and --overwrite parses from scratch.")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_parse_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``graphmatch parse`` to ``p``; returns it."""
    p.add_argument("captions", nargs="?", help="UTF-8 text file, one caption per line (with --out)")
    p.add_argument("--out", help="the parse file to write for CAPTIONS; an existing partial file is continued")
    p.add_argument("--precomp", metavar="ROOT", help="precomp folder: parse ROOT/{split}_caps.txt into "
                   "ROOT/{split}_graphs.jsonl for every split there (or the --split ones)")
    p.add_argument("--split", action="append", default=[], metavar="S",
                   help="with --precomp: parse this split only (repeatable; default: every <split>_caps.txt)")
    p.add_argument("--model", help="spaCy model (default: the parser's)")
    p.add_argument("--batch-size", type=_positive_int, help="captions per spaCy batch (default: the parser's, 256)")
    p.add_argument("--cache", metavar="DIR", help="parse cache folder (default: $GRAPHMATCH_CACHE/parses, "
                   "else ~/.cache/graphmatch/parses)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the parse cache")
    p.add_argument("--strict", action="store_true", help="stop with an error at a line that cannot be parsed "
                   "(too long for --max-chars, parser failure) instead of writing an empty graph")
    p.add_argument("--overwrite", action="store_true", help="parse from scratch instead of continuing an "
                   "existing file (also replaces a stale one)")
    p.add_argument("--chunk-size", type=_positive_int, default=1024, help="lines per write + fsync (default 1024)")
    p.add_argument("--max-chars", type=_positive_int, default=None,
                   help="lines longer than this are not parsed (empty graph with a note); default: every line "
                   "is parsed, captions over 20,000 characters truncated with a warning")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def add_eval_parser_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of ``graphmatch eval-parser`` to ``p``; returns it."""
    p.add_argument("--gold", required=True, help="gold JSONL (FACTUAL form: caption, objects, attributes, "
                   "relations)")
    p.add_argument("--baseline", choices=("sng",), help="also run sng_parser (SceneGraphParser) on the same "
                   "captions")
    p.add_argument("--model", help="spaCy model for both parsers (default: the parser's)")
    p.add_argument("--limit", type=int, help="first N gold records only")
    p.add_argument("--batch-size", type=_positive_int, help="captions per spaCy batch")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p


def add_commands(subparsers: Any) -> None:
    """Add ``parse`` and ``eval-parser`` to the ``graphmatch`` command line (entry point of the
    ``graphmatch.commands`` group).

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.
    """
    pa = subparsers.add_parser("parse", help=PARSE_HELP, description=PARSE_DESCRIPTION)
    add_parse_arguments(pa)
    pa.set_defaults(func=cmd_parse)
    ep = subparsers.add_parser("eval-parser", help=EVAL_PARSER_HELP, description=EVAL_PARSER_HELP)
    add_eval_parser_arguments(ep)
    ep.set_defaults(func=cmd_eval_parser)


# --------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------

def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _parse_cache(args: argparse.Namespace, parser: Any) -> Any:
    """The parse cache for ``parse``: ``--cache DIR``, else ``$GRAPHMATCH_CACHE/parses``, else
    ``~/.cache/graphmatch/parses``; ``None`` with ``--no-cache``."""
    from parsers.cache import ParseCache

    if args.no_cache:
        return None
    return ParseCache.for_parser(parser, args.cache)


def _warn(msg: str) -> None:
    from graphmatch.utils.progress import write

    write(f"graphmatch parse: warning: {msg}", file=sys.stderr)


def _print_summary(s: Dict[str, Any]) -> None:
    if s.get("replaced"):
        print(f"replaced: {s['replaced']}")
    if not s["written"] and s["resumed_from"] == s["lines"]:
        print(f"{s['output']}: already complete ({s['lines']} records)")
        return
    resumed = f", {s['resumed_from']} kept from an earlier run" if s["resumed_from"] else ""
    rate = f" ({s['captions_per_s']:.0f} captions/s)" if s["captions_per_s"] else ""
    print(f"{s['output']}: {s['lines']} records{resumed}; {s['written']} written in {s['seconds']:.1f} s{rate}; "
          f"{s['parsed']} captions parsed, {s['from_cache']} from the cache")
    if s["notes"]:
        print("notes: " + ", ".join(f"{n} {k}" for k, n in sorted(s["notes"].items())))
    if s["warnings"]:
        print(f"{s['warnings']} problem lines (see the warnings)")


def cmd_parse(args: argparse.Namespace) -> int:
    """``graphmatch parse``: a captions file (``CAPTIONS --out FILE``) or the sidecars of a
    precomp folder (``--precomp ROOT [--split S ...]``)."""
    from parsers.job import parse_file, parse_precomp
    from parsers.parser import make_parser

    if args.precomp is not None:
        if args.captions is not None or args.out is not None:
            raise ValueError("--precomp writes the sidecars of a folder; give either --precomp ROOT or "
                             "CAPTIONS --out FILE, not both")
        if not Path(args.precomp).is_dir():
            raise FileNotFoundError(f"precomp folder not found: {args.precomp}")
    else:
        if args.split:
            raise ValueError("--split needs --precomp ROOT")
        if args.captions is None or args.out is None:
            raise ValueError("give CAPTIONS --out FILE (a captions file), or --precomp ROOT (a precomp folder)")
        if not Path(args.captions).is_file():
            raise FileNotFoundError(f"captions file not found: {args.captions}")
    parser = make_parser(args.model, args.batch_size)
    cache = _parse_cache(args, parser)
    options = dict(batch_size=args.batch_size, cache=cache, strict=args.strict, overwrite=args.overwrite,
                   chunk_size=args.chunk_size, max_chars=args.max_chars, progress=not args.quiet, on_warning=_warn)
    out = args.precomp if args.precomp is not None else args.out
    try:
        if args.precomp is not None:
            results = parse_precomp(args.precomp, args.split or None, parser=parser,
                                    on_split=None if args.json else lambda split, s: _print_summary(s), **options)
            if args.json:
                _print_json(results)
            return 0
        s = parse_file(args.captions, args.out, parser=parser, **options)
    except KeyboardInterrupt:
        print(f"interrupted; every complete record in {out} is kept (run the same command again to continue)",
              file=sys.stderr)
        return 130
    finally:
        if cache is not None:
            cache.close()
    if args.json:
        _print_json(s)
    else:
        _print_summary(s)
    return 0


def cmd_eval_parser(args: argparse.Namespace) -> int:
    """``graphmatch eval-parser``: P/R/F1 and speed of the parser (and a baseline) on gold graphs."""
    from parsers.benchmark import evaluate_parser, format_eval_table

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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m parsers.cli {parse,eval-parser} ...``: the same commands without ``graphmatch``."""
    p = argparse.ArgumentParser(prog="python -m parsers.cli", description="Scene-graph parsing of captions.")
    sub = p.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = p.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"{p.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
