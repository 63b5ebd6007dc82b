"""Training and evaluation with image regions from a region store instead of {split}_ims.npy."""
import json
import shutil

import pytest

from graphmatch.data.regions import PrecompReader, write_butd_tsv
from detectors.store import RegionStoreWriter
from graphmatch.cli import main
from graphmatch.data.precomp import DataError, load_captions, load_precomp


def captions_only_copy(src, dst):
    """A data folder with only captions and ids (no features)."""
    dst.mkdir()
    for split in ("train", "dev", "test"):
        for suffix in ("caps.txt", "ids.txt"):
            shutil.copy(src / f"{split}_{suffix}", dst / f"{split}_{suffix}")
    shutil.copy(src / "test_hardneg.jsonl", dst / "test_hardneg.jsonl")


@pytest.fixture(scope="module")
def region_files(tiny_synthetic, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regions")
    store = tmp / "regions.h5"
    items = [item for split in ("train", "dev", "test") for item in PrecompReader(tiny_synthetic, split)]
    with RegionStoreWriter(store, config={"backend": "precomp-copy"}) as w:
        for image_id, regions in items:
            w.add(image_id, regions)
    tsv = tmp / "regions.tsv"
    write_butd_tsv(tsv, items)
    data = tmp / "captions_only"
    captions_only_copy(tiny_synthetic, data)
    return {"store": store, "tsv": tsv, "data": data}


def test_load_captions(region_files, tiny_synthetic):
    s = load_captions(region_files["data"], "test")
    ref = load_precomp(tiny_synthetic, "test")
    assert s.features is None and s.feature_dim is None
    assert s.n_images == ref.n_images and s.image_ids == ref.image_ids
    assert (s.img_of_caption == ref.img_of_caption).all() and s.captions == ref.captions
    with pytest.raises(DataError, match="missing captions file"):
        load_captions(tiny_synthetic / "nope", "test")
    (region_files["data"] / "x_caps.txt").write_text("a dog\n")
    with pytest.raises(DataError, match="missing image ids file .*x_ids.txt"):
        load_captions(region_files["data"], "x")


def test_train_and_eval_from_a_region_store(region_files, tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "run"
    sets = [f"data.root={region_files['data']}", f"data.regions={region_files['store']}", f"output_dir={out}",
            "model.embed_dim=16", "model.text.word_dim=8", "train.epochs=1", "train.batch_size=32",
            "train.device=cpu", "train.log_every=0"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    assert main(["train", str(cfg), "--quiet", *sum((["--set", s] for s in sets), [])]) == 0
    capsys.readouterr()

    reports = {}
    for name, args in {
        "store": [],  # data.root / data.regions from the checkpoint's config
        "tsv": ["--regions", str(region_files["tsv"])],
        "precomp": ["--data", str(tiny_synthetic), "--regions", ""],
    }.items():
        path = tmp_path / f"{name}.json"
        assert main(["eval", str(out), "--split", "test", "--out", str(path), "--quiet", *args]) == 0, name
        reports[name] = json.loads(path.read_text())["metrics"]
    for key in ("i2t_r1", "t2i_r1", "rsum", "i2t_meanr", "t2i_meanr", "hardneg_acc"):
        assert reports["store"][key] == pytest.approx(reports["precomp"][key], abs=1e-4), key
        assert reports["tsv"][key] == pytest.approx(reports["precomp"][key], abs=1e-4), key


def test_missing_image_in_store_is_named(region_files, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(region_files["data"], data)
    ids = (data / "test_ids.txt").read_text().splitlines()
    ids[0] = "not_in_the_store"
    (data / "test_ids.txt").write_text("\n".join(ids) + "\n")
    from graphmatch.config import load_config
    from graphmatch.data.vocab import Vocabulary
    from graphmatch.engine.train import load_split
    from graphmatch.data.regions import open_regions

    cfg = load_config(None, [f"data.root={data}", f"data.regions={region_files['store']}"])
    with pytest.raises(ValueError, match="not_in_the_store"):
        load_split(cfg, "test", Vocabulary.build(["a"]), open_regions(region_files["store"]))
    with pytest.raises(ValueError, match="not_in_the_store"):  # opens data.regions itself
        load_split(cfg, "test", Vocabulary.build(["a"]), None)
