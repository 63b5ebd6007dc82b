"""Training hooks: LR schedule, loss warm-up, progress, validation, checkpoints, time limit."""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from graphmatch.engine.trainer import HookBase
from graphmatch.utils.faults import fault_point
from graphmatch.utils.progress import progress, write

log = logging.getLogger(__name__)


class StepLRHook(HookBase):
    """Learning rate ``base_lr * decay ** (number of milestones <= epoch)``, set before each epoch."""

    def __init__(self, base_lr: float, milestones: Sequence[int], decay: float) -> None:
        self.base_lr, self.milestones, self.decay = base_lr, sorted(milestones), decay

    def lr_at(self, epoch: int) -> float:
        return self.base_lr * self.decay ** sum(1 for m in self.milestones if epoch >= m)

    def before_epoch(self) -> None:
        lr = self.lr_at(self.trainer.epoch)
        for g in self.trainer.optimizer.param_groups:
            g["lr"] = lr


class LossEpochHook(HookBase):
    """Tells the loss the epoch (for the sum → hardest-negative warm-up)."""

    def before_epoch(self) -> None:
        set_epoch = getattr(self.trainer.loss_fn, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(self.trainer.epoch)


class ProgressHook(HookBase):
    """A progress bar per epoch with the running loss (plain lines when not on a terminal, see
    :mod:`graphmatch.utils.progress`); a log line every ``log_every`` steps."""

    def __init__(self, *, log_every: int = 50, enabled: bool = True) -> None:
        self.log_every, self.enabled = log_every, enabled
        self.bar: Optional[Any] = None

    def before_epoch(self) -> None:
        t = self.trainer
        self.bar = progress(total=t.steps_per_epoch, initial=t.step_in_epoch, desc=f"epoch {t.epoch + 1}/{t.epochs}",
                        disable=not self.enabled, leave=False, dynamic_ncols=True)

    def after_step(self) -> None:
        t = self.trainer
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{t.last_loss:.3f}", lr=f"{t.optimizer.param_groups[0]['lr']:.1e}")
        if self.log_every and t.global_step % self.log_every == 0:
            log.info("epoch %d step %d loss %.4f", t.epoch + 1, t.step_in_epoch, t.last_loss)

    def after_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ValidationHook(HookBase):
    """Evaluate after every epoch; keep the history and the best ``rsum``; save the best checkpoint.

    Args:
        evaluate: ``() -> metrics dict`` with an ``rsum`` key.
        save_best: ``() -> None``, called when ``rsum`` improves.
        log_file: a JSON-lines file that receives one record per epoch.
        echo: print a one-line summary per epoch.
    """

    def __init__(self, evaluate: Callable[[], Dict[str, Any]], save_best: Callable[[], None], *,
                 log_file: Optional[Path] = None, echo: bool = True) -> None:
        self.evaluate, self.save_best, self.log_file, self.echo = evaluate, save_best, log_file, echo

    def after_epoch(self) -> None:
        t = self.trainer
        metrics = self.evaluate()
        losses = t.epoch_losses
        rec = {
            "epoch": t.epoch + 1,
            "step": t.global_step,
            "loss": float(sum(losses) / len(losses)) if losses else math.nan,
            "lr": t.optimizer.param_groups[0]["lr"],
            "elapsed_s": round(time.time() - t.start_time, 1),
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        }
        st = t.storage
        st["history"].append(rec)
        improved = st["best_rsum"] is None or metrics["rsum"] > st["best_rsum"]
        if improved:
            st["best_rsum"], st["best_epoch"], st["best_metrics"] = metrics["rsum"], t.epoch + 1, rec
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(self.log_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec) + "\n")
            except OSError as e:
                raise OSError(e.errno, f"cannot append epoch {rec['epoch']}'s record to {self.log_file}: "
                              f"{e.strerror}") from e
            fault_point("after_validation", epoch=rec["epoch"])
        if self.echo:
            write(
                f"epoch {rec['epoch']:3d}  loss {rec['loss']:.4f}  val rsum {metrics['rsum']:.1f}  "
                f"i2t R@1 {metrics['i2t_r1']:.1f}  t2i R@1 {metrics['t2i_r1']:.1f}"
                + ("  (best)" if improved else "")
            )
        if improved:
            self.save_best()


class CheckpointHook(HookBase):
    """Save the resumable ``last`` checkpoint at the end of every epoch and every ``every_steps``."""

    def __init__(self, save_last: Callable[[], None], *, every_steps: int = 0) -> None:
        self.save_last, self.every_steps = save_last, every_steps

    def after_step(self) -> None:
        t = self.trainer
        if self.every_steps and t.global_step % self.every_steps == 0 and t.step_in_epoch < t.steps_per_epoch:
            self.save_last()

    def after_epoch(self) -> None:
        self.save_last()  # Trainer.state_dict() records the start of the next epoch


class TimeLimitHook(HookBase):
    """Stop after the epoch during which ``max_minutes`` of wall time have passed."""

    def __init__(self, max_minutes: float) -> None:
        self.max_minutes = max_minutes

    def after_epoch(self) -> None:
        t = self.trainer
        if (time.time() - t.start_time) / 60.0 >= self.max_minutes:
            log.info("time limit of %.1f min reached after epoch %d", self.max_minutes, t.epoch + 1)
            t.stop = True
