"""Matchers: one file per model, registered by name in :data:`MATCHERS`, and :func:`build_matcher`.

``build_matcher(model_cfg, img_dim=..., vocab=...)`` builds the image and text encoders named by
``model.image`` / ``model.text`` (each optionally followed by a GNN stack, ``model.image_gnn`` /
``model.text_gnn``) and the matcher named by ``model.matcher`` with its own keys.
"""
from __future__ import annotations

from typing import Any, Optional

from graphmatch.registry import accepted_kwargs
from graphmatch.models.base import Matcher, attach_dense_graph
from graphmatch.models.registry import MATCHERS
from graphmatch.models.scan import SCAN, SCANConfig  # registers "scan"
from graphmatch.models.sgm import SGM, SGMConfig  # registers "sgm"
from graphmatch.models.gsmn import GSMN, GSMNConfig  # registers "gsmn"


def build_matcher(cfg: Any, *, img_dim: int, vocab: Any, recipe: Any = None, pretrained: bool = True) -> Matcher:
    """The matcher of a :class:`~graphmatch.config.ModelConfig`.

    Args:
        cfg: the ``model`` section (``embed_dim``, ``image``, ``text``, ``matcher``, ``image_gnn``,
            ``text_gnn``). ``cfg.matcher.name`` may also be a matcher class (Python callers).
        img_dim: region feature size of the data.
        vocab: the vocabulary of the text encoder.
        recipe: the data's graph recipe (:class:`~graphmatch.config.GraphRecipe`); when given, the
            matcher's ``graph_needs`` is checked against it and the GNN stacks learn the edge
            feature size of the visual edges (also passed as ``edge_dim`` to the matchers that take
            it). Scene text graphs (this recipe's, or a matcher that takes only those) get their node
            features pooled from the word states (``cfg.text_pool``, :mod:`graphmatch.encoders.span`).
        pretrained: load pretrained parts from their files (word vectors, ...). False when a
            checkpoint is rebuilt: its weights already hold them.
    """
    from graphmatch.encoders import build_encoder

    name = cfg.matcher.name
    cls = MATCHERS.resolve(name)
    needs = getattr(cls, "graph_needs", None)
    if recipe is not None and needs is not None:
        from graphmatch.graphs import check_recipe

        check_recipe(needs, recipe, name if isinstance(name, str) else cls.__name__)
    edge_dim = _visual_edge_dim(recipe)
    image_encoder = build_encoder(cfg.image, embed_dim=cfg.embed_dim, img_dim=img_dim, pretrained=pretrained,
                                  gnn=cfg.image_gnn, edge_dim=edge_dim)
    text_encoder = build_encoder(cfg.text, embed_dim=cfg.embed_dim, vocab=vocab, pretrained=pretrained,
                                 gnn=cfg.text_gnn, edge_dim=None, span_pool=_span_pool(cfg, needs, recipe))
    kwargs = cfg.matcher.kwargs()
    kwargs.update(accepted_kwargs(cls, {"image_encoder": image_encoder, "text_encoder": text_encoder,
                                        "embed_dim": cfg.embed_dim, "edge_dim": edge_dim}))
    return cls(**kwargs)


def _span_pool(cfg: Any, needs: Any, recipe: Any) -> Optional[str]:
    """``cfg.text_pool`` when the captions are scene graphs (the recipe's text graph is ``scene``, or
    the matcher takes scene graphs only): their nodes are pooled from the text encoder's word states."""
    kind = None if recipe is None else getattr(recipe.text_graph, "name", recipe.text_graph)
    scene = kind == "scene"
    scene = scene or (needs is not None and tuple(needs.text_graphs or ()) == ("scene",))
    return getattr(cfg, "text_pool", "mean") if scene else None


def _visual_edge_dim(recipe: Any) -> Optional[int]:
    if recipe is None:
        return None
    from graphmatch.graphs import edge_dim_of

    return edge_dim_of(recipe.visual_edges.name)


__all__ = ["MATCHERS", "Matcher", "GSMN", "GSMNConfig", "SCAN", "SCANConfig", "SGM", "SGMConfig", "accepted_kwargs",
           "attach_dense_graph", "build_matcher"]
