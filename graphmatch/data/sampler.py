"""The order of training batches and its resume position: a seeded, rank-aware caption batch sampler.

:class:`CaptionBatchSampler` owns the batch order of every epoch, a pure function of
``(seed, epoch)``: a permutation of the caption numbers drawn from a generator seeded with
``seed * 1_000_003 + epoch``, cut into consecutive batches of ``batch_size`` (a last batch of one
caption, which has no negative, is dropped), cut to ``max_steps_per_epoch``. With ``world_size``
ranks, batch ``s * world_size + r`` of that order is step ``s`` of rank ``r``: at every step the
ranks hold consecutive, disjoint slices of one global order (a global batch of
``world_size * batch_size`` captions), and all ranks take the same number of steps (batches past
the last whole round are left out). With one rank the order is the single-process order.

The sampler also holds the position in it (``epoch``, ``step``: batches of the epoch already
run), saved with :meth:`~CaptionBatchSampler.state_dict`, so a resumed run continues with the
next batch of the same order (exact resume, also mid-epoch).

:class:`PairLoader` is the batch source a :class:`~graphmatch.engine.trainer.Trainer` receives: it
iterates the sampler's remaining batches of the current epoch as
:class:`~graphmatch.data.dataset.PairBatch` objects, built by a ``DataLoader`` (optionally with
worker processes) from a :class:`~graphmatch.data.dataset.MatchingData`. Another data set or a
distributed run only builds another sampler or loader; the training loop is unchanged.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader

__all__ = ["CaptionBatchSampler", "PairLoader", "CaptionIndexDataset", "PairCollator", "epoch_seed"]


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of ``epoch``'s batch order."""
    return int(seed) * 1_000_003 + int(epoch)


class CaptionBatchSampler:
    """Batches of caption numbers ``0 .. n_captions - 1`` for one rank, epoch by epoch.

    Args:
        n_captions: captions in the training split.
        batch_size: captions per batch (per rank), at least 2 (the loss needs a negative).
        seed: the order's seed.
        rank, world_size: this process's rank among ``world_size``.
        drop_last_singleton: drop a last batch of one caption.
        max_steps_per_epoch: at most this many steps (per rank) per epoch.

    Iterating yields this rank's batches of :attr:`epoch` from :attr:`step` on; it does not move the
    position: the consumer calls :meth:`advance` once a batch has been run.
    """

    def __init__(self, n_captions: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last_singleton: bool = True, max_steps_per_epoch: Optional[int] = None) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (the loss needs negatives), got {batch_size}")
        if n_captions < 0:
            raise ValueError(f"n_captions must be >= 0, got {n_captions}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} of world_size {world_size}: need 0 <= rank < world_size")
        if max_steps_per_epoch is not None and max_steps_per_epoch < 1:
            raise ValueError(f"max_steps_per_epoch must be >= 1 or None, got {max_steps_per_epoch}")
        self.n_captions, self.batch_size, self.seed = int(n_captions), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.drop_last_singleton = bool(drop_last_singleton)
        self.max_steps_per_epoch = max_steps_per_epoch
        self.epoch = 0
        self.step = 0

    # ------------------------------------------------------------------ the order
    def _global_batches(self, epoch: int) -> List[List[int]]:
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.n_captions, generator=g).tolist()
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.drop_last_singleton and batches and len(batches[-1]) < 2:  # a 1-caption batch has no negative
            batches.pop()
        return batches

    def batches(self, epoch: int) -> List[List[int]]:
        """All of this rank's batches of ``epoch`` (a pure function of seed, epoch, rank)."""
        batches = self._global_batches(epoch)
        if self.world_size > 1:
            rounds = len(batches) // self.world_size
            batches = batches[self.rank : rounds * self.world_size : self.world_size]
        if self.max_steps_per_epoch is not None:
            batches = batches[: self.max_steps_per_epoch]
        return batches

    def __len__(self) -> int:
        """Steps per epoch of this rank (without drawing the order)."""
        n, b = self.n_captions, self.batch_size
        steps = -(-n // b)
        if self.drop_last_singleton and steps and n - (steps - 1) * b < 2:
            steps -= 1
        steps //= self.world_size
        return steps if self.max_steps_per_epoch is None else min(steps, self.max_steps_per_epoch)

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches(self.epoch)[self.step :])

    # ------------------------------------------------------------------ the position
    def set_epoch(self, epoch: int, step: int = 0) -> None:
        """Move to step ``step`` of ``epoch``."""
        if epoch < 0 or step < 0:
            raise ValueError(f"epoch and step must be >= 0, got epoch {epoch} step {step}")
        self.epoch, self.step = int(epoch), int(step)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more batches of the current epoch as run."""
        self.step += int(n)

    @property
    def remaining(self) -> int:
        """Batches of the current epoch not yet run."""
        return max(0, len(self) - self.step)

    def state_dict(self) -> Dict[str, Any]:
        """The position and what fixes the order (plain data)."""
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed, "batch_size": self.batch_size,
                "n_captions": self.n_captions, "rank": self.rank, "world_size": self.world_size,
                "max_steps_per_epoch": self.max_steps_per_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue at the saved position. A state saved with another order (seed, batch size,
        number of captions, ranks) would point into different batches: ``ValueError``."""
        for key in ("seed", "batch_size", "n_captions", "world_size", "max_steps_per_epoch"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"batch sampler state was saved with {key}={state[key]!r}, this sampler has "
                                 f"{getattr(self, key)!r}: its position would point into another batch order")
        self.set_epoch(int(state["epoch"]), int(state.get("step", 0)))

    def __repr__(self) -> str:
        return (f"CaptionBatchSampler(n_captions={self.n_captions}, batch_size={self.batch_size}, seed={self.seed}, "
                f"rank={self.rank}/{self.world_size}, epoch={self.epoch}, step={self.step})")


class CaptionIndexDataset(torch.utils.data.Dataset):
    """Yields caption numbers; the collate function turns a list of them into a batch."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class PairCollator:
    """``collate_fn`` of caption numbers (picklable for worker processes)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def __call__(self, caption_indices: Sequence[int]) -> Any:
        return self.data.pair_batch(caption_indices)


class PairLoader:
    """The batches a trainer runs: the sampler's remaining batches of its current epoch, as
    :class:`~graphmatch.data.dataset.PairBatch` objects of ``data``.

    Args:
        data: anything with ``pair_batch(caption_indices)`` (a
            :class:`~graphmatch.data.dataset.MatchingData`).
        sampler: the :class:`CaptionBatchSampler` that owns the order and the position.
        num_workers: ``DataLoader`` worker processes building the batches (0: in this process).

    Each iteration uses a generator of its own seeded by ``(seed, epoch)``: a ``DataLoader``
    otherwise draws from the global RNG, which would shift dropout masks after a resume.
    """

    def __init__(self, data: Any, sampler: CaptionBatchSampler, *, num_workers: int = 0) -> None:
        self.data, self.sampler, self.num_workers = data, sampler, int(num_workers)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        s = self.sampler
        loader = DataLoader(
            CaptionIndexDataset(s.n_captions), batch_sampler=list(s), collate_fn=PairCollator(self.data),
            num_workers=self.num_workers, generator=torch.Generator().manual_seed(epoch_seed(s.seed, s.epoch)),
        )
        return iter(loader)
