"""Evaluation: encode every image and caption once, score all pairs exactly in chunks, rank.

Exact scoring of all pairs is what the SCAN lineage reports; the per-caption Python loops of the
released evaluation scripts are replaced by batched scoring over memory-bounded blocks
(:func:`graphmatch.engine.scoring.chunked_similarity`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from graphmatch.data.dataset import MatchingData
from graphmatch.engine.scoring import chunked_similarity
from graphmatch.graphs import collate_graphs
from graphmatch.metrics import check_folds, retrieval_metrics, retrieval_metrics_folds
from graphmatch.models.base import Matcher
from graphmatch.utils.jsonl import read_jsonl
from graphmatch.utils.progress import progress as progress_bar
from graphmatch.structures import NodeEmb


def _encode(encode: Any, batches: Any, n: int, batch_size: int, device: str, desc: str, progress: bool) -> NodeEmb:
    parts = [encode(b.to(device)).to("cpu")
             for b in progress_bar(batches, total=-(-n // batch_size), desc=desc, disable=not progress, leave=False)]
    if not parts:
        raise ValueError("nothing to encode (no image or caption selected)")
    return NodeEmb.cat(parts)


@torch.no_grad()
def encode_images(model: Matcher, data: MatchingData, *, batch_size: int = 256, device: str = "cpu",
                  indices: Optional[Sequence[int]] = None, progress: bool = False) -> NodeEmb:
    """Node embeddings of the split's images (all, or ``indices``), on the CPU."""
    model.eval()
    n = data.n_images if indices is None else len(indices)
    return _encode(model.encode_images, data.image_batches(batch_size, indices), n, batch_size, device,
                   "encode images", progress)


@torch.no_grad()
def encode_captions(model: Matcher, data: MatchingData, *, batch_size: int = 256, device: str = "cpu",
                    indices: Optional[Sequence[int]] = None, progress: bool = False) -> NodeEmb:
    """Node embeddings of the split's captions (all, or ``indices``), on the CPU."""
    model.eval()
    n = data.n_captions if indices is None else len(indices)
    return _encode(model.encode_captions, data.caption_batches(batch_size, indices), n, batch_size, device,
                   "encode captions", progress)


@torch.no_grad()
def similarity_matrix(model: Matcher, data: MatchingData, *, batch_size: int = 256, img_chunk: int = 128,
                      cap_chunk: int = 256, cap_block: int = 4096, device: str = "cpu",
                      image_indices: Optional[Sequence[int]] = None,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact similarity of every image with every caption of (a subset of) the split.

    Images are encoded once and kept; captions are encoded ``cap_block`` at a time and scored
    against all images before the next block, so memory stays bounded for MS-COCO 5K (25,000
    captions padded to the longest one would need gigabytes).

    Returns ``(sims [n_images, n_captions], img_of_caption [n_captions])`` where, for a subset,
    images are renumbered in the order of ``image_indices`` and captions are those of these images.
    """
    model.eval()
    if image_indices is None:
        img_idx = list(range(data.n_images))
        cap_idx = list(range(data.n_captions))
        img_of_caption = data.img_of_caption.numpy()
    else:
        img_idx = [int(i) for i in image_indices]
        corr, caps = data.correspondence.subset(img_idx)
        cap_idx = [int(c) for c in caps]
        img_of_caption = np.asarray(corr.img_of_caption, dtype=np.int64)
    img = encode_images(model, data, batch_size=batch_size, device=device, indices=img_idx, progress=progress)
    sims = np.empty((len(img_idx), len(cap_idx)), dtype=np.float32)
    starts = range(0, len(cap_idx), cap_block)
    for s in progress_bar(starts, desc="score caption blocks", disable=not progress or len(starts) < 2, leave=False):
        block = cap_idx[s : s + cap_block]
        cap = encode_captions(model, data, batch_size=batch_size, device=device, indices=block)
        sims[:, s : s + len(block)] = chunked_similarity(
            model.score, img, cap, img_chunk=img_chunk, cap_chunk=cap_chunk,
            device=device, progress=progress and len(starts) < 2,
        ).numpy()
    return sims, img_of_caption


@torch.no_grad()
def hard_negative_scores(model: Matcher, data: MatchingData, records: List[Dict[str, Any]], *,
                         batch_size: int = 128, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(s(image, positive) [n], s(image, negative) [n])`` of hard-negative records
    ``{"image": row, "caption": negative, "positive": true caption, ...}``."""
    model.eval()
    pos_scores: List[float] = []
    neg_scores: List[float] = []
    for s in range(0, len(records), batch_size):
        chunk = records[s : s + batch_size]
        imgs = collate_graphs([data.image_graph(int(r["image"])) for r in chunk]).to(device)
        pos = data.collate_captions([data.text_graph(r["positive"]) for r in chunk]).to(device)
        neg = data.collate_captions([data.text_graph(r["caption"]) for r in chunk]).to(device)
        ie = model.encode_images(imgs)
        pe, ne = model.encode_captions(pos), model.encode_captions(neg)
        # pair k is image k with caption k: the diagonal of the block (blocks are small)
        pos_scores += torch.diagonal(model.score(ie, pe)).tolist()
        neg_scores += torch.diagonal(model.score(ie, ne)).tolist()
    return np.asarray(pos_scores, dtype=np.float64), np.asarray(neg_scores, dtype=np.float64)


def hard_negative_metrics(records: List[Dict[str, Any]], pos: np.ndarray, neg: np.ndarray) -> Dict[str, float]:
    """Percent of hard negatives scored strictly below their true caption, overall and per ``kind``."""
    wins: Dict[str, List[bool]] = {}
    for r, a, b in zip(records, pos.tolist(), neg.tolist()):
        wins.setdefault(r.get("kind", "all"), []).append(a > b)
    out = {f"hardneg_acc_{k}": 100.0 * float(np.mean(v)) for k, v in sorted(wins.items())}
    allw = [w for v in wins.values() for w in v]
    out["hardneg_acc"] = 100.0 * float(np.mean(allw)) if allw else float("nan")
    out["hardneg_n"] = len(allw)
    return out


def hard_negative_accuracy(model: Matcher, data: MatchingData, records: List[Dict[str, Any]], *,
                           batch_size: int = 128, device: str = "cpu") -> Dict[str, float]:
    """Fraction of hard negatives scored below the true caption they were derived from.

    ``records``: ``{"image": row, "caption": negative, "positive": true caption, "kind": ...}``.
    Returns the overall accuracy (percent) and one per ``kind``.
    """
    pos, neg = hard_negative_scores(model, data, records, batch_size=batch_size, device=device)
    return hard_negative_metrics(records, pos, neg)


def read_hard_negatives(root: str | Path, split: str) -> Optional[List[Dict[str, Any]]]:
    """``{split}_hardneg.jsonl`` of a data folder, or None when absent."""
    f = Path(root) / f"{split}_hardneg.jsonl"
    if not f.is_file():
        return None
    out = []
    for lineno, rec in read_jsonl(f, what="hard-negative"):
        missing = [k for k in ("image", "caption", "positive") if k not in rec]
        if missing:
            raise ValueError(f"{f}:{lineno}: bad hard-negative record (no {', '.join(missing)})")
        out.append(rec)
    return out


def evaluate(model: Matcher, data: MatchingData, *, fold5: bool = False, batch_size: int = 256,
             img_chunk: int = 128, cap_chunk: int = 256, device: str = "cpu",
             image_indices: Optional[Sequence[int]] = None, hard_negatives: Optional[List[Dict[str, Any]]] = None,
             progress: bool = False) -> Dict[str, Any]:
    """Retrieval metrics of ``model`` on ``data`` (all pairs scored exactly).

    ``fold5``: the MS-COCO 1K protocol (images in 5 contiguous folds, metrics averaged); without it,
    all images at once (COCO 5K, Flickr30K 1K). ``hard_negatives``: also report how often each
    hard negative scores below its true caption.

    Raises ``ValueError`` before any encoding when no image is selected, or, with ``fold5``, when
    the number of images is not a multiple of 5 (:func:`graphmatch.metrics.check_folds`). The
    label of a fold protocol with folds other than 1,000 images is
    :func:`graphmatch.metrics.fold_protocol`'s business.
    """
    n_images = data.n_images if image_indices is None else len(image_indices)
    if n_images < 1:
        raise ValueError("nothing to evaluate: no image is selected"
                         + (" (image_indices is empty)" if image_indices is not None else " (the split is empty)"))
    if fold5:
        check_folds(n_images, 5)
    sims, img_of_caption = similarity_matrix(
        model, data, batch_size=batch_size, img_chunk=img_chunk, cap_chunk=cap_chunk, device=device,
        image_indices=image_indices, progress=progress,
    )
    metrics = retrieval_metrics_folds(sims, img_of_caption, n_folds=5) if fold5 else retrieval_metrics(sims, img_of_caption)
    if hard_negatives:
        if image_indices is not None:
            keep = set(int(i) for i in image_indices)
            hard_negatives = [r for r in hard_negatives if int(r["image"]) in keep]
        if hard_negatives:
            metrics.update(hard_negative_accuracy(model, data, hard_negatives, device=device))
    return metrics
