"""Block-wise computation of full image × caption similarity matrices.

Cross-attention matchers score every (image, caption) pair jointly, so the full evaluation matrix
(e.g. 5,000 × 25,000) cannot be computed in one call. :func:`chunked_similarity` calls a pairwise
score function on blocks of images × captions (:class:`~graphmatch.structures.NodeEmb` slices) and assembles the result on the CPU;
:func:`auto_chunks` picks block sizes for a memory budget.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch

from graphmatch.structures import NodeEmb
from graphmatch.utils.progress import progress as progress_bar

__all__ = ["ScoreFn", "auto_chunks", "chunked_similarity"]

#: ``score_fn(img: NodeEmb, cap: NodeEmb) -> [a, b]`` for ``a`` images and ``b`` captions
#: (a matcher's :meth:`~graphmatch.models.Matcher.score`).
ScoreFn = Callable[[NodeEmb, NodeEmb], torch.Tensor]


def chunked_similarity(
    score_fn: ScoreFn,
    img: NodeEmb,
    cap: NodeEmb,
    *,
    img_chunk: int = 128,
    cap_chunk: int = 256,
    device: Optional[Union[str, torch.device]] = None,
    progress: bool = False,
    desc: str = "scoring",
) -> torch.Tensor:
    """Full ``[n_img, n_cap]`` similarity matrix, computed block by block.

    Images are split into chunks of ``img_chunk`` and captions into chunks of ``cap_chunk``;
    ``score_fn`` is called once per (image chunk, caption chunk) block under ``torch.no_grad()``.
    Putting the model in eval mode is the caller's business.

    Before each call every chunk is trimmed to its longest real row (:meth:`NodeEmb.trim
    <graphmatch.structures.NodeEmb.trim>`, adjacency and edge features included); a score function
    that respects its masks gives the same result, only faster.

    Args:
        score_fn: ``score_fn(img_block, cap_block) -> [a, b]`` tensor.
        img: node embeddings of the images (``len(img)`` = n_img).
        cap: node embeddings of the captions.
        img_chunk: images per block.
        cap_chunk: captions per block.
        device: when given, each block is moved there before ``score_fn``.
        progress: show a progress bar over blocks (:func:`graphmatch.utils.progress.progress`).
        desc: label of the progress bar.

    Returns:
        A float32 CPU tensor ``[n_img, n_cap]``.

    Raises:
        ValueError: non-positive chunk sizes, inputs that are not :class:`NodeEmb`, or a block
            output of the wrong shape (the message names the block).
        TypeError: ``score_fn`` returned something other than a tensor.
    """
    for name, value in (("img", img), ("cap", cap)):
        if not isinstance(value, NodeEmb):
            raise ValueError(f"{name} must be a NodeEmb (graphmatch.structures.NodeEmb), got {type(value).__name__}")
    for name, value in (("img_chunk", img_chunk), ("cap_chunk", cap_chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    dev = torch.device(device) if device is not None else None

    n_img, n_cap = len(img), len(cap)
    out = torch.empty((n_img, n_cap), dtype=torch.float32)
    if n_img == 0 or n_cap == 0:
        return out

    img_starts = range(0, n_img, img_chunk)
    cap_starts = range(0, n_cap, cap_chunk)
    n_blocks = len(img_starts) * len(cap_starts)
    cap_chunks = [(j0, min(n_cap, j0 + cap_chunk), cap[j0 : j0 + cap_chunk].trim()) for j0 in cap_starts]

    bar = progress_bar(total=n_blocks, desc=desc, disable=not progress, leave=False)
    try:
        with torch.no_grad():
            for i0 in img_starts:
                i1 = min(n_img, i0 + img_chunk)
                ib = img[i0:i1].trim()
                if dev is not None:
                    ib = ib.to(dev, non_blocking=True)
                for j0, j1, cb in cap_chunks:
                    block = score_fn(ib, cb if dev is None else cb.to(dev, non_blocking=True))
                    where = f"block images [{i0}:{i1}] x captions [{j0}:{j1}]"
                    if not isinstance(block, torch.Tensor):
                        raise TypeError(
                            f"score_fn returned {type(block).__name__} for {where}; "
                            "expected a tensor"
                        )
                    if tuple(block.shape) != (i1 - i0, j1 - j0):
                        raise ValueError(
                            f"score_fn returned shape {tuple(block.shape)} for {where}; "
                            f"expected {(i1 - i0, j1 - j0)}"
                        )
                    out[i0:i1, j0:j1] = block.detach().to(device="cpu", dtype=torch.float32)
                    bar.update(1)
    finally:
        bar.close()
    return out


def _block_bytes(a: int, b: int, n_regions: int, n_words: int, dim: int) -> int:
    """Estimated bytes of one block (see :func:`auto_chunks`)."""
    return 4 * (a * b * (n_words * n_regions + 1) + a * n_regions * dim + b * n_words * dim)


def auto_chunks(
    n_regions: int, n_words: int, dim: int, *, budget_bytes: int = 2**30
) -> tuple[int, int]:
    """Pick ``(img_chunk, cap_chunk)`` for :func:`chunked_similarity` under a memory budget.

    Estimate, in float32 (4 bytes) for ``a`` images and ``b`` captions per block::

        bytes(a, b) = 4 * ( a*b*n_words*n_regions     # attention block [a, b, n_words, n_regions]
                          + a*b                       # score block [a, b]
                          + a*n_regions*dim           # image chunk [a, n_regions, dim]
                          + b*n_words*dim )           # caption chunk [b, n_words, dim]

    ``a`` is the largest value with ``bytes(a, 2a) <= budget_bytes`` (the 1:2 ratio of the
    default chunk sizes), then ``b`` is the largest value with ``bytes(a, b) <= budget_bytes``.
    Both are at least 1 (when even a 1 × 1 block exceeds the budget, ``(1, 1)`` is returned).
    The estimate covers the dominant tensors only; intermediate copies made by a particular
    score function (softmax outputs, attended context vectors) need head room in the budget.
    """
    for name, value in (("n_regions", n_regions), ("n_words", n_words), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if budget_bytes <= 0:
        raise ValueError(f"budget_bytes must be positive, got {budget_bytes!r}")
    pair = n_words * n_regions + 1
    budget = budget_bytes / 4
    # bytes(a, 2a)/4 = 2*pair*a^2 + (n_regions*dim + 2*n_words*dim)*a  <=  budget
    qa, qb = 2.0 * pair, float(n_regions * dim + 2 * n_words * dim)
    a = int((-qb + math.sqrt(qb * qb + 4.0 * qa * budget)) / (2.0 * qa))
    while a > 1 and _block_bytes(a, 2 * a, n_regions, n_words, dim) > budget_bytes:
        a -= 1  # guard against floating-point rounding
    while _block_bytes(a + 1, 2 * (a + 1), n_regions, n_words, dim) <= budget_bytes:
        a += 1
    a = max(1, a)
    # Largest b for this a: 4*(b*(a*pair + n_words*dim) + a*n_regions*dim) <= budget_bytes.
    b = (budget_bytes - 4 * a * n_regions * dim) // (4 * (a * pair + n_words * dim))
    return a, max(1, int(b))
