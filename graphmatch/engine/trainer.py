"""A minimal training loop; everything else (LR schedule, logging, validation, checkpoints, time
limits) lives in hooks, in the manner of detectron2's ``engine/train_loop.py``.

The order of batches is a pure function of ``(seed, epoch)``, and the loop position
(``epoch``, ``step_in_epoch``) and the RNG state are part of the saved state, so a run resumed from
a checkpoint continues exactly where it stopped (bit-identical on the CPU).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from graphmatch.data.dataset import CaptionIndexDataset, MatchingData, PairBatch, PairCollator
from graphmatch.utils.faults import fault_point

log = logging.getLogger(__name__)


class HookBase:
    """Base class of training hooks. ``self.trainer`` is set when the hook is registered."""

    trainer: "Trainer"

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def after_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...


class Trainer:
    """Train a matcher on caption batches of ``data``.

    Args:
        model: a :class:`~graphmatch.models.base.Matcher`.
        optimizer: a torch optimizer over the model's parameters.
        loss_fn: ``loss_fn(sims, positive_mask) -> scalar``.
        data: the training :class:`~graphmatch.data.dataset.MatchingData`.
        batch_size, epochs, seed: the usual.
        device: where the model lives.
        grad_clip: max global gradient norm (0 disables clipping).
        max_steps_per_epoch: cut epochs short (debugging, smoke tests).
        num_workers: ``DataLoader`` workers building the PyG batches.
        hooks: :class:`HookBase` objects, run in order.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        data: MatchingData,
        batch_size: int,
        epochs: int,
        seed: int = 0,
        device: str = "cpu",
        grad_clip: float = 0.0,
        max_steps_per_epoch: Optional[int] = None,
        num_workers: int = 0,
        hooks: Sequence[HookBase] = (),
    ) -> None:
        if batch_size < 2:
            raise ValueError("batch_size must be at least 2 (the loss needs negatives)")
        self.model, self.optimizer, self.loss_fn, self.data = model, optimizer, loss_fn, data
        self.batch_size, self.epochs, self.seed, self.device = batch_size, epochs, seed, device
        self.grad_clip, self.max_steps_per_epoch, self.num_workers = grad_clip, max_steps_per_epoch, num_workers
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks)
        # loop position and running state (saved in checkpoints)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.last_loss: float = float("nan")
        self.epoch_losses: List[float] = []
        self.storage: Dict[str, Any] = {"history": [], "best_rsum": None, "best_epoch": None}
        self.epoch_complete = False  # all batches of ``epoch`` done; its after_epoch hooks are running
        self.stop = False
        self.start_time = time.time()

    # ------------------------------------------------------------------ hooks
    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, name: str) -> None:
        for h in self.hooks:
            getattr(h, name)()

    # ------------------------------------------------------------------ data order
    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """The caption batches of ``epoch``: a permutation seeded by ``(seed, epoch)``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.data.n_captions, generator=g).tolist()
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if batches and len(batches[-1]) < 2:  # a 1-caption batch has no negative
            batches.pop()
        if self.max_steps_per_epoch is not None:
            batches = batches[: self.max_steps_per_epoch]
        return batches

    @property
    def steps_per_epoch(self) -> int:
        n = self.data.n_captions
        steps = -(-n // self.batch_size)
        if steps and n - (steps - 1) * self.batch_size < 2:
            steps -= 1
        return steps if self.max_steps_per_epoch is None else min(steps, self.max_steps_per_epoch)

    # ------------------------------------------------------------------ loop
    def run_step(self, batch: PairBatch) -> float:
        self.model.train()
        batch = batch.to(self.device)
        sims = self.model(batch.images, batch.captions)
        loss = self.loss_fn(sims, batch.positive_mask())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch} step {self.step_in_epoch}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return float(loss.detach())

    def train(self) -> Dict[str, Any]:
        """Run until ``epochs`` are done or a hook sets ``stop``; returns ``storage``."""
        self.start_time = time.time()
        self._call("before_train")
        try:
            while self.epoch < self.epochs and not self.stop:
                batches = self.epoch_batches(self.epoch)[self.step_in_epoch :]
                if self.step_in_epoch == 0:
                    self.epoch_losses = []
                self.epoch_complete = False
                self._call("before_epoch")
                # an own generator: iterating a DataLoader otherwise draws from the global RNG,
                # which would shift dropout masks after a resume
                loader = DataLoader(
                    CaptionIndexDataset(self.data.n_captions), batch_sampler=batches,
                    collate_fn=PairCollator(self.data), num_workers=self.num_workers,
                    generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch),
                )
                for batch in loader:
                    self._call("before_step")
                    self.last_loss = self.run_step(batch)
                    self.epoch_losses.append(self.last_loss)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    self._call("after_step")
                    fault_point("after_step", epoch=self.epoch + 1, step=self.global_step)
                self.epoch_complete = True
                self._call("after_epoch")
                self.epoch += 1
                self.step_in_epoch = 0
                self.epoch_complete = False
        finally:
            self._call("after_train")
        return self.storage

    # ------------------------------------------------------------------ state
    @property
    def position(self) -> "tuple[int, int]":
        """``(epoch, step_in_epoch)`` where a resumed run continues: after the last batch of an
        epoch, the start of the next one."""
        if self.epoch_complete:
            return self.epoch + 1, 0
        return self.epoch, self.step_in_epoch

    def state_dict(self) -> Dict[str, Any]:
        """Loop position, running statistics, optimizer and RNG state (tensors and plain data only)."""
        done = self.epoch_complete  # the losses of a finished epoch are not carried over
        epoch, step = self.position
        return {
            "epoch": epoch,
            "step_in_epoch": step,
            "global_step": self.global_step,
            "epoch_losses": [] if done else list(self.epoch_losses),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.epoch_losses = [float(v) for v in state.get("epoch_losses", [])]
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng") or []
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)
