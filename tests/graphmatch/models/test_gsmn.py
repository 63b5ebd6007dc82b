"""GSMN (graphmatch.models.gsmn): the batched score equals a per-pair implementation of the paper's
equations (real message passing) and the released neighbourhood equals a per-caption loop of the
released computation, both on parameters in the released layout; the textual score reads the
parse with message passing and not with the released neighbourhood; padding; gradients; errors;
training through the normal path on synthetic scenes."""
from __future__ import annotations

import math
import shutil

import pytest
import torch
from torch import nn
from torch_geometric.utils import to_dense_batch

from graphmatch.config import load_config
from graphmatch.data.vocab import Vocabulary
from graphmatch.graphs import build_visual_graph, build_word_graph, collate_graphs
from graphmatch.models import GSMN, build_matcher
from graphmatch.models.base import attach_dense_graph
from graphmatch.models.gsmn import released_graph_state, to_released_graph_state
from graphmatch.structures import NodeEmb
from graphmatch.testing.reference import gsmn_caption_loop, gsmn_pair_score

D, B, H, K = 8, 4, 8, 4  # node size, blocks, hidden size, kernels
LAM = 9.0
REGIONS = (3, 5, 1, 4)
WORDS = (4, 2, 6, 1, 3)
W_IMG, H_IMG = 100.0, 80.0


def released_states(seed: int = 0):
    """Random parameters in the layout of the released ``i2t_match_G`` / ``t2i_match_G``."""
    g = torch.Generator().manual_seed(seed)
    i2t = {"graph_convolution_1.mean_rho": torch.rand(K, 1, generator=g),
           "graph_convolution_1.mean_theta": (torch.rand(K, 1, generator=g) * 2 - 1) * math.pi,
           "graph_convolution_1.precision_rho": 0.2 + torch.rand(K, 1, generator=g),
           "graph_convolution_1.precision_theta": 0.5 + 2 * torch.rand(K, 1, generator=g)}
    t2i = {"graph_convolution_3.params": (0.2 + torch.rand(K, 1, generator=g)) * torch.randn(K, 1, generator=g).sign()}
    for state, conv in ((i2t, "graph_convolution_1"), (t2i, "graph_convolution_3")):
        for k in range(K):
            state[f"{conv}.conv_weights.{k}.weight"] = torch.randn(H // K, B, generator=g)
            if conv == "graph_convolution_3":  # the released textual maps have biases
                state[f"{conv}.conv_weights.{k}.bias"] = torch.randn(H // K, generator=g)
        for name, (o, i) in (("out_1", (H, H)), ("out_2", (1, H))):
            state[f"{name}.weight_g"] = 0.5 + torch.rand(o, 1, generator=g)
            state[f"{name}.weight_v"] = torch.randn(o, i, generator=g)
            state[f"{name}.bias"] = torch.randn(o, generator=g)
    return i2t, t2i


def matcher(states=None, **options) -> GSMN:
    m = GSMN(image_encoder=nn.Identity(), text_encoder=nn.Identity(), embed_dim=D, num_block=B, hid_dim=H,
             n_kernels=K, lambda_softmax=LAM, **options)
    if states is not None:
        res = m.load_state_dict(released_graph_state(*states), strict=False)
        assert not res.unexpected_keys and not res.missing_keys
    return m.eval()


def image_batch(regions=REGIONS, edges="polar", seed=1, **edge_options):
    """(image NodeEmb with the dense graph attached, normalised box centres [I, N, 2])."""
    g = torch.Generator().manual_seed(seed)
    graphs, centres = [], torch.zeros(len(regions), max(regions), 2)
    for i, r in enumerate(regions):
        x1y1 = torch.rand(r, 2, generator=g) * 50
        boxes = torch.cat([x1y1, x1y1 + 10 + torch.rand(r, 2, generator=g) * 40], 1)
        x = torch.nn.functional.normalize(torch.randn(r, D, generator=g), dim=-1)
        graphs.append(build_visual_graph(x, boxes=boxes, image_size=(W_IMG, H_IMG), item=i, edges=edges, **edge_options))
        centres[i, :r] = (boxes[:, :2] + boxes[:, 2:]) / 2 / torch.tensor([W_IMG, H_IMG])
    batch = collate_graphs(graphs)
    x, mask = to_dense_batch(batch.x, batch.batch)
    return attach_dense_graph(NodeEmb(x, mask), batch), centres


def random_trees(words=WORDS, seed=2):
    """A random dependency-like tree per caption, as a symmetric adjacency ``[C, L, L]``."""
    g = torch.Generator().manual_seed(seed)
    adj = torch.zeros(len(words), max(words), max(words))
    for c, n in enumerate(words):
        for w in range(1, n):
            h = int(torch.randint(0, w, (1,), generator=g))
            adj[c, w, h] = adj[c, h, w] = 1.0
    return adj


def caption_batch(words=WORDS, adj=None, seed=3):
    g = torch.Generator().manual_seed(seed)
    n = max(words)
    x = torch.zeros(len(words), n, D)
    for c, w in enumerate(words):
        x[c, :w] = torch.nn.functional.normalize(torch.randn(w, D, generator=g), dim=-1)
    mask = torch.arange(n)[None] < torch.tensor(words)[:, None]
    return NodeEmb(x, mask, random_trees(words) if adj is None else adj)


def pair_reference(img, centres, cap, states, *, dense=False, uniform=False):
    out = torch.zeros(len(img), len(cap))
    for i in range(len(img)):
        n = int(img.mask[i].sum())
        for c in range(len(cap)):
            ln = int(cap.mask[c].sum())
            out[i, c] = gsmn_pair_score(img.x[i, :n], cap.x[c, :ln], img.adj[i, :n, :n], centres[i, :n],
                                        None if dense else cap.adj[c, :ln, :ln], i2t_state=states[0],
                                        t2i_state=states[1], num_block=B, lambda_softmax=LAM, uniform=uniform)
    return out


# ----------------------------------------------------------------------------------- equations
@pytest.mark.parametrize("graph", ["sparse", "dense"])
def test_batched_score_equals_the_paper_equations_pair_by_pair(graph):
    states = released_states()
    img, centres = image_batch()
    cap = caption_batch()
    with torch.no_grad():
        s = matcher(states, graph=graph).score(img, cap)
    assert s.shape == (4, 5)
    torch.testing.assert_close(s, pair_reference(img, centres, cap, states, dense=graph == "dense"),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("neighbourhood", ["released", "messages"])
@pytest.mark.parametrize("graph", ["sparse", "dense"])
def test_batched_score_equals_the_per_caption_loop(neighbourhood, graph):
    """``released`` against the released computation caption by caption (and ``messages`` against
    the same loop with the neighbour's vector in the neighbourhood tensor)."""
    states = released_states(1)
    img, centres = image_batch(seed=4)
    cap = caption_batch(seed=5)
    with torch.no_grad():
        s = matcher(states, graph=graph, neighbourhood=neighbourhood).score(img, cap)
    loop = gsmn_caption_loop(img.x, img.mask, img.adj, centres, cap.x, cap.mask, cap.adj, i2t_state=states[0],
                             t2i_state=states[1], num_block=B, lambda_softmax=LAM, neighbourhood=neighbourhood,
                             dense=graph == "dense")
    torch.testing.assert_close(s, loop, rtol=0, atol=1e-5)


def test_uniform_weights_without_polar_features_equal_the_equations():
    """Graphs without (rho, theta) edge features (knn geometry here) get 1/K on every edge."""
    states = released_states(2)
    img, centres = image_batch(edges="knn", k=2)
    assert img.edge_attr.size(-1) == 5
    cap = caption_batch()
    with torch.no_grad():
        auto = matcher(states).score(img, cap)
        uniform = matcher(states, visual_weights="uniform").score(img, cap)
    torch.testing.assert_close(auto, uniform, rtol=0, atol=0)
    torch.testing.assert_close(auto, pair_reference(img, centres, cap, states, uniform=True), rtol=0, atol=1e-5)
    # a graph without edge features at all (the ``full`` builder)
    full, _ = image_batch(edges="full")
    assert full.edge_attr is None
    with torch.no_grad():
        torch.testing.assert_close(matcher(states).score(full, cap),
                                   pair_reference(full, centres, cap, states, uniform=True), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------- structure matters
def test_message_passing_makes_the_textual_score_read_the_parse_and_the_released_one_does_not():
    states = released_states(3)
    img, _ = image_batch()
    words = (6, 6)
    chain = torch.zeros(2, 6, 6)
    star = torch.zeros(2, 6, 6)
    for w in range(1, 6):
        chain[:, w, w - 1] = chain[:, w - 1, w] = 1.0
        star[:, w, 0] = star[:, 0, w] = 1.0
    a, b = caption_batch(words, chain), caption_batch(words, star)  # same words, two parses
    assert torch.equal(a.x, b.x)
    dense = NodeEmb(a.x, a.mask, torch.zeros_like(chain))
    with torch.no_grad():
        m = matcher(states)
        assert (m.score(img, a) - m.score(img, b)).abs().max() > 1e-3
        r_sparse, r_dense = matcher(states, neighbourhood="released"), matcher(states, neighbourhood="released",
                                                                              graph="dense")
        ref = r_sparse.score(img, a)
        torch.testing.assert_close(r_sparse.score(img, b), ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(r_dense.score(img, dense), ref, rtol=0, atol=1e-6)
        # with messages, dense (every pair) differs from the tree, and a full adjacency equals dense
        md = matcher(states, graph="dense")
        assert (md.score(img, a) - m.score(img, a)).abs().max() > 1e-3
        full = NodeEmb(a.x, a.mask, torch.ones_like(chain))
        torch.testing.assert_close(m.score(img, full), md.score(img, dense), rtol=0, atol=1e-6)


def test_message_passing_makes_the_visual_score_read_the_geometry():
    """Other boxes (same features) change both scores, but in the released computation a region's
    contribution depends on no other region's matching vector (geometry only rescales it)."""
    states = released_states(4)
    img, _ = image_batch(seed=1)
    other, _ = image_batch(seed=7)  # same region counts, other boxes
    moved = NodeEmb(img.x, img.mask, img.adj, other.edge_attr)
    cap = caption_batch()
    with torch.no_grad():
        for nb in ("messages", "released"):
            m = matcher(states, neighbourhood=nb)
            assert (m.score(img, cap) - m.score(moved, cap)).abs().max() > 1e-4, nb
        # released: replacing the OTHER regions' matching vectors leaves region 0's contribution alone
        m = matcher(states, neighbourhood="released")
        w = m.visual.edge_weights(img, mode="polar", released=True)
        base = torch.rand(1, 1, img.x.size(1), B)
        other = base.clone()
        other[..., 1:, :] = torch.rand_like(other[..., 1:, :])
        one = torch.zeros_like(img.mask[:1])
        one[0, 0] = True
        assert torch.equal(m.visual(base, w[:1], one, released=True), m.visual(other, w[:1], one, released=True))
        mm = matcher(states)
        assert not torch.equal(mm.visual(base, w[:1], one, released=False), mm.visual(other, w[:1], one, released=False))


def direct_matching_vectors(v, v_mask, u, u_mask, num_block, lam, eps=1e-8):
    """Node-level matching with the attended vectors formed explicitly, pair by pair:
    ``a_r = sum_w alpha_rw u_w`` and ``cos(v_r^(b), a_r^(b)) = <v, a> / max(|v| |a|, eps)`` per block."""
    m_v = torch.zeros(len(v), len(u), v.size(1), num_block, dtype=v.dtype)
    m_u = torch.zeros(len(v), len(u), u.size(1), num_block, dtype=v.dtype)

    def cos(q, a):  # [n, D], [n, D] -> [n, B]
        q, a = q.view(len(q), num_block, -1), a.view(len(a), num_block, -1)
        return (q * a).sum(-1) / (q.norm(dim=-1) * a.norm(dim=-1)).clamp(min=eps)

    for i in range(len(v)):
        vi = v[i][v_mask[i]]
        for c in range(len(u)):
            uc = u[c][u_mask[c]]
            x = torch.nn.functional.leaky_relu(vi @ uc.t(), 0.1)  # [n, l]
            alpha = torch.softmax(lam * x / (x.norm(dim=0, keepdim=True) + eps), dim=1)
            beta = torch.softmax(lam * x / (x.norm(dim=1, keepdim=True) + eps), dim=0)
            m_v[i, c, v_mask[i]] = cos(vi, alpha @ uc)
            m_u[i, c, u_mask[c]] = cos(uc, beta.t() @ vi)
    return m_v, m_u


def test_matching_vectors_from_block_products_and_grams_equal_the_attended_vectors():
    """gsmn_matching_vectors never forms the attended vectors (block-wise products and Gram
    matrices instead): values and gradients equal the explicit formulation, zero at padding, with
    unnormalised nodes and a block that is zero in every word of a caption (|a^(b)| = 0)."""
    from graphmatch.models.gsmn import gsmn_matching_vectors

    g = torch.Generator().manual_seed(11)
    img, _ = image_batch()
    cap = caption_batch()
    v = (img.x * (0.5 + 2 * torch.rand(img.x.shape[:2] + (1,), generator=g))).requires_grad_()
    u0 = cap.x * (0.5 + 2 * torch.rand(cap.x.shape[:2] + (1,), generator=g))
    u0[1, :, : D // B] = 0.0  # caption 1: block 0 is zero in every word
    u = u0.requires_grad_()
    m_v, m_u = gsmn_matching_vectors(v, img.mask, u, cap.mask, num_block=B, lambda_softmax=LAM)
    r_v, r_u = direct_matching_vectors(v, img.mask, u, cap.mask, B, LAM)
    torch.testing.assert_close(m_v, r_v, rtol=0, atol=1e-5)
    torch.testing.assert_close(m_u, r_u, rtol=0, atol=1e-5)
    assert m_v.transpose(1, 2)[~img.mask].abs().sum() == 0 and m_u[:, ~cap.mask].abs().sum() == 0
    assert m_v[:, 1, :, 0].abs().sum() == 0  # cos with a zero attended block is 0, as in the direct form
    w_v, w_u = torch.randn(m_v.shape, generator=g), torch.randn(m_u.shape, generator=g)
    grads = torch.autograd.grad((m_v * w_v).sum() + (m_u * w_u).sum(), (v, u))
    refs = torch.autograd.grad((r_v * w_v).sum() + (r_u * w_u).sum(), (v, u))
    for got, ref in zip(grads, refs):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)  # gradients of order 10


# ------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("neighbourhood", ["messages", "released"])
def test_padding_of_regions_and_words_never_changes_a_score(neighbourhood):
    states = released_states(5)
    img, _ = image_batch()
    cap = caption_batch()

    def pad(e: NodeEmb, extra: int) -> NodeEmb:
        b, n = e.mask.shape
        x = torch.cat([e.x, 100 * torch.randn(b, extra, D)], 1)
        mask = torch.cat([e.mask, torch.zeros(b, extra, dtype=torch.bool)], 1)
        adj = torch.nn.functional.pad(e.adj, (0, extra, 0, extra), value=1.0)  # even edges to padding
        ea = None if e.edge_attr is None else torch.nn.functional.pad(e.edge_attr, (0, 0, 0, extra, 0, extra),
                                                                       value=0.7)
        return NodeEmb(x, mask, adj, ea)

    m = matcher(states, neighbourhood=neighbourhood)
    with torch.no_grad():
        ref = m.score(img, cap)
        torch.testing.assert_close(m.score(pad(img, 3), pad(cap, 4)), ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(m.score(img[1:3], cap[2:5]), ref[1:3, 2:5], rtol=0, atol=1e-6)


def test_image_chunks_give_the_unchunked_scores(monkeypatch):
    import graphmatch.models.gsmn as gsmn

    img, _ = image_batch()
    cap = caption_batch()
    m = matcher(released_states(6))
    with torch.no_grad():
        ref = m.score(img, cap)
        monkeypatch.setattr(gsmn, "MAX_BLOCK_ELEMENTS", 1)  # one image per chunk
        torch.testing.assert_close(m.score(img, cap), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("neighbourhood", ["messages", "released"])
def test_gradients_reach_nodes_and_every_parameter(neighbourhood):
    m = matcher(neighbourhood=neighbourhood).train()
    img, _ = image_batch()
    cap = caption_batch()
    x_i, x_c = img.x.clone().requires_grad_(), cap.x.clone().requires_grad_()
    s = m.score(NodeEmb(x_i, img.mask, img.adj, img.edge_attr), NodeEmb(x_c, cap.mask, cap.adj))
    (s.diagonal().sum() - s.mean()).backward()
    assert torch.isfinite(x_i.grad).all() and x_i.grad[img.mask].abs().sum() > 0
    assert torch.isfinite(x_c.grad).all() and x_c.grad[cap.mask].abs().sum() > 0
    assert x_i.grad[~img.mask].abs().sum() == 0 and x_c.grad[~cap.mask].abs().sum() == 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_released_graph_state_maps_every_released_parameter():
    i2t, t2i = released_states()
    state = released_graph_state(i2t, t2i)
    ours = {k for k in matcher().state_dict() if k.startswith(("visual.", "textual."))}
    assert set(state) == ours
    assert torch.equal(state["visual.lin.weight"][H // K:2 * H // K], i2t["graph_convolution_1.conv_weights.1.weight"])
    assert torch.equal(state["visual.sigma_theta"], i2t["graph_convolution_1.precision_theta"].reshape(-1))
    # and back: the released layout of a matcher scores as the matcher does
    m = matcher(released_states(7))
    back = to_released_graph_state(m)
    torch.testing.assert_close(released_graph_state(*back), {k: v for k, v in m.state_dict().items()
                                                            if k.startswith(("visual.", "textual."))})
    del t2i["out_2.bias"]
    with pytest.raises(KeyError, match="out_2.bias"):
        released_graph_state(i2t, t2i)


def test_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match="num_block=3 must divide embed_dim=8"):
        GSMN(image_encoder=nn.Identity(), text_encoder=nn.Identity(), embed_dim=8, num_block=3)
    with pytest.raises(ValueError, match="hid_dim=10 must be a multiple of n_kernels=8"):
        GSMN(image_encoder=nn.Identity(), text_encoder=nn.Identity(), embed_dim=8, num_block=4, hid_dim=10)
    with pytest.raises(ValueError, match="neighbourhood must be one of"):
        GSMN(image_encoder=nn.Identity(), text_encoder=nn.Identity(), embed_dim=8, num_block=4, neighbourhood="x")
    with pytest.raises(ValueError, match="visual edges have 5 features"):
        GSMN(image_encoder=nn.Identity(), text_encoder=nn.Identity(), embed_dim=8, num_block=4,
             visual_weights="polar", edge_dim=5)
    img, _ = image_batch(edges="knn", k=2)
    with pytest.raises(ValueError, match="visual_weights='polar' reads polar edge features"):
        matcher(visual_weights="polar").score(img, caption_batch())
    polar, _ = image_batch()
    with pytest.raises(ValueError, match="no adjacency"):
        matcher().score(NodeEmb(polar.x, polar.mask), caption_batch())
    with pytest.raises(ValueError, match="graph='sparse' reads the caption graph"):
        cap = caption_batch()
        matcher().score(polar, NodeEmb(cap.x, cap.mask))
    with pytest.raises(ValueError, match=r"expected \[B, N, 8\]"):
        matcher().score(NodeEmb(torch.zeros(2, 3, 6), torch.ones(2, 3, dtype=torch.bool)), caption_batch())
    cfg = load_config(None, ["model.matcher.name=gsmn", "model.embed_dim=8", "model.matcher.num_block=4"])
    with pytest.raises(ValueError, match="set data.graph.visual_edges to 'polar'"):
        build_matcher(cfg.model, img_dim=6, vocab=Vocabulary.build(["a dog"]), recipe=cfg.data.graph)


def test_built_from_a_config_with_the_whole_encoding_path():
    cfg = load_config(None, ["model.matcher.name=gsmn", "model.embed_dim=8", "model.text.word_dim=4",
                             "model.matcher.num_block=4", "data.graph.visual_edges=polar",
                             "data.graph.text_graph=dependency"])
    captions = ["a dog on a mat", "two cats"]
    vocab = Vocabulary.build(captions)
    torch.manual_seed(0)
    m = build_matcher(cfg.model, img_dim=6, vocab=vocab, recipe=cfg.data.graph).eval()
    g = torch.Generator().manual_seed(0)
    imgs = collate_graphs([build_visual_graph(torch.randn(r, 6, generator=g), boxes=torch.tensor([[0., 0, 10, 10]] * r)
                                              + torch.arange(r)[:, None] * 5.0, image_size=(50.0, 50.0), edges="polar")
                           for r in (2, 4, 3)])
    caps = collate_graphs([build_word_graph(vocab.encode(c)) for c in captions])
    with torch.no_grad():
        s = m(imgs, caps)
        e = m.encode_images(imgs)
    assert s.shape == (3, 2) and torch.isfinite(s).all()
    assert e.edge_attr.shape[-1] == 2 and m._visual_mode(e) == "polar"


# ---------------------------------------------------------------------------- training, configs
@pytest.fixture(scope="module")
def parsed_synthetic(tiny_synthetic, tmp_path_factory):
    from parsers.job import parse_precomp

    root = tmp_path_factory.mktemp("parsed_gsmn") / "data"
    shutil.copytree(tiny_synthetic, root)
    parse_precomp(root, ["train", "dev"], cache=None, progress=False)
    return root


@pytest.mark.parametrize("graph", ["sparse", "dense"])
def test_gsmn_trains_through_the_normal_path(parsed_synthetic, tmp_path, graph):
    from graphmatch.engine.train import train_experiment

    text = "dependency" if graph == "sparse" else "words"
    cfg = load_config(None, [f"data.root={parsed_synthetic}", f"output_dir={tmp_path / 'run'}",
                             "data.graph.visual_edges=polar", f"data.graph.text_graph={text}",
                             "model.matcher.name=gsmn", f"model.matcher.graph={graph}", "model.embed_dim=16",
                             "model.matcher.num_block=4", "model.text.word_dim=8", "train.epochs=2",
                             "train.batch_size=32", "train.max_steps_per_epoch=4", "train.lr=0.002",
                             "train.device=cpu", "train.log_every=0", "data.max_val_images=20"])
    summary = train_experiment(cfg, progress=False)
    hist = summary["history"]
    assert len(hist) == 2 and all(math.isfinite(h["loss"]) for h in hist)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert summary["best_rsum"] is not None and math.isfinite(summary["best_rsum"])
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").exists()


def test_neighbourhood_is_a_checked_config_key():
    cfg = load_config(None, ["model.matcher.name=gsmn", "model.matcher.neighbourhood=released"])
    assert cfg.model.matcher.neighbourhood == "released" and cfg.model.matcher.graph == "sparse"
    with pytest.raises(ValueError, match="neighbourhood"):
        load_config(None, ["model.matcher.name=gsmn", "model.matcher.neighbourhood=copies"])
