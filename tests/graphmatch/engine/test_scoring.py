"""Tests for graphmatch.engine.scoring."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from graphmatch.engine.scoring import _block_bytes, auto_chunks, chunked_similarity
from graphmatch.structures import NodeEmb


def chunked(fn, img_x, img_mask, cap_x, cap_mask, **kw):
    """chunked_similarity of a score function written on tensors (x, mask) of both sides."""
    return chunked_similarity(lambda i, c: fn(i.x, i.mask, c.x, c.mask), NodeEmb(img_x, img_mask),
                              NodeEmb(cap_x, cap_mask), **kw)


# ------------------------------------------------------------------------------------------
# Score functions written for the tests
# ------------------------------------------------------------------------------------------
def pooled_cosine(
    ix: torch.Tensor, im: torch.Tensor, cx: torch.Tensor, cm: torch.Tensor
) -> torch.Tensor:
    """Cosine similarity of masked mean-pooled node features, [a, b]."""
    iv = (ix * im[..., None]).sum(1) / im.sum(1, keepdim=True).clamp(min=1)
    cv = (cx * cm[..., None]).sum(1) / cm.sum(1, keepdim=True).clamp(min=1)
    return F.normalize(iv, dim=-1) @ F.normalize(cv, dim=-1).t()


def cross_attention(
    ix: torch.Tensor, im: torch.Tensor, cx: torch.Tensor, cm: torch.Tensor
) -> torch.Tensor:
    """Words attend over regions (masked softmax); score = mean over real words of
    cos(word, attended context). Shapes: ix [a, R, D], cx [b, L, D] -> [a, b]."""
    logits = torch.einsum("ard,bld->ablr", ix, cx) * 4.0  # [a, b, L, R]
    logits = logits.masked_fill(~im[:, None, None, :], float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    context = torch.einsum("ablr,ard->abld", weights, ix)  # [a, b, L, D]
    cos = F.cosine_similarity(context, cx[None].expand_as(context), dim=-1)  # [a, b, L]
    cos = cos.masked_fill(~cm[None], 0.0)
    return cos.sum(-1) / cm.sum(-1).clamp(min=1)[None].to(cos.dtype)


def make_data(
    n_img: int, n_cap: int, r: int = 7, l: int = 9, d: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random nodes with odd masks: ragged lengths, holes, and garbage in the padded slots."""
    gen = torch.Generator().manual_seed(seed)
    img_x = torch.randn(n_img, r, d, generator=gen)
    cap_x = torch.randn(n_cap, l, d, generator=gen)
    img_len = torch.randint(1, r + 1, (n_img,), generator=gen)
    cap_len = torch.randint(0, l + 1, (n_cap,), generator=gen)  # 0 words possible
    img_mask = torch.arange(r)[None] < img_len[:, None]
    cap_mask = torch.arange(l)[None] < cap_len[:, None]
    # holes inside some rows (mask not a prefix)
    img_mask[::3, 0] = False
    img_mask[::3, -1] = True
    cap_mask[1::4, 1] = False
    # a block of short captions so that some chunks can be trimmed a lot
    cap_mask[: min(5, n_cap), 2:] = False
    # garbage in the padding: a correct masked score function ignores it
    img_x[~img_mask] = 1e3
    cap_x[~cap_mask] = -1e3
    return img_x, img_mask, cap_x, cap_mask


# ------------------------------------------------------------------------------------------
# Equality with the full computation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("score_fn", [pooled_cosine, cross_attention])
@pytest.mark.parametrize("chunks", [(1, 1), (2, 3), (4, 5), (3, 17), (100, 100)])
def test_chunked_equals_full(score_fn, chunks: tuple[int, int]) -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(12, 17)
    full = score_fn(img_x, img_mask, cap_x, cap_mask).float()
    got = chunked(
        score_fn, img_x, img_mask, cap_x, cap_mask, img_chunk=chunks[0], cap_chunk=chunks[1]
    )
    assert got.shape == (12, 17) and got.dtype == torch.float32 and got.device.type == "cpu"
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-6)


def test_device_and_progress() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(5, 8)
    full = pooled_cosine(img_x, img_mask, cap_x, cap_mask)
    got = chunked(
        pooled_cosine, img_x, img_mask, cap_x, cap_mask,
        img_chunk=2, cap_chunk=3, device="cpu", progress=True, desc="test",
    )
    torch.testing.assert_close(got, full)


def test_float64_blocks_are_returned_as_float32() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(4, 6)
    got = chunked(
        cross_attention, img_x.double(), img_mask, cap_x.double(), cap_mask,
        img_chunk=3, cap_chunk=4,
    )
    assert got.dtype == torch.float32
    full = cross_attention(img_x.double(), img_mask, cap_x.double(), cap_mask).float()
    torch.testing.assert_close(got, full)


def test_runs_without_grad() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(3, 4)
    w = torch.ones(8, requires_grad=True)
    seen = []

    def fn(ix, im, cx, cm):
        seen.append(torch.is_grad_enabled())
        return pooled_cosine(ix * w, im, cx, cm)

    out = chunked(fn, img_x, img_mask, cap_x, cap_mask, img_chunk=2, cap_chunk=2)
    assert seen and not any(seen)
    assert not out.requires_grad


# ------------------------------------------------------------------------------------------
# Padding trimming
# ------------------------------------------------------------------------------------------
def test_node_emb_trim() -> None:
    x = torch.arange(15.0).view(3, 5, 1)
    mask = torch.tensor(
        [[True, False, True, False, False], [True, False, False, False, False], [False] * 5]
    )
    adj = torch.rand(3, 5, 5)
    t = NodeEmb(x, mask, adj=adj, pooled=torch.ones(3, 2)).trim()
    assert t.x.shape == (3, 3, 1) and t.mask.shape == (3, 3)  # last real node of any row is index 2
    assert torch.equal(t.mask, mask[:, :3]) and torch.equal(t.adj, adj[:, :3, :3])
    assert torch.equal(t.pooled, torch.ones(3, 2))
    # all-padding chunk keeps one column; full rows are left alone
    assert NodeEmb(x, torch.zeros(3, 5, dtype=torch.bool)).trim().x.shape == (3, 1, 1)
    assert NodeEmb(x, torch.ones(3, 5, dtype=torch.bool)).trim().x.shape == (3, 5, 1)


def test_node_emb_slicing_cat_and_checks() -> None:
    a = NodeEmb(torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), adj=torch.rand(2, 3, 3))
    b = NodeEmb(torch.randn(1, 5, 4), torch.ones(1, 5, dtype=torch.bool), adj=torch.rand(1, 5, 5))
    c = NodeEmb.cat([a, b])
    assert c.x.shape == (3, 5, 4) and c.adj.shape == (3, 5, 5) and len(c) == 3
    assert not c.mask[:2, 3:].any() and torch.equal(c[:2].trim().adj, a.adj) and torch.equal(c[2].x, b.x)
    assert torch.equal(c[torch.tensor([2, 0])].x[1, :3], a.x[0])
    with pytest.raises(ValueError, match="set in some parts"):
        NodeEmb.cat([a, NodeEmb(b.x, b.mask)])
    with pytest.raises(ValueError, match="mask has shape"):
        NodeEmb(a.x, a.mask[:, :2])
    with pytest.raises(ValueError, match="adj has shape"):
        NodeEmb(a.x, a.mask, adj=torch.rand(2, 3, 2))


def test_chunks_are_trimmed_per_chunk() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(4, 10, r=6, l=9)
    cap_mask[:5] = False
    cap_mask[:5, :2] = True  # captions 0-4: 2 words; 5-9: last word at index 8
    cap_mask[5:, 8] = True
    img_mask[:] = False
    img_mask[:, :3] = True  # every image has 3 regions of 6
    widths = []

    def fn(ix, im, cx, cm):
        widths.append((ix.shape[1], cx.shape[1]))
        return pooled_cosine(ix, im, cx, cm)

    got = chunked(fn, img_x, img_mask, cap_x, cap_mask, img_chunk=4, cap_chunk=5)
    assert widths == [(3, 2), (3, 9)]
    torch.testing.assert_close(got, pooled_cosine(img_x, img_mask, cap_x, cap_mask))


def test_graph_fields_travel_with_their_chunk() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(5, 6)
    adj = torch.rand(5, img_x.shape[1], img_x.shape[1])
    img = NodeEmb(img_x, img_mask, adj=adj)

    def fn(i, c):  # scores that depend on the adjacency rows of each image
        assert i.adj is not None and i.adj.shape[1:] == (i.x.shape[1], i.x.shape[1])
        m = i.mask.float()
        return (i.adj * m[:, None, :] * m[:, :, None]).sum((1, 2))[:, None].expand(len(i), len(c))

    got = chunked_similarity(fn, img, NodeEmb(cap_x, cap_mask), img_chunk=2, cap_chunk=4)
    m = img_mask.float()
    torch.testing.assert_close(got[:, 0], (adj * m[:, None, :] * m[:, :, None]).sum((1, 2)))


# ------------------------------------------------------------------------------------------
# Empty inputs and errors
# ------------------------------------------------------------------------------------------
def test_empty_inputs() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(3, 4)

    def never(*args):
        raise AssertionError("score_fn must not be called")

    out = chunked(never, img_x, img_mask, cap_x[:0], cap_mask[:0])
    assert out.shape == (3, 0) and out.dtype == torch.float32
    out = chunked(never, img_x[:0], img_mask[:0], cap_x, cap_mask)
    assert out.shape == (0, 4)


def test_wrong_block_shape_names_the_block() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(5, 7)

    def bad(ix, im, cx, cm):
        out = pooled_cosine(ix, im, cx, cm)
        return out[:, :-1] if cx.shape[0] == 2 else out  # the last caption chunk is [5:7]

    with pytest.raises(ValueError, match=r"images \[0:3\] x captions \[5:7\].*\(3, 2\)"):
        chunked(bad, img_x, img_mask, cap_x, cap_mask, img_chunk=3, cap_chunk=5)
    with pytest.raises(TypeError, match="tensor"):
        chunked(lambda *a: [[0.0]], img_x, img_mask, cap_x, cap_mask)
    with pytest.raises(ValueError, match="shape"):
        chunked(
            lambda *a: torch.zeros(5 * 7), img_x, img_mask, cap_x, cap_mask,
            img_chunk=5, cap_chunk=7,
        )


def test_input_errors() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(3, 4)
    with pytest.raises(ValueError, match="mask has shape"):
        chunked(pooled_cosine, img_x, img_mask[:, :2], cap_x, cap_mask)
    with pytest.raises(ValueError, match="mask must be a bool"):
        chunked(pooled_cosine, img_x, img_mask, cap_x, cap_mask.float())
    with pytest.raises(ValueError, match="img_chunk"):
        chunked(pooled_cosine, img_x, img_mask, cap_x, cap_mask, img_chunk=0)
    with pytest.raises(ValueError, match="img must be a NodeEmb"):
        chunked_similarity(pooled_cosine, img_x, NodeEmb(cap_x, cap_mask))


# ------------------------------------------------------------------------------------------
# auto_chunks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,budget",
    [((36, 32, 1024), 2**30), ((100, 50, 2048), 2**28), ((36, 12, 256), 2**34), ((4, 4, 4), 2**20)],
)
def test_auto_chunks_fits_budget(args: tuple[int, int, int], budget: int) -> None:
    a, b = auto_chunks(*args, budget_bytes=budget)
    assert a >= 1 and b >= 2 * a
    assert _block_bytes(a, b, *args) <= budget
    assert _block_bytes(a, b + 1, *args) > budget  # b is the largest for this a
    assert _block_bytes(a + 1, 2 * (a + 1), *args) > budget  # a is the largest at ratio 1:2
    # the attention block alone is within the budget
    n_regions, n_words, _ = args
    assert 4 * a * b * n_words * n_regions <= budget


def test_auto_chunks_small_budget_and_monotone() -> None:
    assert auto_chunks(100, 50, 2048, budget_bytes=10) == (1, 1)
    small = auto_chunks(36, 32, 1024, budget_bytes=2**26)
    large = auto_chunks(36, 32, 1024, budget_bytes=2**30)
    assert small[0] <= large[0] and small[1] <= large[1]
    with pytest.raises(ValueError, match="n_words"):
        auto_chunks(36, 0, 1024)
    with pytest.raises(ValueError, match="budget"):
        auto_chunks(36, 32, 1024, budget_bytes=0)


def test_auto_chunks_drive_chunked() -> None:
    img_x, img_mask, cap_x, cap_mask = make_data(9, 13)
    a, b = auto_chunks(7, 9, 8, budget_bytes=4 * (3 * 6 * (7 * 9 + 1) + 3 * 7 * 8 + 6 * 9 * 8))
    assert (a, b) == (3, 6)
    got = chunked(
        cross_attention, img_x, img_mask, cap_x, cap_mask, img_chunk=a, cap_chunk=b
    )
    torch.testing.assert_close(got, cross_attention(img_x, img_mask, cap_x, cap_mask))
