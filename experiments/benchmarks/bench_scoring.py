"""Benchmark: batched SCAN scoring vs. the per-caption loop formulation.

Scores every (image, caption) pair of random l2-normalised region and word
embeddings with :func:`graphmatch.nn.functional.scan_t2i` (or ``scan_i2t``) and
with the released per-caption formulation (``graphmatch.testing.scan_t2i_loop`` /
``scan_i2t_loop``) on the same inputs, under ``torch.no_grad``, and prints one
JSON object: configuration, best-of-``repeats`` throughput of both, speedup and
the largest absolute difference between the two score matrices.

Usage::

    python experiments/benchmarks/bench_scoring.py [--n-images 100 --n-captions 500
        --regions 36 --dim 1024 --min-words 8 --max-words 16 --repeats 3
        --threads N --seed 0 --direction t2i --agg lse --chunk C --no-onednn]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

try:
    import graphmatch.nn.functional as gf
except ImportError:  # running from a checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import graphmatch.nn.functional as gf
from graphmatch.nn.functional.scan import auto_chunk
from graphmatch.testing import scan_i2t_loop, scan_t2i_loop


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-images", type=int, default=100)
    p.add_argument("--n-captions", type=int, default=500)
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--min-words", type=int, default=8)
    p.add_argument("--max-words", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--direction", choices=("t2i", "i2t"), default="t2i")
    p.add_argument("--agg", choices=gf.AGGREGATIONS, default="lse")
    p.add_argument(
        "--chunk", type=int, default=None,
        help="captions per block of the batched path (default: auto)",
    )
    p.add_argument(
        "--no-onednn", action="store_true",
        help="use torch.mm instead of oneDNN in the batched path",
    )
    args = p.parse_args(argv)
    if not 1 <= args.min_words <= args.max_words:
        p.error("need 1 <= --min-words <= --max-words")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def make_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random l2-normalised regions [n_images, R, D], words [n_captions, L, D] and word mask."""
    g = torch.Generator().manual_seed(args.seed)
    images = gf.l2norm(torch.randn(args.n_images, args.regions, args.dim, generator=g))
    words = gf.l2norm(torch.randn(args.n_captions, args.max_words, args.dim, generator=g))
    lengths = torch.randint(args.min_words, args.max_words + 1, (args.n_captions,), generator=g)
    word_mask = torch.arange(args.max_words).unsqueeze(0) < lengths.unsqueeze(1)
    words = words.masked_fill(~word_mask.unsqueeze(-1), 0.0)
    return images, words, word_mask


def best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.no_onednn:
        gf.ONEDNN_MATMUL = False
    images, words, word_mask = make_inputs(args)
    batched_fn = gf.scan_t2i if args.direction == "t2i" else gf.scan_i2t
    loop_fn = scan_t2i_loop if args.direction == "t2i" else scan_i2t_loop
    pairs = args.n_images * args.n_captions
    longest = int(word_mask.sum(dim=1).max()) if args.n_captions else 0
    chunk = args.chunk
    if chunk is None:  # the value scan_t2i / scan_i2t would pick
        chunk = auto_chunk(args.n_images * args.regions * longest)

    with torch.no_grad():
        t_batched, s_batched = best_time(
            lambda: batched_fn(images, None, words, word_mask, agg=args.agg, chunk=chunk),
            args.repeats,
        )
        t_loop, s_loop = best_time(
            lambda: loop_fn(images, None, words, word_mask, agg=args.agg), args.repeats
        )

    result = {
        "benchmark": "scan_scoring",
        "config": {
            "direction": args.direction,
            "agg": args.agg,
            "n_images": args.n_images,
            "n_captions": args.n_captions,
            "regions": args.regions,
            "dim": args.dim,
            "min_words": args.min_words,
            "max_words": args.max_words,
            "repeats": args.repeats,
            "seed": args.seed,
            "threads": torch.get_num_threads(),
            "chunk": chunk,
            "chunk_auto": args.chunk is None,
            "dtype": "float32",
            "device": "cpu",
            "onednn_matmul": bool(gf.ONEDNN_MATMUL and torch.backends.mkldnn.is_available()),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "pairs": pairs,
        "batched": {"best_s": t_batched, "pairs_per_s": pairs / t_batched},
        "loop": {"best_s": t_loop, "pairs_per_s": pairs / t_loop},
        "speedup": t_loop / t_batched,
        "max_abs_diff": float((s_batched - s_loop).abs().max()) if pairs else 0.0,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
