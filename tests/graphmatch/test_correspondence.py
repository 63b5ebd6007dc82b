"""Correspondence: the image <-> caption map as a type."""
import numpy as np
import pytest
import torch

from graphmatch.structures import Correspondence


def test_groups_counts_and_captions_of():
    c = Correspondence([2, 0, 2, 1, 0])
    assert c.n_images == 3 and c.n_captions == 5
    assert [g.tolist() for g in c.groups] == [[1, 4], [3], [0, 2]]
    assert c.captions_of(2).tolist() == [0, 2] and c.captions_of(-1).tolist() == [0, 2]
    assert c.counts().tolist() == [2, 1, 2] and c.captions_per_image is None
    assert Correspondence.contiguous(3, 5).captions_per_image == 5
    assert c.tensor().dtype == torch.long and c.tensor().tolist() == [2, 0, 2, 1, 0]
    with pytest.raises(IndexError, match="outside the 3 images"):
        c.captions_of(3)
    assert not c.img_of_caption.flags.writeable


def test_validation_names_captions_and_images():
    with pytest.raises(ValueError, match=r"outside \[0, 2\): captions 1 point to images 5"):
        Correspondence([0, 5], 2)
    with pytest.raises(ValueError, match=r"2 image\(s\) have no caption.*images 1, 3"):
        Correspondence([0, 2, 0], 4)
    assert Correspondence([0, 2, 0], 4, every_image_captioned=False).counts().tolist() == [2, 0, 1, 0]
    with pytest.raises(ValueError, match="integer"):
        Correspondence([0.5, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        Correspondence([[0, 1]])
    assert Correspondence([], 0).n_captions == 0


def test_from_ids():
    c = Correspondence.from_ids(["b", "a", "b", "c"], ["a", "b", "c"])
    assert c.img_of_caption.tolist() == [1, 0, 1, 2]
    with pytest.raises(ValueError, match="caption 1: image id 'x' is not one of the 2 image ids"):
        Correspondence.from_ids(["a", "x"], ["a", "b"])
    with pytest.raises(ValueError, match="appears twice"):
        Correspondence.from_ids(["a"], ["a", "a"])


def test_subset_renumbers_images_and_keeps_caption_order():
    c = Correspondence([0, 0, 1, 2, 1, 2, 3])
    sub, caps = c.subset([2, 0])
    assert caps.tolist() == [0, 1, 3, 5] and sub.img_of_caption.tolist() == [1, 1, 0, 0] and sub.n_images == 2
    grouped, gcaps = c.subset([2, 0], grouped=True)
    assert gcaps.tolist() == [3, 5, 0, 1] and grouped.img_of_caption.tolist() == [0, 0, 1, 1]
    mask_sub, mcaps = c.subset(np.array([False, True, False, True]))
    assert mcaps.tolist() == [2, 4, 6] and mask_sub.img_of_caption.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="duplicates"):
        c.subset([1, 1])
    with pytest.raises(IndexError, match="out of range"):
        c.subset([9])


def test_folds_and_positive_masks():
    c = Correspondence(np.repeat(np.arange(10), 2))
    folds = c.folds(5)
    assert len(folds) == 5
    images, corr, caps = folds[3]
    assert images.tolist() == [6, 7] and caps.tolist() == [12, 13, 14, 15] and corr.img_of_caption.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="not divisible into 3 equal folds"):
        c.folds(3)
    small = Correspondence([1, 0, 1])
    assert small.positive_mask().tolist() == [[False, True, False], [True, False, True]]
    assert small.positive_mask(images=[1], captions=[2, 1]).tolist() == [[True, False]]
    t = torch.tensor([1, 0, 1])
    assert torch.equal(Correspondence.mask_of(t, 2), small.positive_mask())
