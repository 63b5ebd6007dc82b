"""graphmatch.data.check and `graphmatch check-data`: one small hand-built folder per problem."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from graphmatch.cli import main
from graphmatch.data import check, precomp
from graphmatch.data.check import check_before_training, check_data, verify_manifest, write_manifest
from graphmatch.data.precomp import DataError, write_precomp

N, K, R, D = 4, 2, 3, 5


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(tmp_path / "cache"))


def _captions(n: int = N, k: int = K) -> list[str]:
    return [f"image {i} caption {j}" for i in range(n) for j in range(k)]


def _make(root: Path, split: str = "train", n: int = N, d: int = D, **kw) -> Path:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 40, (n, R, 2))
    args = dict(features=rng.random((n, R, d), dtype=np.float32) + 0.1, captions=_captions(n),
                image_ids=[f"img{i}" for i in range(n)],
                boxes=np.concatenate([xy, xy + 10], axis=2).astype(np.float32),
                image_sizes=np.full((n, 2), 60, np.float32))
    args.update(kw)
    write_precomp(root, split, **args)
    return root


def _codes(report, level: str) -> set[str]:
    return {p.code for p in (report.errors if level == "error" else report.warnings)}


def _save(path: Path, array) -> None:
    np.save(path, array)


# each case: (name, how to break a clean folder, level, code, text the message must contain)
def _nan_features(root):
    f = np.load(root / "train_ims.npy")
    f[2, 1, 3] = np.nan
    _save(root / "train_ims.npy", f)


def _inf_features(root):
    f = np.load(root / "train_ims.npy")
    f[3, 0, 0] = np.inf
    _save(root / "train_ims.npy", f)


def _zero_image(root):
    f = np.load(root / "train_ims.npy")
    f[1] = 0
    _save(root / "train_ims.npy", f)


def _zero_rows(root):
    f = np.load(root / "train_ims.npy")
    f[2, 2] = 0
    _save(root / "train_ims.npy", f)


def _box(root, i, r, value):
    b = np.load(root / "train_ims_bbx.npy")
    b[i, r] = value
    _save(root / "train_ims_bbx.npy", b)


def _shuffled_ids(root):
    caps = _captions()
    ids = [f"img{i}" for i in range(N) for _ in range(K)]
    order = [0, 2, 1, 3, 4, 5, 6, 7]  # image 0, 1, 0, 1, ...
    (root / "train_caps.txt").write_text("".join(caps[j] + "\n" for j in order), encoding="utf-8")
    (root / "train_ids.txt").write_text("".join(ids[j] + "\n" for j in order), encoding="utf-8")


def _lost_block(root):
    (root / "train_ids.txt").unlink()
    (root / "train_caps.txt").write_text("".join(c + "\n" for c in _captions()[:-1]), encoding="utf-8")


def _uneven(root):
    caps = _captions() + ["image 3 caption 2"]
    ids = [f"img{i}" for i in range(N) for _ in range(K)] + ["img3"]
    (root / "train_caps.txt").write_text("".join(c + "\n" for c in caps), encoding="utf-8")
    (root / "train_ids.txt").write_text("".join(s + "\n" for s in ids), encoding="utf-8")


def _text(root, name, data: bytes):
    (root / name).write_bytes(data)


CAPS = "".join(c + "\n" for c in _captions())
CASES = {
    "nan features": (_nan_features, "error", "nonfinite_features", "train_ims.npy: features contain NaN or inf: first bad image row 2"),
    "inf features": (_inf_features, "error", "nonfinite_features", "first bad image row 3"),
    "all-zero image": (_zero_image, "error", "all_zero_image", "train_ims.npy: image row 1 has only all-zero"),
    "zero padding rows": (_zero_rows, "warning", "zero_regions", "1 all-zero region rows (zero padding) in 1 images, first at image row 2 region 2"),
    "nan box": (lambda r: _box(r, 1, 2, [np.nan, 0, 5, 5]), "error", "nonfinite_boxes", "train_ims_bbx.npy: box of image row 1 region 2"),
    "inverted box": (lambda r: _box(r, 3, 0, [20, 5, 10, 15]), "error", "inverted_boxes", "box of image row 3 region 0"),
    "zero-area box": (lambda r: _box(r, 0, 1, [5, 5, 5, 15]), "warning", "empty_boxes", "row 0 region 1"),
    "box outside image": (lambda r: _box(r, 2, 2, [50, 50, 90, 70]), "warning", "boxes_outside_image", "row 2 region 2"),
    "boxes wrong shape": (lambda r: _save(r / "train_ims_bbx.npy", np.zeros((N, R, 2), np.float32)), "error", "shape", "train_ims_bbx.npy: boxes have shape (4, 3, 2)"),
    "bad sizes": (lambda r: _save(r / "train_ims_size.npy", np.array([[60, 60], [0, 60], [60, 60], [60, 60]], np.float32)), "error", "invalid", "train_ims_size.npy: image sizes must be finite and positive; bad record(s) 1"),
    "int features": (lambda r: _save(r / "train_ims.npy", np.ones((N, R, D), np.int64)), "error", "dtype", "features must be a float array, got dtype int64"),
    "2-D features": (lambda r: _save(r / "train_ims.npy", np.ones((N, D), np.float32)), "error", "shape", "must be 3-D"),
    "missing features": (lambda r: (r / "train_ims.npy").unlink() or (r / "train_ids.txt").unlink(), "error", "missing_file", "missing region features file"),
    "missing captions": (lambda r: (r / "train_caps.txt").rename(r / "train_captions.txt"), "error", "no_splits", "no split found"),
    "utf-16 captions": (lambda r: _text(r, "train_caps.txt", CAPS.encode("utf-16")), "error", "encoding", "train_caps.txt: captions file is encoded as UTF-16 LE"),
    "utf-16 without BOM": (lambda r: _text(r, "train_caps.txt", CAPS.encode("utf-16-be")), "error", "encoding", "UTF-16 BE without a byte-order mark"),
    "not utf-8": (lambda r: _text(r, "train_caps.txt", CAPS.replace("image 1 caption 0", "caf\xe9").encode("latin-1")), "error", "encoding", "train_caps.txt: line 3 is not valid UTF-8"),
    "mixed CR line ends": (lambda r: _text(r, "train_caps.txt", CAPS.replace("\n", "\r", 1).encode()), "error", "line_endings", "train_caps.txt: line 1 of the captions file contains a carriage return"),
    "CR-only line ends": (lambda r: _text(r, "train_caps.txt", CAPS.replace("\n", "\r").encode()), "warning", "cr_line_endings", "CR-only line endings (classic Mac OS); read as 8 lines"),
    "UTF-8 BOM": (lambda r: _text(r, "train_caps.txt", b"\xef\xbb\xbf" + CAPS.encode()), "warning", "utf8_bom", "byte-order mark"),
    "empty caption": (lambda r: _text(r, "train_caps.txt", CAPS.replace("image 2 caption 1", " ").encode()), "error", "bad_caption", "train_caps.txt: empty or whitespace-only caption at line(s) 6"),
    "empty captions file": (lambda r: _text(r, "train_caps.txt", b""), "error", "empty_file", "no captions"),
    "ids out of row order": (_shuffled_ids, "error", "ids_order", "train_ids.txt: line 3: image id 'img0' reappears"),
    "ids wrong count": (lambda r: _text(r, "train_ids.txt", b"a\nb\nc\n"), "error", "ids_count", "train_ids.txt has 3 lines; expected 4"),
    "ids duplicate": (lambda r: _text(r, "train_ids.txt", b"a\nb\na\nc\n"), "error", "ids_duplicate", "image id 'a' at line 3 repeats line 1"),
    "ids empty line": (lambda r: _text(r, "train_ids.txt", b"a\n\nb\nc\n"), "error", "ids_empty", "empty image id at line(s) 2"),
    "lost caption block": (_lost_block, "error", "caption_count", "train_caps.txt has 7 captions, which is not a whole multiple of the 4 images"),
    "uneven captions": (_uneven, "warning", "uneven_captions", "images have between 2 and 3 captions"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_problem_is_named(tmp_path, name):
    breaker, level, code, text = CASES[name]
    root = _make(tmp_path / "data")
    breaker(root)
    report = check_data(root, manifest=False)
    found = [p for p in report.all_problems() if p.code == code and p.level == level]
    assert found, report.format()
    assert any(text in p.message for p in found), [p.message for p in found]
    assert report.ok == (level == "warning"), report.format()
    if level == "warning":
        assert not report.errors
    # the CLI: a readable summary that names the problem; exit 1 on an error, 0 on warnings alone
    rc = main(["check-data", str(root), "--quiet", "--no-manifest"])
    assert rc == (1 if level == "error" else 0)


def test_clean_synthetic_folder(tiny_synthetic, capsys):
    report = check_data(tiny_synthetic)
    assert report.ok and not report.warnings, report.format()
    assert [s.split for s in report.splits] == ["train", "dev", "test"]
    train = report.splits[0].counts
    assert (train["n_images"], train["n_captions"], train["captions_per_image"]) == (240, 720, 3)
    assert (train["n_regions"], train["feature_dim"], train["dtype"]) == (8, 48, "float32")
    names = {m["name"] for m in report.manifest}
    assert {"train_ims.npy", "train_caps.txt", "meta.json"} <= names
    assert main(["check-data", str(tiny_synthetic), "--quiet", "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert "split dev: 40 images, 120 captions (3 per image), 8 regions x 48 (float32)" in out
    assert "OK: no errors" in out and "dev_ims.npy" in out


def test_splits_that_disagree(tmp_path):
    root = _make(tmp_path / "data")
    _make(root, "dev", d=D + 1, captions=_captions(N, 1))
    report = check_data(root, manifest=False)
    assert "feature_dim_mismatch" in _codes(report, "error")
    assert "captions_per_image_differ" in _codes(report, "warning")
    msg = next(p.message for p in report.warnings if p.code == "captions_per_image_differ")
    assert "train: 2" in msg and "dev: 1" in msg


def test_manifest_write_and_verify(tmp_path, capsys):
    root = _make(tmp_path / "data")
    man = tmp_path / "manifest.json"
    assert main(["check-data", str(root), "--quiet", "--manifest", str(man)]) == 0
    files = json.loads(man.read_text())["files"]
    assert {f["name"] for f in files} == {"train_ims.npy", "train_caps.txt", "train_ids.txt",
                                          "train_ims_bbx.npy", "train_ims_size.npy"}
    assert verify_manifest(root, man) == []
    assert main(["check-data", str(root), "--verify", str(man)]) == 0
    # a changed file (same size) and a missing one are named
    caps = root / "train_caps.txt"
    caps.write_text(caps.read_text().replace("image 0", "image 9"))
    (root / "train_ims_size.npy").unlink()
    problems = verify_manifest(root, man)
    assert {p.code for p in problems} == {"manifest_checksum", "manifest_missing"}
    assert main(["check-data", str(root), "--verify", str(man)]) == 1
    assert "train_caps.txt: sha256" in capsys.readouterr().out
    # `sha256sum` output is read too
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("".join(f"{f['sha256']}  {f['name']}\n" for f in files if f["name"] == "train_ims.npy"))
    assert verify_manifest(root, sums) == []
    write_manifest(tmp_path / "m2.json", root, check.file_manifest(root))
    assert verify_manifest(root, tmp_path / "m2.json") == []


def test_full_scans_are_cached_per_file_version(tmp_path, monkeypatch):
    root = _make(tmp_path / "data")
    calls = []
    real = precomp.scan_features
    monkeypatch.setattr(precomp, "scan_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    check_before_training(root, ["train"])
    check_before_training(root, ["train"])
    precomp.load_precomp(root, "train")  # the loader's own scan uses the same cache
    assert len(calls) == 1
    f = np.load(root / "train_ims.npy")
    f[0, 0, 0] = np.nan
    _save(root / "train_ims.npy", f)
    os.utime(root / "train_ims.npy", ns=(1, 1))  # another version even on a coarse clock
    with pytest.raises(DataError, match=r"train_ims.npy: features contain NaN or inf: first bad image row 0"):
        check_before_training(root, ["train"])
    assert len(calls) == 2


def test_read_only_folder_and_unwritable_cache(tmp_path, monkeypatch):
    root = _make(tmp_path / "data")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("GRAPHMATCH_CACHE", str(blocker))  # the cache cannot be created
    os.chmod(root, 0o555)
    try:
        assert check_before_training(root, ["train"]).ok
        assert check_data(root).ok
        assert not [p for p in root.iterdir() if p.name.startswith(".")]  # nothing written into the data folder
    finally:
        os.chmod(root, 0o755)


def test_train_stops_before_the_first_step_naming_the_file(tmp_path):
    from graphmatch.config import load_config
    from graphmatch.engine.train import train_experiment

    root = _make(tmp_path / "data")
    _make(root, "dev")
    _shuffled_ids(root)
    cfg = load_config(None, [f"data.root={root}", f"output_dir={tmp_path / 'run'}", "train.device=cpu"])
    with pytest.raises(DataError, match=r"data check failed: .*train_ids.txt: line 3: image id 'img0' reappears"):
        train_experiment(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_large_arrays_are_scanned_in_chunks(tmp_path, monkeypatch):
    root = _make(tmp_path / "data", n=50, captions=_captions(50), image_ids=[f"i{i}" for i in range(50)],
                 boxes=None, image_sizes=None)
    f = np.load(root / "train_ims.npy")
    f[37, 1, 2] = np.nan
    f[41] = 0
    _save(root / "train_ims.npy", f)
    monkeypatch.setattr(precomp, "_FINITE_CHUNK_BYTES", R * D * 4 * 3)  # three images per chunk
    loaded = []
    real_asarray = np.asarray

    def spy(a, *args, **kw):
        out = real_asarray(a, *args, **kw)
        if isinstance(a, np.memmap):
            loaded.append(out.shape[0])
        return out

    monkeypatch.setattr(precomp.np, "asarray", spy)
    report = check_data(root, manifest=False)
    monkeypatch.setattr(precomp.np, "asarray", real_asarray)
    assert loaded and max(loaded) <= 3
    msgs = " | ".join(p.message for p in report.errors)
    assert "first bad image row 37" in msgs and "image row 41 has only all-zero" in msgs


def test_a_stale_parse_sidecar_is_a_warning_naming_it(tmp_path):
    import json

    from graphmatch.data.parses import PARSES_FORMAT, PARSES_VERSION
    from graphmatch.utils.atomic import file_sha256

    _make(tmp_path)
    caps = tmp_path / "train_caps.txt"
    header = {"format": PARSES_FORMAT, "version": PARSES_VERSION, "captions": caps.name, "captions_sha256": file_sha256(caps),
              "n": N * K, "parser": "toy/1"}
    (tmp_path / "train_graphs.jsonl").write_text(json.dumps(header) + "\n")
    report = check_data(tmp_path, ["train"], full=False, manifest=False)
    assert "parses_stale" not in _codes(report, "warning") and report.splits[0].counts["parses"] is True
    caps.write_text(caps.read_text().replace("caption 0", "caption zero", 1))
    report = check_data(tmp_path, ["train"], full=False, manifest=False)
    assert "parses_stale" in _codes(report, "warning") and report.ok
    assert any("train_graphs.jsonl is stale" in w.message and "graphmatch parse --precomp" in w.message
               for w in report.warnings)
