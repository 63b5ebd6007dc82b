"""A minimal training loop; everything else (LR schedule, logging, validation, checkpoints, time
limits) lives in hooks, in the manner of detectron2's ``engine/train_loop.py``.

The loop receives its batches: a batch source (:class:`graphmatch.data.sampler.PairLoader`) whose
sampler (:class:`graphmatch.data.sampler.CaptionBatchSampler`) owns the order of batches, a pure
function of ``(seed, epoch)``, and the position in it (``epoch``, ``step_in_epoch``). Position and
RNG state are part of the saved state, so a run resumed from a checkpoint continues exactly where
it stopped (bit-identical on the CPU). A distributed sampler or another data set is another batch
source; the loop does not change.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Iterable, List, Protocol, Sequence

import torch

from graphmatch.data.dataset import PairBatch
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


class BatchSource(Protocol):
    """What a :class:`Trainer` iterates: the remaining batches of its sampler's current epoch.

    ``sampler`` holds the order and the position: ``epoch``, ``step``, ``set_epoch(epoch, step)``,
    ``advance()``, ``state_dict()`` / ``load_state_dict()``, ``len()`` (steps per epoch), as
    :class:`graphmatch.data.sampler.CaptionBatchSampler`."""

    sampler: Any

    def __iter__(self) -> Iterable[PairBatch]: ...


class Trainer:
    """Train a matcher on the batches it receives.

    Args:
        model: a :class:`~graphmatch.models.base.Matcher`.
        optimizer: a torch optimizer over the model's parameters.
        loss_fn: ``loss_fn(sims, positive_mask) -> scalar``.
        batches: the batch source (:class:`graphmatch.data.sampler.PairLoader` over the training
            :class:`~graphmatch.data.dataset.MatchingData` and a
            :class:`~graphmatch.data.sampler.CaptionBatchSampler`).
        epochs: epochs to train.
        device: where the model lives.
        grad_clip: max global gradient norm (0 disables clipping).
        hooks: :class:`HookBase` objects, run in order.
    """

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        batches: BatchSource,
        epochs: int,
        device: str = "cpu",
        grad_clip: float = 0.0,
        hooks: Sequence[HookBase] = (),
    ) -> None:
        self.model, self.optimizer, self.loss_fn, self.batches = model, optimizer, loss_fn, batches
        self.sampler = batches.sampler
        self.epochs, self.device, self.grad_clip = epochs, device, grad_clip
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks)
        # running state (saved in checkpoints); the loop position is the sampler's
        self.global_step = 0
        self.last_loss: float = float("nan")
        self.epoch_losses: List[float] = []
        self.storage: Dict[str, Any] = {"history": [], "best_rsum": None, "best_epoch": None}
        self.epoch_complete = False  # all batches of ``epoch`` done; its after_epoch hooks are running
        self.stop = False
        self.start_time = time.time()

    @property
    def epoch(self) -> int:
        """The epoch being run (0-based): the sampler's."""
        return self.sampler.epoch

    @property
    def step_in_epoch(self) -> int:
        """Batches of :attr:`epoch` already run: the sampler's position."""
        return self.sampler.step

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    # ------------------------------------------------------------------ hooks
    def register_hooks(self, hooks: Sequence[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, name: str) -> None:
        for h in self.hooks:
            getattr(h, name)()

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
                if self.step_in_epoch == 0:
                    self.epoch_losses = []
                self.epoch_complete = False
                self._call("before_epoch")
                for batch in self.batches:
                    self._call("before_step")
                    self.last_loss = self.run_step(batch)
                    self.epoch_losses.append(self.last_loss)
                    self.sampler.advance()
                    self.global_step += 1
                    self._call("after_step")
                    fault_point("after_step", epoch=self.epoch + 1, step=self.global_step)
                self.epoch_complete = True
                self._call("after_epoch")
                self.sampler.set_epoch(self.epoch + 1)
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
            "sampler": {**self.sampler.state_dict(), "epoch": epoch, "step": step},
            "global_step": self.global_step,
            "epoch_losses": [] if done else list(self.epoch_losses),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (also of checkpoints written before the sampler held the position)."""
        if isinstance(state.get("sampler"), dict):  # checks that the order is the one the position points into
            self.sampler.load_state_dict(state["sampler"])
        else:
            self.sampler.set_epoch(int(state["epoch"]), int(state["step_in_epoch"]))
        self.global_step = int(state["global_step"])
        self.epoch_losses = [float(v) for v in state.get("epoch_losses", [])]
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng") or []
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)
