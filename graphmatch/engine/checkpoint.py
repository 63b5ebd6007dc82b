"""Checkpoints are data, not pickles.

A checkpoint is a folder::

    model.safetensors   weights (safetensors: loading never executes code)
    config.json         {"format": "graphmatch-checkpoint", "version": 1, "config": {...}, "model": {...}}
    vocab.json          the vocabulary the text encoder was trained with
    state.json          epoch, step, best score, metric history
    trainer.pt          optimizer / RNG state, read with ``torch.load(weights_only=True)`` (resume only)

It is written into a temporary sibling folder and renamed into place, so a crash never leaves a
half-written checkpoint; the previous one stays readable until the new one is complete. A write that
fails (disk full, or any other ``OSError``) raises :class:`CheckpointWriteError` naming the folder
and the cause, removes the temporary folder and leaves the previous checkpoint as it was.

``config.json`` records ``vocab_sha256``, the SHA-256 of the vocabulary's words in id order
(:func:`vocab_sha256`); loading checks it, so a ``vocab.json`` swapped for another one of the same
size is an error naming the file. Checkpoints written before the hash existed have none and load
without the check.

Files in a checkpoint folder that the writer did not write (e.g. the ``eval_<split>.json`` reports
of ``graphmatch eval``) are not deleted when the checkpoint is replaced: they are moved to
``<folder>.files/epoch-<E>/`` beside it, ``E`` being the replaced checkpoint's ``state.json`` epoch
(the epoch its reports were computed at).
"""
from __future__ import annotations

import errno as errno_mod
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from graphmatch.config import ConfigError, ExperimentConfig, config_from_dict
from graphmatch.data.vocab import Vocabulary
from graphmatch.utils.faults import fault_point
from graphmatch.utils.state_dict import check_state_dict
from graphmatch.utils.atomic import NO_SPACE_ERRNOS, fsync_dir, fsync_tree, os_error_text, replace_dir, write_bytes

FORMAT = "graphmatch-checkpoint"
VERSION = 1
PathLike = Union[str, Path]
#: The files the checkpoint writer writes; anything else in a checkpoint folder is the user's.
CHECKPOINT_FILES = ("model.safetensors", "config.json", "vocab.json", "state.json", "trainer.pt")
TMP_MARK = ".tmp-"  # temporary folders are ``.<name>.tmp-XXXXXXXX`` beside the checkpoint

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupted, or from another model."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (``errno`` is the OS error number, e.g. ``ENOSPC``)."""

    def __init__(self, message: str, errno: Optional[int] = None) -> None:
        super().__init__(message)
        self.errno = errno


def vocab_sha256(vocab: Vocabulary) -> str:
    """SHA-256 of the vocabulary's words in id order (canonical JSON, UTF-8): equal exactly when
    the two vocabularies map every word to the same id."""
    text = json.dumps(vocab.words, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_error(path: Path, e: OSError, current: str) -> CheckpointWriteError:
    code = e.errno
    if code in NO_SPACE_ERRNOS:
        what = os_error_text(e)
    else:
        what = e.strerror or str(e)
        if code is not None:
            what += f" ({errno_mod.errorcode.get(code, code)})"
    kept = (f"the previous checkpoint {path} is unchanged" if path.exists()
            or path.with_name(path.name + ".old").exists() else f"nothing was written at {path}")
    return CheckpointWriteError(
        f"cannot save checkpoint {path}: {what} (while writing {current}); {kept} and no temporary "
        "files were left", errno=code)


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
    """Write a checkpoint folder at ``path`` atomically (see module docstring).

    Every file is serialised in memory and written with plain file writes, so a full disk is an
    ``OSError`` (not a serialiser's message), turned into :class:`CheckpointWriteError`. Files of
    the replaced folder that the writer did not write are kept (module docstring).
    """
    path = Path(path)
    current = "the temporary folder"
    tmp: Optional[Path] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent))
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        files = [("model.safetensors", lambda: safetensors_bytes(weights, metadata={"format": FORMAT})),
                 ("config.json", lambda: _json_bytes({"format": FORMAT, "version": VERSION, "config": cfg.to_dict(),
                                                      "model": model_meta, "vocab_sha256": vocab_sha256(vocab)})),
                 ("vocab.json", lambda: _json_bytes(vocab.to_dict(), indent=None)),
                 ("state.json", lambda: _json_bytes(state))]
        if trainer_state is not None:
            files.append(("trainer.pt", lambda: _torch_bytes(trainer_state)))
        for name, make in files:
            current = name
            write_bytes(tmp / name, make(), fsync=False)  # the tree is fsynced below
        current = "the new files (flushing them to disk)"
        fsync_tree(tmp)
        fault_point("checkpoint_written", name=path.name, epoch=state.get("epoch"))
        current = "the folder (moving the new checkpoint into place)"
        _keep_foreign_files(path)
        replace_dir(tmp, path)
    except OSError as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(path, e, current) from e
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _json_bytes(obj: Any, indent: Optional[int] = 2) -> bytes:
    return (json.dumps(obj, indent=indent, sort_keys=False) + "\n").encode("utf-8")


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _keep_foreign_files(path: Path) -> None:
    """Move what the writer did not write out of the checkpoint folder about to be replaced, to
    ``<path>.files/epoch-<E>/``; stale atomic-write temporaries (``.*.tmp``) are deleted."""
    src = path if path.is_dir() else path.with_name(path.name + ".old")
    if not src.is_dir():
        return
    foreign = []
    for p in sorted(src.iterdir()):
        if p.name in CHECKPOINT_FILES:
            continue
        if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
            p.unlink()  # an atomic write (e.g. of a report) killed before its rename
            continue
        foreign.append(p)
    if not foreign:
        return
    try:
        epoch = json.loads((src / "state.json").read_text(encoding="utf-8")).get("epoch")
    except (OSError, ValueError, AttributeError):
        epoch = None
    base = path.with_name(path.name + ".files") / f"epoch-{epoch if epoch is not None else 'unknown'}"
    dest, n = base, 1
    while any((dest / p.name).exists() for p in foreign):  # never overwrite what an earlier move kept
        n += 1
        dest = base.with_name(f"{base.name}-{n}")
    dest.mkdir(parents=True, exist_ok=True)
    for p in foreign:
        os.replace(p, dest / p.name)
    fsync_dir(dest)
    log.warning("%s: kept %s (of the replaced checkpoint, epoch %s) in %s", path,
                ", ".join(p.name for p in foreign), epoch, dest)


def remove_stale_temporaries(checkpoints_dir: PathLike) -> list:
    """Delete the temporary folders (``.<name>.tmp-*``, and ``.<name>.XXXXXXXX`` of older versions)
    that a checkpoint writer killed before its rename left in ``checkpoints_dir``. Only for a folder
    no other process is writing to (a run being started or resumed). Returns what was removed."""
    d = Path(checkpoints_dir)
    removed = []
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        if p.is_dir() and p.name.startswith(".") and (TMP_MARK in p.name or len(p.name.split(".")) == 3):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    if removed:
        log.info("removed temporary checkpoint folders of an interrupted run: %s", ", ".join(map(str, removed)))
    return removed


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
    d, cfg, meta = _read_config_json(path)
    return d, cfg, meta.get("model", {})


def load_checkpoint_vocab(path: PathLike) -> Vocabulary:
    """The vocabulary of a checkpoint, checked against the ``vocab_sha256`` in its ``config.json``
    (absent in checkpoints written before it existed: those load unchecked)."""
    d, _, meta = _read_config_json(path)
    f = d / "vocab.json"
    try:
        vocab = Vocabulary.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{f}: {e}") from None
    expected = meta.get("vocab_sha256")
    if expected is not None and vocab_sha256(vocab) != expected:
        raise CheckpointError(
            f"{f}: not the vocabulary this checkpoint was trained with ({len(vocab)} words, SHA-256 "
            f"{vocab_sha256(vocab)[:12]}… but {d / 'config.json'} records {str(expected)[:12]}…); the weights "
            "would read other words; restore the checkpoint's own vocab.json")
    return vocab


def _read_config_json(path: PathLike) -> Tuple[Path, ExperimentConfig, Dict[str, Any]]:
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
    return d, cfg, meta


def load_weights(model: torch.nn.Module, file: PathLike) -> None:
    """Load safetensors weights into ``model``; names missing/unexpected/mis-shaped tensors."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"weights file not found: {file}")
    try:
        weights = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: corrupted or not a safetensors file ({e})") from None
    check_state_dict(model, weights, source=f"{file}: weights", what="model its config describes",
                     hint="checkpoint from another model?", error=CheckpointError)
    model.load_state_dict(weights)


def load_checkpoint(path: PathLike, *, map_location: str = "cpu") -> Tuple[torch.nn.Module, ExperimentConfig, Vocabulary, Dict[str, Any]]:
    """Rebuild the model of a checkpoint and load its weights.

    Returns ``(model, config, vocab, state)``; the model is in eval mode on ``map_location``.
    """
    from graphmatch.models import build_matcher

    d, cfg, meta = read_checkpoint_config(path)
    vocab = load_checkpoint_vocab(d)
    if "img_dim" not in meta:
        raise CheckpointError(f"{d / 'config.json'}: the 'model' record has no img_dim")
    # pretrained parts (word vectors, ...) are in the weights already: their files are not read
    model = build_matcher(cfg.model, img_dim=int(meta["img_dim"]), vocab=vocab, recipe=cfg.data.graph,
                          pretrained=False)
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
