"""Reading, writing and loading extractor weights, without executing code from a file.

* :func:`load_state_dict_file` reads ``.safetensors`` (safetensors) or ``.pth`` / ``.pt``
  (``torch.load(weights_only=True)``) and unwraps ``{"model": ...}`` / ``{"state_dict": ...}``;
  pickles of other objects (detectron2's ``.pkl`` model-zoo files) are refused.
* :func:`load_weights_into` loads a file into a model strictly; a file that does not fit is a
  :class:`WeightsError` from the shared check :func:`graphmatch.utils.state_dict.check_state_dict`
  (missing keys, unexpected keys and shape mismatches: counts and the first keys of each).
* :func:`save_state_dict_file` writes safetensors or a tensors-only ``torch.save``.
* :func:`file_sha256` hashes a weights file for the extractor's provenance.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import torch

from graphmatch.utils.atomic import file_sha256 as _file_sha256
from graphmatch.utils.state_dict import StateDictFit, check_state_dict

__all__ = ["WeightsError", "load_state_dict_file", "save_state_dict_file", "load_weights_into",
           "class_count_hint", "file_sha256"]


class WeightsError(RuntimeError):
    """Weights are missing, unreadable, or do not fit the model."""


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    return _file_sha256(path, block_size=chunk)


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a weights file without executing code from it.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(path, map_location="cpu", weights_only=True)``. A checkpoint that wraps the state dict
    under ``"model"`` or ``"state_dict"`` is unwrapped. Pickles of other objects (e.g. detectron2's
    ``.pkl`` model-zoo files) are refused.

    Raises:
        WeightsError: naming the file, when it is missing, empty, unreadable or not a state dict.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.isdir(path):
        raise WeightsError(f"weights path is a directory, not a file: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"weights file is empty (0 bytes): {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - corrupt zip / pickle / header errors come in many types
        hint = ""
        if path.endswith(".pkl"):
            hint = (" (.pkl files are pickles that may run code when loaded; convert them once, in an "
                    "environment you trust, to a .pth state dict or .safetensors)")
        raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {e}{hint}") from e
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"weights file {path} does not hold a state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"weights file {path}: entries are not tensors: {bad[:5]}")
    return obj


def save_state_dict_file(state_dict: Dict[str, torch.Tensor], path: str) -> None:
    """Write a state dict: safetensors for ``*.safetensors``, else ``torch.save`` of tensors only."""
    path = os.fspath(path)
    sd = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.clone() for k, v in sd.items()}, path)
    else:
        torch.save(sd, path)


def class_count_hint(fit: StateDictFit) -> Optional[str]:
    """The hint for weights whose classifier has another class count than the vocabulary."""
    if any("cls_score" in key for key, _, _ in fit.mismatched):
        return ("the class count of the weights differs from len(class_names)+1; pass the "
                "class_names file the weights were trained with")
    return None


def load_weights_into(model: torch.nn.Module, path: str, *, what: str = "model") -> None:
    """Load a weights file into ``model`` strictly.

    Args:
        model: the model; every key of its ``state_dict()`` must be in the file, with its shape.
        path: the weights file (see :func:`load_state_dict_file`).
        what: the model, for the message (e.g. ``"torchvision resnet50_fpn model with 1601
            classes"``).

    Raises:
        WeightsError: the file cannot be read, or does not fit: the message names the file, and
            the counts and first keys of the missing, unexpected and mis-shaped entries (and the
            class-names file when the classifier's class count differs).
    """
    sd = load_state_dict_file(path)
    check_state_dict(model, sd, source=f"weights file {path}", what=what, hint=class_count_hint,
                     error=WeightsError)
    model.load_state_dict(sd, strict=True)
