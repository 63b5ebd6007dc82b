"""Late-interaction matching, as a plug-in matcher that lives outside the package.

Each word finds its best-matching region, and the caption's score is the mean (or the sum) of those
best cosine similarities — the "MaxSim" interaction of ColBERT (Khattab and Zaharia, SIGIR 2020,
https://arxiv.org/abs/2004.12832) applied to words and regions, with an optional soft maximum::

    s(I, T) = agg_{w in T}  max_{r in I} cos(w, r)                       (temperature = 0)
    s(I, T) = agg_{w in T}  t * log sum_{r in I} exp(cos(w, r) / t)       (temperature = t > 0)

Use it with ``graphmatch train config.yaml`` (the config's ``imports:`` names this file) or
``graphmatch train ANY.yaml --import experiments/projects/late_interaction/late_interaction.py
--set model.matcher.name=late_interaction``. Nothing in the package changes: the file registers
the matcher and its config keys (``temperature``, ``agg``) when it is imported.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from graphmatch.models import MATCHERS, Matcher
from graphmatch.options import option
from graphmatch.structures import NodeEmb


@dataclass
class LateInteractionConfig:
    """Config keys of ``late_interaction`` (``model.matcher``)."""

    temperature: float = option(0.0, lo=0, note="0: hard maximum over regions")
    agg: str = option("mean", choices=("mean", "sum"))


@MATCHERS.register("late_interaction", config=LateInteractionConfig)
class LateInteraction(Matcher):
    """Word-to-best-region matching (see module docstring).

    Args:
        image_encoder, text_encoder: the encoders (passed by the model builder).
        temperature: 0 for the hard maximum over regions, else the temperature of a soft maximum.
        agg: ``"mean"`` or ``"sum"`` over the caption's words.

    Shapes:
        ``score(img, cap)``: ``img.x`` [n_img, R, D], ``cap.x`` [n_cap, L, D] -> [n_img, n_cap].
    """

    def __init__(self, *, image_encoder: nn.Module, text_encoder: nn.Module, temperature: float = 0.0,
                 agg: str = "mean") -> None:
        super().__init__()
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if agg not in ("mean", "sum"):
            raise ValueError(f"agg must be 'mean' or 'sum', got {agg!r}")
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.temperature, self.agg = float(temperature), agg

    def score(self, img: NodeEmb, cap: NodeEmb) -> torch.Tensor:
        r = nn.functional.normalize(img.x, dim=-1)
        w = nn.functional.normalize(cap.x, dim=-1)
        cos = torch.einsum("ird,cwd->icwr", r, w)                        # [n_img, n_cap, L, R]
        cos = cos.masked_fill(~img.mask[:, None, None, :], float("-inf"))
        if self.temperature > 0:
            best = self.temperature * torch.logsumexp(cos / self.temperature, dim=-1)
        else:
            best = cos.amax(dim=-1)                                       # [n_img, n_cap, L]
        words = cap.mask[None, :, :].to(best.dtype)
        total = (best.masked_fill(words == 0, 0.0) * words).sum(-1)
        return total / words.sum(-1).clamp(min=1) if self.agg == "mean" else total

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, agg={self.agg!r}"
