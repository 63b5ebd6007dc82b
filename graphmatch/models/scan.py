"""SCAN: Stacked Cross Attention for image–text matching.

Lee, Chen, Hua, Hu, He. "Stacked Cross Attention for Image-Text Matching", ECCV 2018,
https://arxiv.org/abs/1803.08024. Region features → linear + l2-norm; words → embedding + Bi-GRU
(+ l2-norm); the similarity of an image and a caption is the stacked cross-attention score
(:func:`graphmatch.nn.functional.scan_t2i` / :func:`~graphmatch.nn.functional.scan_i2t`).

Deviations from the released code: ``direction="both"`` averages the t-i and i-t scores of one model
(the paper's "t-i + i-t" row averages two separately trained models: train one of each and average
their similarity matrices for that number); captions have no ``<start>``/``<end>`` tokens and
punctuation is dropped by the tokeniser.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from graphmatch.models.base import Matcher
from graphmatch.models.registry import MATCHERS
from graphmatch.nn.functional import AGGREGATIONS, scan_i2t, scan_t2i
from graphmatch.options import option
from graphmatch.structures import NodeEmb

DIRECTIONS = ("t2i", "i2t", "both")


@dataclass
class SCANConfig:
    """SCAN's config keys (``model.matcher``)."""

    direction: str = option("t2i", choices=DIRECTIONS,
                            help="t2i | i2t | both (the t-i and i-t scores averaged within one model)")
    agg: str = option("lse", choices=AGGREGATIONS)
    t2i_lambda_softmax: float = option(9.0, lo=0, note="0: uniform attention")
    t2i_lambda_lse: float = option(6.0, lo=0, lo_open=True)
    i2t_lambda_softmax: float = option(4.0, lo=0, note="0: uniform attention")
    i2t_lambda_lse: float = option(5.0, lo=0, lo_open=True)


@MATCHERS.register("scan", config=SCANConfig)
class SCAN(Matcher):
    """SCAN matcher.

    Args:
        image_encoder: module mapping a ``VisualGraph`` batch to :class:`NodeEmb`.
        text_encoder: module mapping a ``TextGraph`` batch to :class:`NodeEmb`.
        direction: ``"t2i"`` (words attend to regions), ``"i2t"`` or ``"both"`` (average).
        agg: aggregation of the per-word / per-region relevances (``lse``, ``mean``, ``max``, ``sum``).
        t2i_lambda_softmax, t2i_lambda_lse, i2t_lambda_softmax, i2t_lambda_lse: SCAN's
            inverse temperatures (paper defaults 9 / 6 and 4 / 5).
    """

    def __init__(
        self,
        *,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        direction: str = "t2i",
        agg: str = "lse",
        t2i_lambda_softmax: float = 9.0,
        t2i_lambda_lse: float = 6.0,
        i2t_lambda_softmax: float = 4.0,
        i2t_lambda_lse: float = 5.0,
    ) -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"SCAN direction must be one of {DIRECTIONS}, got {direction!r}")
        if agg not in AGGREGATIONS:
            raise ValueError(f"SCAN agg must be one of {AGGREGATIONS}, got {agg!r}")
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.direction, self.agg = direction, agg
        self.t2i_lambda_softmax, self.t2i_lambda_lse = t2i_lambda_softmax, t2i_lambda_lse
        self.i2t_lambda_softmax, self.i2t_lambda_lse = i2t_lambda_softmax, i2t_lambda_lse

    def score(self, img: NodeEmb, cap: NodeEmb) -> torch.Tensor:
        sims = []
        if self.direction in ("t2i", "both"):
            sims.append(
                scan_t2i(img.x, img.mask, cap.x, cap.mask, lambda_softmax=self.t2i_lambda_softmax,
                         agg=self.agg, lambda_lse=self.t2i_lambda_lse)
            )
        if self.direction in ("i2t", "both"):
            sims.append(
                scan_i2t(img.x, img.mask, cap.x, cap.mask, lambda_softmax=self.i2t_lambda_softmax,
                         agg=self.agg, lambda_lse=self.i2t_lambda_lse)
            )
        return sims[0] if len(sims) == 1 else (sims[0] + sims[1]) / 2

    def extra_repr(self) -> str:
        return f"direction={self.direction!r}, agg={self.agg!r}"
