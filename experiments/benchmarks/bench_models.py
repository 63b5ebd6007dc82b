"""Benchmark: training steps/s and exact scoring pairs/s of every registered matcher, on CPU.

For each matcher of :data:`graphmatch.models.MATCHERS` (built with ``build_matcher`` from a config
and the graphs its ``graph_needs`` asks for, as the matcher contract test does) on random
synthetic-sized inputs (``--regions`` regions per image with boxes, captions of
``--min-words``..``--max-words`` words):

* **training**: steps/s of one optimisation step at ``--batch`` images x ``--batch`` captions
  (forward through both encoders, ``score``, contrastive loss with hardest negatives, backward,
  gradient clipping at 2, Adam step); the batch is collated once beforehand, so data loading is
  not measured; the mean over ``--steps`` steps after one warm-up step;
* **scoring**: exact pairs/s of ``chunked_similarity`` (the evaluation path, ``img_chunk`` 128,
  ``cap_chunk`` 256) over ``--n-images`` x ``--n-captions`` pairs of nodes encoded beforehand,
  best of ``--repeats``, under ``torch.no_grad``.

GSMN's batched scoring (``neighbourhood: messages`` and ``released``) is also compared, in the same
run, with :func:`graphmatch.testing.reference.gsmn_caption_loop` (one caption at a time, structured
like the released code) on the same nodes and parameters: speed ratio and largest absolute
difference, over the ``--n-images`` images and the first ``--loop-captions`` captions (the loop
costs about 20 ms a pair on one core, so the whole scoring set would take minutes; both sides score
exactly the same pairs, and fewer captions only shrink the batch of the batched side; the batched
side is timed after a warm-up call, best of ``max(3, --repeats)``, the loop best of ``--repeats``). A matcher that needs inputs this script cannot build is listed under ``skipped`` with
the reason. Prints one JSON object.

Usage::

    python experiments/benchmarks/bench_models.py [--quick] [--dim 1024 --regions 36 --batch 128
        --steps 1 --n-images 50 --n-captions 250 --loop-captions 50 --repeats 1 --threads N
        --only gsmn,scan]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

try:
    import graphmatch  # noqa: F401
except ImportError:  # running from a checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from graphmatch.config import load_config
from graphmatch.data.vocab import Vocabulary
from graphmatch.engine.scoring import chunked_similarity
from graphmatch.graphs import build_text_graph, build_visual_graph, build_word_graph, collate_graphs
from graphmatch.losses import build_loss
from graphmatch.models import MATCHERS, build_matcher
from graphmatch.structures import SceneGraph, SGAttribute, SGObject, SGRelation
from graphmatch.testing.reference import gsmn_caption_loop

WORDS = [f"w{i}" for i in range(500)]
IMAGE_SIZE = (640.0, 480.0)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about 30 s): dim 256, batch 32, 40 x 200 pairs")
    p.add_argument("--dim", type=int, default=1024, help="joint embedding size")
    p.add_argument("--img-dim", type=int, default=2048, help="region feature size")
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--min-words", type=int, default=8)
    p.add_argument("--max-words", type=int, default=16)
    p.add_argument("--batch", type=int, default=128, help="images = captions per training step")
    p.add_argument("--steps", type=int, default=1,
                   help="timed training steps (after one warm-up; 1 by default: a GSMN step at batch 128 takes "
                        "about 30 s on a loaded 2-core machine)")
    p.add_argument("--n-images", type=int, default=50)
    p.add_argument("--n-captions", type=int, default=250)
    p.add_argument("--loop-captions", type=int, default=50,
                   help="captions of the GSMN batched-vs-loop comparison (the first ones of the scoring set)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=None, help="comma-separated matcher names (default: all registered)")
    args = p.parse_args(argv)
    if args.quick:
        args.dim, args.img_dim, args.batch, args.steps = 256, 256, 32, 2
        args.n_images, args.n_captions, args.repeats, args.loop_captions = 40, 200, 1, 40
    if not 1 <= args.min_words <= args.max_words:
        p.error("need 1 <= --min-words <= --max-words")
    if min(args.steps, args.repeats, args.batch, args.n_images, args.n_captions, args.regions, args.loop_captions) < 1:
        p.error("--steps, --repeats, --batch, --n-images, --n-captions, --loop-captions and --regions must be >= 1")
    args.loop_captions = min(args.loop_captions, args.n_captions)
    return args


def graph_kinds(name: str) -> tuple[str, str]:
    """(visual edges, text graph kind) that give matcher ``name`` what its ``graph_needs`` asks for."""
    needs = MATCHERS.get(name).graph_needs
    if needs is None:
        return "none", "words"
    text = needs.text_graphs[0] if needs.text_graphs else "words"
    if name == "gsmn":  # GSMN reads any caption graph; the sparse one (its default) is the dependency parse
        text = "dependency"
    # edge features: relation edges (one per random triple) for scene-graph matchers, else polar
    visual = needs.visual_edges[0] if needs.visual_edges else (
        ("relations" if text == "scene" else "polar") if needs.edge_attr else "none")
    return visual, text


def random_parse(tokens: List[str], g: torch.Generator) -> SceneGraph:
    """A scene graph over ``tokens``: objects at every third word, an attribute before each object,
    a relation word between consecutive objects, and a dependency tree (each word's head is an
    earlier word)."""
    n = len(tokens)
    objs = list(range(1, n, 3))
    heads = [0] + [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, n)]
    return SceneGraph(tokens=tokens, objects=[SGObject(tokens[i], (i, i + 1)) for i in objs],
                      attributes=[SGAttribute(k, tokens[i - 1], (i - 1, i)) for k, i in enumerate(objs)],
                      relations=[SGRelation(k, tokens[i + 1], k + 1, (i + 1, i + 2)) for k, i in enumerate(objs[:-1])],
                      heads=heads, deps=["ROOT"] + ["dep"] * (n - 1))


class Inputs:
    """Random images (features, boxes) and captions, built as graphs of the kinds a matcher needs."""

    def __init__(self, args: argparse.Namespace, n_images: int, n_captions: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        r = args.regions
        self.features = [torch.randn(r, args.img_dim, generator=g).relu() for _ in range(n_images)]
        self.boxes = []
        for _ in range(n_images):
            x1y1 = torch.rand(r, 2, generator=g) * torch.tensor(IMAGE_SIZE) * 0.7
            self.boxes.append(torch.cat([x1y1, x1y1 + 8 + torch.rand(r, 2, generator=g) * 180], 1))
        self.relations = [[(int(a), int(p), int(b)) for a, p, b in torch.randint(0, r, (r, 3), generator=g).tolist()
                           if a != b] for _ in range(n_images)]
        lens = torch.randint(args.min_words, args.max_words + 1, (n_captions,), generator=g).tolist()
        self.tokens = [[WORDS[int(i)] for i in torch.randint(0, len(WORDS), (n,), generator=g)] for n in lens]
        self.parses = [random_parse(t, g) for t in self.tokens]

    def images(self, edges: str):
        extra = (lambda i: {"relations": self.relations[i]}) if edges == "relations" else (lambda i: {})
        return collate_graphs([build_visual_graph(x, boxes=b, image_size=IMAGE_SIZE, item=i, edges=edges, **extra(i))
                               for i, (x, b) in enumerate(zip(self.features, self.boxes))])

    def captions(self, kind: str, vocab: Vocabulary):
        if kind == "words":
            return collate_graphs([build_word_graph(vocab.encode(" ".join(t)), item=i) for i, t in enumerate(self.tokens)])
        graphs = [build_text_graph(kind, p, vocab.encode(" ".join(t)), item=i)
                  for i, (t, p) in enumerate(zip(self.tokens, self.parses))]
        return collate_graphs(graphs, follow_batch=["words"] if kind == "scene" else None)

    def centres(self) -> torch.Tensor:
        c = torch.stack([(b[:, :2] + b[:, 2:]) / 2 for b in self.boxes])
        return c / torch.tensor(IMAGE_SIZE)


def build(name: str, args: argparse.Namespace, vocab: Vocabulary, overrides=()):
    visual, text = graph_kinds(name)
    cfg = load_config(None, [f"model.matcher.name={name}", f"model.embed_dim={args.dim}", "model.text.word_dim=300",
                             f"data.graph.visual_edges={visual}", f"data.graph.text_graph={text}", *overrides])
    torch.manual_seed(args.seed)
    return build_matcher(cfg.model, img_dim=args.img_dim, vocab=vocab, recipe=cfg.data.graph), cfg


def time_training(model, cfg, images, captions, steps: int) -> Dict[str, float]:
    model.train()
    loss_fn = build_loss(cfg.train.loss)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    n = images.num_graphs

    def step():
        sims = model(images, captions)
        loss = loss_fn(sims, torch.eye(n, dtype=torch.bool))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        return float(loss.detach())

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    return {"step_s": round(dt, 4), "steps_per_s": round(1.0 / dt, 3)}


def best_time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_matcher(name: str, args: argparse.Namespace, vocab: Vocabulary, train_in: Inputs, score_in: Inputs,
                  overrides=()) -> Dict[str, Any]:
    visual, text = graph_kinds(name)
    model, cfg = build(name, args, vocab, overrides)
    result: Dict[str, Any] = {"visual_edges": visual, "text_graph": text,
                              "parameters": sum(p.numel() for p in model.parameters())}
    result["train"] = time_training(model, cfg, train_in.images(visual), train_in.captions(text, vocab), args.steps)
    model.eval()
    with torch.no_grad():
        img = model.encode_images(score_in.images(visual))
        cap = model.encode_captions(score_in.captions(text, vocab))
        t, _ = best_time(lambda: chunked_similarity(model.score, img, cap, img_chunk=128, cap_chunk=256), args.repeats)
    pairs = len(img) * len(cap)
    result["score"] = {"pairs": pairs, "best_s": round(t, 4), "pairs_per_s": round(pairs / t)}
    return result


def bench_gsmn_loop(args: argparse.Namespace, vocab: Vocabulary, score_in: Inputs) -> Dict[str, Any]:
    """GSMN batched score vs the per-caption loop, both neighbourhoods, on the same nodes and weights."""
    from graphmatch.models.gsmn import to_released_graph_state

    out: Dict[str, Any] = {}
    for nb in ("messages", "released"):
        model, _ = build("gsmn", args, vocab, [f"model.matcher.neighbourhood={nb}"])
        model.eval()
        with torch.no_grad():
            img = model.encode_images(score_in.images("polar"))
            cap = model.encode_captions(score_in.captions("dependency", vocab))[:args.loop_captions]
            i2t, t2i = to_released_graph_state(model)
            model.score(img, cap)  # warm-up (allocations); the batched side is cheap: best of at least 3
            t_b, s_b = best_time(lambda: model.score(img, cap), max(3, args.repeats))
            t_l, s_l = best_time(lambda: gsmn_caption_loop(
                img.x, img.mask, img.adj, score_in.centres(), cap.x, cap.mask, cap.adj, i2t_state=i2t, t2i_state=t2i,
                num_block=model.num_block, lambda_softmax=model.lambda_softmax, neighbourhood=nb), args.repeats)
        pairs = len(img) * len(cap)
        out[nb] = {"pairs": pairs, "batched": {"best_s": round(t_b, 4), "pairs_per_s": round(pairs / t_b)},
                   "loop": {"best_s": round(t_l, 4), "pairs_per_s": round(pairs / t_l)},
                   "speedup": round(t_l / t_b, 2), "max_abs_diff": float((s_b - s_l).abs().max())}
    return out


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    vocab = Vocabulary.build([" ".join(WORDS)])
    train_in = Inputs(args, args.batch, args.batch, args.seed)
    score_in = Inputs(args, args.n_images, args.n_captions, args.seed + 1)
    names = MATCHERS.names() if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    matchers, skipped = {}, {}
    for name in names:
        if name not in MATCHERS.names():
            skipped[name] = "not a registered matcher"
            continue
        try:
            matchers[name] = bench_matcher(name, args, vocab, train_in, score_in)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            skipped[name] = f"{type(e).__name__}: {e}"
    gsmn = bench_gsmn_loop(args, vocab, score_in) if "gsmn" in names and "gsmn" in matchers else None
    result = {
        "benchmark": "models",
        "config": {"dim": args.dim, "img_dim": args.img_dim, "regions": args.regions,
                   "words": [args.min_words, args.max_words], "train_batch": args.batch, "train_steps": args.steps,
                   "n_images": args.n_images, "n_captions": args.n_captions, "loop_captions": args.loop_captions,
                   "repeats": args.repeats,
                   "threads": torch.get_num_threads(), "seed": args.seed, "quick": args.quick, "device": "cpu",
                   "torch": torch.__version__, "python": platform.python_version()},
        "matchers": matchers,
        "skipped": skipped,
        "gsmn_batched_vs_caption_loop": gsmn,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
