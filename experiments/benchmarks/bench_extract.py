"""Benchmark: the full ``graphmatch extract`` path vs. a bare forward of the extractor.

Writes ``--n-images`` distinct JPEGs (crops and rescalings of the real photos in
``skimage.data``) to a temporary folder, builds one extractor, and on the same images and in the
same process measures

* **full**: :func:`detectors.extract.extract_images` — walking the folder, decoding the files in a
  background ``DataLoader`` (``--num-workers``), the extractor, writing the HDF5 region store
  (segments and the final compaction included);
* **bare**: ``extractor.extract`` on the images already decoded into arrays, no store.

Timing on a shared machine is noisy, so after a warm-up forward the two paths are run
interleaved (bare, full, bare, full, ...) ``--repeats`` times (at least 5): a slow spell of the
machine then hits both paths alike instead of one whole series. ``--threads`` pins
``torch.set_num_threads`` (default 1, so that neither path gets more intra-op threads than the
other and the result does not depend on how many cores happen to be free). Prints one JSON
object: configuration, the per-repeat seconds of each path, their median and min, rates
(images/s) from the medians, and ``overhead = 1 - full_rate / bare_rate`` from the medians
(target <= 0.15); ``overhead_from_min`` is the same from the fastest repeats.

Usage::

    python experiments/benchmarks/bench_extract.py [--n-images 16 --min-size 200 --max-size 333
        --batch-size 4 --backend torchvision --random-weights --weights W --num-regions 36
        --num-workers 2 --repeats 5 --threads 1 --device cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

try:
    import detectors.extract  # noqa: F401
except ImportError:  # running from a checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detectors.extractor import build_extractor  # noqa: E402
from detectors.extract import extract_images  # noqa: E402
from detectors.images import load_image  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--min-size", type=int, default=200)
    p.add_argument("--max-size", type=int, default=333)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--backend", default="torchvision")
    p.add_argument("--weights")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--num-regions", type=int, default=36)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5,
                   help="interleaved (bare, full) pairs; at least 5 (default 5)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads, the same for both paths (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--keep", help="also copy the generated images to this folder")
    args = p.parse_args(argv)
    if args.repeats < 5:
        p.error(f"--repeats must be at least 5 (the median of fewer runs is noise), got {args.repeats}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return args


def make_photos(folder: Path, n: int) -> List[Path]:
    """``n`` distinct JPEGs: photo ``k % 6`` of skimage.data, cropped and rescaled per ``k``."""
    import skimage.data
    from PIL import Image

    photos = [np.asarray(getattr(skimage.data, name)()) for name in PHOTOS]
    paths = []
    for k in range(n):
        a = photos[k % len(photos)]
        v = k // len(photos)
        h, w = a.shape[:2]
        frac = 1.0 - 0.12 * (v % 4)                   # crop 100%, 88%, 76%, 64%
        ch, cw = int(h * frac), int(w * frac)
        y0, x0 = (h - ch) * (v % 2), (w - cw) // 2 * (1 + (v % 3 == 1))
        crop = Image.fromarray(a[y0:y0 + ch, x0:x0 + cw])
        scale = 480 / max(crop.size) * (1.0 - 0.1 * (v % 3))
        crop = crop.resize((max(32, int(crop.size[0] * scale)), max(32, int(crop.size[1] * scale))),
                           Image.BILINEAR)
        path = folder / f"photo{k:04d}.jpg"
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def _stats(seconds: List[float], n: int) -> dict:
    med, low = statistics.median(seconds), min(seconds)
    return {"seconds": [round(s, 3) for s in seconds], "median_s": round(med, 3),
            "min_s": round(low, 3), "images_per_s_median": round(n / med, 3),
            "images_per_s_best": round(n / low, 3)}


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    opts = dict(random_weights=args.random_weights, min_size=args.min_size, max_size=args.max_size,
                batch_size=args.batch_size, num_regions=args.num_regions, device=args.device)
    if args.weights:
        opts["weights"] = args.weights
    ext = build_extractor(args.backend, **opts)
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        img_dir = tmp / "images"
        img_dir.mkdir()
        paths = make_photos(img_dir, args.n_images)
        if args.keep:
            shutil.copytree(img_dir, args.keep, dirs_exist_ok=True)
        arrays = [load_image(str(p)).array for p in paths]
        ext.extract(arrays[: args.batch_size])  # warm-up

        bare_s: List[float] = []
        full_s: List[float] = []
        store_mb = 0.0
        for rep in range(args.repeats):  # interleaved: bare, full, bare, full, ...
            t0 = time.perf_counter()
            regions = ext.extract(arrays)
            bare_s.append(time.perf_counter() - t0)
            assert len(regions) == len(arrays)
            out = tmp / f"regions{rep}.h5"
            t0 = time.perf_counter()
            summary = extract_images(img_dir, out, ext, num_workers=args.num_workers,
                                     batch_size=args.batch_size, progress=False)
            full_s.append(time.perf_counter() - t0)
            assert summary.done == len(paths) and summary.failed == 0, summary
            store_mb = out.stat().st_size / 2**20
            out.unlink()
        n = len(paths)
        bare, full = _stats(bare_s, n), _stats(full_s, n)
        print(json.dumps({
            "benchmark": "extract",
            "backend": args.backend,
            "weights": args.weights or ("random" if args.random_weights else None),
            "n_images": n,
            "image_sizes": sorted({tuple(a.shape[1::-1]) for a in arrays})[:3] + ["..."],
            "min_size": args.min_size, "max_size": args.max_size, "batch_size": args.batch_size,
            "num_regions": args.num_regions, "feature_dim": ext.feature_dim,
            "num_workers": args.num_workers, "repeats": args.repeats, "order": "interleaved",
            "device": args.device, "torch_threads": torch.get_num_threads(),
            "bare": bare,
            "full": full,
            "bare_images_per_s": bare["images_per_s_median"],
            "full_images_per_s": full["images_per_s_median"],
            "overhead": round(1.0 - bare["median_s"] / full["median_s"], 4),
            "overhead_from_min": round(1.0 - bare["min_s"] / full["min_s"], 4),
            "target_overhead": 0.15,
            "store_mib": round(store_mb, 3),
            "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
