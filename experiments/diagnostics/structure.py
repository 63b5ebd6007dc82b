"""The shared parts of the structure tests: presets, training, encoding and the swap scores.

A structure test trains a matcher on (graph, caption) pairs, one caption per graph, and reports

* retrieval over an evaluation set, graph -> caption and caption -> graph (R@1/5/10 and their sum
  ``rsum``, :func:`graphmatch.metrics.retrieval_metrics` with the identity correspondence);
* Winoground-style scores on swap cases ``(G, C)`` / ``(G', C')`` (:mod:`experiments.diagnostics.swaps`):
  with ``s`` the matcher's score,

  - *text*: ``s(G, C) > s(G, C')`` (the graph prefers its caption to the twin caption);
  - *graph*: ``s(G, C) > s(G', C)`` (the caption prefers its graph to the twin graph);
  - *group*: ``s(G, C) > s(G, C')`` and ``s(G', C') > s(G', C)`` (both graphs prefer their own
    caption);

  each the percentage of cases where it holds (rounded to 0.01, as the recalls). A comparison ``a > b`` holds only when
  ``a - b > tie_tol`` (default 1e-6): ties count as wrong, and so does a difference at the level
  of float rounding between two equal computations. A one-sided score can be won by a language
  prior ("man riding horse" is a likelier sentence than "horse riding man"), the group score
  cannot. A bag-of-nodes image side scores 0 on *graph* and *group* for relation swaps by
  construction: ``G`` and ``G'`` have the same nodes, so ``s(G', .) = s(G, .)``.

Each case is scored as one 2 x 2 block, with ``G, G'`` encoded in the same batch and ``C, C'`` in the
same batch, so the twins of a bag-of-nodes model get bit-identical node embeddings.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch_geometric.data import Batch

from graphmatch.config import ExperimentConfig, load_config
from graphmatch.data.dataset import PairBatch
from graphmatch.data.sampler import CaptionBatchSampler, PairLoader
from graphmatch.engine.hooks import ProgressHook, TimeLimitHook
from graphmatch.engine.scoring import chunked_similarity
from graphmatch.engine.trainer import Trainer
from graphmatch.graphs import collate_graphs
from graphmatch.losses import build_loss
from graphmatch.metrics import RECALL_KS, retrieval_metrics
from graphmatch.models import build_matcher
from graphmatch.structures import NodeEmb
from graphmatch.utils.progress import progress

log = logging.getLogger(__name__)

__all__ = ["PRESETS", "BASE_OVERRIDES", "DEFAULT_TIE_TOL", "build_config", "PairData", "train_matcher",
           "encode_all", "retrieval_report", "case_scores", "winoground", "swap_report", "run_table"]

#: Defaults of the structure tests over the package's config defaults (small enough for a CPU run).
BASE_OVERRIDES: Tuple[str, ...] = (
    "model.embed_dim=256",
    "model.image.name=precomp_fc",
    "model.text.name=bigru",
    "model.text.word_dim=300",
    "train.loss.name=contrastive",
    "train.loss.margin=0.2",
    "train.loss.max_violation=true",
    "train.lr=2e-4",
    "train.grad_clip=2.0",
)

#: Named matcher set-ups (``--matcher NAME``): ``--set`` overrides over :data:`BASE_OVERRIDES`.
PRESETS: Dict[str, Tuple[str, ...]] = {
    # SCAN t-i on the object nodes as given: a bag of nodes (relations unused), word nodes of the caption
    "scan": ("model.matcher.name=scan", "data.graph.text_graph=words"),
    # SCAN on GNN-refined nodes: GAT over the relation edges with predicate edge features on the graph
    # side, GAT over the dependency arcs on the caption side
    "scan_gnn": ("model.matcher.name=scan", "data.graph.text_graph=dependency",
                 "model.image_gnn.name=gat", "model.image_gnn.num_layers=2", "model.image_gnn.heads=4",
                 "model.image_gnn.norm=layer", "model.image_gnn.edge_features=true",
                 "model.text_gnn.name=gat", "model.text_gnn.num_layers=2", "model.text_gnn.heads=4",
                 "model.text_gnn.norm=layer"),
    # GSMN: node- and structure-level matching over the relation graph and the dependency graph
    "gsmn": ("model.matcher.name=gsmn", "data.graph.text_graph=dependency"),
    # SGM: object and triple nodes on both sides (scene text graphs)
    "sgm": ("model.matcher.name=sgm", "data.graph.text_graph=scene"),
}

DEFAULT_TIE_TOL = 1e-6


def build_config(matcher: str, overrides: Sequence[str] = (), *, imports: Sequence[str] = ()) -> ExperimentConfig:
    """The config of ``matcher`` (a preset of :data:`PRESETS`, else a registered matcher name with
    its defaults) with ``overrides`` (``key=value``, as ``--set``) applied last."""
    preset = PRESETS.get(matcher, (f"model.matcher.name={matcher}",))
    return load_config(None, [*BASE_OVERRIDES, *preset, *overrides], imports=imports)


@dataclass
class PairData:
    """Graphs and captions in 1:1 correspondence (graph ``i`` <-> caption ``i``), as a training
    data source (``pair_batch``) for :class:`graphmatch.data.sampler.PairLoader`."""

    images: List[Any]
    captions: List[Any]
    follow_batch: Optional[List[str]] = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.captions):
            raise ValueError(f"PairData: {len(self.images)} graphs but {len(self.captions)} captions; "
                             "one caption per graph")

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def collate_captions(self, graphs: Sequence[Any]) -> Batch:
        return collate_graphs(graphs, follow_batch=self.follow_batch)

    def pair_batch(self, caption_indices: Sequence[int]) -> PairBatch:
        idx = [int(c) for c in caption_indices]
        return PairBatch(images=collate_graphs([self.images[i] for i in idx]),
                         captions=self.collate_captions([self.captions[i] for i in idx]),
                         img_of_caption=torch.arange(len(idx)))


def train_matcher(cfg: ExperimentConfig, data: Any, *, img_dim: int, vocab: Any, edges: Any = None,
                  device: str = "cpu", show_progress: bool = True) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Build the matcher of ``cfg.model`` and train it on ``data`` with Adam and ``cfg.train``
    (``epochs``, ``batch_size``, ``lr``, ``grad_clip``, ``loss``, ``seed``, ``max_steps_per_epoch``,
    ``max_minutes``).

    Args:
        data: :class:`PairData` or a :class:`~graphmatch.data.dataset.MatchingData` (anything with
            ``n_captions`` and ``pair_batch``).
        edges: the visual-edge declaration of the graphs (a recipe's ``visual_edges.name``, e.g.
            :class:`graphmatch.data.annotated.AnnotatedRelationEdges`): checked against the
            matcher's ``graph_needs``, and its ``edge_dim`` sizes the image GNN stack. None: the
            config's own recipe ``cfg.data.graph``.

    Returns:
        ``(model in eval mode, {"steps", "seconds", "final_loss"})``.
    """
    torch.manual_seed(cfg.train.seed)
    recipe = (cfg.data.graph if edges is None else
              SimpleNamespace(visual_edges=SimpleNamespace(name=edges), text_graph=cfg.data.graph.text_graph))
    model = build_matcher(cfg.model, img_dim=img_dim, vocab=vocab, recipe=recipe).to(device)
    t = cfg.train
    sampler = CaptionBatchSampler(data.n_captions, t.batch_size, seed=t.seed, max_steps_per_epoch=t.max_steps_per_epoch)
    hooks: List[Any] = [ProgressHook(log_every=t.log_every, enabled=show_progress)]
    if t.max_minutes is not None:
        hooks.append(TimeLimitHook(t.max_minutes))
    trainer = Trainer(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=t.lr),
                      loss_fn=build_loss(t.loss), batches=PairLoader(data, sampler), epochs=t.epochs,
                      device=device, grad_clip=t.grad_clip, hooks=hooks)
    start = time.time()
    trainer.train()
    model.eval()
    return model, {"steps": trainer.global_step, "seconds": round(time.time() - start, 1),
                   "final_loss": trainer.last_loss}


def encode_all(encode: Callable[[Batch], NodeEmb], graphs: Sequence[Any], *, batch_size: int = 256,
               follow_batch: Optional[List[str]] = None, device: str = "cpu",
               desc: Optional[str] = None, show_progress: bool = False) -> List[NodeEmb]:
    """Node embeddings of ``graphs`` in batches of ``batch_size`` (one :class:`NodeEmb` per batch,
    on the CPU), under ``torch.no_grad()``."""
    out = []
    starts = range(0, len(graphs), batch_size)
    with torch.no_grad():
        for s in progress(starts, desc=desc, disable=not show_progress, leave=False):
            b = collate_graphs(graphs[s : s + batch_size], follow_batch=follow_batch).to(device)
            out.append(encode(b).to("cpu"))
    return out


def retrieval_report(model: Any, images: Sequence[Any], captions: Sequence[Any], *, batch_size: int = 256,
                     follow_batch: Optional[List[str]] = None, device: str = "cpu",
                     img_of_caption: Optional[torch.Tensor] = None, show_progress: bool = False) -> Dict[str, float]:
    """Graph -> caption (``g2c``) and caption -> graph (``c2g``) R@1/5/10 and ``rsum`` (percent)
    over all pairs; caption ``c`` describes graph ``img_of_caption[c]`` (default: graph ``c``)."""
    img = NodeEmb.cat(encode_all(model.encode_images, images, batch_size=batch_size, device=device))
    cap = NodeEmb.cat(encode_all(model.encode_captions, captions, batch_size=batch_size,
                                 follow_batch=follow_batch, device=device))
    sims = chunked_similarity(model.score, img, cap, device=device, progress=show_progress, desc="retrieval")
    m = retrieval_metrics(sims, torch.arange(len(captions)) if img_of_caption is None else img_of_caption)
    out = {f"g2c_r{k}": round(m[f"i2t_r{k}"], 2) for k in RECALL_KS}
    out.update({f"c2g_r{k}": round(m[f"t2i_r{k}"], 2) for k in RECALL_KS})
    out["rsum"] = round(m["rsum"], 2)
    return out


def case_scores(model: Any, graph_pairs: Sequence[Tuple[Any, Any]], caption_pairs: Sequence[Tuple[Any, Any]], *,
                batch_size: int = 128, follow_batch: Optional[List[str]] = None, device: str = "cpu",
                show_progress: bool = False, desc: str = "swaps") -> torch.Tensor:
    """``S [n, 2, 2]`` with ``S[k, a, b] = s(graph a of case k, caption b of case k)`` (0: the
    original, 1: the twin). The two graphs (captions) of a case share one encoding batch."""
    if len(graph_pairs) != len(caption_pairs):
        raise ValueError(f"{len(graph_pairs)} graph pairs but {len(caption_pairs)} caption pairs")
    n = len(graph_pairs)
    out = torch.empty(n, 2, 2)
    bar = progress(total=n, desc=desc, disable=not show_progress, leave=False)
    with torch.no_grad():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            imgs = [g for p in graph_pairs[s:e] for g in p]
            caps = [c for p in caption_pairs[s:e] for c in p]
            ie = model.encode_images(collate_graphs(imgs).to(device))
            ce = model.encode_captions(collate_graphs(caps, follow_batch=follow_batch).to(device))
            for k in range(e - s):
                block = model.score(ie[2 * k : 2 * k + 2].trim(), ce[2 * k : 2 * k + 2].trim())
                out[s + k] = block.detach().float().cpu()
            bar.update(e - s)
    bar.close()
    return out


def winoground(scores: torch.Tensor, *, tie_tol: float = DEFAULT_TIE_TOL) -> Dict[str, Any]:
    """``{"n", "text", "graph", "group"}`` (percent; 0 for no case) of ``scores [n, 2, 2]``
    (:func:`case_scores`); see the module docstring."""
    if scores.dim() != 3 or tuple(scores.shape[1:]) != (2, 2):
        raise ValueError(f"scores must be [n, 2, 2], got {tuple(scores.shape)}")
    if not tie_tol >= 0:
        raise ValueError(f"tie_tol must be >= 0, got {tie_tol!r}")
    s = scores.double()
    gc, gc2, g2c, g2c2 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    text = gc - gc2 > tie_tol
    graph = gc - g2c > tie_tol
    group = text & (g2c2 - g2c > tie_tol)
    n = int(s.size(0))

    def pct(x: torch.Tensor) -> float:
        return round(float(100.0 * x.double().mean()), 2) if n else 0.0

    return {"n": n, "text": pct(text), "graph": pct(graph), "group": pct(group)}


def swap_report(model: Any, cases: Dict[str, Tuple[List[Tuple[Any, Any]], List[Tuple[Any, Any]]]], *,
                tie_tol: float = DEFAULT_TIE_TOL, **kw: Any) -> Dict[str, Dict[str, Any]]:
    """:func:`winoground` of every kind in ``cases`` (``kind -> (graph pairs, caption pairs)``)."""
    out = {}
    for kind, (graphs, captions) in cases.items():
        scores = case_scores(model, graphs, captions, desc=f"{kind} swaps", **kw) if graphs else torch.empty(0, 2, 2)
        out[kind] = winoground(scores, tie_tol=tie_tol)
    return out



def run_table(names: Sequence[str], run_one: Callable[[str], Dict[str, Any]],
              table: Callable[[Sequence[Tuple[str, Any]]], str], out_dir: Path) -> str:
    """Run ``run_one(name)`` for each matcher ``name`` in turn, write ``<out_dir>/<name>.json`` as
    each finishes and ``<out_dir>/table.md`` at the end; returns the table. A matcher that cannot be
    built here (not registered, graphs it cannot read) is a row saying why, not a failed table."""
    from graphmatch.utils.atomic import atomic_write_json

    rows: List[Tuple[str, Any]] = []
    for name in names:
        try:
            report = run_one(name)
        except (ValueError, KeyError, NotImplementedError) as e:
            log.error("%s: %s", name, e)
            rows.append((name, f"not run: {str(e)[:160]}".replace("|", "/").replace("\n", " ")))
            continue
        atomic_write_json(Path(out_dir) / f"{name}.json", report)
        rows.append((name, report))
    text = table(rows)
    os.makedirs(out_dir, exist_ok=True)
    (Path(out_dir) / "table.md").write_text(text + "\n", encoding="utf-8")
    return text
