"""The region-extractor protocol: options, the :class:`RegionExtractor` base class, weight loading,
class vocabularies, the shared detection post-processing and :func:`build_extractor`.

A backend subclasses :class:`RegionExtractor`, implements :meth:`RegionExtractor._extract_loaded`
and :attr:`RegionExtractor.feature_dim`, and registers itself in
:data:`graphmatch.registry.EXTRACTORS`::

    @EXTRACTORS.register("torchvision")
    class TorchvisionExtractor(RegionExtractor): ...

    extractor = build_extractor("torchvision", weights="frcnn.safetensors", num_regions=36)
    regions = extractor.extract(["a.jpg", "b.png"])     # list[Regions]
    extractor.config()                                  # JSON-serialisable provenance

Conventions shared by every backend:

* ``Regions.boxes`` are ``(x1, y1, x2, y2)`` in pixels of the image as :func:`detectors.images.load_image`
  returns it (EXIF orientation applied, original resolution).
* ``Regions.labels`` are class ids with 0 = background and ``i + 1`` = line ``i`` of the class-names
  file (the bottom-up-attention convention); ``Regions.scores`` the softmax probability of that class.
* ``Regions.features`` are pooled **again on the final boxes** after post-processing, not copied from
  the proposals the boxes were regressed from.
"""
from __future__ import annotations

import abc
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import torch

from graphmatch.structures import Regions
from graphmatch.utils.io import file_sha256 as _file_sha256

__all__ = [
    "ExtractorOptions",
    "RegionExtractor",
    "WeightsError",
    "build_extractor",
    "select_detections",
    "FinalBoxes",
    "final_boxes",
    "load_state_dict_file",
    "save_state_dict_file",
    "load_class_names",
    "default_class_names_path",
    "default_attribute_names_path",
    "file_sha256",
]

_VOCAB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocab")


def default_class_names_path() -> str:
    """The shipped Visual Genome 1600-class vocabulary (bottom-up attention); see ``vocab/PROVENANCE.txt``."""
    return os.path.join(_VOCAB_DIR, "objects_vocab.txt")


def default_attribute_names_path() -> str:
    """The shipped Visual Genome 400-attribute vocabulary (bottom-up attention)."""
    return os.path.join(_VOCAB_DIR, "attributes_vocab.txt")


class WeightsError(RuntimeError):
    """Weights are missing, unreadable, or do not fit the model."""


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


# ----------------------------------------------------------------------------------- utilities

def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    return _file_sha256(path, block_size=chunk)


def load_class_names(path: Optional[str] = None) -> List[str]:
    """Read a class vocabulary: one class per line, the first comma-separated alias is its name.

    Line ``i`` (0-based) is class id ``i + 1``; id 0 is background. Trailing blank lines are ignored;
    a blank line in the middle is an error (it would shift every later id).

    Args:
        path: the vocabulary file; default :func:`default_class_names_path`.
    """
    path = path or default_class_names_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"class-names file not found: {path}")
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = []
    for i, line in enumerate(lines):
        name = line.split(",")[0].strip()
        if not name:
            raise ValueError(f"{path}: line {i + 1} is blank; every line must name a class")
        names.append(name)
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a weights file without executing code from it.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(path, map_location="cpu", weights_only=True)``. A checkpoint that wraps the state dict
    under ``"model"`` or ``"state_dict"`` is unwrapped. Pickles of other objects (e.g. detectron2's
    ``.pkl`` model-zoo files) are refused.

    Raises:
        WeightsError: naming the file, when it is missing, empty, unreadable or not a state dict.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.isdir(path):
        raise WeightsError(f"weights path is a directory, not a file: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"weights file is empty (0 bytes): {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt zip / pickle / header errors come in many types
        hint = ""
        if path.endswith(".pkl"):
            hint = (" (.pkl files are pickles that may run code when loaded; convert them once, in an "
                    "environment you trust, to a .pth state dict or .safetensors)")
        raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {e}{hint}") from e
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"weights file {path} does not hold a state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"weights file {path}: entries are not tensors: {bad[:5]}")
    return obj


def save_state_dict_file(state_dict: Dict[str, torch.Tensor], path: str) -> None:
    """Write a state dict: safetensors for ``*.safetensors``, else ``torch.save`` of tensors only."""
    path = os.fspath(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.clone() for k, v in sd.items()}, path)
    else:
        torch.save(sd, path)


def load_weights_into(model: torch.nn.Module, path: str, *, what: str = "model") -> None:
    """Load a weights file into ``model`` strictly, with errors that name the file and the mismatch."""
    sd = load_state_dict_file(path)
    own = model.state_dict()
    shape_bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items()
                 if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if shape_bad or missing or unexpected:
        parts = []
        if shape_bad:
            parts.append("shape mismatches " + ", ".join(f"{k}: file {a} vs model {b}" for k, a, b in shape_bad[:4]))
            if any("cls_score" in k for k, _, _ in shape_bad):
                parts.append("the class count of the weights differs from len(class_names)+1; pass the "
                             "class_names file the weights were trained with")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        raise WeightsError(f"weights file {path} does not fit the {what}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


# ------------------------------------------------------------------------ detection selection

def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    *,
    nms_threshold: float,
    num_regions: Optional[int],
    min_regions: int = 10,
    max_regions: int = 100,
    conf_threshold: float = 0.2,
    score_floor: float = 0.0,
    classes_per_proposal: int = 10,
    min_box_size: float = 1e-2,
) -> Dict[str, Any]:
    """Choose the final regions from class-specific detections of ``P`` proposals.

    Each proposal yields at most one region (as in bottom-up attention): its best-scoring class whose
    box survives per-class NMS. Ranking: proposals with a surviving class first, by that score
    (confident detections); then proposals all of whose classes were suppressed, by their best class
    score (the padding reserve — "lowering the threshold"; padding boxes may overlap kept ones).
    Fixed mode returns the first ``num_regions`` of this ranking; adaptive mode the detections scoring
    ``>= conf_threshold``, clamped to ``[min_regions, max_regions]`` along the same ranking. Candidates
    scoring below ``score_floor`` and boxes narrower/shorter than ``min_box_size`` are never returned.

    Deviations: bottom-up attention runs NMS over all classes of every proposal and returns the
    proposal box; here only each proposal's ``classes_per_proposal`` best classes enter NMS (so it stays
    fast with 1600 classes; a proposal whose top classes are all suppressed falls into the padding
    reserve) and the class-regressed box is returned, as torchvision and detectron2 do.

    Args:
        boxes: float ``[P, C, 4]`` class-specific boxes (background excluded), clipped to the image.
        scores: float ``[P, C]`` class probabilities (background excluded).
        nms_threshold, num_regions, min_regions, max_regions, conf_threshold, score_floor: see
            :class:`ExtractorOptions`.
        classes_per_proposal: classes per proposal that enter NMS.
        min_box_size: boxes with a side shorter than this (pixels) are dropped.

    Returns:
        dict with ``proposal`` (long ``[K]`` proposal index), ``label`` (long ``[K]`` column index into
        ``C``), ``box`` (``[K, 4]``), ``score`` (``[K]``), ``num_confident`` (detections surviving NMS
        with score ``>= conf_threshold``) and ``num_padded`` (regions taken from the padding reserve).
        ``K`` may be 0.
    """
    from torchvision.ops import batched_nms

    if boxes.dim() != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]:
        raise ValueError(f"expected boxes [P, C, 4] and scores [P, C], got {tuple(boxes.shape)}, {tuple(scores.shape)}")
    P, C = scores.shape
    dev = scores.device
    empty = {
        "proposal": torch.zeros(0, dtype=torch.long, device=dev),
        "label": torch.zeros(0, dtype=torch.long, device=dev),
        "box": boxes.new_zeros((0, 4)),
        "score": scores.new_zeros((0,)),
        "num_confident": 0,
        "num_padded": 0,
    }
    if P == 0 or C == 0:
        return empty
    k = min(int(classes_per_proposal), C)
    top_s, top_c = scores.topk(k, dim=1)  # [P, k], sorted descending
    prop = torch.arange(P, device=dev)[:, None].expand(P, k)
    cand_box = boxes[prop, top_c]  # [P, k, 4]
    wh = cand_box[..., 2:] - cand_box[..., :2]
    valid = (wh >= min_box_size).all(-1) & (top_s >= score_floor)  # [P, k]

    flat_valid = valid.reshape(-1)
    idx = flat_valid.nonzero().squeeze(1)
    survived = torch.zeros(P * k, dtype=torch.bool, device=dev)
    if idx.numel():
        keep = batched_nms(cand_box.reshape(-1, 4)[idx], top_s.reshape(-1)[idx], top_c.reshape(-1)[idx],
                           float(nms_threshold))
        survived[idx[keep]] = True
    survived = survived.view(P, k)

    # best surviving class per proposal: the first surviving column (columns are sorted by score)
    has_surv = survived.any(1)
    first_surv = torch.where(survived, torch.arange(k, device=dev)[None].expand(P, k), k).min(1).values
    # padding reserve: proposals with no survivor but a valid candidate; take their first valid column
    has_valid = valid.any(1)
    first_valid = torch.where(valid, torch.arange(k, device=dev)[None].expand(P, k), k).min(1).values
    col = torch.where(has_surv, first_surv, first_valid)
    usable = has_surv | has_valid
    col = col.clamp(max=k - 1)
    sel_score = top_s[torch.arange(P, device=dev), col]
    sel_label = top_c[torch.arange(P, device=dev), col]
    sel_box = cand_box[torch.arange(P, device=dev), col]

    tier1 = has_surv.nonzero().squeeze(1)
    tier1 = tier1[sel_score[tier1].argsort(descending=True, stable=True)]
    tier2 = (usable & ~has_surv).nonzero().squeeze(1)
    tier2 = tier2[sel_score[tier2].argsort(descending=True, stable=True)]
    order = torch.cat([tier1, tier2])
    n_conf = int((sel_score[tier1] >= conf_threshold).sum())
    if num_regions is not None:
        n = min(int(num_regions), order.numel())
    else:
        n = min(max(n_conf, int(min_regions)), int(max_regions), order.numel())
    chosen = order[:n]
    return {
        "proposal": chosen,
        "label": sel_label[chosen],
        "box": sel_box[chosen],
        "score": sel_score[chosen],
        "num_confident": n_conf,
        "num_padded": max(0, n - tier1.numel()),
    }


@dataclass
class FinalBoxes:
    """The final regions of one image, as :func:`final_boxes` returns them.

    Attributes:
        boxes: ``[K, 4]`` in the coordinates of the resized image the model saw (for pooling).
        labels / scores: ``[K]``; for the fallback, the background label and score 0.
        fallback: no region was left, so ``boxes`` is the single whole-image box.
        image_boxes: float32 ``[K, 4]`` on the CPU in pixels of the loaded image: ``boxes``
            scaled back and clamped to the image; exactly ``(0, 0, width, height)`` for the
            fallback.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    fallback: bool
    image_boxes: torch.Tensor


def final_boxes(boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, *,
                resized_size: Tuple[int, int], image_size: Tuple[int, int],
                background_label: int = 0) -> FinalBoxes:
    """Whole-image fallback and mapping back to the loaded image, shared by every backend.

    Args:
        boxes / labels / scores: the selected regions (``[K, 4]`` in resized-image coordinates,
            ``[K]``, ``[K]``); ``K`` may be 0.
        resized_size: ``(height, width)`` of the resized image.
        image_size: ``(width, height)`` of the loaded image.
        background_label: the label given to the fallback region (in the backend's own
            numbering, e.g. detectron2's background index).

    When ``K == 0`` the result is one region covering the whole image, with label
    ``background_label`` and score 0. The scale factors are ``image / resized`` per axis in
    float32.
    """
    rh, rw = int(resized_size[0]), int(resized_size[1])
    iw, ih = int(image_size[0]), int(image_size[1])
    fallback = boxes.shape[0] == 0
    if fallback:
        dev = boxes.device
        boxes = torch.tensor([[0.0, 0.0, float(rw), float(rh)]], device=dev)
        labels = torch.full((1,), int(background_label), dtype=torch.long, device=dev)
        scores = torch.zeros(1, device=dev)
        image_boxes = torch.tensor([[0.0, 0.0, float(iw), float(ih)]])
    else:
        scale = (torch.tensor([iw, ih], dtype=torch.float32, device=boxes.device)
                 / torch.tensor([rw, rh], dtype=torch.float32, device=boxes.device)).repeat(2)
        image_boxes = (boxes.float() * scale).cpu()
        image_boxes[:, 0::2] = image_boxes[:, 0::2].clamp(0, iw)
        image_boxes[:, 1::2] = image_boxes[:, 1::2].clamp(0, ih)
    return FinalBoxes(boxes=boxes, labels=labels, scores=scores, fallback=fallback,
                      image_boxes=image_boxes)


# ------------------------------------------------------------------------------ the protocol

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
    import detectors  # noqa: F401  (registers the built-in backends)
    from graphmatch.registry import EXTRACTORS

    fields = set(ExtractorOptions.field_names())
    opt_kw = {k: v for k, v in kwargs.items() if k in fields}
    backend_kw = {k: v for k, v in kwargs.items() if k not in fields}
    base = options.to_dict() if options is not None else {}
    base.update(opt_kw)
    return EXTRACTORS.build(name, options=ExtractorOptions(**base), **backend_kw)

