"""Region extractor on detectron2 (optional backend; detectron2 is imported lazily).

Importing this module needs only torch: it registers the ``"detectron2"`` name in
:data:`detectors.extractor.EXTRACTORS`; detectron2 itself is imported when an extractor is built, and a
missing installation raises an :class:`ImportError` that says how to install it.

Pipeline (as in the bottom-up-attention detectron2 ports): resize (shortest edge ``min_size``, longest at
most ``max_size``), ``model.backbone``, ``model.proposal_generator``, RoI pooling + box head +
``box_predictor`` on the proposals, per-proposal class selection and per-class NMS with
:func:`detectors.postprocess.select_detections`, then **RoI pooling + box head again on the final boxes** to
get the region features (``Res5ROIHeads``: ``_shared_roi_transform`` mean-pooled, 2048-d for ResNet
C4; ``StandardROIHeads``: ``box_pooler`` + ``box_head``, e.g. 1024-d). Class ids follow detectron2
(background is the last logit) and are returned as ``label + 1`` so that, as everywhere in
:mod:`detectors`, id ``i + 1`` is line ``i`` of the class-names file.

Attributes: :func:`register_attribute_roi_heads` registers ``AttributeRes5ROIHeads`` in detectron2's
``ROI_HEADS_REGISTRY``: a ``Res5ROIHeads`` with the bottom-up-attention attribute branch (class
embedding of the predicted class concatenated with the pooled feature → FC 512 → ReLU → attribute
logits with index 0 = "no attribute"). Select it with ``MODEL.ROI_HEADS.NAME: AttributeRes5ROIHeads``
and ``MODEL.ATTRIBUTE_HEAD.NUM_ATTRIBUTES`` (default 400). Deviation from the ports: the class
embedding is indexed by detectron2's class index (background last), and its parameter names are this
module's (``attr_cls_embed``, ``attr_fc``, ``attr_score``), so a ported checkpoint needs its keys renamed.

Weights are read without executing code (``.safetensors`` or ``torch.load(weights_only=True)``) and
loaded through detectron2's ``DetectionCheckpointer`` key matching, strictly (missing, unexpected or
mis-shaped keys raise a :class:`detectors.weights.WeightsError` naming them); ``.pkl`` model-zoo pickles are
refused (convert them once to ``.pth``/``.safetensors`` in an environment you trust).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch

from graphmatch.structures import Regions
from graphmatch.utils.state_dict import StateDictFit

from detectors.extractor import EXTRACTORS, ExtractorOptions, RegionExtractor
from detectors.postprocess import final_boxes, select_detections
from detectors.weights import WeightsError, load_state_dict_file

__all__ = ["Detectron2Extractor", "import_detectron2", "register_attribute_roi_heads", "add_attribute_config",
           "INSTALL_HINT"]

INSTALL_HINT = (
    "Install detectron2 from source: pip install 'git+https://github.com/facebookresearch/detectron2.git' "
    "(it compiles C++/CUDA extensions against the installed torch; see "
    "https://detectron2.readthedocs.io/en/latest/tutorials/install.html). "
    "The 'torchvision' backend needs no extra installation."
)


def import_detectron2() -> Any:
    """Import and return the ``detectron2`` module, or raise an ImportError saying how to install it."""
    try:
        import detectron2  # noqa: F401
        import detectron2.config  # noqa: F401
        import detectron2.modeling  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the 'detectron2' region extractor needs detectron2, which could not be imported "
                          f"({e}). {INSTALL_HINT}") from e
    return detectron2


def add_attribute_config(cfg: Any) -> None:
    """Add ``MODEL.ATTRIBUTE_HEAD`` (``NUM_ATTRIBUTES``, ``EMBED_DIM``, ``HIDDEN_DIM``) to a detectron2 config."""
    from detectron2.config import CfgNode as CN

    if "ATTRIBUTE_HEAD" not in cfg.MODEL:
        cfg.MODEL.ATTRIBUTE_HEAD = CN()
        cfg.MODEL.ATTRIBUTE_HEAD.NUM_ATTRIBUTES = 400
        cfg.MODEL.ATTRIBUTE_HEAD.EMBED_DIM = 256
        cfg.MODEL.ATTRIBUTE_HEAD.HIDDEN_DIM = 512


def register_attribute_roi_heads() -> Any:
    """Register (once) and return ``AttributeRes5ROIHeads`` in detectron2's ``ROI_HEADS_REGISTRY``.

    Needs detectron2; called by :class:`Detectron2Extractor` before the model is built.
    """
    import_detectron2()
    from detectron2.config import configurable
    from detectron2.modeling import ROI_HEADS_REGISTRY
    from detectron2.modeling.roi_heads import Res5ROIHeads
    from torch import nn

    name = "AttributeRes5ROIHeads"
    if name in ROI_HEADS_REGISTRY:
        return ROI_HEADS_REGISTRY.get(name)

    class AttributeRes5ROIHeads(Res5ROIHeads):
        """``Res5ROIHeads`` plus the bottom-up-attention attribute branch.

        Shapes:
            :meth:`predict_attributes`: pooled features ``[K, 2048]`` and class indices ``[K]`` →
            attribute logits ``[K, num_attributes + 1]`` (index 0 = no attribute).
        """

        @configurable
        def __init__(self, *, num_attributes: int, attr_embed_dim: int = 256, attr_hidden_dim: int = 512,
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            feat_dim = self.box_predictor.cls_score.in_features
            num_classes = self.box_predictor.num_classes
            self.num_attributes = num_attributes
            self.attr_cls_embed = nn.Embedding(num_classes + 1, attr_embed_dim)
            self.attr_fc = nn.Linear(feat_dim + attr_embed_dim, attr_hidden_dim)
            self.attr_score = nn.Linear(attr_hidden_dim, num_attributes + 1)

        @classmethod
        def from_config(cls, cfg: Any, input_shape: Any) -> Dict[str, Any]:
            ret = super().from_config(cfg, input_shape)
            ret.update(num_attributes=cfg.MODEL.ATTRIBUTE_HEAD.NUM_ATTRIBUTES,
                       attr_embed_dim=cfg.MODEL.ATTRIBUTE_HEAD.EMBED_DIM,
                       attr_hidden_dim=cfg.MODEL.ATTRIBUTE_HEAD.HIDDEN_DIM)
            return ret

        def predict_attributes(self, pooled: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
            x = torch.cat([pooled, self.attr_cls_embed(class_idx)], dim=1)
            return self.attr_score(torch.relu(self.attr_fc(x)))

    ROI_HEADS_REGISTRY.register(AttributeRes5ROIHeads)
    return AttributeRes5ROIHeads


@EXTRACTORS.register("detectron2")
class Detectron2Extractor(RegionExtractor):
    """Region extractor on a detectron2 Faster R-CNN.

    Args:
        options: :class:`detectors.extractor.ExtractorOptions` (``min_size``/``max_size``/``num_proposals``/
            ``device`` override the config's test-time values).
        config_file: a detectron2 YAML config (e.g. ``COCO-Detection/faster_rcnn_R_50_C4_1x.yaml`` from
            a detectron2 checkout, or a bottom-up-attention port's VG config).
        config_overrides: ``["KEY", value, ...]`` passed to ``cfg.merge_from_list``.
        matching_heuristics: let detectron2 match checkpoint keys heuristically (for converted Caffe2
            / Caffe checkpoints).
        classes_per_proposal: see :func:`detectors.postprocess.select_detections`.

    Shapes:
        per image ``boxes [K, 4]``, ``features [K, D]``, ``labels [K]``, ``scores [K]`` and, with an
        attribute head, ``attr_labels [K]`` / ``attr_scores [K]`` (best attribute other than "none";
        ids ``i + 1`` = line ``i`` of the attribute vocabulary).

    Images are processed one at a time (``batch_size`` only bounds how many are decoded at once).
    """

    backend = "detectron2"

    def __init__(self, options: Optional[ExtractorOptions] = None, *, config_file: Optional[str] = None,
                 config_overrides: Optional[Sequence[Any]] = None, matching_heuristics: bool = False,
                 classes_per_proposal: int = 10) -> None:
        import_detectron2()
        super().__init__(options)
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model

        register_attribute_roi_heads()
        o = self.options
        self.config_file = config_file
        self.classes_per_proposal = int(classes_per_proposal)
        cfg = get_cfg()
        add_attribute_config(cfg)
        if config_file is not None:
            cfg.merge_from_file(config_file)
        if config_overrides:
            cfg.merge_from_list(list(config_overrides))
        cfg.MODEL.DEVICE = o.device
        cfg.MODEL.RPN.POST_NMS_TOPK_TEST = o.num_proposals
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(self.class_names)
        cfg.MODEL.WEIGHTS = ""
        cfg.freeze()
        self.cfg = cfg
        weights = self._require_weights(
            "Use detectron2 weights saved as a .pth state dict or .safetensors (model-zoo .pkl pickles must be "
            "converted first) matching config_file and class_names."
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.seed)
            model = build_model(cfg)
        if weights is not None:
            self._load(model, weights, matching_heuristics)
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        rh = self.model.roi_heads
        self._is_res5 = hasattr(rh, "_shared_roi_transform")
        self._feature_dim = int(rh.box_predictor.cls_score.in_features)

    @staticmethod
    def _load(model: torch.nn.Module, path: str, matching_heuristics: bool) -> None:
        from detectron2.checkpoint import DetectionCheckpointer

        sd = load_state_dict_file(path)
        ckpt = DetectionCheckpointer(model)
        incompatible = ckpt._load_model({"model": sd, "matching_heuristics": matching_heuristics})
        ignore = ("pixel_mean", "pixel_std")
        fit = StateDictFit(
            missing=[k for k in getattr(incompatible, "missing_keys", []) if k not in ignore],
            unexpected=[k for k in getattr(incompatible, "unexpected_keys", []) if k not in ignore],
            mismatched=[(k, tuple(a), tuple(b)) for k, a, b in getattr(incompatible, "incorrect_shapes", [])],
        )
        if not fit.ok:  # strict, as the torchvision backend
            raise WeightsError(fit.message(
                source=f"weights file {path}", what="detectron2 model",
                hint="check config_file and that class_names has the weights' class count"))

    @property
    def feature_dim(self) -> int:
        return self._feature_dim

    def _backend_config(self) -> Dict[str, Any]:
        import detectron2

        return {"config_file": self.config_file, "detectron2_config": self.cfg.dump(),
                "classes_per_proposal": self.classes_per_proposal,
                "detectron2_version": getattr(detectron2, "__version__", None)}

    def _pool(self, feats: List[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """RoI pooling + box head on ``[K, 4]`` boxes (resized-image coordinates) → ``[K, D]``."""
        from detectron2.structures import Boxes

        rh = self.model.roi_heads
        if self._is_res5:
            return rh._shared_roi_transform(feats, [Boxes(boxes)]).mean(dim=(2, 3))
        x = rh.box_head(rh.box_pooler(feats, [Boxes(boxes)]))
        return x.flatten(1)

    @torch.inference_mode()
    def _extract_loaded(self, images: Sequence[Any]) -> List[Regions]:
        from detectron2.data import transforms as T

        o = self.options
        model = self.model
        rh = model.roi_heads
        aug = T.ResizeShortestEdge([o.min_size, o.min_size], o.max_size)
        bgr = self.cfg.INPUT.FORMAT == "BGR"
        in_features = getattr(rh, "in_features", None) or getattr(rh, "box_in_features")
        results: List[Regions] = []
        for li in images:
            arr = aug.get_transform(li.array).apply_image(li.array)
            h, w = arr.shape[:2]
            if bgr:
                arr = arr[:, :, ::-1]
            t = torch.as_tensor(arr.copy()).permute(2, 0, 1)
            il = model.preprocess_image([{"image": t, "height": h, "width": w}])
            fmap = model.backbone(il.tensor)
            proposals, _ = model.proposal_generator(il, fmap, None)
            props = proposals[0].proposal_boxes.tensor
            feats = [fmap[f] for f in in_features]
            logits, deltas = rh.box_predictor(self._pool(feats, props))
            probs = torch.softmax(logits, -1)[:, :-1]  # background is detectron2's last class
            C = probs.shape[1]
            pred = rh.box_predictor.box2box_transform.apply_deltas(deltas, props).view(props.shape[0], -1, 4)
            if pred.shape[1] == 1:  # class-agnostic regression
                pred = pred.expand(-1, C, 4)
            pred = pred[:, :C].clone()
            pred[..., 0::2] = pred[..., 0::2].clamp(0, w)
            pred[..., 1::2] = pred[..., 1::2].clamp(0, h)
            sel = select_detections(
                pred, probs, nms_threshold=o.nms_threshold, num_regions=o.num_regions,
                min_regions=o.min_regions, max_regions=o.max_regions, conf_threshold=o.conf_threshold,
                score_floor=o.score_floor, classes_per_proposal=self.classes_per_proposal,
            )
            # fallback label: C, detectron2's background index (also the attribute head's input)
            fb = final_boxes(sel["box"], sel["label"], sel["score"], resized_size=(h, w),
                             image_size=li.size, background_label=C)
            cls_idx = fb.labels
            pooled = self._pool(feats, fb.boxes)  # pooled again on the final boxes
            attr_labels = attr_scores = None
            if hasattr(rh, "predict_attributes"):
                attr_prob = torch.softmax(rh.predict_attributes(pooled, cls_idx), -1)[:, 1:]
                attr_scores, attr_labels = attr_prob.max(-1)
                attr_labels = (attr_labels + 1).cpu()
                attr_scores = attr_scores.float().cpu()
            labels = torch.where(cls_idx >= C, torch.zeros_like(cls_idx), cls_idx + 1)
            results.append(Regions(
                boxes=fb.image_boxes, features=pooled.float().cpu(), image_size=li.size,
                labels=labels.cpu(), scores=fb.scores.float().cpu(),
                attr_labels=attr_labels, attr_scores=attr_scores,
                flags={"fallback_whole_image": fb.fallback, "num_confident": int(sel["num_confident"]),
                       "num_padded": int(sel["num_padded"])},
            ))
        return results
