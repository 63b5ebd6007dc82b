"""Evaluation of a saved checkpoint on a data split: what ``graphmatch eval`` runs.

:func:`evaluate_checkpoint` rebuilds the model of a checkpoint folder, reads the split (the
checkpoint's data folder and region source unless told otherwise), scores every image against
every caption exactly (:func:`graphmatch.engine.evaluator.evaluate`) and writes the JSON report
atomically beside the checkpoint (or to ``out``). :func:`evaluate_ensemble` does the same for the
weighted mean of several checkpoints' similarity matrices (``graphmatch eval CKPT CKPT ...``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from graphmatch.engine.checkpoint import load_checkpoint, resolve_checkpoint_dir
from graphmatch.engine.evaluator import (evaluate, hard_negative_metrics, hard_negative_scores, read_hard_negatives,
                                         similarity_matrix)
from graphmatch.utils.atomic import atomic_write_json


def evaluate_checkpoint(checkpoint: str, data: Optional[str] = None, split: str = "test", *, fold5: bool = False,
                        out: Optional[str] = None, device: str = "auto", max_images: Optional[int] = None,
                        progress: bool = True, regions: Optional[str] = None,
                        imports: Sequence[str] = ()) -> Dict[str, Any]:
    """Evaluate a checkpoint on a split; write the JSON report; return it.

    ``data`` / ``regions`` default to the checkpoint config's ``data.root`` / ``data.regions``;
    ``regions=""`` reads the split's ``{split}_ims.npy``. ``max_images`` must be >= 1; with
    ``fold5`` the number of images must be a multiple of 5 (checked before any encoding), the
    report's protocol names the real fold size ("5-fold 1K" only for 1,000-image folds) and other
    fold sizes print a warning to stderr. ``imports``: plug-in files or modules to import before
    the checkpoint's model is rebuilt (those its config lists are imported anyway).
    """
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) < 1):
        raise ValueError(f"--max-images must be >= 1, got {max_images!r}")
    from graphmatch.engine.train import resolve_device

    if imports:
        from graphmatch.plugins import import_plugins

        import_plugins(list(imports))
    dev = resolve_device(device)
    model, cfg, md, state = _load_for_eval(checkpoint, data, split, regions, dev)
    root = cfg.data.root
    images = None if max_images is None else list(range(min(max_images, md.n_images)))
    protocol, fold_warning = _protocol(fold5, md.n_images if images is None else len(images), split, root, max_images)
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
        "n_captions": md.n_captions if images is None else md.correspondence.subset(images)[0].n_captions,
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


def _load_for_eval(checkpoint: str, data: Optional[str], split: str, regions: Optional[str], dev: str) -> Tuple[Any, Any, Any, Dict[str, Any]]:
    """The model, config, split data and saved state of a checkpoint, ready to evaluate."""
    from graphmatch.data import build_dataset

    model, cfg, vocab, state = load_checkpoint(checkpoint, map_location=dev)
    root = cfg.data.root = data or cfg.data.root
    if regions is not None:  # "" reads <split>_ims.npy even when the training config named a region file
        cfg.data.regions = regions or None
    cfg.train.num_workers = 0
    md = build_dataset(cfg.data).load_split(split, vocab)
    img_dim = getattr(getattr(model, "image_encoder", None), "img_dim", None)
    if img_dim is not None and md.feature_dim != img_dim:
        raise ValueError(f"split {split!r} of {root} has {md.feature_dim}-d region features; "
                         f"the checkpoint expects {img_dim}")
    return model, cfg, md, state


def _protocol(fold5: bool, n_images: int, split: str, root: Any, max_images: Optional[int]) -> Tuple[str, Optional[str]]:
    if not fold5:
        return "all", None
    from graphmatch.metrics import fold_protocol

    try:
        protocol, fold_warning = fold_protocol(n_images, 5)
    except ValueError as e:
        raise ValueError(f"--fold5 on split {split!r} of {root}"
                         + (f" (--max-images {max_images})" if max_images is not None else "") + f": {e}") from None
    if fold_warning:
        print(f"graphmatch eval: warning: --fold5: {fold_warning}", file=sys.stderr)
    return protocol, fold_warning


def evaluate_ensemble(checkpoints: Sequence[str], data: Optional[str] = None, split: str = "test", *,
                      weights: Optional[Sequence[float]] = None, fold5: bool = False, out: Optional[str] = None,
                      device: str = "auto", max_images: Optional[int] = None, progress: bool = True,
                      regions: Optional[str] = None, imports: Sequence[str] = ()) -> Dict[str, Any]:
    """Evaluate the weighted mean of the similarity matrices of several checkpoints (an ensemble,
    e.g. GSMN* = the sparse and the dense GSMN models); write the JSON report; return it.

    Each checkpoint is rebuilt with its own config, so members may read different graphs of the same
    split (a dependency and a full caption graph). Every member must see the same images and
    captions in the same order (checked: the same number of images and the same caption -> image
    correspondence). ``weights`` default to equal weights (the mean). Hard negatives are scored by
    the same weighted mean of each member's pair scores. The report is written to ``out`` or, by
    default, ``<first checkpoint>/eval_<split>_ensemble.json``. Other arguments as
    :func:`evaluate_checkpoint`.
    """
    checkpoints = [str(c) for c in checkpoints]
    if len(checkpoints) < 2:
        raise ValueError(f"an ensemble needs at least two checkpoints, got {len(checkpoints)}")
    if weights is None:
        weights = [1.0 / len(checkpoints)] * len(checkpoints)
    weights = [float(w) for w in weights]
    if len(weights) != len(checkpoints):
        raise ValueError(f"{len(weights)} ensemble weights for {len(checkpoints)} checkpoints")
    if max_images is not None and (isinstance(max_images, bool) or int(max_images) < 1):
        raise ValueError(f"--max-images must be >= 1, got {max_images!r}")
    from graphmatch.engine.train import resolve_device
    from graphmatch.metrics import retrieval_metrics, retrieval_metrics_folds

    if imports:
        from graphmatch.plugins import import_plugins

        import_plugins(list(imports))
    dev = resolve_device(device)
    t0 = time.time()
    total: Optional[np.ndarray] = None
    hn_pos: Optional[np.ndarray] = None
    hn_neg: Optional[np.ndarray] = None
    hard: Optional[List[Dict[str, Any]]] = None
    first: Dict[str, Any] = {}
    for k, (ckpt, w) in enumerate(zip(checkpoints, weights)):
        model, cfg, md, state = _load_for_eval(ckpt, data, split, regions, dev)
        images = None if max_images is None else list(range(min(max_images, md.n_images)))
        n_images = md.n_images if images is None else len(images)
        if k == 0:
            protocol, fold_warning = _protocol(fold5, n_images, split, cfg.data.root, max_images)
            hard = read_hard_negatives(cfg.data.root, split)
            if hard and images is not None:
                keep = set(images)
                hard = [r for r in hard if int(r["image"]) in keep]
        sims, img_of_caption = similarity_matrix(model, md, batch_size=cfg.eval.batch_size,
                                                 img_chunk=cfg.eval.img_chunk, cap_chunk=cfg.eval.cap_chunk,
                                                 device=dev, image_indices=images, progress=progress)
        if k == 0:
            first = {"root": cfg.data.root, "img_of_caption": img_of_caption, "state": state}
            total = w * sims.astype(np.float64)
        else:
            if sims.shape != total.shape or not np.array_equal(img_of_caption, first["img_of_caption"]):
                raise ValueError(f"ensemble member {ckpt} sees {sims.shape[0]} images x {sims.shape[1]} captions "
                                 f"(or another caption -> image correspondence) on split {split!r}; the first "
                                 f"member {checkpoints[0]} sees {total.shape[0]} x {total.shape[1]}")
            total += w * sims
        if hard:
            pos, neg = hard_negative_scores(model, md, hard, device=dev)
            hn_pos = w * pos if hn_pos is None else hn_pos + w * pos
            hn_neg = w * neg if hn_neg is None else hn_neg + w * neg
        del model, md
    sims = total.astype(np.float32)
    ioc = first["img_of_caption"]
    metrics = retrieval_metrics_folds(sims, ioc, n_folds=5) if fold5 else retrieval_metrics(sims, ioc)
    if hard:
        metrics.update(hard_negative_metrics(hard, hn_pos, hn_neg))
    report = {
        "checkpoints": [str(resolve_checkpoint_dir(c)) for c in checkpoints],
        "weights": weights,
        "data": str(first["root"]),
        "split": split,
        "protocol": protocol,
        "n_images": int(sims.shape[0]),
        "n_captions": int(sims.shape[1]),
        "seconds": round(time.time() - t0, 2),
        "metrics": metrics,
    }
    if fold_warning:
        report["warning"] = fold_warning
    out_path = Path(out) if out else (resolve_checkpoint_dir(checkpoints[0])
                                      / f"eval_{split}{'_fold5' if fold5 else ''}_ensemble.json")
    atomic_write_json(out_path, report)
    report["report_path"] = str(out_path)
    return report
