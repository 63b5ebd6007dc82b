"""The region-extractor protocol: :data:`EXTRACTORS`, :class:`ExtractorOptions`,
:class:`RegionExtractor` and :func:`build_extractor`.

A backend subclasses :class:`RegionExtractor`, implements :meth:`RegionExtractor._extract_loaded`
and :attr:`RegionExtractor.feature_dim`, and registers itself in :data:`EXTRACTORS`::

    @EXTRACTORS.register("torchvision")
    class TorchvisionExtractor(RegionExtractor): ...

    extractor = build_extractor("torchvision", weights="frcnn.safetensors", num_regions=36)
    regions = extractor.extract(["a.jpg", "b.png"])     # list[Regions]
    extractor.config()                                  # JSON-serialisable provenance

Conventions shared by every backend:

* ``Regions.boxes`` are ``(x1, y1, x2, y2)`` in pixels of the image as :func:`detectors.images.load_image`
  returns it (EXIF orientation applied, original resolution).
* ``Regions.labels`` are class ids with 0 = background and ``i + 1`` = line ``i`` of the class-names
  file (the bottom-up-attention convention, :mod:`detectors.class_names`); ``Regions.scores`` the
  softmax probability of that class.
* ``Regions.features`` are pooled **again on the final boxes** after post-processing
  (:mod:`detectors.postprocess`), not copied from the proposals the boxes were regressed from.
"""
from __future__ import annotations

import abc
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

from graphmatch.registry import Registry
from graphmatch.structures import Regions

from detectors.class_names import default_class_names_path, load_class_names
from detectors.weights import WeightsError, file_sha256

__all__ = ["EXTRACTORS", "ExtractorOptions", "RegionExtractor", "build_extractor",
           "load_builtin_backends"]

#: The region extractors by name: ``"torchvision"``, ``"detectron2"`` (registered when
#: :mod:`detectors` is imported) and any registered from outside.
EXTRACTORS = Registry("region extractor", "extractors")

#: the modules of the built-in backends; importing one registers its backend
BUILTIN_BACKENDS = ("detectors.torchvision_backend", "detectors.detectron2_backend")


def load_builtin_backends() -> None:
    """Register the built-in backends (``"torchvision"``, ``"detectron2"``) in :data:`EXTRACTORS`
    by importing their modules (which need only torch; torchvision, pillow and detectron2 are
    imported when a model is built). The ``graphmatch.plugins`` entry point of this package calls
    it, so ``graphmatch list`` shows the extractors."""
    import importlib

    for module in BUILTIN_BACKENDS:
        importlib.import_module(module)


@dataclass
class ExtractorOptions:
    """Options shared by all region extractors.

    Region count — two modes:

    * fixed (``num_regions=36``, the default): exactly ``num_regions`` regions per image. Confident
      detections come first (by score); when fewer survive, the list is padded with the next-best
      candidates, i.e. the score threshold is lowered (see :func:`select_detections`). Fewer regions
      come back only when the image yields fewer candidates than ``num_regions`` (e.g. fewer RPN
      proposals on a tiny image, or ``score_floor`` excludes them), and a single whole-image region
      (``flags["fallback_whole_image"] = True``) when none is left at all.
    * adaptive (``num_regions=None``): the detections scoring at least ``conf_threshold``, clamped to
      ``[min_regions, max_regions]`` (bottom-up attention's 10–100 boxes at threshold 0.2).

    Attributes:
        num_regions: fixed region count, or ``None`` for adaptive mode.
        min_regions / max_regions / conf_threshold: adaptive mode (see above).
        nms_threshold: IoU threshold of the per-class NMS on the class-specific boxes.
        score_floor: no region scoring below this is ever returned, padding included (default 0: off).
            A floor above 1 leaves nothing and yields the whole-image fallback.
        num_proposals: RPN proposals kept per image after NMS at inference (bottom-up attention: 300;
            torchvision's default: 1000).
        min_size / max_size: the shorter image side is resized to ``min_size`` unless the longer one
            would exceed ``max_size``.
        device: torch device string.
        batch_size: images per forward pass. Within a batch, only images with the same resized shape
            are stacked, so an image's regions do not depend on its batch neighbours.
        weights: path of a local weights file (``.safetensors``, or ``.pth``/``.pt`` read with
            ``torch.load(weights_only=True)``).
        random_weights: build a randomly initialised model (seeded by ``seed``) instead of loading
            weights — for tests and smoke runs only; the features are meaningless.
        seed: seed of the random initialisation.
        class_names: path of a class vocabulary (one class per line, comma-separated aliases; line ``i``
            is class ``i + 1``). Default: the shipped Visual Genome 1600 classes.
    """

    num_regions: Optional[int] = 36
    min_regions: int = 10
    max_regions: int = 100
    conf_threshold: float = 0.2
    nms_threshold: float = 0.3
    score_floor: float = 0.0
    num_proposals: int = 300
    min_size: int = 600
    max_size: int = 1000
    device: str = "cpu"
    batch_size: int = 4
    weights: Optional[str] = None
    random_weights: bool = False
    seed: int = 0
    class_names: Optional[str] = None

    def __post_init__(self) -> None:
        if self.num_regions is not None and int(self.num_regions) < 1:
            raise ValueError(f"num_regions must be >= 1 or None (adaptive), got {self.num_regions}")
        if not 1 <= self.min_regions <= self.max_regions:
            raise ValueError(f"need 1 <= min_regions <= max_regions, got {self.min_regions}, {self.max_regions}")
        if not 0.0 <= self.conf_threshold <= 1.0:
            raise ValueError(f"conf_threshold must lie in [0, 1], got {self.conf_threshold}")
        if not 0.0 < self.nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must lie in (0, 1], got {self.nms_threshold}")
        if self.num_proposals < 1:
            raise ValueError(f"num_proposals must be >= 1, got {self.num_proposals}")
        if not 1 <= self.min_size <= self.max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {self.min_size}, {self.max_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.weights is not None:
            self.weights = os.fspath(self.weights)
        if self.class_names is not None:
            self.class_names = os.fspath(self.class_names)

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


class RegionExtractor(abc.ABC):
    """Base class of region extractors: images in, one :class:`Regions` per image out.

    Subclasses implement :attr:`feature_dim` and :meth:`_extract_loaded` (a batch of decoded images
    to regions) and may add entries to :meth:`config` through :meth:`_backend_config`.

    Args:
        options: :class:`ExtractorOptions` (default options if omitted).
    """

    backend: ClassVar[str] = "base"

    def __init__(self, options: Optional[ExtractorOptions] = None) -> None:
        self.options = options if options is not None else ExtractorOptions()
        self.class_names_path = os.path.abspath(self.options.class_names or default_class_names_path())
        self.class_names: List[str] = load_class_names(self.class_names_path)
        self._weights_sha256: Optional[str] = None

    # -- to implement -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def feature_dim(self) -> int:
        """Dimension ``D`` of ``Regions.features``."""

    @abc.abstractmethod
    def _extract_loaded(self, images: Sequence[Any]) -> List[Regions]:
        """Regions of a batch of :class:`detectors.images.LoadedImage` (at most ``batch_size``)."""

    def _backend_config(self) -> Dict[str, Any]:
        return {}

    # -- public API -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Classes including background: ``len(class_names) + 1``."""
        return len(self.class_names) + 1

    def extract(self, images: Sequence[Any]) -> List[Regions]:
        """Detect regions and pool their features.

        Args:
            images: paths, PIL images or numpy arrays (see :func:`detectors.images.load_image`); a
                single one is accepted too.

        Returns:
            one :class:`Regions` per image, in input order. ``flags`` carries ``num_confident``,
            ``num_padded``, ``fallback_whole_image`` and, if the image was converted on loading,
            ``image`` (the loader's notes).

        Raises:
            detectors.images.ImageError: for the first image that cannot be read (callers that want to
                skip bad images call this per image and catch it).
        """
        from detectors.images import load_image

        if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
            images = [images]
        out: List[Regions] = []
        bs = self.options.batch_size
        for start in range(0, len(images), bs):
            loaded = [load_image(im) for im in images[start:start + bs]]
            regions = self._extract_loaded(loaded)
            for li, r in zip(loaded, regions):
                if li.flags:
                    r.flags["image"] = dict(li.flags)
            out.extend(regions)
        return out

    __call__ = extract

    def config(self) -> Dict[str, Any]:
        """JSON-serialisable provenance: backend, options, weights (path + SHA-256), class names
        (path + SHA-256 + count) and library versions.

        Region stores compare configs (resume, merge) by the files' SHA-256, not by their paths:
        see :data:`detectors.store.RUN_ONLY_CONFIG_PATHS`."""
        import torch as _torch

        versions = {"torch": _torch.__version__}
        try:
            import torchvision

            versions["torchvision"] = torchvision.__version__
        except ImportError:  # pragma: no cover
            pass
        try:
            import graphmatch

            versions["graphmatch"] = getattr(graphmatch, "__version__", None)
        except ImportError:  # pragma: no cover
            pass
        w = self.options.weights
        if w is not None and self._weights_sha256 is None and os.path.isfile(w):
            self._weights_sha256 = file_sha256(w)
        cfg: Dict[str, Any] = {
            "backend": self.backend,
            "feature_dim": int(self.feature_dim),
            "num_classes": self.num_classes,
            "options": self.options.to_dict(),
            "weights": {
                "path": os.path.abspath(w) if w else None,
                "sha256": self._weights_sha256,
                "random": bool(self.options.random_weights and w is None),
                "seed": self.options.seed if (self.options.random_weights and w is None) else None,
            },
            "class_names": {
                "path": self.class_names_path,
                "sha256": file_sha256(self.class_names_path),
                "count": len(self.class_names),
            },
            "versions": versions,
        }
        cfg.update(self._backend_config())
        return cfg

    # -- helpers for backends --------------------------------------------------------------------
    def _require_weights(self, how_to_get: str) -> Optional[str]:
        """The weights path to load, ``None`` for random weights, or a :class:`WeightsError`."""
        w = self.options.weights
        if w is not None:
            if not os.path.isfile(w):
                raise WeightsError(f"{self.backend} backend: weights file not found: {w}")
            self._weights_sha256 = file_sha256(w)
            return w
        if self.options.random_weights:
            return None
        raise WeightsError(
            f"{self.backend} backend: no weights given. Pass weights=<path to a local file> "
            f"(.safetensors, or .pth/.pt read with torch.load(weights_only=True)). {how_to_get} "
            "For tests and smoke runs pass random_weights=True instead (randomly initialised model: "
            "the boxes and features are meaningless)."
        )


def build_extractor(name: Any = "torchvision", options: Optional[ExtractorOptions] = None,
                    **kwargs: Any) -> RegionExtractor:
    """Build a registered region extractor.

    Args:
        name: a registered name (``"torchvision"``, ``"detectron2"``), or a class.
        options: an :class:`ExtractorOptions`; keyword arguments that are option fields override it.
        **kwargs: option fields (``num_regions=36``, ``weights=...``, ...) and backend arguments
            (``arch="resnet50_c4"`` for torchvision; ``config_file=...`` for detectron2).

    Example::

        ext = build_extractor("torchvision", arch="resnet50_c4", weights="c4.safetensors")
    """
    load_builtin_backends()
    fields = set(ExtractorOptions.field_names())
    opt_kw = {k: v for k, v in kwargs.items() if k in fields}
    backend_kw = {k: v for k, v in kwargs.items() if k not in fields}
    base = options.to_dict() if options is not None else {}
    base.update(opt_kw)
    return EXTRACTORS.build(name, options=ExtractorOptions(**base), **backend_kw)

