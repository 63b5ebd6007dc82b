"""Region extractors: images → :class:`graphmatch.structures.Regions`.

This package will hold the ``RegionExtractor`` protocol, the torchvision Faster R-CNN backend, the
optional detectron2 backend and readers of precomputed features. Heavy and optional dependencies
(torchvision, detectron2) are imported lazily inside the backends.
"""
