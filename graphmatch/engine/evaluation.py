"""Evaluation of a saved checkpoint on a data split: what ``graphmatch eval`` runs.

:func:`evaluate_checkpoint` rebuilds the model of a checkpoint folder, reads the split (the
checkpoint's data folder and region source unless told otherwise), scores every image against
every caption exactly (:func:`graphmatch.engine.evaluator.evaluate`) and writes the JSON report
atomically beside the checkpoint (or to ``out``).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from graphmatch.engine.checkpoint import load_checkpoint, resolve_checkpoint_dir
from graphmatch.engine.evaluator import evaluate, read_hard_negatives
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
    from graphmatch.data import build_dataset
    from graphmatch.engine.train import resolve_device

    if imports:
        from graphmatch.plugins import import_plugins

        import_plugins(list(imports))
    dev = resolve_device(device)
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
