"""Checkpoints are data, not pickles.

A checkpoint is a folder::

    model.safetensors   weights (safetensors: loading never executes code)
    config.json         {"format": "graphmatch-checkpoint", "version": 1, "config": {...}, "model": {...}}
    vocab.json          the vocabulary the text encoder was trained with
    state.json          epoch, step, best score, metric history
    trainer.pt          optimizer / RNG state, read with ``torch.load(weights_only=True)`` (resume only)

It is written into a temporary sibling folder and renamed into place, so a crash never leaves a
half-written checkpoint; the previous one stays readable until the new one is complete.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from graphmatch.config import ConfigError, ExperimentConfig, config_from_dict
from graphmatch.data.vocab import Vocabulary
from graphmatch.utils.io import atomic_write_json, fsync_dir, replace_dir

FORMAT = "graphmatch-checkpoint"
VERSION = 1
PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupted, or from another model."""


def save_checkpoint(
    path: PathLike,
    model: torch.nn.Module,
    cfg: ExperimentConfig,
    vocab: Vocabulary,
    *,
    model_meta: Dict[str, Any],
    state: Dict[str, Any],
    trainer_state: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically (see module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        atomic_write_json(
            tmp / "config.json",
            {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "model": model_meta},
        )
        vocab.save(tmp / "vocab.json")
        atomic_write_json(tmp / "state.json", state)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / "trainer.pt")
        _fsync_tree(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` and the folder itself to disk."""
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(folder)


def resolve_checkpoint_dir(path: PathLike) -> Path:
    """A checkpoint folder from a folder, a file inside it, or a run folder (→ ``checkpoints/best``)."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.exists():
        old = p.with_name(p.name + ".old")  # a crash between the two renames of replace_dir
        if old.is_dir():
            return old
        raise CheckpointError(f"checkpoint not found: {path}")
    if (p / "checkpoints" / "best" / "config.json").exists():
        p = p / "checkpoints" / "best"
    return p


def read_checkpoint_config(path: PathLike) -> Tuple[Path, ExperimentConfig, Dict[str, Any]]:
    """``(folder, config, model_meta)`` of a checkpoint, with clear errors for foreign files."""
    d = resolve_checkpoint_dir(path)
    cfg_file = d / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{d}: no config.json; not a graphmatch checkpoint folder")
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: corrupted (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_file}: not a graphmatch checkpoint (format field is {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{cfg_file}: checkpoint format version {meta.get('version')!r}, this graphmatch reads {VERSION}")
    try:
        cfg = config_from_dict(meta["config"], str(cfg_file))
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{cfg_file}: bad config: {e}") from None
    return d, cfg, meta.get("model", {})


def load_weights(model: torch.nn.Module, file: PathLike) -> None:
    """Load safetensors weights into ``model``; names missing/unexpected/mis-shaped tensors."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"weights file not found: {file}")
    try:
        weights = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: corrupted or not a safetensors file ({e})") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k}: file {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{file}: weights do not fit the model ({', '.join(parts)}); checkpoint from another model?")
    model.load_state_dict(weights)


def load_checkpoint(path: PathLike, *, map_location: str = "cpu") -> Tuple[torch.nn.Module, ExperimentConfig, Vocabulary, Dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights.

    Returns ``(model, config, vocab, state)``; the model is in eval mode on ``map_location``.
    """
    from graphmatch.models import build_matcher

    d, cfg, meta = read_checkpoint_config(path)
    try:
        vocab = Vocabulary.load(d / "vocab.json")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{d / 'vocab.json'}: {e}") from None
    if "img_dim" not in meta:
        raise CheckpointError(f"{d / 'config.json'}: the 'model' record has no img_dim")
    model_cfg = copy.deepcopy(cfg.model)
    # word vectors are in the weights already; the original file is not needed to rebuild
    model_cfg.text.word_vectors = None
    model = build_matcher(model_cfg, img_dim=int(meta["img_dim"]), vocab=vocab)
    load_weights(model, d / "model.safetensors")
    state: Dict[str, Any] = {}
    if (d / "state.json").is_file():
        try:
            state = json.loads((d / "state.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{d / 'state.json'}: corrupted ({e})") from None
    model.to(map_location).eval()
    return model, cfg, vocab, state


def read_state(path: PathLike) -> Dict[str, Any]:
    """``state.json`` of a checkpoint (epoch, step, best score, history)."""
    f = resolve_checkpoint_dir(path) / "state.json"
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{f}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f}: corrupted ({e})") from None


def load_trainer_state(path: PathLike) -> Dict[str, Any]:
    """The optimizer / RNG state of a checkpoint (``weights_only=True``: no code runs)."""
    f = resolve_checkpoint_dir(path) / "trainer.pt"
    if not f.is_file():
        raise CheckpointError(f"{f}: missing; this checkpoint cannot resume training")
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupted / foreign files
        raise CheckpointError(f"{f}: corrupted or not a trainer state ({type(e).__name__}: {e})") from None
