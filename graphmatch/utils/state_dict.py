"""One check that a state dict fits a model: missing keys, unexpected keys and shape mismatches.

Used wherever weights from a file meet a model (checkpoints, detector weights), so every
"these weights do not fit" error reads the same::

    from graphmatch.utils.state_dict import check_state_dict

    state = safetensors.torch.load_file(path)
    check_state_dict(model, state, source=f"weights file {path}")   # raises StateDictError
    model.load_state_dict(state)

    fit = compare_state_dict(model, state)     # no exception: inspect fit.missing, ...
    if not fit.ok:
        print(fit.describe())

A message names the source, what it was loaded into, and for each kind of mismatch its count and
the first few keys, e.g. ``weights file w.pth does not fit the model: 1 shape mismatches (e.g.
fc.weight: file (3, 4) vs model (5, 4)); 2 missing keys (e.g. ['fc.bias', 'out.weight'])``.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch

__all__ = ["StateDictError", "StateDictFit", "compare_state_dict", "check_state_dict"]

#: a shape, or None for a value that is not a tensor
Shape = Optional[Tuple[int, ...]]


class StateDictError(ValueError):
    """A state dict does not fit a model. ``fit`` holds the :class:`StateDictFit` found."""

    def __init__(self, message: str, fit: Optional["StateDictFit"] = None) -> None:
        super().__init__(message)
        self.fit = fit


@dataclass
class StateDictFit:
    """How a state dict fits a model.

    Attributes:
        missing: keys the model has and the state dict lacks, in the model's order.
        unexpected: keys the state dict has and the model lacks, in the state dict's order.
        mismatched: ``(key, shape in the state dict, shape in the model)`` of keys both have with
            different shapes, in the model's order (a shape is None for a value that is not a
            tensor).
    """

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 3) -> str:
        """The mismatches as one line: counts and the first ``limit`` keys of each kind;
        ``"fits"`` when there are none."""
        if self.ok:
            return "fits"

        def shape(s: Shape) -> str:
            return "not a tensor" if s is None else str(tuple(s))

        parts: List[str] = []
        if self.mismatched:
            shown = "; ".join(f"{k}: file {shape(a)} vs model {shape(b)}"
                              for k, a, b in self.mismatched[:limit])
            more = " ..." if len(self.mismatched) > limit else ""
            parts.append(f"{len(self.mismatched)} shape mismatches (e.g. {shown}{more})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys (e.g. {self.missing[:limit]})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys (e.g. {self.unexpected[:limit]})")
        return "; ".join(parts)

    def message(self, *, source: str = "state dict", what: str = "model",
                hint: Optional[str] = None, limit: int = 3) -> str:
        """The error message: ``"<source> does not fit the <what>: <describe()>[; <hint>]"``."""
        text = f"{source} does not fit the {what}: {self.describe(limit)}"
        return f"{text}; {hint}" if hint else text


def _shape(value: Any) -> Shape:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        return None


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(key == p or fnmatch.fnmatchcase(key, p) for p in patterns)


def compare_state_dict(expected: Union[torch.nn.Module, Mapping[str, Any]],
                       state: Mapping[str, Any], *, ignore: Iterable[str] = ()) -> StateDictFit:
    """Compare ``state`` with what ``expected`` needs, without raising.

    Args:
        expected: the model (its ``state_dict()`` is taken), or a mapping of the expected keys to
            tensors (or anything with a ``shape``).
        state: the state dict to load.
        ignore: keys, or ``fnmatch`` patterns (``"*.num_batches_tracked"``), left out on both
            sides.

    Returns:
        the :class:`StateDictFit`.
    """
    own = expected.state_dict() if isinstance(expected, torch.nn.Module) else expected
    patterns = list(ignore)
    missing, mismatched = [], []
    for key, value in own.items():
        if _matches(key, patterns):
            continue
        if key not in state:
            missing.append(key)
            continue
        a, b = _shape(state[key]), _shape(value)
        if a is None or a != b:
            mismatched.append((key, a, b))
    unexpected = [k for k in state if k not in own and not _matches(k, patterns)]
    return StateDictFit(missing=missing, unexpected=unexpected, mismatched=mismatched)


def check_state_dict(expected: Union[torch.nn.Module, Mapping[str, Any]],
                     state: Mapping[str, Any], *, source: str = "state dict",
                     what: str = "model", ignore: Iterable[str] = (), hint: Optional[str] = None,
                     error: Type[Exception] = StateDictError, limit: int = 3) -> StateDictFit:
    """Raise unless ``state`` fits ``expected`` exactly (the test ``load_state_dict(strict=True)``
    makes, with a readable message); return the (clean) :class:`StateDictFit` otherwise.

    Args:
        expected / state / ignore: see :func:`compare_state_dict`.
        source: what the state dict is, for the message (e.g. ``"weights file w.pth"``).
        what: what it is loaded into (e.g. ``"torchvision resnet50_fpn model with 1601 classes"``).
        hint: appended to the message (e.g. how to get weights that fit); may be a callable
            ``hint(fit) -> Optional[str]``, for a hint that depends on which keys mismatch.
        error: the exception type raised (constructed with the message); its ``fit`` attribute
            is set to the :class:`StateDictFit` where the type allows it.
        limit: keys shown per kind of mismatch.

    Raises:
        error: naming the source, the counts and the first keys of each kind of mismatch.
    """
    fit = compare_state_dict(expected, state, ignore=ignore)
    if fit.ok:
        return fit
    text = hint(fit) if callable(hint) else hint
    message = fit.message(source=source, what=what, hint=text, limit=limit)
    exc = error(message)
    try:
        exc.fit = fit  # type: ignore[attr-defined]
    except AttributeError:
        pass
    raise exc
