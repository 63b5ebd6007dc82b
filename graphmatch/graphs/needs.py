"""What a matcher needs of its graphs, checked against the data's graph recipe when a model is built.

A matcher declares :class:`GraphNeeds` (e.g. GSMN: polar visual edges with edge features and
dependency or full caption graphs); :func:`check_recipe` compares them with the ``data.graph``
recipe of a config, so a recipe that does not give the matcher its graphs is a ``ValueError`` at
build time that names the config key and the values that would do, not a shape error in the first
epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

__all__ = ["GraphNeeds", "check_recipe"]


@dataclass(frozen=True)
class GraphNeeds:
    """The graphs a matcher can use.

    Attributes:
        visual_edges: the visual edge builders it accepts (``("polar",)``), or None for any.
        text_graphs: the text graph kinds it accepts (``("dependency", "full")``), or None for any.
        edge_attr: it reads visual edge features, so the builder must declare an ``edge_dim``.
    """

    visual_edges: Optional[Tuple[str, ...]] = None
    text_graphs: Optional[Tuple[str, ...]] = None
    edge_attr: bool = False

    def __post_init__(self) -> None:
        for key in ("visual_edges", "text_graphs"):
            v = getattr(self, key)
            if isinstance(v, str):  # GraphNeeds(visual_edges="polar") means ("polar",)
                object.__setattr__(self, key, (v,))
            elif v is not None:
                object.__setattr__(self, key, tuple(v))


def _name(section: Any) -> str:
    name = getattr(section, "name", section)
    return name if isinstance(name, str) else getattr(name, "__name__", repr(name))


def check_recipe(needs: Optional[GraphNeeds], recipe: Any, matcher_name: str) -> None:
    """Raise ``ValueError`` when the graph recipe ``recipe`` (``cfg.data.graph``: its
    ``visual_edges`` and ``text_graph``, each a config section with ``.name`` or a plain name) does
    not give matcher ``matcher_name`` the graphs ``needs`` asks for. ``needs=None`` accepts any."""
    if needs is None:
        return
    visual = _name(recipe.visual_edges)
    text = _name(recipe.text_graph)
    if needs.visual_edges is not None and visual not in needs.visual_edges:
        raise ValueError(f"matcher {matcher_name!r} needs visual graphs with edges {' or '.join(needs.visual_edges)}, "
                         f"but data.graph.visual_edges is {visual!r}; set data.graph.visual_edges to "
                         f"{needs.visual_edges[0]!r}")
    if needs.text_graphs is not None and text not in needs.text_graphs:
        raise ValueError(f"matcher {matcher_name!r} needs {' or '.join(needs.text_graphs)} caption graphs, "
                         f"but data.graph.text_graph is {text!r}; set data.graph.text_graph to "
                         f"{needs.text_graphs[0]!r}")
    if needs.edge_attr:
        from graphmatch.graphs.edges import VISUAL_EDGES, edge_dim_of

        if edge_dim_of(visual) is None:
            with_features = [n for n in VISUAL_EDGES.names() if edge_dim_of(n) is not None]
            raise ValueError(f"matcher {matcher_name!r} reads visual edge features, but data.graph.visual_edges "
                             f"{visual!r} gives none; use one of {', '.join(with_features)}")
