"""Retrieval metrics for image–sentence matching (Recall@K, median and mean rank, rsum).

The similarity matrix ``sims`` has shape ``[n_images, n_captions]``; ``sims[i, c]`` is the score of
image ``i`` against caption ``c``. The correspondence between captions and images is explicit
data: ``img_of_caption[c]`` is the index of the image that caption ``c`` describes. Nothing here
assumes a fixed number of captions per image.

Ranks follow the evaluation code of SCAN / VSE++ (``i2t`` and ``t2i`` in SCAN's
``evaluation.py``):

* **i2t** (image query, retrieve captions): the rank of image ``i`` is the best (lowest) rank
  among the captions of ``i``.
* **t2i** (caption query, retrieve images): the rank of caption ``c`` is the rank of its image.

Ranks are 0-based; ``R@K = 100 * mean(rank < K)``, ``medr = floor(median(rank)) + 1`` and
``meanr = mean(rank) + 1``; ``rsum`` is the sum of the six recalls.

**Ties are counted pessimistically.** The rank of a query is the number of *non-matching* items
whose score is ``>=`` the best matching score. A matching item therefore never wins a tie, and a
constant similarity matrix gets the worst possible ranks instead of perfect recall. Without ties
this is exactly the position that a descending ``argsort`` gives the best matching item.

The computation is vectorised and processes the images in chunks, so a 5,000 × 25,000 matrix is
evaluated with a bounded amount of extra memory (each chunk is cast to float64 on its own; the
input is never copied as a whole).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from graphmatch.structures import Correspondence

__all__ = [
    "METRIC_KEYS",
    "RECALL_KS",
    "captions_of_image",
    "check_folds",
    "fold_protocol",
    "format_metrics_table",
    "i2t_ranks",
    "retrieval_metrics",
    "retrieval_metrics_folds",
    "t2i_ranks",
]

#: The K values of the reported Recall@K.
RECALL_KS: tuple[int, ...] = (1, 5, 10)

#: Number of matrix entries (images × captions) processed per chunk.
_CHUNK_ELEMENTS = 1 << 22

#: The float metrics returned by :func:`retrieval_metrics`, in reporting order.
METRIC_KEYS: tuple[str, ...] = (
    "i2t_r1",
    "i2t_r5",
    "i2t_r10",
    "t2i_r1",
    "t2i_r5",
    "t2i_r10",
    "rsum",
    "i2t_medr",
    "i2t_meanr",
    "t2i_medr",
    "t2i_meanr",
)


# --------------------------------------------------------------------------------------------
# Input handling and validation
# --------------------------------------------------------------------------------------------
def _as_numpy_sims(sims: Any) -> np.ndarray:
    """Return ``sims`` as a numeric numpy array without copying when possible.

    Torch tensors are detached and moved to the CPU; dtypes that numpy cannot represent
    (bfloat16, ...) are converted to float64. The float64 cast used for the computation is done
    per chunk.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(sims, torch.Tensor):
        t = sims.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.to(torch.float64)
        arr = t.numpy()
    else:
        arr = np.asarray(sims)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        arr = arr.astype(np.float64)
    return arr


def _chunk_rows(n_rows: int, n_cols: int) -> int:
    """Rows per chunk so that one chunk holds about ``_CHUNK_ELEMENTS`` entries."""
    return max(1, _CHUNK_ELEMENTS // max(1, n_cols))


def _validate(sims: Any, img_of_caption: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert and validate the inputs of the metric functions.

    Raises:
        ValueError: ``sims`` is not 2-D or is empty; ``img_of_caption`` is not 1-D, not integral,
            has the wrong length or holds indices out of range; an image has no caption; ``sims``
            holds NaN.
    """
    s = _as_numpy_sims(sims)
    if s.ndim != 2:
        raise ValueError(
            f"sims must be a 2-D [n_images, n_captions] matrix, got shape {tuple(s.shape)}"
        )
    n_images, n_captions = s.shape
    if n_images == 0:
        raise ValueError("sims has no images (shape[0] == 0); retrieval metrics are undefined")
    corr = Correspondence(img_of_caption, n_images, every_image_captioned=False)  # integral, 1-D, in range
    if corr.n_captions != n_captions:
        raise ValueError(
            f"img_of_caption has {corr.n_captions} entries but sims has {n_captions} captions (columns)"
        )
    img = Correspondence(corr.img_of_caption, n_images).img_of_caption  # every image has a caption
    if np.issubdtype(s.dtype, np.floating):
        step = _chunk_rows(n_images, n_captions)
        n_nan = 0
        first: tuple[int, int] | None = None
        for r0 in range(0, n_images, step):
            nan = np.isnan(s[r0 : r0 + step])
            cnt = int(nan.sum())
            if cnt and first is None:
                r, c = np.argwhere(nan)[0]
                first = (r0 + int(r), int(c))
            n_nan += cnt
        if n_nan:
            raise ValueError(
                f"sims holds {n_nan} NaN value(s); the first is at [image {first[0]}, "
                f"caption {first[1]}]"
            )
    return s, img


# --------------------------------------------------------------------------------------------
# Ranks
# --------------------------------------------------------------------------------------------
def captions_of_image(img_of_caption: Any, n_images: int) -> list[np.ndarray]:
    """Return, for every image ``0 .. n_images-1``, the sorted caption indices that describe it
    (:attr:`graphmatch.structures.Correspondence.groups`; images may have none)."""
    return list(Correspondence(img_of_caption, n_images, every_image_captioned=False).groups)


def _i2t_ranks(s: np.ndarray, img: np.ndarray) -> np.ndarray:
    """i2t ranks for validated inputs (see :func:`i2t_ranks`)."""
    n_images, n_captions = s.shape
    ranks = np.empty(n_images, dtype=np.int64)
    step = _chunk_rows(n_images, n_captions)
    for r0 in range(0, n_images, step):
        r1 = min(n_images, r0 + step)
        block = s[r0:r1].astype(np.float64, copy=False)
        pos = img[None, :] == np.arange(r0, r1)[:, None]  # [b, n_captions]
        best = np.where(pos, block, -np.inf).max(axis=1)  # best matching score per image
        ranks[r0:r1] = ((block >= best[:, None]) & ~pos).sum(axis=1)
    return ranks


def _t2i_ranks(s: np.ndarray, img: np.ndarray) -> np.ndarray:
    """t2i ranks for validated inputs (see :func:`t2i_ranks`)."""
    n_images, n_captions = s.shape
    cols = np.arange(n_captions)
    pos_score = s[img, cols].astype(np.float64)  # score of every caption against its image
    ranks = np.zeros(n_captions, dtype=np.int64)
    step = _chunk_rows(n_images, n_captions)
    for r0 in range(0, n_images, step):
        r1 = min(n_images, r0 + step)
        block = s[r0:r1].astype(np.float64, copy=False)
        neg = img[None, :] != np.arange(r0, r1)[:, None]
        ranks += ((block >= pos_score[None, :]) & neg).sum(axis=0)
    return ranks


def i2t_ranks(sims: Any, img_of_caption: Any) -> np.ndarray:
    """0-based rank of every image query (image → caption retrieval), shape ``[n_images]``.

    The rank of image ``i`` is the number of captions *not* describing ``i`` whose score is
    ``>=`` the best score among the captions of ``i`` (pessimistic ties).
    """
    s, img = _validate(sims, img_of_caption)
    return _i2t_ranks(s, img)


def t2i_ranks(sims: Any, img_of_caption: Any) -> np.ndarray:
    """0-based rank of every caption query (caption → image retrieval), shape ``[n_captions]``.

    The rank of caption ``c`` is the number of images other than ``img_of_caption[c]`` whose
    score against ``c`` is ``>=`` the score of the caption's own image (pessimistic ties).
    """
    s, img = _validate(sims, img_of_caption)
    return _t2i_ranks(s, img)


def _summarise(ranks: np.ndarray, prefix: str) -> dict[str, float]:
    """Recall@K, medr and meanr of a rank array, computed as in SCAN's evaluation code."""
    out: dict[str, float] = {}
    for k in RECALL_KS:
        out[f"{prefix}_r{k}"] = float(100.0 * np.mean(ranks < k))
    out[f"{prefix}_medr"] = float(np.floor(np.median(ranks)) + 1)
    out[f"{prefix}_meanr"] = float(np.mean(ranks) + 1)
    return out


def _metrics_from_validated(s: np.ndarray, img: np.ndarray) -> dict[str, Any]:
    i2t = _summarise(_i2t_ranks(s, img), "i2t")
    t2i = _summarise(_t2i_ranks(s, img), "t2i")
    rsum = sum(i2t[f"i2t_r{k}"] for k in RECALL_KS) + sum(t2i[f"t2i_r{k}"] for k in RECALL_KS)
    out: dict[str, Any] = {}
    for key in METRIC_KEYS:
        out[key] = float(rsum) if key == "rsum" else (i2t.get(key, t2i.get(key)))
    out["n_images"] = int(s.shape[0])
    out["n_captions"] = int(s.shape[1])
    return out


# --------------------------------------------------------------------------------------------
# Public metric functions
# --------------------------------------------------------------------------------------------
def retrieval_metrics(sims: Any, img_of_caption: Any) -> dict[str, Any]:
    """Image→text and text→image retrieval metrics of a similarity matrix.

    Args:
        sims: ``[n_images, n_captions]`` similarities (numpy array or torch tensor; higher means
            more similar). Cast to float64 chunk by chunk.
        img_of_caption: ``[n_captions]`` integer array; ``img_of_caption[c]`` is the image of
            caption ``c``. Every image needs at least one caption.

    Returns:
        A dict with ``i2t_r1, i2t_r5, i2t_r10, t2i_r1, t2i_r5, t2i_r10`` (percent), ``rsum`` (sum of
        the six recalls), ``i2t_medr, i2t_meanr, t2i_medr, t2i_meanr`` (1-based, as in SCAN) as
        floats, and ``n_images``, ``n_captions`` as ints. Ties are counted pessimistically (see
        the module docstring).

    Raises:
        ValueError: on malformed input (see :func:`_validate`).
    """
    s, img = _validate(sims, img_of_caption)
    return _metrics_from_validated(s, img)


#: Images per fold of the MS-COCO 1K protocol (5 folds of the 5,000 test images).
COCO_FOLD_SIZE = 1000


def check_folds(n_images: int, n_folds: int = 5) -> int:
    """The fold size of ``n_images`` images in ``n_folds`` equal contiguous folds.

    Raises:
        ValueError: ``n_folds`` is not a positive integer, there are no images, or ``n_images``
            is not a multiple of ``n_folds`` (the message says how many images to keep).
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}")
    n_images, n_folds = int(n_images), int(n_folds)
    if n_images < n_folds or n_images % n_folds:
        keep = n_images - n_images % n_folds
        hint = f"; e.g. keep the first {keep} images" if keep else ""
        raise ValueError(
            f"{n_images} images are not divisible into {n_folds} equal folds: the fold protocol needs a "
            f"multiple of {n_folds} images (MS-COCO 1K: {n_folds * COCO_FOLD_SIZE}){hint}"
        )
    return n_images // n_folds


def fold_protocol(n_images: int, n_folds: int = 5) -> tuple[str, str | None]:
    """``(label, warning)`` of the fold protocol on ``n_images`` images.

    The label names the real fold size: ``"5-fold 1K"`` only for folds of 1,000 images (the MS-COCO
    1K protocol), else e.g. ``"5-fold 200"``. ``warning`` is ``None`` for 1,000-image folds and
    otherwise says that the numbers are not comparable with published 1K results (recall is higher
    on smaller folds). Raises ``ValueError`` as :func:`check_folds`.
    """
    size = check_folds(n_images, n_folds)
    label = f"{int(n_folds)}-fold " + ("1K" if size == COCO_FOLD_SIZE else str(size))
    if size == COCO_FOLD_SIZE:
        return label, None
    return label, (f"{int(n_images)} images give {int(n_folds)} folds of {size} images, not the "
                   f"{COCO_FOLD_SIZE} of the MS-COCO 1K protocol; these numbers are not comparable "
                   f"with published 1K results")


def retrieval_metrics_folds(sims: Any, img_of_caption: Any, n_folds: int = 5) -> dict[str, Any]:
    """Metrics averaged over image folds (the MS-COCO 1K protocol for ``n_folds=5``).

    The images are split into ``n_folds`` contiguous blocks by image index; each block is
    evaluated against the captions of its own images only (captions keep their relative order).
    The result holds the mean of every metric over the folds (medr and meanr included, as SCAN
    averages them), ``n_images`` / ``n_captions`` of the whole matrix, ``n_folds``, ``fold_size``
    (images per fold) and ``"folds"``: the list of per-fold metric dicts.

    Raises:
        ValueError: ``n_folds`` is not a positive integer or does not divide ``n_images``, or the
            input is malformed.
    """
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}")
    s, img = _validate(sims, img_of_caption)
    n_images = s.shape[0]
    size = check_folds(n_images, n_folds)
    folds: list[dict[str, Any]] = []
    for images, corr, cap_idx in Correspondence(img, n_images).folds(int(n_folds)):
        folds.append(_metrics_from_validated(s[images[0]:images[-1] + 1][:, cap_idx], corr.img_of_caption))
    out: dict[str, Any] = {key: float(np.mean([m[key] for m in folds])) for key in METRIC_KEYS}
    out["n_images"] = int(n_images)
    out["n_captions"] = int(s.shape[1])
    out["n_folds"] = int(n_folds)
    out["fold_size"] = int(size)
    out["folds"] = folds
    return out


def format_metrics_table(metrics: dict[str, Any]) -> str:
    """Render metrics as a plain-text table.

    Example::

        1000 images, 5000 captions
                   R@1     R@5    R@10    medr   meanr
        i2t      70.00   90.00   95.00    1.00    3.20
        t2i      55.00   85.00   92.00    1.00    5.10
        rsum    487.00

    The first line appears when ``n_images`` and ``n_captions`` are present (and mentions the
    number of folds for :func:`retrieval_metrics_folds` results). Values missing from
    ``metrics`` are shown as ``-``.
    """
    cols = [("R@1", "r1"), ("R@5", "r5"), ("R@10", "r10"), ("medr", "medr"), ("meanr", "meanr")]

    def cell(key: str) -> str:
        value = metrics.get(key)
        return f"{value:8.2f}" if isinstance(value, (int, float, np.number)) else f"{'-':>8}"

    lines = [f"{'':6}" + "".join(f"{name:>8}" for name, _ in cols)]
    for direction in ("i2t", "t2i"):
        cells = "".join(cell(f"{direction}_{suffix}") for _, suffix in cols)
        lines.append(f"{direction:6}" + cells)
    lines.append(f"{'rsum':6}" + cell("rsum"))
    header = []
    if "n_images" in metrics and "n_captions" in metrics:
        info = f"{metrics['n_images']} images, {metrics['n_captions']} captions"
        if "n_folds" in metrics:
            info += f", mean over {metrics['n_folds']} folds"
            if "fold_size" in metrics:
                info += f" of {metrics['fold_size']} images"
        header.append(info)
    return "\n".join(header + lines)
