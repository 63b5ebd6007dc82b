r"""Stacked Cross Attention (SCAN) scoring as batched pure functions.

Reference: K.-H. Lee, X. Chen, G. Hua, H. Hu, X. He, "Stacked Cross Attention
for Image-Text Matching", ECCV 2018, https://arxiv.org/abs/1803.08024
(released code: https://github.com/kuanghuei/SCAN, ``model.py``).

Notation
--------
An image ``i`` is a set of region vectors ``v_1..v_R`` (``R`` real regions), a
caption ``c`` a set of word vectors ``e_1..e_L`` (``L`` real words), all in
``R^D``.  One cross-attention pass has *queries* ``q_1..q_m`` and *context*
vectors ``k_1..k_n``:

* text-to-image (``t2i``): queries = words of ``c``, context = regions of ``i``;
* image-to-text (``i2t``): queries = regions of ``i``, context = words of ``c``.

Update rules (the released code's ``clipped_l2norm`` variant)::

    s[j, t]  = k_j . q_t                                  raw dot products
    s'[j, t] = LeakyReLU_0.1(s[j, t])
    sbar[j, t] = s'[j, t] / (sqrt(sum_t' s'[j, t']^2) + eps)   norm over QUERIES
    alpha[t, j] = softmax_j(lambda_softmax * sbar[j, t])      over CONTEXT
    a_t  = sum_j alpha[t, j] k_j                           attended context
    R(t) = (q_t . a_t) / max(||q_t|| ||a_t||, eps)          relevance
    score = aggregate_t R(t)   over the real queries, with
        lse : log(sum_t exp(lambda_lse R(t))) / lambda_lse
        mean: mean_t R(t);   max: max_t R(t);   sum: sum_t R(t)

The paper writes ``[s]_+`` and cosine similarities for ``s``; the released code
(reproduced here) uses raw dot products of the (usually l2-normalised)
embeddings and ``LeakyReLU(0.1)`` ("clipped_l2norm").

Batched evaluation
------------------
:func:`scan_t2i` / :func:`scan_i2t` score every (image, caption) pair without
a Python loop over pairs.  For a block of captions one matrix product gives all
dot products ``S`` laid out as ``[n_ctx, n, m]`` (context owner, context slot,
flattened query slots).  Since ``a_t`` is a combination of context vectors,

    q_t . a_t  = sum_j alpha[t, j] S[j, t]
    ||a_t||^2  = alpha_t^T G alpha_t,   G = K K^T  (per-owner Gram, n x n)

so the ``[pairs, m, D]`` tensor of attended vectors is never materialised; the
cost beyond the single matrix product is ``O(pairs * m * n^2)`` instead of
``O(pairs * m * n * D)``.  The squared norm is clamped at 0 before the square
root to absorb rounding.  For moderate ``lambda_softmax`` the unnormalised
weights ``exp(lambda_softmax * sbar)`` are used (``|sbar| <= 1`` bounds them)
and the softmax normaliser is divided out of the two reductions.  Captions are processed in blocks (``chunk``), in
order of length, each block cut to its longest caption.  Without autograd the
intermediate buffers are reused in place and, for float32 on CPU, the matrix
product runs through oneDNN (see :data:`ONEDNN_MATMUL`).

Deviations from the released code
---------------------------------
* Variable lengths are expressed with boolean masks (``True`` = real slot)
  for both words and regions, instead of slicing each caption to
  ``cap_lens[c]`` inside a loop.  Padded slots are zeroed on entry and are
  excluded from the query-axis l2 norm, the softmax and the aggregation, so
  padding never changes a score.  Real slots need not form a prefix.
  Results equal the released formulation up to float rounding (the tests
  check 1e-5 in float32), with or without padding.
* The ``lse`` aggregation uses ``torch.logsumexp`` (identical value, no
  overflow for large ``lambda_lse``).
* Images or captions without any real slot raise ``ValueError`` instead of
  producing NaN.

:func:`graphmatch.testing.scan_t2i_loop` / :func:`~graphmatch.testing.scan_i2t_loop`
keep the released per-caption formulation (slice, expand over images,
:func:`~graphmatch.nn.functional.attention.func_attention`, cosine, aggregate)
as a readable reference and benchmark baseline.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from graphmatch.nn.functional.aggregation import aggregate, check_aggregation
from graphmatch.nn.functional.norms import LEAKY_SLOPE

__all__ = ["ONEDNN_MATMUL", "scan_t2i", "scan_i2t", "validate_scan_inputs", "auto_chunk"]

# Up to this |lambda_softmax| the attention weights exp(lambda * sbar), |sbar| <= 1,
# their sums and squared sums stay far from float32 overflow and underflow.
_EXP_SAFE_LAMBDA = 20.0

#: Use oneDNN (``Tensor.to_mkldnn`` + ``F.linear``) for the float32 CPU matrix
#: product of the batched scorers when no gradient is needed.  On CPUs where
#: the default BLAS does not use the widest vector units (e.g. MKL on AMD Zen)
#: this is about twice as fast.  Falls back to ``torch.mm`` if unavailable.
#: ``graphmatch.nn.functional.ONEDNN_MATMUL`` reads and sets this flag.
ONEDNN_MATMUL: bool = True


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------
def _check_set(x: Tensor, mask: Optional[Tensor], name: str, mask_name: str, item: str) -> Tensor:
    """Validate a padded set ``x`` [N, S, D] and return its bool mask [N, S]."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name} must have shape [N, slots, D], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    n, s, _ = x.shape
    if mask is None:
        mask = torch.ones(n, s, dtype=torch.bool, device=x.device)
    else:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"{mask_name} must be a bool tensor, got {got}")
        if tuple(mask.shape) != (n, s):
            raise ValueError(
                f"{mask_name} must have shape {(n, s)} to match {name} "
                f"{tuple(x.shape)}, got {tuple(mask.shape)}"
            )
        if mask.device != x.device:
            raise ValueError(f"{mask_name} is on {mask.device} but {name} is on {x.device}")
    if n > 0:
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"{name}: {len(empty)} {item}(s) have no real slot "
                f"(all-False {mask_name} rows) at indices {empty[:20]}"
                + (" ..." if len(empty) > 20 else "")
            )
    return mask


def validate_scan_inputs(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    agg: str,
    lambda_lse: float,
) -> tuple[Tensor, Tensor]:
    """Check the inputs of a SCAN scorer and return the bool masks (all-True for ``None``).

    Raises:
        ValueError: as :func:`scan_t2i`.
    """
    check_aggregation(agg, lambda_lse)
    image_mask = _check_set(images, image_mask, "images", "image_mask", "image")
    word_mask = _check_set(words, word_mask, "words", "word_mask", "caption")
    if images.shape[2] != words.shape[2]:
        raise ValueError(
            f"feature dimension mismatch: images have D={images.shape[2]}, "
            f"words have D={words.shape[2]}"
        )
    if images.dtype != words.dtype:
        raise ValueError(f"dtype mismatch: images are {images.dtype}, words are {words.dtype}")
    if images.device != words.device:
        raise ValueError(f"device mismatch: images on {images.device}, words on {words.device}")
    return image_mask, word_mask


# ---------------------------------------------------------------------------
# Batched implementation
# ---------------------------------------------------------------------------
def _xattn_block(
    queries: Tensor,
    query_mask: Tensor,
    query_norm: Tensor,
    context: Tensor,
    context_mask: Optional[Tensor],
    gram: Tensor,
    *,
    lambda_softmax: float,
    agg: str,
    lambda_lse: float,
    eps: float,
    inplace: bool,
    context_onednn: Optional[Tensor] = None,
) -> Tensor:
    """Cross-attention scores between every query set and every context set.

    Padded slots of ``queries`` and ``context`` must already be zero.

    Args:
        queries, query_mask, query_norm: query vectors, their mask and norms.
        context: context vectors.
        context_mask: context mask, or ``None`` when no context slot is padded.
        gram: per-owner Gram matrices of ``context``.
        inplace: reuse intermediate buffers (only when no gradient is needed).
        context_onednn: ``context`` as a ``[Nk * n, D]`` oneDNN tensor, to
            compute the dot products with oneDNN; ``None`` uses ``torch.mm``.

    Shapes:
        queries: [Nq, m, D], query_mask: [Nq, m], query_norm: [Nq, m]
        context: [Nk, n, D], context_mask: [Nk, n], gram: [Nk, n, n]

    Returns:
        Scores [Nk, Nq].
    """
    nq, m, d = queries.shape
    nk, n, _ = context.shape
    # All dot products with one matrix product: S[k, j, q, t] = k_j . q_t.
    s = _dots(context.reshape(nk * n, d), queries.reshape(nq * m, d), context_onednn)
    s = s.view(nk, n, nq, m)
    # Clipped l2 norm over the query slots t, times lambda_softmax.  Padded
    # queries are zero vectors: their entries are 0 and add nothing to the norm.
    attn = F.leaky_relu(s, LEAKY_SLOPE)
    scale = lambda_softmax / (torch.linalg.vector_norm(attn, 2, dim=3, keepdim=True) + eps)
    logits = attn.mul_(scale) if inplace else attn * scale
    # Softmax over the real context slots j (dim 1).  (Zero padded context
    # vectors would only rescale a_t, which the cosine ignores; they are
    # masked anyway so that alpha is exactly the attention over real slots.)
    if context_mask is not None:
        pad = ~context_mask.view(nk, n, 1, 1)
        neg_inf = float("-inf")
        logits = logits.masked_fill_(pad, neg_inf) if inplace else logits.masked_fill(pad, neg_inf)
    # Attention weights u = Z * alpha.  Since |sbar| <= 1, |logits| <= |lambda|,
    # and for moderate lambda exp() needs no max shift; the normaliser Z is
    # divided out of the two small reductions below instead of the full tensor.
    if abs(lambda_softmax) <= _EXP_SAFE_LAMBDA and s.dtype in (torch.float32, torch.float64):
        u = logits.exp_() if inplace else logits.exp()
    else:
        u = torch.softmax(logits, dim=1)
    del attn, logits
    z = u.sum(dim=1)  # [Nk, Nq, m]
    # q_t . a_t = sum_j alpha_j S_j  and  ||a_t||^2 = alpha^T G alpha.
    num = (s.mul_(u) if inplace else s * u).sum(dim=1).div_(z)  # [Nk, Nq, m]
    del s
    g_u = torch.bmm(gram, u.view(nk, n, nq * m)).view(nk, n, nq, m)
    sq = (g_u.mul_(u) if inplace else g_u * u).sum(dim=1).div_(z * z)
    del g_u, u
    rel = num / (query_norm.unsqueeze(0) * sq.clamp(min=0.0).sqrt()).clamp(min=eps)
    return aggregate(rel, query_mask.unsqueeze(0).expand_as(rel), agg, lambda_lse=lambda_lse)


def _onednn(x: Tensor) -> Optional[Tensor]:
    """``x`` [N, D] as a oneDNN tensor when the oneDNN path applies, else ``None``."""
    if not (
        ONEDNN_MATMUL
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not (torch.is_grad_enabled() and x.requires_grad)
        and torch.backends.mkldnn.is_available()
    ):
        return None
    try:
        return x.contiguous().to_mkldnn()
    except RuntimeError:
        return None


def _dots(x: Tensor, y: Tensor, x_onednn: Optional[Tensor]) -> Tensor:
    """All dot products ``x @ y.T`` ([N, D] x [M, D] -> [N, M]); through oneDNN when
    ``x_onednn`` (``x`` as a oneDNN tensor) is given and oneDNN takes it."""
    if x_onednn is not None:
        out = _onednn_dots(x_onednn, y)
        if out is not None:
            return out
    return torch.mm(x, y.t())


def _onednn_dots(x_onednn: Tensor, y: Tensor) -> Optional[Tensor]:
    """``x @ y.T`` with oneDNN as a dense tensor, or ``None`` when oneDNN refuses the inputs."""
    try:
        return F.linear(x_onednn, y.contiguous()).to_dense()
    except RuntimeError:
        return None


def _compaction_order(mask: Tensor) -> Optional[Tensor]:
    """Per-row slot order that puts the real slots first (order kept).

    Returns ``None`` when every row of ``mask`` [N, S] is already a prefix mask,
    else an index tensor [N, S].
    """
    counts = mask.sum(dim=1, keepdim=True)
    prefix = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0) < counts
    if bool(torch.equal(prefix, mask)):
        return None
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)


def auto_chunk(per_caption: int) -> int:
    """Captions per block (the ``chunk=None`` choice of :func:`scan_t2i` / :func:`scan_i2t`) so
    that one block holds about 2**21 attention entries; ``per_caption`` is
    ``n_images * regions * longest caption``."""
    return max(1, (1 << 21) // max(1, per_caption))


def _scan_batched(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    direction: str,
    lambda_softmax: float,
    agg: str,
    lambda_lse: float,
    eps: float,
    chunk: Optional[int],
) -> Tensor:
    image_mask, word_mask = validate_scan_inputs(images, image_mask, words, word_mask, agg, lambda_lse)
    n_img, n_cap = images.shape[0], words.shape[0]
    if n_img == 0 or n_cap == 0:
        return images.new_zeros(n_img, n_cap)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be a positive int or None, got {chunk!r}")
    inplace = not (torch.is_grad_enabled() and (images.requires_grad or words.requires_grad))

    # Padded slots are zeroed so that arbitrary values there cannot leak into
    # sums (or produce inf * 0); they receive zero gradient.
    image_padded = not bool(image_mask.all())
    if image_padded:
        images = images.masked_fill(~image_mask.unsqueeze(-1), 0.0)
    # Captions are processed in order of length, with their real words moved
    # to the front; each block is cut to its longest caption, so little work
    # is spent on padding.
    order_in_row = _compaction_order(word_mask)
    lengths = word_mask.sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    sorted_lengths = lengths[order].tolist()
    if chunk is None:
        chunk = auto_chunk(n_img * images.shape[1] * max(sorted_lengths))

    def caption_block(c0: int, c1: int) -> tuple[Tensor, Tensor]:
        """Words [c1 - c0, m, D] (zero-padded) and prefix mask of sorted captions c0..c1-1."""
        idx = order[c0:c1]
        m = sorted_lengths[c1 - 1]
        if order_in_row is None:
            w = words[idx, :m]
        else:
            slots = order_in_row[idx, :m]
            w = words[idx.unsqueeze(1), slots]
        wm = torch.arange(m, device=words.device).unsqueeze(0) < lengths[idx].unsqueeze(1)
        if not bool(wm.all()):
            w = w.masked_fill(~wm.unsqueeze(-1), 0.0)
        return w, wm

    kw = dict(
        lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse, eps=eps, inplace=inplace
    )
    blocks = []
    if direction == "t2i":
        gram = torch.bmm(images, images.transpose(1, 2))  # [n_img, R, R]
        ctx_mask = image_mask if image_padded else None
        images_onednn = _onednn(images.reshape(-1, images.shape[2])) if inplace else None
        for c0 in range(0, n_cap, chunk):
            w, wm = caption_block(c0, min(c0 + chunk, n_cap))
            w_norm = torch.linalg.vector_norm(w, 2, dim=-1)
            blocks.append(
                _xattn_block(
                    w, wm, w_norm, images, ctx_mask, gram, context_onednn=images_onednn, **kw
                )
            )  # [n_img, c1 - c0]
    else:
        # i2t: queries are regions, context are words.
        image_norm = torch.linalg.vector_norm(images, 2, dim=-1)
        for c0 in range(0, n_cap, chunk):
            w, wm = caption_block(c0, min(c0 + chunk, n_cap))
            gram = torch.bmm(w, w.transpose(1, 2))  # [chunk, m, m]
            ctx_mask = None if bool(wm.all()) else wm
            w_onednn = _onednn(w.reshape(-1, w.shape[2])) if inplace else None
            blocks.append(
                _xattn_block(
                    images, image_mask, image_norm, w, ctx_mask, gram, context_onednn=w_onednn, **kw
                ).t()
            )  # [n_img, c1 - c0]
    scores = torch.cat(blocks, dim=1)  # [n_img, n_cap], captions in sorted order
    return scores[:, torch.argsort(order)]


def scan_t2i(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    lambda_softmax: float = 9.0,
    agg: str = "lse",
    lambda_lse: float = 6.0,
    eps: float = 1e-8,
    chunk: Optional[int] = None,
) -> Tensor:
    """Text-to-image SCAN similarity for every (image, caption) pair.

    Each word attends over the regions of the image; the caption score
    aggregates the word relevances ``R(word, attended regions)``.

    Args:
        images: Region embeddings ``[n_images, R, D]``.
        image_mask: Bool ``[n_images, R]``, ``True`` for real regions, or
            ``None`` (all real).
        words: Word embeddings ``[n_captions, L, D]``.
        word_mask: Bool ``[n_captions, L]``, ``True`` for real words, or ``None``.
        lambda_softmax: Softmax inverse temperature (lambda_1 in the paper).
        agg: Aggregation over words, one of ``"lse"``, ``"mean"``, ``"max"``,
            ``"sum"``.
        lambda_lse: LogSumExp sharpness (lambda_2), used when ``agg="lse"``.
        eps: Norm / cosine epsilon.
        chunk: Number of captions scored per block.  A block holds a few
            tensors of ``n_images * R * chunk * L`` elements; ``None`` picks
            the chunk so that this product is about 2**21.  Captions are
            processed in order of length and each block is cut to its longest
            caption.

    Returns:
        Similarities ``[n_images, n_captions]``.

    Raises:
        ValueError: unknown ``agg``; mismatched shapes, dtypes or devices; an
            image without real regions or a caption without real words.
    """
    return _scan_batched(
        images, image_mask, words, word_mask, direction="t2i",
        lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse, eps=eps, chunk=chunk,
    )


def scan_i2t(
    images: Tensor,
    image_mask: Optional[Tensor],
    words: Tensor,
    word_mask: Optional[Tensor],
    *,
    lambda_softmax: float = 4.0,
    agg: str = "lse",
    lambda_lse: float = 5.0,
    eps: float = 1e-8,
    chunk: Optional[int] = None,
) -> Tensor:
    """Image-to-text SCAN similarity for every (image, caption) pair.

    Each region attends over the words of the caption; the score aggregates
    the region relevances ``R(region, attended words)``.

    Args:
        images: Region embeddings ``[n_images, R, D]``.
        image_mask: Bool ``[n_images, R]`` (``True`` = real region) or ``None``.
        words: Word embeddings ``[n_captions, L, D]``.
        word_mask: Bool ``[n_captions, L]`` (``True`` = real word) or ``None``.
        lambda_softmax: Softmax inverse temperature (lambda_1).
        agg: Aggregation over regions: ``"lse"``, ``"mean"``, ``"max"``, ``"sum"``.
        lambda_lse: LogSumExp sharpness (lambda_2), used when ``agg="lse"``.
        eps: Norm / cosine epsilon.
        chunk: Number of captions scored per block; ``None`` = automatic
            (see :func:`scan_t2i`).

    Returns:
        Similarities ``[n_images, n_captions]``.

    Raises:
        ValueError: as :func:`scan_t2i`.
    """
    return _scan_batched(
        images, image_mask, words, word_mask, direction="i2t",
        lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse, eps=eps, chunk=chunk,
    )
