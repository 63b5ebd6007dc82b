import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A tiny SYNTHETIC data set in the precomp layout (generated once per test session)."""
    from graphmatch.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("data") / "synthetic"
    generate_synthetic(root, n_train=240, n_dev=40, n_test=40, captions_per_image=3, n_regions=8,
                       feature_dim=48, seed=0)
    return root


@pytest.fixture(scope="session")
def parsed_synthetic(tiny_synthetic, tmp_path_factory):
    """The tiny SYNTHETIC set with parse sidecars of its train and dev splits (real spaCy parses,
    written once per test session). Tests read it; one that changes files copies it first."""
    import shutil

    from parsers.job import parse_precomp

    root = tmp_path_factory.mktemp("parsed") / "data"
    shutil.copytree(tiny_synthetic, root)
    parse_precomp(root, ["train", "dev"], cache=None, progress=False)
    return root
