"""Region extractors: images → :class:`graphmatch.structures.Regions`.

Public API::

    from detectors import build_extractor, ExtractorOptions, load_image, ImageError

    ext = build_extractor("torchvision", weights="frcnn.safetensors")           # 1024-d, FPN
    ext = build_extractor("torchvision", arch="resnet50_c4", weights="c4.pth")  # 2048-d, C4
    regions = ext.extract(["a.jpg"])      # list[Regions]; ext.config() -> JSON-able provenance

Backends register themselves in :data:`graphmatch.registry.EXTRACTORS` when this package is imported:
``"torchvision"`` (:mod:`detectors.torchvision_backend`) and ``"detectron2"``
(:mod:`detectors.detectron2_backend`). Heavy and optional dependencies are imported lazily: importing
this package needs only torch; torchvision and pillow are imported when a model is built or an image
is loaded, detectron2 only when the detectron2 backend is built.
"""
from __future__ import annotations

from detectors.base import (
    ExtractorOptions,
    RegionExtractor,
    WeightsError,
    build_extractor,
    default_attribute_names_path,
    default_class_names_path,
    load_class_names,
    select_detections,
)
from detectors.images import MAX_IMAGE_PIXELS, ImageError, LoadedImage, load_image
from detectors.torchvision_backend import TorchvisionExtractor  # registers "torchvision"
from detectors.detectron2_backend import Detectron2Extractor  # registers "detectron2"

__all__ = [
    "ExtractorOptions",
    "RegionExtractor",
    "WeightsError",
    "build_extractor",
    "select_detections",
    "load_class_names",
    "default_class_names_path",
    "default_attribute_names_path",
    "load_image",
    "LoadedImage",
    "ImageError",
    "MAX_IMAGE_PIXELS",
    "TorchvisionExtractor",
    "Detectron2Extractor",
]
