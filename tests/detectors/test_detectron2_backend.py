"""The optional detectron2 backend.

Tests at the top run everywhere (the module imports without detectron2 and building the backend without
it explains how to install it). Tests below ``pytest.importorskip("detectron2")`` need detectron2 and
build a randomly initialised R50-C4 model from detectron2's default config (nothing downloaded).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch


def test_module_imports_and_registers_without_detectron2():
    # a fresh interpreter in which "import detectron2" fails, whether or not it is installed here
    code = (
        "import sys; sys.modules['detectron2'] = None\n"
        "import detectors.detectron2_backend as m\n"
        "from detectors.extractor import EXTRACTORS\n"
        "assert 'detectron2' in EXTRACTORS and EXTRACTORS.get('detectron2') is m.Detectron2Extractor\n"
        "import detectors\n"
        "assert sys.modules['detectron2'] is None\n"
        "print('ok')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_building_without_detectron2_says_how_to_install(monkeypatch):
    from detectors import build_extractor

    monkeypatch.setitem(sys.modules, "detectron2", None)
    with pytest.raises(ImportError) as ei:
        build_extractor("detectron2", random_weights=True)
    msg = str(ei.value)
    assert "pip install 'git+https://github.com/facebookresearch/detectron2.git'" in msg
    assert "torchvision" in msg  # points to the backend that needs no extra install


def test_weights_that_do_not_fit_are_named_with_the_shared_check(monkeypatch, tmp_path):
    """detectron2's checkpointer reports what did not fit (here a stand-in module, so the test
    runs without detectron2); the backend turns it into one WeightsError in the message format of
    graphmatch.utils.state_dict, leaving out the pixel statistics detectron2 keeps outside the
    weights."""
    import types

    from detectors.detectron2_backend import Detectron2Extractor
    from detectors.weights import WeightsError, save_state_dict_file

    class Incompatible:
        missing_keys = ["pixel_mean", "roi_heads.box_predictor.bbox_pred.bias"]
        unexpected_keys = ["pixel_std", "roi_heads.extra_head.weight"]
        incorrect_shapes = [("roi_heads.box_predictor.cls_score.weight", (81, 2048), (1601, 2048))]

    class Checkpointer:
        def __init__(self, model):
            self.model = model

        def _load_model(self, checkpoint):
            assert set(checkpoint) == {"model", "matching_heuristics"}
            return Incompatible()

    checkpoint = types.ModuleType("detectron2.checkpoint")
    checkpoint.DetectionCheckpointer = Checkpointer
    monkeypatch.setitem(sys.modules, "detectron2", types.ModuleType("detectron2"))
    monkeypatch.setitem(sys.modules, "detectron2.checkpoint", checkpoint)
    path = tmp_path / "w.safetensors"
    save_state_dict_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError) as ei:
        Detectron2Extractor._load(torch.nn.Linear(1, 1), str(path), False)
    assert str(ei.value) == (
        f"weights file {path} does not fit the detectron2 model: 1 shape mismatches (e.g. "
        "roi_heads.box_predictor.cls_score.weight: file (81, 2048) vs model (1601, 2048)); 1 missing "
        "keys (e.g. ['roi_heads.box_predictor.bbox_pred.bias']); 1 unexpected keys (e.g. "
        "['roi_heads.extra_head.weight']); check config_file and that class_names has the weights' "
        "class count")
    Incompatible.missing_keys, Incompatible.unexpected_keys = ["pixel_mean"], ["pixel_std"]
    Incompatible.incorrect_shapes = []
    Detectron2Extractor._load(torch.nn.Linear(1, 1), str(path), False)  # only pixel statistics: fits


# ----------------------------------------------------------------------- with detectron2 installed

# a random RPN proposes near-duplicate boxes that its NMS collapses to a handful; keeping them all
# (NMS_THRESH 1.0) leaves enough proposals for 8 regions
D2_KW = dict(random_weights=True, min_size=128, max_size=200, num_proposals=24, num_regions=8,
             config_overrides=["MODEL.RPN.NMS_THRESH", "1.0"])
ATTR_KW = {**D2_KW, "config_overrides": D2_KW["config_overrides"] + ["MODEL.ROI_HEADS.NAME", "AttributeRes5ROIHeads"]}


@pytest.fixture(scope="module")
def d2():
    pytest.importorskip("detectron2")
    from detectors import build_extractor

    return build_extractor("detectron2", **D2_KW)


@pytest.fixture(scope="module")
def photo():
    skdata = pytest.importorskip("skimage.data")
    return skdata.chelsea()


def _check(r, image, dim):
    h, w = image.shape[:2]
    assert r.image_size == (w, h) and r.features.shape == (len(r), dim)
    assert torch.isfinite(r.features).all()
    assert (r.boxes[:, 0::2] <= w + 1e-3).all() and (r.boxes[:, 1::2] <= h + 1e-3).all()
    assert (r.boxes >= 0).all()


def test_d2_c4_shapes_and_determinism(d2, photo):
    (r,) = d2.extract([photo])
    assert d2.feature_dim == 2048
    _check(r, photo, 2048)
    assert len(r) == 8 and ((r.labels >= 1) & (r.labels <= 1600)).all()
    (again,) = d2.extract([photo])
    assert torch.equal(r.features, again.features) and torch.equal(r.boxes, again.boxes)
    cfg = json.loads(json.dumps(d2.config()))
    assert cfg["backend"] == "detectron2" and cfg["feature_dim"] == 2048


def test_d2_features_are_pooled_again(d2, photo):
    from detectron2.data import transforms as T
    from detectron2.structures import Boxes

    (r,) = d2.extract([photo])
    m = d2.model
    arr = T.ResizeShortestEdge([128, 128], 200).get_transform(photo).apply_image(photo)
    h, w = arr.shape[:2]
    t = torch.as_tensor(np.ascontiguousarray(arr[:, :, ::-1])).permute(2, 0, 1)
    with torch.no_grad():
        il = m.preprocess_image([{"image": t}])
        fmap = m.backbone(il.tensor)
        sx, sy = w / photo.shape[1], h / photo.shape[0]
        boxes = r.boxes * torch.tensor([sx, sy, sx, sy])
        feats = [fmap[f] for f in m.roi_heads.in_features]
        direct = m.roi_heads._shared_roi_transform(feats, [Boxes(boxes)]).mean(dim=(2, 3))
    torch.testing.assert_close(r.features, direct, atol=2e-4, rtol=1e-4)


def test_d2_fallback_and_attribute_head(photo):
    pytest.importorskip("detectron2")
    from detectors import build_extractor

    ext = build_extractor("detectron2", score_floor=1.5,
                          **ATTR_KW)
    (r,) = ext.extract([photo])
    assert len(r) == 1 and r.flags["fallback_whole_image"] is True and r.labels.tolist() == [0]
    assert r.attr_labels.shape == (1,) and 1 <= int(r.attr_labels[0]) <= 400
    ext = build_extractor("detectron2", **ATTR_KW)
    (r,) = ext.extract([photo])
    assert len(r) == 8 and r.attr_scores.shape == (8,)


def test_d2_weights_round_trip_and_errors(d2, photo, tmp_path):
    from detectors import WeightsError, build_extractor
    from detectors.weights import save_state_dict_file

    p = tmp_path / "d2.safetensors"
    save_state_dict_file(d2.model.state_dict(), str(p))
    kw = {**D2_KW, "random_weights": False}
    loaded = build_extractor("detectron2", weights=str(p), **kw)
    (a,) = d2.extract([photo])
    (b,) = loaded.extract([photo])
    assert torch.equal(a.features, b.features)
    with pytest.raises(WeightsError, match="no weights given"):
        build_extractor("detectron2", **kw)
    with pytest.raises(WeightsError, match=r"missing\.pth"):
        build_extractor("detectron2", weights=str(tmp_path / "missing.pth"), **kw)


def test_d2_unexpected_weight_keys_are_refused(d2, tmp_path):
    from detectors import WeightsError, build_extractor
    from detectors.weights import save_state_dict_file

    sd = dict(d2.model.state_dict())
    sd["roi_heads.extra_head.weight"] = torch.zeros(3, 3)
    p = tmp_path / "extra.safetensors"
    save_state_dict_file(sd, str(p))
    with pytest.raises(WeightsError, match=r"extra\.safetensors.*1 unexpected keys.*roi_heads\.extra_head\.weight"):
        build_extractor("detectron2", weights=str(p), **{**D2_KW, "random_weights": False})
