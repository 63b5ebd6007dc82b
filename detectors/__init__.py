"""Region extractors: images → :class:`graphmatch.structures.Regions`, and the region-store writer.

Public API::

    from detectors import build_extractor, ExtractorOptions, load_image, ImageError

    ext = build_extractor("torchvision", weights="frcnn.safetensors")           # 1024-d, FPN
    ext = build_extractor("torchvision", arch="resnet50_c4", weights="c4.pth")  # 2048-d, C4
    regions = ext.extract(["a.jpg"])      # list[Regions]; ext.config() -> JSON-able provenance

Modules: :mod:`detectors.extractor` (:data:`EXTRACTORS`, :class:`ExtractorOptions`,
:class:`RegionExtractor`, :func:`build_extractor`), :mod:`detectors.postprocess` (box selection and
the whole-image fallback), :mod:`detectors.weights` (weights files), :mod:`detectors.class_names`
(vocabularies), :mod:`detectors.images` (decoding), the backends :mod:`detectors.torchvision_backend`
and :mod:`detectors.detectron2_backend`, :mod:`detectors.store` (the region-store writer),
:mod:`detectors.extract` (the folder → store job) and :mod:`detectors.cli` (``graphmatch extract``).
The readers of region files (the store, bottom-up-attention TSV, precomp) are in the core:
:mod:`graphmatch.data.regions`.

The names above are loaded on first use: ``import detectors`` (and ``import detectors.cli``, which
the ``graphmatch`` command loads to offer ``extract``) imports nothing heavy; the first name taken
from this package imports its module and registers the built-in backends in :data:`EXTRACTORS`
(``"torchvision"``, ``"detectron2"``), so ``from detectors import EXTRACTORS`` gives a filled
registry. Importing the backends needs only torch; torchvision and pillow are imported when a model
is built or an image is loaded, detectron2 only when the detectron2 backend is built.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, List

#: public name -> the module that defines it
_EXPORTS: Dict[str, str] = {
    "EXTRACTORS": "detectors.extractor",
    "ExtractorOptions": "detectors.extractor",
    "RegionExtractor": "detectors.extractor",
    "build_extractor": "detectors.extractor",
    "load_builtin_backends": "detectors.extractor",
    "select_detections": "detectors.postprocess",
    "final_boxes": "detectors.postprocess",
    "WeightsError": "detectors.weights",
    "load_state_dict_file": "detectors.weights",
    "save_state_dict_file": "detectors.weights",
    "load_class_names": "detectors.class_names",
    "default_class_names_path": "detectors.class_names",
    "default_attribute_names_path": "detectors.class_names",
    "load_image": "detectors.images",
    "LoadedImage": "detectors.images",
    "ImageError": "detectors.images",
    "MAX_IMAGE_PIXELS": "detectors.images",
    "TorchvisionExtractor": "detectors.torchvision_backend",
    "Detectron2Extractor": "detectors.detectron2_backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    importlib.import_module("detectors.extractor").load_builtin_backends()
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_EXPORTS))
