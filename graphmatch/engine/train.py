"""Set up and run a training experiment from an :class:`~graphmatch.config.ExperimentConfig`.

Output folder layout (``cfg.output_dir``)::

    config.yaml               the resolved config (a valid input of ``graphmatch train``)
    vocab.json                the vocabulary
    log.jsonl                 one record per epoch (loss, lr, validation metrics)
    checkpoints/last/         resumable checkpoint (end of every epoch, or every N steps)
    checkpoints/best/         the checkpoint with the best validation rsum
    checkpoints/best.files/   files of a replaced checkpoint that its writer did not write (e.g.
                              eval reports), under epoch-<E>/: the epoch they belong to
    curves.png                loss and validation rsum per epoch
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from graphmatch.config import ExperimentConfig, save_config
from graphmatch.data import build_dataset
from graphmatch.data.dataset import MatchingData, RegionSource
from graphmatch.data.sampler import CaptionBatchSampler, PairLoader
from graphmatch.data.vocab import Vocabulary
from graphmatch.engine.checkpoint import (
    CheckpointError, load_checkpoint_vocab, load_trainer_state, load_weights, read_checkpoint_config, read_state,
    remove_stale_temporaries, resolve_checkpoint_dir, save_checkpoint,
)
from graphmatch.engine.evaluator import evaluate
from graphmatch.engine.hooks import (
    CheckpointHook, LossEpochHook, ProgressHook, StepLRHook, TimeLimitHook, ValidationHook,
)
from graphmatch.engine.trainer import Trainer
from graphmatch.losses import build_loss
from graphmatch.models import build_matcher

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but CUDA is not available on this machine")
    return name


def load_split(cfg: ExperimentConfig, split: str, vocab: Optional[Vocabulary] = None,
               regions: Optional[RegionSource] = None) -> Any:
    """Split ``split`` of the data set of ``cfg.data`` (:func:`graphmatch.data.build_dataset`):
    loaded data, or with ``vocab`` its :class:`MatchingData` with the config's graph recipe.
    ``regions``: an opened region source instead of ``data.regions``."""
    return build_dataset(cfg.data).load_split(split, vocab, regions)


def check_splits(cfg: ExperimentConfig, train_data: MatchingData, val_data: MatchingData) -> None:
    """Check, before the first step, what would otherwise fail only at the first validation: both
    splits hold images and captions, the training split has a batch of at least two captions, and
    the validation split's region features have the training split's size. Raises ``ValueError``
    naming the split, its folder and the config key."""
    d = cfg.data
    for key, data in (("data.train_split", train_data), ("data.val_split", val_data)):
        if data.n_images < 1 or data.n_captions < 1:
            raise ValueError(f"{key}={data.split.split!r} in {d.root}: {data.n_images} images and "
                             f"{data.n_captions} captions; a split needs at least one of each")
    if train_data.n_captions < 2:
        raise ValueError(f"data.train_split={d.train_split!r} in {d.root} has {train_data.n_captions} caption; "
                         "training needs at least 2 (the loss needs a negative)")
    dims = {key: data.feature_dim for key, data in (("train", train_data), ("val", val_data))}
    if dims["train"] != dims["val"]:
        where = f"region file {d.regions}" if d.regions else str(d.root)
        raise ValueError(
            f"region features of {where}: split {d.val_split!r} (data.val_split) has {dims['val']}-d features but "
            f"split {d.train_split!r} (data.train_split) has {dims['train']}-d; the model is built for the "
            "training size, so validation would fail after the first epoch")


def train_experiment(cfg: ExperimentConfig, *, resume: bool = False, progress: bool = True,
                     regions: Optional[RegionSource] = None) -> Dict[str, Any]:
    """Train ``cfg``'s model on its training split, validating every epoch by rsum.

    With ``resume``, continue from ``<output_dir>/checkpoints/last`` (its config must describe the
    same model and data). ``regions``: an opened region source for ``cfg.data.regions`` (default:
    opened here with :func:`graphmatch.data.regions.open_regions`).
    ``progress``: progress bars (plain lines when not on a terminal); the one-line result of each
    epoch is printed either way.
    Before the first step the splits are checked (:func:`check_splits`; the config's value ranges
    were checked when it was loaded). A run killed at any point continues exactly with ``resume``
    (or, with no ``last`` checkpoint yet, starts again): records of ``log.jsonl`` past the
    checkpoint's epoch and temporary folders of an interrupted checkpoint write are removed first.
    Returns a summary: best epoch and metrics, checkpoint paths.
    """
    out = Path(cfg.output_dir)
    last_dir = out / "checkpoints" / "last"
    best_dir = out / "checkpoints" / "best"
    device = resolve_device(cfg.train.device)
    ds = build_dataset(cfg.data)
    ds.prepare(progress=progress)  # generates a synthetic set if absent; fast checks always, full scans cached

    saved_vocab: Optional[Vocabulary] = None
    if resume:
        d, old_cfg, _ = read_checkpoint_config(last_dir)
        for section in ("model", "data"):
            if getattr(old_cfg, section) != getattr(cfg, section):
                raise CheckpointError(
                    f"--resume: the '{section}' section of the config differs from the one in {d}/config.json; "
                    "resume with the same config (train.epochs may change) or start a new output_dir"
                )
        # these fix the batch order that the saved loop position points into
        for key in ("seed", "batch_size", "max_steps_per_epoch"):
            if getattr(old_cfg.train, key) != getattr(cfg.train, key):
                raise CheckpointError(
                    f"--resume: train.{key} is {getattr(cfg.train, key)!r} but the run in {d} used "
                    f"{getattr(old_cfg.train, key)!r}; the saved position would point into another batch order"
                )
        saved_vocab = load_checkpoint_vocab(d)
    elif (last_dir / "config.json").exists():
        raise FileExistsError(
            f"{out} already holds a run (checkpoints/last); pass --resume to continue it, or choose another "
            f"output_dir (--set output_dir=...)"
        )

    seed_everything(cfg.train.seed)
    regions = regions or ds.region_source()
    if regions is not None and cfg.train.num_workers:
        log.warning("data.regions: region files are read in the main process; train.num_workers=%d "
                    "is ignored", cfg.train.num_workers)
        cfg.train.num_workers = 0
    train_split = ds.load_split(cfg.data.train_split, regions=regions)
    vocab = saved_vocab or ds.build_vocab(train_split.captions)
    train_data = ds.matching_data(train_split, vocab, regions)
    val_data = ds.load_split(cfg.data.val_split, vocab, regions)
    check_splits(cfg, train_data, val_data)
    img_dim = train_data.feature_dim
    model = build_matcher(cfg.model, img_dim=img_dim, vocab=vocab, recipe=cfg.data.graph).to(device)
    model_meta = {"matcher": cfg.model.matcher.to_dict()["name"], "img_dim": img_dim, "vocab_size": len(vocab),
                  "n_parameters": sum(p.numel() for p in model.parameters())}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)
    loss_fn = build_loss(cfg.train.loss)

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    vocab.save(out / "vocab.json")

    val_images = None
    if cfg.data.max_val_images is not None:
        val_images = list(range(min(cfg.data.max_val_images, val_data.n_images)))

    def run_validation() -> Dict[str, Any]:
        e = cfg.eval
        return evaluate(model, val_data, batch_size=e.batch_size, img_chunk=e.img_chunk, cap_chunk=e.cap_chunk,
                        device=device, image_indices=val_images)

    trainer: Trainer  # defined below; the closures read it at call time

    def save(path: Path, with_trainer_state: bool) -> None:
        state = {"epoch": trainer.position[0], "global_step": trainer.global_step, **trainer.storage}
        save_checkpoint(path, model, cfg, vocab, model_meta=model_meta, state=state,
                        trainer_state=trainer.state_dict() if with_trainer_state else None)

    hooks = [
        StepLRHook(cfg.train.lr, cfg.train.lr_decay_epochs, cfg.train.lr_decay),
        LossEpochHook(),
        ProgressHook(log_every=cfg.train.log_every, enabled=progress),
        ValidationHook(run_validation, lambda: save(best_dir, False), log_file=out / "log.jsonl"),
        CheckpointHook(lambda: save(last_dir, True), every_steps=cfg.train.checkpoint_every),
    ]
    if cfg.train.max_minutes is not None:
        hooks.append(TimeLimitHook(cfg.train.max_minutes))
    sampler = CaptionBatchSampler(train_data.n_captions, cfg.train.batch_size, seed=cfg.train.seed,
                                  max_steps_per_epoch=cfg.train.max_steps_per_epoch)
    trainer = Trainer(model=model, optimizer=optimizer, loss_fn=loss_fn,
                      batches=PairLoader(train_data, sampler, num_workers=cfg.train.num_workers),
                      epochs=cfg.train.epochs, device=device, grad_clip=cfg.train.grad_clip, hooks=hooks)

    if resume:
        d = resolve_checkpoint_dir(last_dir)
        load_weights(model, d / "model.safetensors")
        trainer.load_state_dict(load_trainer_state(d))
        saved = read_state(d)
        for k in ("history", "best_rsum", "best_epoch", "best_metrics"):
            if k in saved:
                trainer.storage[k] = saved[k]
        log.info("resumed from %s at epoch %d step %d", d, trainer.epoch + 1, trainer.step_in_epoch)
    # what a killed run left past the checkpoint it continues from (or, starting afresh, at all)
    remove_stale_temporaries(out / "checkpoints")
    truncate_log(out / "log.jsonl", trainer.epoch)

    storage = trainer.train()
    plot_curves(storage.get("history", []), out / "curves.png")
    return {
        "output_dir": str(out),
        "best_checkpoint": str(best_dir),
        "last_checkpoint": str(last_dir),
        "best_epoch": storage.get("best_epoch"),
        "best_rsum": storage.get("best_rsum"),
        "best_metrics": storage.get("best_metrics"),
        "epochs_done": trainer.epoch,
        "history": storage.get("history", []),
    }


def truncate_log(path: Path, epochs_done: int) -> int:
    """Keep only the records of epochs ``1..epochs_done`` in the JSON-lines log ``path`` (rewritten
    atomically): a run killed after an epoch's validation record but before its ``last``
    checkpoint redoes that epoch on resume, so each epoch is logged once. Lines that are not a
    complete record (a write cut by a kill) are dropped too. Returns the number of lines dropped."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int) and rec["epoch"] <= epochs_done:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        from graphmatch.utils.atomic import atomic_write_text

        atomic_write_text(path, "".join(line + "\n" for line in kept))
        log.info("%s: dropped %d record(s) past epoch %d (the checkpoint the run continues from)", path, dropped,
                 epochs_done)
    return dropped


def plot_curves(history: list, path: Path) -> Optional[Path]:
    """Training loss and validation rsum per epoch as a PNG (skipped without matplotlib)."""
    if not history:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from graphmatch.utils.atomic import atomic_path

    ep = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 3.5))
    ax1.plot(ep, [h["loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss (log scale)", color="tab:blue")
    ax1.set_yscale("log")  # the sum-of-violations warm-up and hardest-negative losses differ in scale
    ax2 = ax1.twinx()
    ax2.plot(ep, [h.get("rsum", float("nan")) for h in history], "s-", color="tab:red", label="val rsum")
    ax2.set_ylabel("validation rsum", color="tab:red")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    except OSError as e:  # the checkpoints and the log are written already; a missing plot loses nothing
        log.warning("%s not drawn: %s", path, e)
        return None
    finally:
        plt.close(fig)
    return path
