r"""GSMN: node-level and structure-level matching of a region graph and a word graph.

Liu, Mao, Zhang, Xie, Wang, Zhang, *Graph Structured Network for Image-Text Matching*, CVPR 2020,
https://arxiv.org/abs/2004.00277 (released code: https://github.com/CrossmodalGroup/GSMN).

For an image with regions ``v_1..v_N`` and a caption with words ``u_1..u_L`` (``D``-d, split into
``B = num_block`` blocks of ``D / B`` values, ``x^(b)`` the ``b``-th block), the score is the sum
of a visual and a textual part, each computed in two steps.

**Node-level matching** (SCAN-style attention, then a block-wise cosine):

.. math::

    \alpha_{rw} = \mathrm{softmax}_w\Big(\lambda\,\frac{[v_r^\top u_w]_{0.1}}
                  {\lVert [v_\cdot^\top u_w]_{0.1} \rVert_2}\Big), \qquad
    a_r = \sum_w \alpha_{rw} u_w, \qquad m_r^{(b)} = \cos(v_r^{(b)}, a_r^{(b)})

with ``[x]_{0.1}`` = LeakyReLU(0.1) and the l2 norm over the regions (the released
``inter_relations``); the words' matching vectors ``m_w`` are the same with the roles exchanged
(attention over the regions, l2 norm over the words). ``m_r, m_w \in R^B``.

**Structure-level matching.** The matching vectors are propagated over the graphs, then an MLP
(weight-normed Linear, tanh, Linear) scores every node and the scores are averaged over the nodes:

.. math::

    z_i = \big\Vert_{k=1}^{K} W_k \sum_{j \in \tilde N(i)} w_k(i, j)\, m_j, \qquad
    S = \frac{1}{|nodes|} \sum_i \mathrm{MLP}(z_i), \qquad
    \mathrm{score} = S_\text{visual} + S_\text{textual}

* visual graph: ``w_k(i, j)`` = ``K`` Gaussian kernels of the polar pseudo-coordinates
  ``u_ij = (rho, theta)`` of the vector ``c_i - c_j`` between box centres (normalised by image width
  and height), normalised over the kernels of each edge as the released layer does
  (:func:`graphmatch.nn.functional.polar_gaussian_weights`; ``theta = atan2(dy, dx)``, the
  ``edge_attr`` of ``polar`` visual edges). Without polar edge features (``visual_weights:
  uniform``, or ``auto`` on graphs whose edge features are not ``(rho, theta)``, e.g. annotated
  scene graphs with predicate features and no boxes) every edge gets ``w_k = 1 / K``: the mean of
  the kernels' maps over an unweighted neighbourhood sum;
* textual graph: one weight for all kernels, the word-word affinity
  ``w(i, j) = softmax_{j \in \tilde N(i)}(\lambda u_i^\top u_j)``; so the ``K`` maps act on the same
  vector and ``z_i = W \sum_j w(i, j) m_j + b`` with ``W``, ``b`` the ``K`` maps and their biases
  stacked (the released textual maps have biases, the visual ones none). ``graph: sparse``
  takes the neighbours from the caption graph (``adj[i, j] > 0``: the edges ``j -> i``; the
  ``dependency`` text graph has both directions of every arc, GSMN's sparse graph; on a ``full``
  text graph it equals ``dense``; on ``words`` graphs, which have no edges, each word is its own
  only neighbour), ``graph: dense`` connects every pair of words whatever the caption graph
  (GSMN's dense graph; needs no parse).

``\tilde N(i)`` is the neighbourhood of ``i`` with ``i`` itself included (as in the released code:
the region itself at ``u_ii = (0, 0)``, ``adj + I`` for the sparse word graph, every word for the
dense one). Node features never mix across images or captions: every (image, caption) pair has
its own matching vectors, all pairs are scored in one batched computation (no loop over captions),
with masks, so padding of regions or words never changes a score.

**The two neighbourhoods** (``neighbourhood``):

* ``messages`` (default): the equations above; node ``i`` aggregates its neighbours' matching
  vectors ``m_j`` with the kernel weights, so the visual score reads the geometry of the region
  graph and the textual score reads the parse.
* ``released``: the released computation, kept so that released GSMN weights can be evaluated as
  they were published. There, the neighbourhood of node ``i`` is built from copies of ``m_i``
  itself (``neighbor_image[b, i, j] = m_i``, the same for the dense and the sparse word graph),
  so no message passes between nodes: the visual part becomes
  ``z_i = ||_k W_k m_i \sum_j w_k(i, j)`` (geometry only rescales node ``i``), and since the textual
  weights of a node sum to one, the textual part is ``z_i = W m_i``: it does not depend on the
  parse, and the dense and the sparse models are the same function of their weights. This mode
  also keeps the released pseudo-coordinate convention: ``theta' = atan2(dx, dy)`` of
  ``c_i - c_j`` (``theta' = 0`` at ``rho = 0``), converted from the ``(rho, theta)`` edge features,
  the region itself included at ``(0, 0)``.

Deviations from the released code (besides ``messages``):

* boxes: the released evaluation gives image ``i`` the boxes of image ``floor(i / 5)`` (it
  subsamples the image embeddings by 5 but not the per-caption box array) and its data loader
  divides each image's boxes by the image size in place on every access, so boxes shrink each
  time an image is read. Here every image has its own boxes, normalised once (by the ``polar``
  edge builder).
* the textual convolution's per-kernel scalars (``graph_convolution_3.params``) are not kept: they
  cancel in the normalisation over the neighbours (``w p_k / \sum_j w p_k = w``), so the model is
  the same function without them; ``feat_dim`` is not an option: it is the number of blocks
  (``num_block``), which the released code requires to be equal.
* one batched computation over padded tensors instead of a Python loop per caption over exactly
  sliced ones (scores agree to float rounding; :func:`graphmatch.testing.reference.gsmn_caption_loop`
  is the loop): the attended vectors are never formed (:func:`gsmn_matching_vectors` computes the
  cosines from block-wise products and Gram matrices, which is the same function with about a
  quarter of the memory traffic), the images cut into chunks that bound the memory; a caption with
  one word or an image with one region works (the released ``.squeeze()`` drops those axes).

Released parameter names (``i2t_match_G`` / ``t2i_match_G`` of a released checkpoint, the third and
fourth entry of its ``model`` list) map onto this module as :func:`released_graph_state` does:

=============================================================  ===================================
released                                                        here
=============================================================  ===================================
``i2t_match_G.graph_convolution_1.mean_rho`` ``[K, 1]``          ``visual.mean_rho`` ``[K]``
``... .mean_theta``, ``.precision_rho``, ``.precision_theta``    ``visual.mean_theta``, ``visual.sigma_rho``, ``visual.sigma_theta``
``... .conv_weights.{k}.weight`` ``[hid / K, B]``                rows ``k hid/K ..`` of ``visual.lin.weight`` ``[hid, B]``
``i2t_match_G.out_{1,2}.{weight_g, weight_v, bias}``            ``visual.out_{1,2}.{weight_g, weight_v, bias}``
``t2i_match_G.graph_convolution_3.conv_weights.{k}.weight``     rows of ``textual.lin.weight``
``t2i_match_G.graph_convolution_3.conv_weights.{k}.bias``       entries of ``textual.lin.bias``
``t2i_match_G.graph_convolution_3.params``                      dropped (cancels, see above)
``t2i_match_G.out_{1,2}.*``                                     ``textual.out_{1,2}.*``
=============================================================  ===================================

(the released "precision" is a standard deviation: the Gaussian divides by its square).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphmatch.graphs import GraphNeeds
from graphmatch.models.base import Matcher
from graphmatch.models.registry import MATCHERS
from graphmatch.nn.functional import l2norm, polar_gaussian_weights
from graphmatch.nn.functional.norms import LEAKY_SLOPE
from graphmatch.options import option
from graphmatch.structures import NodeEmb

__all__ = ["GSMN", "GSMNConfig", "WeightNormLinear", "GSMNVisualStructure", "GSMNTextualStructure",
           "gsmn_matching_vectors", "released_graph_state", "to_released_graph_state", "NEIGHBOURHOODS",
           "TEXT_GRAPH_MODES", "VISUAL_WEIGHTS"]

NEIGHBOURHOODS = ("messages", "released")
TEXT_GRAPH_MODES = ("sparse", "dense")
VISUAL_WEIGHTS = ("auto", "polar", "uniform")
#: Largest ``num_block x images x regions x captions x words`` block of block-wise products computed at
#: once (the image axis is cut into chunks to stay under it; 2**22 float32 values are 16 MiB: small
#: chunks keep the products in cache while they are reduced, which is faster than larger ones).
MAX_BLOCK_ELEMENTS = 1 << 22
_EPS = 1e-8


@dataclass
class GSMNConfig:
    """GSMN's config keys (``model.matcher``)."""

    graph: str = option("sparse", choices=TEXT_GRAPH_MODES,
                        help="sparse: word neighbours from the caption graph's edges (dependency: GSMN sparse); "
                             "dense: every pair of words (GSMN dense, needs no parse)")
    neighbourhood: str = option("messages", choices=NEIGHBOURHOODS,
                                help="messages: nodes aggregate their neighbours' matching vectors; released: "
                                     "the released computation (copies of the node's own vector), for released weights")
    visual_weights: str = option("auto", choices=VISUAL_WEIGHTS,
                                 help="polar: Gaussian kernels of (rho, theta) edge features; uniform: 1/K on every "
                                      "edge; auto: polar when the visual edges carry 2 features, else uniform")
    num_block: int = option(16, lo=1, help="blocks of the block-wise cosine (must divide embed_dim)")
    lambda_softmax: float = option(9.0, lo=0, note="0: uniform attention",
                                   help="inverse temperature of the attention and of the word affinity")
    hid_dim: int = option(32, lo=1, help="size of the propagated node vector z_i (a multiple of n_kernels)")
    out_dim: int = option(1, lo=1, help="outputs of the node MLP (averaged with the nodes)")
    n_kernels: int = option(8, lo=1, help="Gaussian kernels K")


class WeightNormLinear(nn.Module):
    r"""``y = x W^T + b`` with ``W = g * v / ||v||`` (row-wise norm): Salimans & Kingma's weight
    normalisation (https://arxiv.org/abs/1602.07868) with the parameter names of
    ``torch.nn.utils.weight_norm`` (``weight_g [out, 1]``, ``weight_v [out, in]``, ``bias``), so
    released state dicts load as they are. Initialised as ``nn.Linear``, with ``g = ||v||``.

    Shapes: ``[..., in_features] -> [..., out_features]``.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_g = nn.Parameter(torch.empty(out_features, 1))
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            self.bias.uniform_(-bound, bound)
            self.weight_g.copy_(self.weight_v.norm(dim=1, keepdim=True))

    @property
    def weight(self) -> Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _NodeScorer(nn.Module):
    """The per-node MLP ``out_2(tanh(out_1(z)))`` and the masked mean over nodes (and outputs)."""

    def __init__(self, hid_dim: int, out_dim: int) -> None:
        super().__init__()
        self.out_1 = WeightNormLinear(hid_dim, hid_dim)
        self.out_2 = WeightNormLinear(hid_dim, out_dim)

    def node_mean(self, z: Tensor, mask: Tensor) -> Tensor:
        """``z`` ``[I, C, N, hid]``, ``mask`` broadcastable to ``[I, C, N]`` -> ``[I, C]``."""
        s = self.out_2(torch.tanh(self.out_1(z))).mean(-1)  # [I, C, N]
        m = mask.to(s.dtype).expand_as(s)
        return (s * m).sum(-1) / m.sum(-1).clamp(min=1.0)


class GSMNVisualStructure(_NodeScorer):
    r"""Structure-level matching over the visual graph (``i2t_match_G`` of the released code).

    Parameters: Gaussian kernel means and widths ``mean_rho, mean_theta, sigma_rho, sigma_theta``
    ``[K]`` (initialised as released: ``U(0, 1)``, ``U(-pi, pi)``, ``U(0, 1)``, ``U(0, 1)``), the
    ``K`` maps ``W_k`` as one ``lin`` ``[hid, B]`` (rows ``k hid/K .. (k+1) hid/K - 1`` are
    ``W_k``), and the node MLP ``out_1``, ``out_2``.
    """

    def __init__(self, num_block: int, hid_dim: int, out_dim: int, n_kernels: int) -> None:
        super().__init__(hid_dim, out_dim)
        self.n_kernels = n_kernels
        self.mean_rho = nn.Parameter(torch.empty(n_kernels))
        self.mean_theta = nn.Parameter(torch.empty(n_kernels))
        self.sigma_rho = nn.Parameter(torch.empty(n_kernels))
        self.sigma_theta = nn.Parameter(torch.empty(n_kernels))
        self.lin = nn.Linear(num_block, hid_dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.mean_rho.uniform_(0.0, 1.0)
            self.mean_theta.uniform_(-math.pi, math.pi)
            self.sigma_rho.uniform_(0.0, 1.0)
            self.sigma_theta.uniform_(0.0, 1.0)
        self.lin.reset_parameters()
        self.out_1.reset_parameters()
        self.out_2.reset_parameters()

    def edge_weights(self, emb: NodeEmb, *, mode: str, released: bool) -> Tensor:
        """Kernel weights ``[I, N, N, K]`` of every edge ``j -> i`` at ``[:, i, j]`` of the images,
        self loops included, zero off the graph and at padding.

        Args:
            emb: image node embeddings with ``adj`` (and, for ``mode="polar"``, ``edge_attr``
                ``[I, N, N, 2]`` = ``(rho, theta)``, ``theta = atan2(dy, dx)`` of ``c_i - c_j``).
            mode: ``"polar"`` or ``"uniform"``.
            released: use the released angle ``atan2(dx, dy)`` (0 at ``rho = 0``).
        """
        if emb.adj is None:
            raise ValueError("GSMN: the image node embeddings carry no adjacency (NodeEmb.adj); encode them with "
                             "GSMN.encode_images, which attaches the visual graph")
        mask = emb.mask
        n = mask.size(1)
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        real = mask.unsqueeze(2) & mask.unsqueeze(1)
        nbr = ((emb.adj > 0) | eye) & real  # [I, N, N]
        k = self.n_kernels
        if mode == "uniform":
            return nbr.unsqueeze(-1).to(emb.x.dtype).expand(*nbr.shape, k) / k
        ea = emb.edge_attr
        rho = ea[..., 0].to(emb.x.dtype).masked_fill(eye, 0.0)
        theta = ea[..., 1].to(emb.x.dtype).masked_fill(eye, 0.0)
        if released:  # (rho, atan2(dy, dx)) -> atan2(dx, dy) of the same vector
            theta = torch.where(rho > 0, torch.atan2(torch.cos(theta), torch.sin(theta)), torch.zeros_like(theta))
        w = polar_gaussian_weights(rho, theta, self.mean_rho, self.mean_theta, self.sigma_rho, self.sigma_theta,
                                   normalize=True)
        return w * nbr.unsqueeze(-1).to(w.dtype)

    def forward(self, m: Tensor, weights: Tensor, mask: Tensor, *, released: bool) -> Tensor:
        """Visual scores ``[I, C]``.

        Args:
            m: region matching vectors ``[I, C, N, B]``.
            weights: :meth:`edge_weights` ``[I, N, N, K]``.
            mask: real regions ``[I, N]``.
            released: ``z_i = ||_k W_k m_i sum_j w_k(i, j)`` instead of ``||_k W_k sum_j w_k(i, j) m_j``.
        """
        i, c, n, _ = m.shape
        k = self.n_kernels
        y = self.lin(m).view(i, c, n, k, -1)  # W_k m_j
        if released:
            h = y * weights.sum(2)[:, None, :, :, None]
        else:
            h = torch.einsum("injk,icjko->icnko", weights, y)
        return self.node_mean(h.reshape(i, c, n, -1), mask[:, None, :])


class GSMNTextualStructure(_NodeScorer):
    r"""Structure-level matching over the word graph (``t2i_match_G`` of the released code):
    ``lin`` ``[hid, B]`` with a bias (the ``K`` maps and their biases stacked) and the node MLP
    ``out_1``, ``out_2``. The released textual convolution has biases and the visual one has none:
    ``TextQueryGraphConvolution(feat_dim, hid_dim, n_kernels, 2)`` passes the ``2`` (meant as the
    coordinate size of the visual layer's signature) as ``bias``."""

    def __init__(self, num_block: int, hid_dim: int, out_dim: int) -> None:
        super().__init__(hid_dim, out_dim)
        self.lin = nn.Linear(num_block, hid_dim, bias=True)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        self.out_1.reset_parameters()
        self.out_2.reset_parameters()

    @staticmethod
    def edge_weights(emb: NodeEmb, *, dense: bool, lambda_softmax: float) -> Tensor:
        """Word affinities ``[C, L, L]``: ``softmax_j(lambda u_i . u_j)`` over the neighbours ``j`` of
        ``i`` (``adj[:, i, j] > 0``, and ``i`` itself; every word with ``dense``), zero elsewhere."""
        mask = emb.mask
        n = mask.size(1)
        real = mask.unsqueeze(2) & mask.unsqueeze(1)
        if dense:
            nbr = real
        else:
            if emb.adj is None:
                raise ValueError("GSMN graph='sparse' reads the caption graph, but the caption node embeddings carry "
                                 "no adjacency (NodeEmb.adj); encode them with GSMN.encode_captions, or use graph: dense")
            eye = torch.eye(n, dtype=torch.bool, device=mask.device)
            nbr = ((emb.adj > 0) | eye) & real
        logits = lambda_softmax * torch.matmul(emb.x, emb.x.transpose(1, 2))
        w = torch.softmax(logits.masked_fill(~nbr, torch.finfo(logits.dtype).min), dim=-1)
        return w.masked_fill(~nbr, 0.0)

    def forward(self, m: Tensor, weights: Optional[Tensor], mask: Tensor, *, released: bool) -> Tensor:
        """Textual scores ``[I, C]`` of word matching vectors ``m`` ``[I, C, L, B]``, affinities
        ``weights`` ``[C, L, L]`` (unused with ``released``: ``z_i = W m_i``), real words ``[C, L]``."""
        y = self.lin(m)  # [I, C, L, hid]
        h = y if released else torch.einsum("cwv,icvo->icwo", weights, y)
        return self.node_mean(h, mask[None])


class _CaptionBlocks(NamedTuple):
    """Caption-side quantities of :func:`_node_level`, computed once per score call."""

    u: Tensor  # [C, L, D] words, zero at padding
    mask: Tensor  # [C, L]
    ubt: Tensor  # [B, s, C*L] blocks of every word
    gram: Tensor  # [C, L, B*L] per-caption block Gram, gram[c, l, b*L + l'] = u_l^(b) . u_l'^(b)
    sq: Tensor  # [C, L, B] squared block norms


def _caption_blocks(u: Tensor, u_mask: Tensor, num_block: int) -> _CaptionBlocks:
    c, l, d = u.shape
    s = d // num_block
    u = u.masked_fill(~u_mask.unsqueeze(-1), 0.0)
    ubt = u.reshape(c * l, num_block, s).permute(1, 2, 0)
    ucb = u.view(c, l, num_block, s).transpose(1, 2)  # [C, B, L, s]
    gram = torch.matmul(ucb, ucb.transpose(2, 3)).transpose(1, 2).reshape(c, l, num_block * l)
    return _CaptionBlocks(u, u_mask, ubt, gram, u.view(c, l, num_block, s).pow(2).sum(-1))


def _node_level(v: Tensor, v_mask: Tensor, cap: _CaptionBlocks, num_block: int, lambda_softmax: float,
                eps: float) -> tuple[Tensor, Tensor]:
    """:func:`gsmn_matching_vectors` for a chunk of images (see there for the maths)."""
    i, n, d = v.shape
    c, l = cap.mask.shape
    nb, s = num_block, d // num_block
    v = v.masked_fill(~v_mask.unsqueeze(-1), 0.0)
    p = torch.bmm(v.reshape(i * n, nb, s).transpose(0, 1), cap.ubt)  # [B, I*N, C*L] block products
    dots = p.sum(0).view(i, n, c, l)
    pair = v_mask[:, :, None, None] & cap.mask[None, None]  # [I, N, C, L]
    x = F.leaky_relu(dots, LEAKY_SLOPE).masked_fill(~pair, 0.0)
    low = torch.finfo(x.dtype).min
    # regions attend to words (l2 norm over the regions), words attend to regions (l2 norm over the words)
    alpha = torch.softmax((lambda_softmax * l2norm(x, dim=1, eps=eps)).masked_fill(~pair, low), dim=3)
    alpha = alpha.masked_fill(~pair, 0.0)
    beta = torch.softmax((lambda_softmax * l2norm(x, dim=3, eps=eps)).masked_fill(~pair, low), dim=1)
    beta = beta.masked_fill(~pair, 0.0)
    # numerators v_r^(b) . a_r^(b) = sum_w alpha_rw P_b[r, w] and u_w^(b) . a'_w^(b) = sum_r beta_wr P_b[r, w]
    num_v = torch.einsum("bxl,xl->xb", p.view(nb, i * n * c, l), alpha.reshape(i * n * c, l)).view(i, n, c, nb)
    num_u = (p.view(nb, i, n, c * l) * beta.view(1, i, n, c * l)).sum(2)  # [B, I, C*L]
    # squared norms of the attended blocks: alpha_r^T G_c^(b) alpha_r and beta_w^T H_i^(b) beta_w
    al = alpha.permute(2, 0, 1, 3).reshape(c, i * n, l)
    sq_av = torch.einsum("xbl,xl->xb", torch.bmm(al, cap.gram).view(c * i * n, nb, l), al.reshape(c * i * n, l))
    vib = v.view(i, n, nb, s).transpose(1, 2)  # [I, B, N, s]
    h = torch.matmul(vib, vib.transpose(2, 3)).transpose(1, 2).reshape(i, n, nb * n)  # [I, N, B*N]
    bl = beta.permute(0, 2, 3, 1).reshape(i, c * l, n)
    sq_au = torch.einsum("ybn,yn->yb", torch.bmm(bl, h).view(i * c * l, nb, n), bl.reshape(i * c * l, n))
    sq_v = v.view(i, n, nb, s).pow(2).sum(-1)  # [I, N, B]
    # cos = <q, a> / max(|q| |a|, eps) = <q, a> / sqrt(max(|q|^2 |a|^2, eps^2)) (the Gram forms can round
    # slightly below 0: the clamp covers it, and keeps the gradient finite where |a| = 0, i.e. at padding)
    den_v = (sq_v[:, None] * sq_av.view(c, i, n, nb).transpose(0, 1)).clamp(min=eps * eps).sqrt()  # [I, C, N, B]
    m_v = num_v.transpose(1, 2) / den_v
    den_u = (cap.sq[None] * sq_au.view(i, c, l, nb)).clamp(min=eps * eps).sqrt()  # [I, C, L, B]
    m_u = num_u.permute(1, 2, 0).reshape(i, c, l, nb) / den_u
    return m_v, m_u


def gsmn_matching_vectors(v: Tensor, v_mask: Tensor, u: Tensor, u_mask: Tensor, *, num_block: int,
                          lambda_softmax: float, eps: float = _EPS) -> tuple[Tensor, Tensor]:
    r"""Node-level matching of every image with every caption (see the module docstring).

    The attended vectors ``a_r = sum_w alpha_rw u_w`` (``[I, C, N, D]``) and ``a'_w = sum_r beta_wr
    v_r`` are never formed. With the block-wise products ``P_b[r, w] = v_r^(b) . u_w^(b)`` of all
    regions of an image chunk with all words of all captions (one batched product over the blocks,
    ``[B, I N, C L]``, kept small enough to stay in cache):

    .. math::

        v_r^\top u_w = \sum_b P_b[r, w] \;(\text{attention logits}), \qquad
        v_r^{(b)} \cdot a_r^{(b)} = \sum_w \alpha_{rw} P_b[r, w], \qquad
        u_w^{(b)} \cdot a'^{(b)}_w = \sum_r \beta_{wr} P_b[r, w],

        \lVert a_r^{(b)} \rVert^2 = \alpha_r^\top G_c^{(b)} \alpha_r, \qquad
        \lVert a'^{(b)}_w \rVert^2 = \beta_w^\top H_i^{(b)} \beta_w

    with ``G_c^(b)`` the block Gram of caption ``c``'s words (``L x L``) and ``H_i^(b)`` that of image
    ``i``'s regions (``N x N``); the quadratic forms are batched products followed by batched dot
    products. The cosine ``<q, a> / max(|q| |a|, eps)`` (the released ``cosine_similarity``) is
    computed as ``<q, a> / sqrt(max(|q|^2 |a|^2, eps^2))``: the same value (the Gram forms may round
    slightly below zero, which the clamp covers), with a finite gradient where ``|a| = 0`` (at
    padding). Per pair this reads ``B L`` (region side) and ``B N`` (word side) products instead of
    ``D``-d attended vectors.

    Args:
        v: region vectors ``[I, N, D]``; v_mask: bool ``[I, N]``.
        u: word vectors ``[C, L, D]``; u_mask: bool ``[C, L]``.
        num_block: blocks ``B`` of the cosine (``D`` must be a multiple).
        lambda_softmax: inverse temperature of the attention.

    Returns:
        ``(m_regions [I, C, N, B], m_words [I, C, L, B])``; zero at padding.
    """
    return _node_level(v, v_mask, _caption_blocks(u, u_mask, num_block), num_block, lambda_softmax, eps)


@MATCHERS.register("gsmn", config=GSMNConfig)
class GSMN(Matcher):
    """GSMN matcher (the module docstring has the equations, the options and the deviations).

    Args:
        image_encoder: visual graph batch -> :class:`NodeEmb` (region nodes).
        text_encoder: text graph batch -> :class:`NodeEmb` (word nodes, or scene-graph nodes).
        embed_dim: node size ``D`` (a multiple of ``num_block``).
        edge_dim: visual edge feature size (passed by the builder from the graph recipe); with
            ``visual_weights: polar`` it must be 2 (``(rho, theta)``) when given.
        graph, neighbourhood, visual_weights, num_block, lambda_softmax, hid_dim, out_dim, n_kernels:
            :class:`GSMNConfig`.

    Shapes:
        ``encode_images`` / ``encode_captions`` give :class:`NodeEmb` with the dense adjacency
        (and the images' edge features); ``score`` -> ``[n_images, n_captions]``.
    """

    graph_needs = GraphNeeds(visual_edges=("polar", "relations", "knn", "iou", "full"))
    dense_graph = True

    def __init__(self, *, image_encoder: nn.Module, text_encoder: nn.Module, embed_dim: int,
                 edge_dim: Optional[int] = None, graph: str = "sparse", neighbourhood: str = "messages",
                 visual_weights: str = "auto", num_block: int = 16, lambda_softmax: float = 9.0,
                 hid_dim: int = 32, out_dim: int = 1, n_kernels: int = 8) -> None:
        super().__init__()
        for key, value, choices in (("graph", graph, TEXT_GRAPH_MODES), ("neighbourhood", neighbourhood, NEIGHBOURHOODS),
                                    ("visual_weights", visual_weights, VISUAL_WEIGHTS)):
            if value not in choices:
                raise ValueError(f"GSMN {key} must be one of {choices}, got {value!r}")
        for key, value in (("num_block", num_block), ("hid_dim", hid_dim), ("out_dim", out_dim),
                           ("n_kernels", n_kernels), ("embed_dim", embed_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GSMN {key} must be an int >= 1, got {value!r}")
        if embed_dim % num_block:
            raise ValueError(f"GSMN num_block={num_block} must divide embed_dim={embed_dim} (the block-wise cosine "
                             f"splits each {embed_dim}-d vector into num_block equal blocks)")
        if hid_dim % n_kernels:
            raise ValueError(f"GSMN hid_dim={hid_dim} must be a multiple of n_kernels={n_kernels} (each kernel maps "
                             "to hid_dim / n_kernels values)")
        if not (lambda_softmax >= 0 and math.isfinite(lambda_softmax)):
            raise ValueError(f"GSMN lambda_softmax must be a finite number >= 0, got {lambda_softmax!r}")
        if visual_weights == "polar" and edge_dim is not None and edge_dim != 2:
            raise ValueError(f"GSMN visual_weights='polar' reads polar edge features (rho, theta), but the visual "
                             f"edges have {edge_dim} features; set data.graph.visual_edges: polar, or "
                             "model.matcher.visual_weights: uniform")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.embed_dim, self.edge_dim = embed_dim, edge_dim
        self.graph, self.neighbourhood, self.visual_weights = graph, neighbourhood, visual_weights
        self.num_block, self.lambda_softmax = num_block, float(lambda_softmax)
        self.visual = GSMNVisualStructure(num_block, hid_dim, out_dim, n_kernels)
        self.textual = GSMNTextualStructure(num_block, hid_dim, out_dim)

    def _visual_mode(self, img: NodeEmb) -> str:
        polar = img.edge_attr is not None and img.edge_attr.size(-1) == 2
        if self.visual_weights == "auto":
            return "polar" if polar else "uniform"
        if self.visual_weights == "polar" and not polar:
            got = "none" if img.edge_attr is None else f"{img.edge_attr.size(-1)} features"
            raise ValueError(f"GSMN visual_weights='polar' reads polar edge features (rho, theta) of the visual graph, "
                             f"but the image node embeddings carry {got} (NodeEmb.edge_attr); use "
                             "data.graph.visual_edges: polar, or model.matcher.visual_weights: uniform")
        return self.visual_weights

    def score(self, img: NodeEmb, cap: NodeEmb) -> Tensor:
        for side, emb in (("image", img), ("caption", cap)):
            if emb.x.dim() != 3 or emb.x.size(-1) != self.embed_dim:
                raise ValueError(f"GSMN: {side} node embeddings have shape {tuple(emb.x.shape)}; expected "
                                 f"[B, N, {self.embed_dim}]")
        released = self.neighbourhood == "released"
        w_img = self.visual.edge_weights(img, mode=self._visual_mode(img), released=released)
        w_cap = None if released else self.textual.edge_weights(cap, dense=self.graph == "dense",
                                                                  lambda_softmax=self.lambda_softmax)
        n_img, n, _ = img.x.shape
        n_cap, l, _ = cap.x.shape
        step = max(1, MAX_BLOCK_ELEMENTS // max(1, self.num_block * n * n_cap * l))
        blocks = _caption_blocks(cap.x, cap.mask, self.num_block)  # once for all image chunks
        rows = []
        for start in range(0, n_img, step):  # image chunks bound the memory (and stay in cache); all captions at once
            sl = slice(start, start + step)
            m_v, m_u = _node_level(img.x[sl], img.mask[sl], blocks, self.num_block, self.lambda_softmax, _EPS)
            rows.append(self.visual(m_v, w_img[sl], img.mask[sl], released=released)
                        + self.textual(m_u, w_cap, cap.mask, released=released))
        if not rows:
            return img.x.new_zeros(0, n_cap)
        return torch.cat(rows, 0)

    def extra_repr(self) -> str:
        return (f"graph={self.graph!r}, neighbourhood={self.neighbourhood!r}, visual_weights={self.visual_weights!r}, "
                f"num_block={self.num_block}, lambda_softmax={self.lambda_softmax}")


def released_graph_state(i2t_state: Mapping[str, Tensor], t2i_state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """The ``visual.*`` / ``textual.*`` entries of a :class:`GSMN` state dict from the released
    ``i2t_match_G`` and ``t2i_match_G`` state dicts (see the table in the module docstring);
    ``graph_convolution_3.params`` is dropped. Load the result with
    ``matcher.load_state_dict(state, strict=False)`` (the encoders come from elsewhere).

    Raises:
        KeyError: a released key is missing (naming it).
    """
    def take(state: Mapping[str, Tensor], key: str, side: str) -> Tensor:
        if key not in state:
            raise KeyError(f"released {side} state has no {key!r}; its keys: {sorted(state)}")
        return state[key]

    def kernels(state: Mapping[str, Tensor], conv: str, side: str) -> Tensor:
        ks = sorted(int(k.split(".")[2]) for k in state if k.startswith(f"{conv}.conv_weights.") and k.endswith(".weight"))
        if not ks:
            raise KeyError(f"released {side} state has no {conv}.conv_weights.*.weight")
        return torch.cat([state[f"{conv}.conv_weights.{k}.weight"] for k in range(len(ks))], 0)

    out: Dict[str, Tensor] = {}
    g1 = "graph_convolution_1"
    for ours, theirs in (("mean_rho", "mean_rho"), ("mean_theta", "mean_theta"), ("sigma_rho", "precision_rho"),
                         ("sigma_theta", "precision_theta")):
        out[f"visual.{ours}"] = take(i2t_state, f"{g1}.{theirs}", "i2t_match_G").reshape(-1)
    out["visual.lin.weight"] = kernels(i2t_state, g1, "i2t_match_G")
    out["textual.lin.weight"] = kernels(t2i_state, "graph_convolution_3", "t2i_match_G")
    out["textual.lin.bias"] = torch.cat([take(t2i_state, f"graph_convolution_3.conv_weights.{k}.bias", "t2i_match_G")
                                         for k in range(out["visual.mean_rho"].numel())])
    for side, state, name in (("visual", i2t_state, "i2t_match_G"), ("textual", t2i_state, "t2i_match_G")):
        for layer in ("out_1", "out_2"):
            for p in ("weight_g", "weight_v", "bias"):
                out[f"{side}.{layer}.{p}"] = take(state, f"{layer}.{p}", name)
    return out


def to_released_graph_state(matcher: GSMN) -> tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """The inverse of :func:`released_graph_state`: ``(i2t_state, t2i_state)`` in the released
    layout, with ``graph_convolution_3.params`` set to ones (any non-zero values give the same
    function). The per-caption reference loops take parameters in this layout."""
    v, t = matcher.visual, matcher.textual
    k = v.n_kernels
    i2t: Dict[str, Tensor] = {}
    t2i: Dict[str, Tensor] = {"graph_convolution_3.params": v.mean_rho.detach().new_ones(k, 1)}
    for ours, theirs in (("mean_rho", "mean_rho"), ("mean_theta", "mean_theta"), ("sigma_rho", "precision_rho"),
                         ("sigma_theta", "precision_theta")):
        i2t[f"graph_convolution_1.{theirs}"] = getattr(v, ours).detach().reshape(k, 1).clone()
    for i, w in enumerate(v.lin.weight.detach().chunk(k, 0)):
        i2t[f"graph_convolution_1.conv_weights.{i}.weight"] = w.clone()
    for i, (w, b) in enumerate(zip(t.lin.weight.detach().chunk(k, 0), t.lin.bias.detach().chunk(k, 0))):
        t2i[f"graph_convolution_3.conv_weights.{i}.weight"] = w.clone()
        t2i[f"graph_convolution_3.conv_weights.{i}.bias"] = b.clone()
    for state, mod in ((i2t, v), (t2i, t)):
        for layer in ("out_1", "out_2"):
            for p in ("weight_g", "weight_v", "bias"):
                state[f"{layer}.{p}"] = getattr(getattr(mod, layer), p).detach().clone()
    return i2t, t2i
