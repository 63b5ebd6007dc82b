"""Pure tensor maths of the matchers: functions of tensors and numbers, no modules, no config.

One concept per module:

* :mod:`~graphmatch.nn.functional.norms` — :func:`l2norm`, :func:`clipped_l2norm`,
  :func:`cosine_similarity`;
* :mod:`~graphmatch.nn.functional.attention` — :func:`masked_cross_attention` (attended vectors
  and weights of a masked query set over a masked context set) and SCAN's :func:`func_attention`;
* :mod:`~graphmatch.nn.functional.scan` — the batched SCAN scorers :func:`scan_t2i` /
  :func:`scan_i2t` (all pairs without a loop; oneDNN matrix product on CPU, see
  :data:`ONEDNN_MATMUL`);
* :mod:`~graphmatch.nn.functional.aggregation` — :data:`AGGREGATIONS` and masked mean / max / sum /
  LogSumExp pooling (:func:`aggregate`);
* :mod:`~graphmatch.nn.functional.kernels` — Gaussian kernels over polar pseudo-coordinates
  (:func:`polar_gaussian_weights`, MoNet / GSMN).

The per-caption reference loops the tests and benchmarks compare the batched scorers with are in
:mod:`graphmatch.testing`.

``ONEDNN_MATMUL`` is the flag of :mod:`~graphmatch.nn.functional.scan`; reading or setting it here
(``graphmatch.nn.functional.ONEDNN_MATMUL = False``) reads or sets that one flag.
"""

from __future__ import annotations

import sys
import types
from graphmatch.nn.functional import scan as _scan
from graphmatch.nn.functional.aggregation import (
    AGGREGATIONS,
    aggregate,
    check_aggregation,
    masked_logsumexp,
    masked_max,
    masked_mean,
    masked_sum,
)
from graphmatch.nn.functional.attention import RAW_FEATURE_NORMS, func_attention, masked_cross_attention
from graphmatch.nn.functional.kernels import angular_distance, polar_gaussian_weights
from graphmatch.nn.functional.norms import clipped_l2norm, cosine_similarity, l2norm
from graphmatch.nn.functional.scan import scan_i2t, scan_t2i

__all__ = [
    "AGGREGATIONS",
    "ONEDNN_MATMUL",
    "RAW_FEATURE_NORMS",
    "aggregate",
    "angular_distance",
    "check_aggregation",
    "clipped_l2norm",
    "cosine_similarity",
    "func_attention",
    "l2norm",
    "masked_cross_attention",
    "masked_logsumexp",
    "masked_max",
    "masked_mean",
    "masked_sum",
    "polar_gaussian_weights",
    "scan_i2t",
    "scan_t2i",
]

class _FunctionalModule(types.ModuleType):
    """This package's module type: ``ONEDNN_MATMUL`` is a property that reads and sets the one flag
    in :mod:`~graphmatch.nn.functional.scan`."""

    @property
    def ONEDNN_MATMUL(self) -> bool:  # noqa: N802 (the flag's public name)
        return _scan.ONEDNN_MATMUL

    @ONEDNN_MATMUL.setter
    def ONEDNN_MATMUL(self, value: bool) -> None:  # noqa: N802
        _scan.ONEDNN_MATMUL = bool(value)


sys.modules[__name__].__class__ = _FunctionalModule
