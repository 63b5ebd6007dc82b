"""Data sets as registered components: where the splits of a config's ``data`` section come from.

A data set is a class registered in :data:`graphmatch.data.DATASETS` with its own options; the
config's ``data`` section names it and holds the keys every data set shares
(:class:`graphmatch.config.DataConfig`: ``root``, ``regions``, the split names, ``vocab``,
``vocab_min_count``, ``max_val_images``, ``check_finite``, ``graph``) beside its own::

    data:
      name: synthetic          # a registered data set
      root: data/synthetic     # shared keys
      n_train: 3000            # ... and the data set's own keys
      graph: {visual_edges: polar, text_graph: dependency}

:func:`graphmatch.data.build_dataset` builds it from the section. The interface is small:

* :meth:`Dataset.prepare` — make the splits ready (generate them, for ``synthetic``) and check
  them before training;
* :meth:`Dataset.load_split` — a split as loaded data (:class:`~graphmatch.data.precomp.PrecompSplit`)
  or, given a vocabulary, as :class:`~graphmatch.data.dataset.MatchingData` whose graphs follow the
  recipe in ``data.graph``;
* :meth:`Dataset.build_vocab` — the vocabulary: ``data.vocab`` if set, else built from the captions.

Built-ins: ``precomp`` (a folder in the precomp layout, no own options; with ``data.regions`` the
images come from that region file, keyed by ``{split}_ids.txt``) and ``synthetic`` (the same,
generated into ``root`` when it is absent or made with other options).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence, Union

from graphmatch.data.registry import DATASETS
from graphmatch.data.dataset import MatchingData, RegionSource
from graphmatch.data.precomp import PrecompSplit, load_captions, load_precomp
from graphmatch.data.vocab import Vocabulary
from graphmatch.options import option

__all__ = ["Dataset", "PrecompDataset", "SyntheticDataset", "SyntheticOptions"]


class Dataset:
    """Base of data sets (see the module docstring).

    Args:
        config: the shared keys of the ``data`` section (a ``DataConfig``).
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self._regions: Optional[RegionSource] = None

    @property
    def root(self) -> str:
        return self.config.root

    def prepare(self, *, splits: Optional[Sequence[str]] = None, progress: bool = False) -> None:
        """Make ``splits`` (default: the training and validation splits) ready and check them."""
        raise NotImplementedError

    def load_split(self, name: str, vocab: Optional[Vocabulary] = None,
                   regions: Optional[RegionSource] = None) -> Union[PrecompSplit, MatchingData]:
        """Split ``name``: loaded data, or with ``vocab`` its :class:`MatchingData`."""
        raise NotImplementedError

    def build_vocab(self, captions: Iterable[str]) -> Vocabulary:
        """``data.vocab`` when set, else a vocabulary of ``captions`` (``data.vocab_min_count``)."""
        if self.config.vocab:
            return Vocabulary.load(self.config.vocab)
        return Vocabulary.build(captions, min_count=self.config.vocab_min_count)


@DATASETS.register("precomp")
class PrecompDataset(Dataset):
    """A folder in the precomp layout (:mod:`graphmatch.data.precomp`). With ``data.regions`` the
    images come from that region file (HDF5 store, BUTD TSV, another precomp folder), looked up by
    the ids of ``{split}_ids.txt``, and ``root`` needs only captions and ids."""

    def prepare(self, *, splits: Optional[Sequence[str]] = None, progress: bool = False) -> None:
        """Check ``splits`` (default: the training and validation splits) as ``train`` does: the fast
        checks every time, the full scans (``data.check_finite``) once per file version.

        Raises:
            DataError: a check failed (the message names file and record).
        """
        from graphmatch.data.check import check_before_training

        c = self.config
        check_before_training(c.root, list(splits or [c.train_split, c.val_split]), regions=bool(c.regions),
                              full=c.check_finite)

    def region_source(self) -> Optional[RegionSource]:
        """The opened ``data.regions`` file (opened once), or None when the split's arrays are used."""
        if not self.config.regions:
            return None
        if self._regions is None:
            from graphmatch.data.regions import open_regions

            self._regions = open_regions(self.config.regions)
        return self._regions

    def load_split(self, name: str, vocab: Optional[Vocabulary] = None,
                   regions: Optional[RegionSource] = None) -> Union[PrecompSplit, MatchingData]:
        """Split ``name`` of ``root``: a :class:`PrecompSplit` (without ``vocab``; with ``data.regions``
        it holds captions and ids only), or with ``vocab`` its :class:`MatchingData`.

        ``regions``: an opened region source to use instead of ``data.regions``.
        """
        c = self.config
        if c.regions or regions is not None:
            split = load_captions(c.root, name)
        else:
            split = load_precomp(c.root, name, check_finite=c.check_finite)
        return split if vocab is None else self.matching_data(split, vocab, regions)

    def matching_data(self, split: PrecompSplit, vocab: Vocabulary,
                      regions: Optional[RegionSource] = None) -> MatchingData:
        """:class:`MatchingData` of a loaded split with the config's graph recipe (``data.graph``)."""
        if regions is None and split.features is None:
            regions = self.region_source()
        return MatchingData(split, vocab, regions, recipe=self.config.graph)


@dataclass
class SyntheticOptions:
    """Options of the ``synthetic`` data set: those of :func:`graphmatch.data.synthetic.generate_synthetic`."""

    n_train: int = option(3000, lo=1, help="training images")
    n_dev: int = option(300, lo=1, help="validation images")
    n_test: int = option(500, lo=1, help="test images")
    captions_per_image: int = option(5, lo=1)
    n_regions: int = option(12, lo=4, note="at least the most objects in a scene (4)")
    feature_dim: int = option(256, lo=1)
    seed: int = option(0, lo=0)


@DATASETS.register("synthetic", config=SyntheticOptions)
class SyntheticDataset(PrecompDataset):
    """SYNTHETIC scenes in the precomp layout (:mod:`graphmatch.data.synthetic`), generated into
    ``root`` by :meth:`prepare` unless ``root`` already holds them with these options."""

    def __init__(self, config: Any, *, n_train: int = 3000, n_dev: int = 300, n_test: int = 500,
                 captions_per_image: int = 5, n_regions: int = 12, feature_dim: int = 256, seed: int = 0) -> None:
        super().__init__(config)
        self.params = dict(n_train=n_train, n_dev=n_dev, n_test=n_test, captions_per_image=captions_per_image,
                           n_regions=n_regions, feature_dim=feature_dim, seed=seed)

    def prepare(self, *, splits: Optional[Sequence[str]] = None, progress: bool = False) -> None:
        """Generate the data into ``root`` if needed, then check it (:meth:`PrecompDataset.prepare`)."""
        from graphmatch.data.synthetic import ensure_synthetic

        ensure_synthetic(self.config.root, progress=progress, **self.params)
        super().prepare(splits=splits, progress=progress)
