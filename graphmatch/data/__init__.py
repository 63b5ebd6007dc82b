"""Data: data sets (:data:`DATASETS`), precomp splits, region sources, parse sidecars, vocabulary,
pair batches and the batch sampler.

* :mod:`graphmatch.data.datasets` — the registered data sets (``precomp``, ``synthetic``) and
  :func:`build_dataset` from a config's ``data`` section;
* :mod:`graphmatch.data.precomp` — the precomp layout's reader / writer, :class:`PrecompRegions`;
* :mod:`graphmatch.data.dataset` — :class:`MatchingData` (graphs by the recipe) and :class:`PairBatch`;
* :mod:`graphmatch.data.parses` — the parse sidecar reader; :mod:`graphmatch.data.relations` —
  per-image relation triples;
* :mod:`graphmatch.data.sampler` — :class:`CaptionBatchSampler` (seeded, rank-aware, resumable);
* :mod:`graphmatch.data.vocab`, :mod:`graphmatch.data.synthetic`, :mod:`graphmatch.data.check`.
"""
from __future__ import annotations

from typing import Any

from graphmatch.data.registry import DATASETS


def build_dataset(section: Any) -> Any:
    """The data set of a config's ``data`` section (a component section: ``.name``, ``.common``
    (the shared ``DataConfig`` keys) and ``.kwargs()`` (the data set's own options)).

    Example::

        ds = build_dataset(cfg.data)
        ds.prepare(progress=True)
        train = ds.load_split(cfg.data.train_split)
        vocab = ds.build_vocab(train.captions)
        train_data = ds.matching_data(train, vocab)
    """
    name = section.name
    cls = DATASETS.get(name) if isinstance(name, str) else name
    return cls(section.common, **section.kwargs())


from graphmatch.data.datasets import Dataset, PrecompDataset, SyntheticDataset  # noqa: E402  (registers them)

__all__ = ["DATASETS", "build_dataset", "Dataset", "PrecompDataset", "SyntheticDataset"]
