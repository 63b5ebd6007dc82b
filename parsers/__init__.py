"""Caption parsers: text → :class:`graphmatch.structures.SceneGraph`.

This package will hold the spaCy dependency-rule scene-graph parser, its spaCy pipeline component
and the parser evaluation. spaCy is imported inside this package only, never by ``graphmatch``.
"""
