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
