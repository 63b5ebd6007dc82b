"""CaptionBatchSampler: the batch order (equal to the single-process order of earlier versions), rank
shards, the resume position; PairLoader batches."""
import pytest
import torch

from graphmatch.data.sampler import CaptionBatchSampler, PairLoader


def reference_batches(n, batch_size, seed, epoch, max_steps=None):
    """The order the trainer used before the sampler existed (Trainer.epoch_batches)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < 2:
        batches.pop()
    return batches if max_steps is None else batches[:max_steps]


@pytest.mark.parametrize("n, bs, seed, max_steps", [(100, 32, 0, None), (97, 32, 3, None), (65, 32, 1, None),
                                                   (64, 2, 7, 5), (2, 2, 0, None), (1, 2, 0, None)])
def test_order_is_the_earlier_single_process_order(n, bs, seed, max_steps):
    s = CaptionBatchSampler(n, bs, seed=seed, max_steps_per_epoch=max_steps)
    for epoch in (0, 1, 5):
        s.set_epoch(epoch)
        ref = reference_batches(n, bs, seed, epoch, max_steps)
        assert list(s) == ref == s.batches(epoch)
        assert len(s) == len(ref)


def test_a_last_batch_of_one_caption_is_dropped_and_can_be_kept():
    s = CaptionBatchSampler(65, 32, seed=0)
    assert [len(b) for b in s.batches(0)] == [32, 32] and len(s) == 2
    keep = CaptionBatchSampler(65, 32, seed=0, drop_last_singleton=False)
    assert [len(b) for b in keep.batches(0)] == [32, 32, 1] and len(keep) == 3


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_shards_are_disjoint_cover_the_order_and_have_equal_length(world_size):
    n, bs = 230, 16
    single = CaptionBatchSampler(n, bs, seed=4).batches(2)
    shards = [CaptionBatchSampler(n, bs, seed=4, rank=r, world_size=world_size).batches(2) for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    steps = len(shards[0])
    assert steps == len(single) // world_size == len(CaptionBatchSampler(n, bs, seed=4, world_size=world_size))
    seen = [c for shard in shards for b in shard for c in b]
    assert len(seen) == len(set(seen))  # disjoint
    # step s of rank r is batch s * world_size + r of the single order: the whole rounds, covered
    assert [shards[r][s] for s in range(steps) for r in range(world_size)] == single[: steps * world_size]
    if len(single) % world_size == 0:
        assert sorted(seen) == sorted(c for b in single for c in b)


def test_resume_position_round_trips_and_refuses_another_order():
    s = CaptionBatchSampler(100, 10, seed=1)
    s.set_epoch(3)
    s.advance(4)
    assert s.remaining == 6
    state = s.state_dict()
    assert state["epoch"] == 3 and state["step"] == 4
    t = CaptionBatchSampler(100, 10, seed=1)
    t.load_state_dict(state)
    assert list(t) == s.batches(3)[4:]
    with pytest.raises(ValueError, match="seed=1.*another batch order"):
        CaptionBatchSampler(100, 10, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        CaptionBatchSampler(100, 20, seed=1).load_state_dict(state)
    other_rank = CaptionBatchSampler(100, 10, seed=1, rank=1, world_size=2)
    other_rank.load_state_dict({**state, "world_size": 2})  # each rank resumes from the same saved state
    assert other_rank.epoch == 3 and other_rank.step == 4


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        CaptionBatchSampler(10, 1, seed=0)
    with pytest.raises(ValueError, match="rank 2 of world_size 2"):
        CaptionBatchSampler(10, 2, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        CaptionBatchSampler(10, 2, seed=0, max_steps_per_epoch=0)


class _Data:
    def pair_batch(self, caption_indices):
        return list(caption_indices)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_pair_loader_yields_the_remaining_batches_of_the_current_epoch(num_workers):
    s = CaptionBatchSampler(40, 8, seed=0)
    loader = PairLoader(_Data(), s, num_workers=num_workers)
    assert len(loader) == 5
    s.set_epoch(1, 2)
    assert list(loader) == s.batches(1)[2:]
