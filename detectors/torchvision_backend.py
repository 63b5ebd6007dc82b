"""Faster R-CNN region extractor built from torchvision components (the default backend).

Two architectures (``arch``):

* ``"resnet50_fpn"`` — torchvision's ``fasterrcnn_resnet50_fpn`` layout (ResNet-50 + FPN,
  ``MultiScaleRoIAlign`` 7×7, ``TwoMLPHead``). Region features: the box head's **1024-d**
  representation (``fc7`` output). The state-dict keys are torchvision's, so torchvision's COCO
  checkpoint file loads directly (with a 90-class ``class_names`` file).
* ``"resnet50_c4"`` (and ``"resnet101_c4"``) — a C4 model in the style of bottom-up attention:
  ResNet up to ``layer3`` (C4, stride 16) as backbone, one RPN level with anchors 64–512 px × ratios
  {0.5, 1, 2}, RoIAlign 14×14 on C4, ``layer4`` (stride 2 → 7×7) + mean pooling as box head. Region
  features: **2048-d** mean-pooled ``layer4`` output. Deviations from bottom-up attention: RoIAlign
  instead of Caffe RoIPool, torchvision ResNet blocks (stride in the 3×3 conv, not the 1×1), no
  attribute head; bottom-up attention's released model is ResNet-101 (``"resnet101_c4"`` has that
  depth but Caffe weights need converting to this layout).

Inference differs from ``FasterRCNN.forward``: the box head runs on the proposals, per-proposal class
selection and per-class NMS are done by :func:`detectors.postprocess.select_detections` (fixed count with
padding, or adaptive), and then **RoI pooling + box head run again on the final boxes**, whose output
are the region features. Boxes are mapped back to the pixels of the loaded image (the resize undone).

Batching: images are resized one by one and only images whose resized tensors have the same shape are
stacked into one forward pass, so an image's output does not depend on its batch neighbours' sizes.
Images more than 4× larger per side than needed are first downscaled to twice the target size with
PIL (bounded memory).
The model runs in eval mode with frozen batch norm; on CPU the output is deterministic for fixed weights.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from graphmatch.structures import Regions

from detectors.extractor import EXTRACTORS, ExtractorOptions, RegionExtractor
from detectors.postprocess import final_boxes, select_detections
from detectors.weights import load_weights_into, save_state_dict_file

__all__ = ["TorchvisionExtractor", "build_faster_rcnn", "ARCHS"]

#: architecture -> region feature dimension
ARCHS: Dict[str, int] = {"resnet50_fpn": 1024, "resnet50_c4": 2048, "resnet101_c4": 2048}

_HOW_TO_GET = (
    "For arch='resnet50_fpn' the file of torchvision's COCO Faster R-CNN "
    "(fasterrcnn_resnet50_fpn_coco-258fb6c6.pth, fetched separately and placed locally) loads as is, with "
    "class_names=<a file of its 90 COCO category names, one per line>. Visual Genome weights (e.g. "
    "bottom-up-attention's) must first be converted to this model's state-dict layout, with the shipped "
    "1600-class vocabulary."
)


class _C4Backbone(nn.Module):
    """ResNet stem + layer1..layer3: the C4 feature map (stride 16)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(OrderedDict(
            (name, getattr(resnet, name))
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3")
        ))
        self.out_channels = 1024

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict([("0", self.body(x))])


class _Res5Head(nn.Module):
    """Box head of the C4 model: ``layer4`` on 14×14 RoI features, then mean pooling.

    Shapes:
        input ``[K, 1024, 14, 14]`` → output ``[K, 2048]``.
    """

    def __init__(self, layer4: nn.Module) -> None:
        super().__init__()
        self.layer4 = layer4
        self.out_channels = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(x).mean(dim=(2, 3))


def build_faster_rcnn(arch: str, num_classes: int, *, min_size: int = 600, max_size: int = 1000,
                      num_proposals: int = 300, nms_threshold: float = 0.3) -> nn.Module:
    """A randomly initialised torchvision ``FasterRCNN`` of the given architecture (nothing downloaded).

    Args:
        arch: one of :data:`ARCHS`.
        num_classes: classes including background.
        min_size / max_size: resize of the model's transform.
        num_proposals: RPN post-NMS proposals per image at inference.
        nms_threshold: per-class NMS of ``roi_heads`` (used only by ``model(images)``; the extractor
            does its own selection).
    """
    from torchvision.models import resnet50, resnet101
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.misc import FrozenBatchNorm2d

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    common = dict(
        num_classes=num_classes, min_size=min_size, max_size=max_size,
        rpn_pre_nms_top_n_test=max(6000 if arch.endswith("c4") else 1000, num_proposals),
        rpn_post_nms_top_n_test=num_proposals,
        box_nms_thresh=nms_threshold, box_detections_per_img=100,
    )
    if arch == "resnet50_fpn":
        # exactly the module tree of torchvision's fasterrcnn_resnet50_fpn (same state-dict keys)
        backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                                       norm_layer=FrozenBatchNorm2d, trainable_layers=3)
        return FasterRCNN(backbone, **common)

    resnet = (resnet50 if arch.startswith("resnet50") else resnet101)(weights=None, norm_layer=FrozenBatchNorm2d)
    anchor_gen = AnchorGenerator(sizes=((64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
    roi_pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=14, sampling_ratio=0)
    return FasterRCNN(
        _C4Backbone(resnet),
        rpn_anchor_generator=anchor_gen,
        box_roi_pool=roi_pool,
        box_head=_Res5Head(resnet.layer4),
        box_predictor=FastRCNNPredictor(2048, num_classes),
        **{**common, "num_classes": None},
    )


@EXTRACTORS.register("torchvision")
class TorchvisionExtractor(RegionExtractor):
    """Faster R-CNN region extractor on torchvision.

    Args:
        options: :class:`detectors.extractor.ExtractorOptions`.
        arch: ``"resnet50_fpn"`` (1024-d features, default), ``"resnet50_c4"`` or ``"resnet101_c4"``
            (2048-d).
        classes_per_proposal: classes per proposal entering NMS (see
            :func:`detectors.postprocess.select_detections`).

    Shapes:
        ``extract`` returns per image ``boxes [K, 4]``, ``features [K, D]``, ``labels [K]``,
        ``scores [K]``; ``K = num_regions`` in fixed mode (see :class:`ExtractorOptions` for the
        exceptions), ``min_regions <= K <= max_regions`` in adaptive mode.
    """

    backend = "torchvision"

    def __init__(self, options: Optional[ExtractorOptions] = None, *, arch: str = "resnet50_fpn",
                 classes_per_proposal: int = 10) -> None:
        super().__init__(options)
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r} for the torchvision backend; choose one of {sorted(ARCHS)}")
        self.arch = arch
        self.classes_per_proposal = int(classes_per_proposal)
        opts = self.options
        weights = self._require_weights(_HOW_TO_GET)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts.seed)
            model = build_faster_rcnn(arch, self.num_classes, min_size=opts.min_size, max_size=opts.max_size,
                                      num_proposals=opts.num_proposals, nms_threshold=opts.nms_threshold)
        if weights is not None:
            load_weights_into(model, weights, what=f"torchvision {arch} model with {self.num_classes} classes")
        self.device = torch.device(opts.device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def feature_dim(self) -> int:
        return ARCHS[self.arch]

    def _backend_config(self) -> Dict[str, Any]:
        return {"arch": self.arch, "classes_per_proposal": self.classes_per_proposal}

    def save_weights(self, path: str) -> None:
        """Write the model's state dict (``.safetensors`` or ``.pth``) for ``weights=path`` later."""
        save_state_dict_file(self.model.state_dict(), path)

    # ------------------------------------------------------------------------------ internals
    def _prepare(self, arr: Any) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` → float ``[3, H, W]`` in [0, 1].

        An image more than 4 times larger (per side) than the model's transform would resize it to is
        first downscaled with PIL to twice that size, so that huge photos never become huge float
        tensors. (torchvision's transform alone would interpolate the full-resolution float image.)"""
        h, w = arr.shape[:2]
        o = self.options
        scale = min(o.min_size / min(h, w), o.max_size / max(h, w))
        if scale < 0.25:
            import numpy as np
            from PIL import Image

            nw, nh = max(1, round(w * 2 * scale)), max(1, round(h * 2 * scale))
            arr = np.array(Image.fromarray(arr).resize((nw, nh), Image.BILINEAR))
        t = torch.from_numpy(arr).to(self.device).permute(2, 0, 1).float().div_(255.0)
        return t

    def _forward_backbone(self, tensors: List[torch.Tensor]) -> Tuple[List[Any], List[Dict[str, torch.Tensor]]]:
        """Resize each image, stack those of equal resized shape, run the backbone.

        Returns, per input image, its single-image ``ImageList`` and its feature maps (``[1, C, h, w]``).
        """
        from torchvision.models.detection.image_list import ImageList

        singles = [self.model.transform([t])[0] for t in tensors]
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i, il in enumerate(singles):
            groups.setdefault(tuple(il.tensors.shape), []).append(i)
        feats: List[Optional[Dict[str, torch.Tensor]]] = [None] * len(tensors)
        for idxs in groups.values():
            batch = torch.cat([singles[i].tensors for i in idxs])
            out = self.model.backbone(batch)
            if isinstance(out, torch.Tensor):
                out = OrderedDict([("0", out)])
            for j, i in enumerate(idxs):
                feats[i] = OrderedDict((k, v[j:j + 1]) for k, v in out.items())
        image_lists = [ImageList(il.tensors, il.image_sizes) for il in singles]
        return image_lists, feats  # type: ignore[return-value]

    def _pool(self, feats: Dict[str, torch.Tensor], boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """RoI pooling + box head for boxes in the resized image's coordinates. ``[K, 4]`` → ``[K, D]``."""
        rh = self.model.roi_heads
        x = rh.box_roi_pool(feats, [boxes], [image_size])
        return rh.box_head(x)

    @torch.inference_mode()
    def features_for_boxes(self, images: Sequence[Any], boxes: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Pool region features for given boxes (e.g. ground-truth boxes).

        Args:
            images: paths, PIL images or arrays (see :func:`detectors.images.load_image`).
            boxes: per image float ``[K, 4]`` in pixels of the loaded image.

        Returns:
            per image float ``[K, D]`` features (on CPU).
        """
        from detectors.images import load_image
        from torchvision.models.detection.transform import resize_boxes

        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box sets")
        out: List[torch.Tensor] = []
        for im, bx in zip(images, boxes):
            li = load_image(im)
            (il,), (feats,) = self._forward_backbone([self._prepare(li.array)])
            rs = il.image_sizes[0]
            b = resize_boxes(torch.as_tensor(bx, dtype=torch.float32, device=self.device).reshape(-1, 4),
                             [li.height, li.width], list(rs))
            out.append(self._pool(feats, b, rs).float().cpu())
        return out

    @torch.inference_mode()
    def _extract_loaded(self, images: Sequence[Any]) -> List[Regions]:
        from torchvision.ops import boxes as box_ops

        o = self.options
        rh = self.model.roi_heads
        image_lists, feats = self._forward_backbone([self._prepare(li.array) for li in images])
        results: List[Regions] = []
        for li, il, f in zip(images, image_lists, feats):
            rs = il.image_sizes[0]  # (h, w) after resize
            proposals, _ = self.model.rpn(il, f)
            props = proposals[0]
            x = self._pool(f, props, rs)
            logits, deltas = rh.box_predictor(x)
            pred = rh.box_coder.decode(deltas, [props])  # [P, num_classes, 4]
            pred = box_ops.clip_boxes_to_image(pred, rs)
            probs = torch.softmax(logits, -1)
            sel = select_detections(
                pred[:, 1:], probs[:, 1:], nms_threshold=o.nms_threshold, num_regions=o.num_regions,
                min_regions=o.min_regions, max_regions=o.max_regions, conf_threshold=o.conf_threshold,
                score_floor=o.score_floor, classes_per_proposal=self.classes_per_proposal,
            )
            fb = final_boxes(sel["box"], sel["label"] + 1, sel["score"], resized_size=rs,
                             image_size=li.size, background_label=0)
            feats_final = self._pool(f, fb.boxes, rs)  # pooled again on the final boxes
            results.append(Regions(
                boxes=fb.image_boxes,
                features=feats_final.float().cpu(),
                image_size=li.size,
                labels=fb.labels.cpu(),
                scores=fb.scores.float().cpu(),
                flags={"fallback_whole_image": fb.fallback, "num_confident": int(sel["num_confident"]),
                       "num_padded": int(sel["num_padded"])},
            ))
        return results
