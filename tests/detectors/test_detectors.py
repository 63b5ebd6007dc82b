"""Region extractors (torchvision backend) with random weights on real photos from skimage.data.

Models are small-resolution (min_size 128-160) and few proposals so the file runs in well under a
minute on two CPU cores; nothing is downloaded.
"""
import copy
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
skdata = pytest.importorskip("skimage.data")

from detectors import (  # noqa: E402
    ExtractorOptions,
    RegionExtractor,
    WeightsError,
    build_extractor,
    load_class_names,
    select_detections,
)
from detectors import EXTRACTORS  # noqa: E402
from graphmatch.structures import Regions  # noqa: E402

FPN_KW = dict(random_weights=True, min_size=128, max_size=200, num_proposals=64)
C4_KW = dict(random_weights=True, arch="resnet50_c4", min_size=128, max_size=192, num_proposals=24, num_regions=8)


@pytest.fixture(scope="module")
def photos():
    return {"astronaut": skdata.astronaut(), "coffee": skdata.coffee(), "chelsea": skdata.chelsea()}


@pytest.fixture(scope="module")
def fpn():
    return build_extractor("torchvision", **FPN_KW)


@pytest.fixture(scope="module")
def c4():
    return build_extractor("torchvision", **C4_KW)


@pytest.fixture(scope="module")
def fpn_out(fpn, photos):
    return fpn.extract([photos["astronaut"], photos["coffee"]])


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
    p = tmp_path_factory.mktemp("vocab") / "five.txt"
    p.write_text("cat\ndog,puppy\ntree\ncar\nsky\n")
    return str(p)


def _variant(ext, **options):
    """The same model with other selection options (they are read at extract time)."""
    other = copy.copy(ext)
    other.options = dataclasses.replace(ext.options, **options)
    return other


def _check_regions(r: Regions, image: np.ndarray, dim: int) -> None:
    h, w = image.shape[:2]
    assert isinstance(r, Regions)
    assert r.image_size == (w, h)
    assert r.features.shape == (len(r), dim) and r.features.dtype == torch.float32
    assert torch.isfinite(r.features).all() and torch.isfinite(r.boxes).all()
    b = r.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= w + 1e-3).all() and (b[:, 3] <= h + 1e-3).all()
    assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
    assert r.labels.dtype == torch.long and r.scores.shape == (len(r),)
    assert ((r.scores >= 0) & (r.scores <= 1)).all()


def _direct_repool(ext, image: np.ndarray, boxes: torch.Tensor) -> torch.Tensor:
    """Pool features for ``boxes`` (original pixels) with torchvision's modules, written out here."""
    m = ext.model
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        il, _ = m.transform([x])
        feats = m.backbone(il.tensors)
        if isinstance(feats, torch.Tensor):
            feats = {"0": feats}
        rh, rw = il.image_sizes[0]
        h, w = image.shape[:2]
        scaled = boxes * torch.tensor([rw / w, rh / h, rw / w, rh / h])
        return m.roi_heads.box_head(m.roi_heads.box_roi_pool(feats, [scaled], il.image_sizes))


def test_registered_and_options():
    assert {"torchvision", "detectron2"} <= set(EXTRACTORS.names())
    # the catalogue (`graphmatch list`) finds the same registry through the package's entry point
    from graphmatch.catalog import registry

    assert registry("extractors") is EXTRACTORS
    with pytest.raises(KeyError, match="unknown region extractor"):
        build_extractor("torchvison", **FPN_KW)
    with pytest.raises(ValueError, match="unknown arch"):
        build_extractor("torchvision", arch="vgg16", **FPN_KW)
    with pytest.raises(ValueError, match="min_regions"):
        ExtractorOptions(min_regions=20, max_regions=10)
    with pytest.raises(ValueError, match="num_regions"):
        ExtractorOptions(num_regions=0)
    assert len(load_class_names()) == 1600 and load_class_names()[0] == "yolk"


def test_fpn_fixed_count(fpn, fpn_out, photos):
    assert isinstance(fpn, RegionExtractor) and fpn.feature_dim == 1024 and fpn.num_classes == 1601
    for r, name in zip(fpn_out, ["astronaut", "coffee"]):
        _check_regions(r, photos[name], 1024)
        assert len(r) == 36
        assert r.flags["fallback_whole_image"] is False
        assert ((r.labels >= 1) & (r.labels <= 1600)).all()
        n_ranked = 36 - r.flags["num_padded"]
        s = r.scores[:n_ranked]
        assert (s[:-1] >= s[1:]).all()  # confident detections come by score
    # boxes are in original pixels (the model ran at 200 px), not in the resized image
    assert fpn_out[1].boxes[:, 2].max() > 300


def test_c4_features_are_2048_and_pooled_again(c4, photos):
    img = photos["chelsea"]
    (r,) = c4.extract([img])
    assert c4.feature_dim == 2048
    _check_regions(r, img, 2048)
    assert len(r) == 8
    direct = _direct_repool(c4, img, r.boxes)
    torch.testing.assert_close(r.features, direct, atol=2e-4, rtol=1e-4)
    (again,) = c4.features_for_boxes([img], [r.boxes])
    torch.testing.assert_close(again, r.features, atol=2e-4, rtol=1e-4)


def test_fpn_features_are_pooled_again_on_final_boxes(fpn, fpn_out, photos):
    img = photos["coffee"]
    r = fpn_out[1]
    direct = _direct_repool(fpn, img, r.boxes)
    torch.testing.assert_close(r.features, direct, atol=2e-4, rtol=1e-4)
    (again,) = fpn.features_for_boxes([img], [r.boxes])
    torch.testing.assert_close(again, r.features, atol=2e-4, rtol=1e-4)


def test_deterministic(fpn, fpn_out, photos):
    again = fpn.extract([photos["astronaut"], photos["coffee"]])
    for a, b in zip(fpn_out, again):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.features, b.features)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.scores, b.scores)
    # the same seed builds the same random model
    other = build_extractor("torchvision", **FPN_KW)
    (c,) = other.extract([photos["astronaut"]])
    assert torch.equal(c.features, fpn_out[0].features) and torch.equal(c.boxes, fpn_out[0].boxes)


def test_batch_neighbours_do_not_change_output(fpn, fpn_out, photos):
    out = _variant(fpn, batch_size=2).extract([photos["chelsea"], photos["coffee"]])
    # equal up to float rounding (BLAS kernels may block differently from call to call)
    torch.testing.assert_close(out[1].features, fpn_out[1].features, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(out[1].boxes, fpn_out[1].boxes, atol=1e-2, rtol=1e-4)


def test_adaptive_mode_clamps_to_min_and_max(fpn, photos):
    img = photos["astronaut"]
    lo = _variant(fpn, num_regions=None, min_regions=5, max_regions=12, conf_threshold=0.999).extract([img])[0]
    assert len(lo) == 5 and lo.flags["num_confident"] < 5
    hi = _variant(fpn, num_regions=None, min_regions=5, max_regions=12, conf_threshold=0.0).extract([img])[0]
    assert len(hi) == 12 and hi.flags["num_confident"] >= 12
    _check_regions(hi, img, 1024)


def test_zero_detections_fall_back_to_whole_image(fpn, photos):
    img = photos["chelsea"]
    ext = _variant(fpn, score_floor=1.5)  # no score can reach the floor
    (r,) = ext.extract([img])
    h, w = img.shape[:2]
    assert len(r) == 1 and r.flags["fallback_whole_image"] is True
    assert r.boxes.tolist() == [[0.0, 0.0, float(w), float(h)]]
    assert r.labels.tolist() == [0] and r.features.shape == (1, 1024) and torch.isfinite(r.features).all()
    torch.testing.assert_close(r.features, _direct_repool(ext, img, r.boxes), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_round_trip(tmp_path, photos, small_vocab, suffix):
    ext = build_extractor("torchvision", class_names=small_vocab, seed=3, **FPN_KW)
    assert ext.num_classes == 6
    path = tmp_path / f"frcnn{suffix}"
    ext.save_weights(str(path))
    kw = {**FPN_KW, "random_weights": False}
    loaded = build_extractor("torchvision", class_names=small_vocab, weights=str(path), **kw)
    (a,) = ext.extract([photos["coffee"]])
    (b,) = loaded.extract([photos["coffee"]])
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.features, b.features)
    assert ((b.labels >= 1) & (b.labels <= 5)).all()
    cfg = json.loads(json.dumps(loaded.config()))
    assert cfg["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cfg["weights"]["path"] == str(path) and cfg["weights"]["random"] is False
    if suffix == ".pth":  # a checkpoint with 6 classes does not fit the 1600-class vocabulary
        with pytest.raises(WeightsError, match=r"frcnn\.pth.*cls_score.*class_names"):
            build_extractor("torchvision", weights=str(path), **kw)


def test_missing_and_corrupt_weights(tmp_path):
    kw = {**FPN_KW, "random_weights": False}
    with pytest.raises(WeightsError, match=r"no weights given.*weights=.*random_weights=True"):
        build_extractor("torchvision", **kw)
    with pytest.raises(WeightsError, match=r"weights file not found: .*absent\.pth"):
        build_extractor("torchvision", weights=str(tmp_path / "absent.pth"), **kw)
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match=r"cannot read weights file .*garbage\.pth"):
        build_extractor("torchvision", weights=str(bad), **kw)
    bad_st = tmp_path / "garbage.safetensors"
    bad_st.write_bytes(b"\x00" * 3)
    with pytest.raises(WeightsError, match=r"garbage\.safetensors"):
        build_extractor("torchvision", weights=str(bad_st), **kw)


def test_config_is_json_and_complete(fpn):
    cfg = json.loads(json.dumps(fpn.config()))
    assert cfg["backend"] == "torchvision" and cfg["arch"] == "resnet50_fpn" and cfg["feature_dim"] == 1024
    assert cfg["options"]["num_regions"] == 36 and cfg["options"]["min_size"] == 128
    assert cfg["weights"] == {"path": None, "sha256": None, "random": True, "seed": 0}
    assert cfg["class_names"]["count"] == 1600 and len(cfg["class_names"]["sha256"]) == 64
    assert cfg["class_names"]["path"].endswith("objects_vocab.txt")
    assert set(cfg["versions"]) >= {"torch", "torchvision"}


def test_odd_inputs_exif_tiny_and_wide(fpn, tmp_path, photos):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rotated.jpg"
    Image.fromarray(photos["coffee"]).save(p, exif=exif)  # stored 600x400, shown 400x600
    tiny = np.zeros((8, 8, 3), np.uint8)
    tiny[2:6, 2:6] = 200
    wide = np.tile(photos["coffee"][:200, :500], (1, 20, 1))  # 10000 x 200
    out = fpn.extract([str(p), tiny, wide])
    assert out[0].image_size == (400, 600) and out[0].flags["image"]["exif_orientation"] == 6
    _check_regions(out[0], np.zeros((600, 400, 3)), 1024)
    _check_regions(out[1], tiny, 1024)
    _check_regions(out[2], wide, 1024)
    assert len(out[0]) == 36 and 1 <= len(out[1]) <= 36 and 1 <= len(out[2]) <= 36


# ------------------------------------------------------------------- select_detections, by hand

def _hand_case():
    # 4 proposals x 2 classes; proposals 0 and 1 overlap heavily, 2 and 3 are elsewhere
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [40, 40, 50, 50]], dtype=torch.float)
    boxes = boxes[:, None].expand(4, 2, 4).clone()
    scores = torch.tensor([[0.9, 0.05], [0.8, 0.1], [0.3, 0.6], [0.01, 0.02]])
    return boxes, scores


def test_select_detections_nms_and_padding():
    boxes, scores = _hand_case()
    out = select_detections(boxes, scores, nms_threshold=0.5, num_regions=4, classes_per_proposal=1)
    # proposal 1's only candidate (class 0) is suppressed by proposal 0: it becomes padding, last
    assert out["proposal"].tolist() == [0, 2, 3, 1]
    assert out["label"].tolist() == [0, 1, 1, 0]
    assert out["num_padded"] == 1 and out["num_confident"] == 2
    # with two classes per proposal, proposal 1 survives through class 1
    out = select_detections(boxes, scores, nms_threshold=0.5, num_regions=3, classes_per_proposal=2)
    assert out["proposal"].tolist() == [0, 2, 1] and out["label"].tolist() == [0, 1, 1]
    assert out["num_padded"] == 0


def test_select_detections_adaptive_floor_and_empty():
    boxes, scores = _hand_case()
    kw = dict(nms_threshold=0.5, num_regions=None, classes_per_proposal=2)
    assert len(select_detections(boxes, scores, min_regions=1, max_regions=10, conf_threshold=0.5, **kw)["box"]) == 2
    assert len(select_detections(boxes, scores, min_regions=3, max_regions=10, conf_threshold=0.5, **kw)["box"]) == 3
    assert len(select_detections(boxes, scores, min_regions=1, max_regions=1, conf_threshold=0.0, **kw)["box"]) == 1
    out = select_detections(boxes, scores, min_regions=1, max_regions=10, conf_threshold=0.5, score_floor=0.5, **kw)
    assert out["score"].min() >= 0.5
    out = select_detections(boxes, scores, nms_threshold=0.5, num_regions=36, score_floor=2.0)
    assert out["box"].shape == (0, 4) and out["proposal"].numel() == 0
    empty = select_detections(torch.zeros(0, 2, 4), torch.zeros(0, 2), nms_threshold=0.5, num_regions=5)
    assert empty["box"].shape == (0, 4)


def test_final_boxes_fallback_and_back_scaling():
    from detectors.postprocess import final_boxes

    # resized 100 x 200 (h x w) from a loaded 400 x 300 (w x h) image: x * 2, y * 3
    b = torch.tensor([[10.0, 10.0, 50.0, 40.0], [150.0, 90.0, 210.0, 105.0]])
    fb = final_boxes(b, torch.tensor([3, 7]), torch.tensor([0.9, 0.4]), resized_size=(100, 200),
                     image_size=(400, 300))
    assert not fb.fallback and fb.boxes is b and fb.labels.tolist() == [3, 7]
    assert fb.image_boxes.dtype == torch.float32 and fb.image_boxes.device.type == "cpu"
    assert fb.image_boxes.tolist() == [[20.0, 30.0, 100.0, 120.0], [300.0, 270.0, 400.0, 300.0]]
    empty = final_boxes(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0),
                        resized_size=(100, 200), image_size=(401, 299), background_label=1600)
    assert empty.fallback and empty.boxes.tolist() == [[0.0, 0.0, 200.0, 100.0]]
    assert empty.labels.tolist() == [1600] and empty.scores.tolist() == [0.0]
    assert empty.image_boxes.tolist() == [[0.0, 0.0, 401.0, 299.0]]
