"""From a loaded split to PyG batches of (image graph, caption graph) pairs, built by the graph recipe.

A training batch is a set of captions; the images of those captions are taken once each (two
captions of one image in a batch share one image graph), and the batch carries the explicit
``img_of_caption`` map, from which the loss builds its positive mask. SCAN's loader instead copies
the image once per caption, which makes a caption of the same image a false negative.

Every image takes one path: its :class:`~graphmatch.structures.Regions` come from a region source
(the split's own arrays through :class:`~graphmatch.data.precomp.PrecompRegions`, or an HDF5 store /
BUTD TSV reader keyed by the split's image ids), and the recipe's visual edge builder turns them
into a :class:`~graphmatch.graphs.VisualGraph`. Every caption takes one tokenisation
(:func:`~graphmatch.data.vocab.tokenize_with_offsets`): its vocabulary ids, and, for text graph
kinds that need a parse, the spans of its parse (read from the split's parse sidecar and aligned
to those tokens, :mod:`graphmatch.data.parses`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch
from torch_geometric.data import Batch

from graphmatch.data.precomp import DataError, PrecompRegions, PrecompSplit, precomp_paths
from graphmatch.data.vocab import Vocabulary, tokenize
from graphmatch.graphs import TEXT_GRAPHS, VISUAL_EDGES, TextGraph, VisualGraph, build_visual_graph, collate_graphs
from graphmatch.structures import Correspondence, Regions, SceneGraph

log = logging.getLogger(__name__)


class RegionSource(Protocol):
    """Anything that maps an image id to its :class:`~graphmatch.structures.Regions`: the split's own
    arrays (:class:`~graphmatch.data.precomp.PrecompRegions`), the HDF5 region store and the BUTD TSV
    readers (:func:`graphmatch.data.regions.open_regions`)."""

    def get(self, image_id: str) -> Regions: ...

    def __contains__(self, image_id: object) -> bool: ...


@dataclass
class PairBatch:
    """A batch of captions and their (unique) images.

    Attributes:
        images: ``Batch`` of ``VisualGraph`` (``item`` = image row in the split).
        captions: ``Batch`` of ``TextGraph`` (``item`` = caption number in the split).
        img_of_caption: long [n_captions], index into ``images`` of each caption's image.
    """

    images: Batch
    captions: Batch
    img_of_caption: torch.Tensor

    def positive_mask(self) -> torch.Tensor:
        """bool [n_images, n_captions], True where caption c describes image i (on the batch's device)."""
        return Correspondence.mask_of(self.img_of_caption, self.images.num_graphs)

    def to(self, device: torch.device | str) -> "PairBatch":
        return PairBatch(self.images.to(device), self.captions.to(device), self.img_of_caption.to(device))


def _section(section: Any, default: str) -> Tuple[str, Dict[str, Any]]:
    """``(name, options)`` of a recipe entry: a config section (``.name``, ``.kwargs()``), a name, or None."""
    if section is None:
        return default, {}
    if isinstance(section, str):
        return section, {}
    kwargs = section.kwargs() if hasattr(section, "kwargs") else {}
    return section.name, dict(kwargs)


class MatchingData:
    """A split with tokenised captions; builds graphs for images and captions by the graph recipe.

    Args:
        split: a loaded :class:`~graphmatch.data.precomp.PrecompSplit`.
        vocab: the vocabulary that maps caption words to ids.
        regions: where image regions come from: a :class:`RegionSource` keyed by the split's image
            ids. Default: the split's own arrays (:class:`~graphmatch.data.precomp.PrecompRegions`:
            all-zero rows are padding and left out; an image with no non-zero row raises
            :class:`~graphmatch.data.precomp.DataError` naming the file and row). Required for a
            split without features (:func:`~graphmatch.data.precomp.load_captions`); the number of
            regions may then differ between images.
        recipe: the graph recipe (``cfg.data.graph``: ``visual_edges`` and ``text_graph``, each a
            config section or a name, and ``parses``, the sidecar template). None: ``none`` /
            ``words`` (region sets and word sequences).
        parses: the aligned parses of the split's captions, one per caption; default: read from the
            recipe's sidecar when the text graph kind needs a parse.

    Raises:
        ValueError: a region source that lacks some of the split's images, a caption with no word.
        DataError: a missing, stale or malformed parse sidecar or relation file.
    """

    def __init__(self, split: PrecompSplit, vocab: Vocabulary, regions: Optional[RegionSource] = None, *,
                 recipe: Any = None, parses: Optional[Sequence[SceneGraph]] = None) -> None:
        self.split = split
        self.vocab = vocab
        if regions is None:
            if split.features is None:
                raise ValueError(f"split {split.split!r} of {split.root} has no features: pass the region "
                                 "source (region store or reader) that holds its images")
            regions = PrecompRegions(split)
        else:
            missing = [i for i in split.image_ids if i not in regions]
            if missing:
                raise ValueError(
                    f"{len(missing)} image id(s) of {split.root}/{split.split}_ids.txt are not in the region "
                    f"source {getattr(regions, 'path', regions)!r}, e.g. {missing[:5]}")
        self.regions = regions
        self.token_ids: List[torch.Tensor] = [torch.tensor(vocab.encode(c), dtype=torch.long) for c in split.captions]
        for c, t in enumerate(self.token_ids):
            if t.numel() == 0:  # load_precomp already rejects these; a guard for hand-built splits
                raise ValueError(f"{split.root}/{split.split}_caps.txt line {c + 1}: caption has no word")
        self.correspondence = Correspondence(split.img_of_caption, split.n_images, every_image_captioned=False)
        self.img_of_caption = self.correspondence.tensor()
        self.recipe = recipe
        # ---- visual edges
        self.visual_edges, self._edge_options = _section(getattr(recipe, "visual_edges", None), "none")
        self._edge_builder = VISUAL_EDGES.get(self.visual_edges)
        self._relations: Optional[List[list]] = None
        self._relations_file: Optional[str] = None
        if getattr(self._edge_builder, "reads_relations", False):
            from graphmatch.data.relations import read_relations

            template = self._edge_options.pop("file", None)
            if template is None:
                raise ValueError(f"visual edges {self.visual_edges!r} read relation triples: give their 'file'")
            self._relations_file = template.format(root=str(split.root), split=split.split)
            self._relations = read_relations(self._relations_file, split.image_ids)
        # ---- text graphs
        self.text_graph_kind, self._text_options = _section(getattr(recipe, "text_graph", None), "words")
        self._text_builder = TEXT_GRAPHS.get(self.text_graph_kind)
        self.needs_parse = bool(getattr(self._text_builder, "needs_parse", True))
        self.parses: Optional[List[SceneGraph]] = None
        if self.needs_parse:
            self.parses = list(parses) if parses is not None else self._read_parses()
            if len(self.parses) != self.n_captions:
                raise ValueError(f"{len(self.parses)} parses for the {self.n_captions} captions of split "
                                 f"{split.split!r}")
            for c, (sg, ids) in enumerate(zip(self.parses, self.token_ids)):
                if len(sg.tokens) != ids.numel():
                    raise ValueError(f"parse of caption {c} has {len(sg.tokens)} tokens but the caption has "
                                     f"{ids.numel()} words; align parses to the caption's tokens "
                                     "(graphmatch.graphs.align_scene_graph)")
        self._warned_unparsed = False

    def _read_parses(self) -> List[SceneGraph]:
        from graphmatch.data.parses import DEFAULT_PARSES, load_parses, parse_command, parses_path

        s = self.split
        template = getattr(self.recipe, "parses", None) or DEFAULT_PARSES
        return load_parses(parses_path(template, s.root, s.split), precomp_paths(s.root, s.split)["caps"],
                           s.captions, command=parse_command(s.root, s.split))

    @property
    def n_images(self) -> int:
        return self.split.n_images

    @property
    def n_captions(self) -> int:
        return self.split.n_captions

    @property
    def feature_dim(self) -> int:
        """Region feature size of the split's images."""
        dim = getattr(self.regions, "feature_dim", None)
        if isinstance(dim, int):
            return dim
        return self.regions.get(self.split.image_ids[0]).feature_dim

    def image_graph(self, i: int) -> VisualGraph:
        """The graph of image row ``i``: its regions from the region source, edges by the recipe."""
        image_id = self.split.image_ids[i]
        regions = self.regions.get(image_id)
        options = self._edge_options
        if self._relations is not None:
            options = dict(options, relations=self._relations[i])
        try:
            return build_visual_graph(regions, item=int(i), edges=self.visual_edges, **options)
        except ValueError as e:
            if isinstance(e, DataError):
                raise
            where = f"{self._relations_file}: " if self._relations is not None else ""
            raise ValueError(f"{where}image {image_id!r} (row {i} of split {self.split.split!r}): {e}") from None

    def caption_graph(self, c: int) -> TextGraph:
        """The graph of caption ``c`` of the recipe's text graph kind."""
        sg = None if self.parses is None else self.parses[c]
        return self._text_builder(self.token_ids[c], sg, item=int(c), **self._text_options)

    def text_graph(self, text: str, item: int = -1, scene_graph: Optional[SceneGraph] = None) -> TextGraph:
        """Graph of an arbitrary caption text (e.g. a hard negative) with this vocabulary.

        Kinds that need a parse use ``scene_graph`` (a parse of ``text`` aligned to its core tokens)
        when given. Without it such text has no parse, and it gets the kind's graph of an unparsed
        caption: its words with no arcs (``dependency``: every word a root) or as word nodes
        (``scene``, the form of a caption without objects). Use the same for the texts being
        compared (e.g. a hard negative and its positive) so that neither has structure the other
        lacks; a warning says so once.
        """
        ids = self.vocab.encode(text)
        if not ids:
            raise ValueError(f"caption {text!r} has no word")
        sg = scene_graph
        if self.needs_parse and sg is None:
            if not self._warned_unparsed:
                log.warning("text graph %r: captions given as text (e.g. hard negatives) have no parse; they get "
                            "the graph of an unparsed caption (words, no arcs or objects)", self.text_graph_kind)
                self._warned_unparsed = True
            toks = tokenize(text)
            sg = SceneGraph(tokens=toks, heads=list(range(len(toks))), deps=["ROOT"] * len(toks),
                            note="not parsed")
        return self._text_builder(torch.tensor(ids, dtype=torch.long), sg, item=item, **self._text_options)

    @property
    def follow_batch(self) -> Optional[List[str]]:
        """``follow_batch`` for batching caption graphs (``["words"]`` for scene graphs)."""
        return ["words"] if self.text_graph_kind == "scene" else None

    def collate_captions(self, graphs: Sequence[TextGraph]) -> Batch:
        """Batch caption graphs of this recipe."""
        return collate_graphs(graphs, follow_batch=self.follow_batch)

    def pair_batch(self, caption_indices: Sequence[int]) -> PairBatch:
        """The captions ``caption_indices`` and their images, each image once."""
        caps = [int(c) for c in caption_indices]
        imgs = self.img_of_caption[caps]
        uniq, local = torch.unique(imgs, sorted=True, return_inverse=True)
        return PairBatch(
            images=collate_graphs([self.image_graph(int(i)) for i in uniq]),
            captions=self.collate_captions([self.caption_graph(c) for c in caps]),
            img_of_caption=local.reshape(-1),
        )

    def image_batches(self, batch_size: int, indices: Optional[Sequence[int]] = None) -> Iterator[Batch]:
        """Batches of image graphs (all images, or ``indices`` in that order)."""
        idx = list(range(self.n_images) if indices is None else indices)
        for s in range(0, len(idx), batch_size):
            yield collate_graphs([self.image_graph(i) for i in idx[s : s + batch_size]])

    def caption_batches(self, batch_size: int, indices: Optional[Sequence[int]] = None) -> Iterator[Batch]:
        """Batches of caption graphs (all captions, or ``indices`` in that order)."""
        idx = list(range(self.n_captions) if indices is None else indices)
        for s in range(0, len(idx), batch_size):
            yield self.collate_captions([self.caption_graph(i) for i in idx[s : s + batch_size]])
