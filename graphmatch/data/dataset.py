"""From a loaded split to PyG batches of (image graph, caption graph) pairs.

A training batch is a set of captions; the images of those captions are taken once each (two
captions of one image in a batch share one image graph), and the batch carries the explicit
``img_of_caption`` map, from which the loss builds its positive mask. SCAN's loader instead copies
the image once per caption, which makes a caption of the same image a false negative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Protocol, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch

from graphmatch.data.precomp import DataError, PrecompSplit
from graphmatch.data.vocab import Vocabulary
from graphmatch.graphs import VisualGraph, TextGraph, build_visual_graph, build_word_graph, collate_graphs
from graphmatch.structures import Regions


class RegionSource(Protocol):
    """Anything that maps an image id to its :class:`~graphmatch.structures.Regions`: the HDF5
    region store and the feature readers of :mod:`detectors` (``detectors.readers.open_regions``)."""

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
        """bool [n_images, n_captions], True where caption c describes image i."""
        n_img = self.images.num_graphs
        return torch.arange(n_img, device=self.img_of_caption.device).unsqueeze(1) == self.img_of_caption.unsqueeze(0)

    def to(self, device: torch.device | str) -> "PairBatch":
        return PairBatch(self.images.to(device), self.captions.to(device), self.img_of_caption.to(device))


class MatchingData:
    """A split with tokenised captions; builds graphs for images and captions.

    Region feature rows that are all zero (zero padding of a precomp array, for images with fewer
    than ``R`` regions) are left out of the image graph together with their boxes, so the dense
    views (:func:`~graphmatch.graphs.to_dense`) mask them out of attention and pooling; an image
    with no non-zero row raises :class:`~graphmatch.data.precomp.DataError` naming the file and row.

    Args:
        split: a loaded :class:`~graphmatch.data.precomp.PrecompSplit`.
        vocab: the vocabulary that maps caption words to ids.
        regions: where image regions come from when the split has no feature array
            (:func:`~graphmatch.data.precomp.load_captions`): a :class:`RegionSource` keyed by the
            split's image ids. The number of regions may then differ between images.
    """

    def __init__(self, split: PrecompSplit, vocab: Vocabulary, regions: Optional[RegionSource] = None) -> None:
        self.split = split
        self.vocab = vocab
        self.regions = regions
        if split.features is None:
            if regions is None:
                raise ValueError(f"split {split.split!r} of {split.root} has no features: pass the region "
                                 "source (region store or reader) that holds its images")
            missing = [i for i in split.image_ids if i not in regions]
            if missing:
                raise ValueError(
                    f"{len(missing)} image id(s) of {split.root}/{split.split}_ids.txt are not in the region "
                    f"source {getattr(regions, 'path', regions)!r}, e.g. {missing[:5]}")
        self.token_ids: List[torch.Tensor] = [torch.tensor(vocab.encode(c), dtype=torch.long) for c in split.captions]
        for c, t in enumerate(self.token_ids):
            if t.numel() == 0:  # load_precomp already rejects these; a guard for hand-built splits
                raise ValueError(f"{split.root}/{split.split}_caps.txt line {c + 1}: caption has no word")
        self.img_of_caption = torch.as_tensor(np.asarray(split.img_of_caption), dtype=torch.long)

    @property
    def n_images(self) -> int:
        return self.split.n_images

    @property
    def n_captions(self) -> int:
        return self.split.n_captions

    @property
    def feature_dim(self) -> int:
        """Region feature size of the split's images."""
        if self.split.features is not None:
            return int(self.split.feature_dim)  # type: ignore[arg-type]
        return self.regions.get(self.split.image_ids[0]).feature_dim  # type: ignore[union-attr]

    def image_graph(self, i: int) -> VisualGraph:
        s = self.split
        if s.features is None:
            return build_visual_graph(self.regions.get(s.image_ids[i]), item=int(i))  # type: ignore[union-attr]
        feats = np.array(s.features[i], dtype=np.float32)
        boxes = None if s.boxes is None else np.array(s.boxes[i], dtype=np.float32)
        keep = (feats != 0).any(axis=1)
        if not keep.all():  # all-zero rows are padding: they are not nodes, so batches mask them out
            if not keep.any():
                raise DataError(f"{s.root / (s.split + '_ims.npy')}: image row {i} has only all-zero region "
                                "features (every region is zero padding)", path=s.root / (s.split + "_ims.npy"),
                                record=f"row {i}", code="all_zero_image")
            feats = feats[keep]
            boxes = None if boxes is None else boxes[keep]
        size = None if s.image_sizes is None else tuple(float(v) for v in s.image_sizes[i])
        return build_visual_graph(torch.from_numpy(feats), boxes=None if boxes is None else torch.from_numpy(boxes),
                                  image_size=size, item=int(i))

    def caption_graph(self, c: int) -> TextGraph:
        return build_word_graph(self.token_ids[c], item=int(c))

    def text_graph(self, text: str, item: int = -1) -> TextGraph:
        """Graph of an arbitrary caption text (e.g. a hard negative) with this vocabulary."""
        ids = self.vocab.encode(text)
        if not ids:
            raise ValueError(f"caption {text!r} has no word")
        return build_word_graph(ids, item=item)

    def pair_batch(self, caption_indices: Sequence[int]) -> PairBatch:
        """The captions ``caption_indices`` and their images, each image once."""
        caps = [int(c) for c in caption_indices]
        imgs = self.img_of_caption[caps]
        uniq, local = torch.unique(imgs, sorted=True, return_inverse=True)
        return PairBatch(
            images=collate_graphs([self.image_graph(int(i)) for i in uniq]),
            captions=collate_graphs([self.caption_graph(c) for c in caps]),
            img_of_caption=local.reshape(-1),
        )

    @staticmethod
    def _batches(graph: Any, n: int, batch_size: int, indices: Optional[Sequence[int]]) -> Iterator[Batch]:
        idx = list(range(n) if indices is None else indices)
        for s in range(0, len(idx), batch_size):
            yield collate_graphs([graph(i) for i in idx[s : s + batch_size]])

    def image_batches(self, batch_size: int, indices: Optional[Sequence[int]] = None) -> Iterator[Batch]:
        """Batches of image graphs (all images, or ``indices`` in that order)."""
        return self._batches(self.image_graph, self.n_images, batch_size, indices)

    def caption_batches(self, batch_size: int, indices: Optional[Sequence[int]] = None) -> Iterator[Batch]:
        """Batches of caption graphs (all captions, or ``indices`` in that order)."""
        return self._batches(self.caption_graph, self.n_captions, batch_size, indices)


class PairCollator:
    """``collate_fn`` for a ``DataLoader`` over caption indices (picklable for worker processes)."""

    def __init__(self, data: MatchingData) -> None:
        self.data = data

    def __call__(self, caption_indices: Sequence[int]) -> PairBatch:
        return self.data.pair_batch(caption_indices)


class CaptionIndexDataset(torch.utils.data.Dataset):
    """Yields caption numbers; :class:`PairCollator` turns a list of them into a :class:`PairBatch`."""

    def __init__(self, n_captions: int) -> None:
        self.n = n_captions

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i
