"""Progress reporting that suits where the output goes.

:func:`progress` returns a tqdm bar when the stream it writes to is a terminal (or a notebook), and
otherwise a :class:`PlainProgress` that writes *sparse, newline-terminated* lines such as::

    epoch 1/12: 47/94 (50%), 5.2 it/s, 9 s, loss=36.557

so a log file or a pipe never receives ``\\r`` redraws. Both have the API the package uses:
iteration, ``update(n)``, ``set_postfix(**kw)`` / ``set_postfix_str(s)``, ``close()``, ``n`` /
``total``, and use as a context manager; :func:`write` prints a message without breaking a bar.

Cadence of the plain lines (guaranteed): with a known ``total``, a line when the count crosses the
next 10 % step, but never within ``interval`` seconds of the previous line of the same bar (the
steps crossed meanwhile are reported by the next line); with an unknown total, at most one line
per ``interval`` seconds (at least 1 s). A bar that printed a line prints a last one when it is
closed (count, elapsed time, rate); a bar that finished within ``interval`` seconds prints nothing.
``interval`` defaults to ``$GRAPHMATCH_PROGRESS_INTERVAL`` seconds, else
:data:`DEFAULT_INTERVAL`. Lines go to ``file`` (default ``sys.stderr``) and are flushed, after
flushing ``sys.stdout`` so that both streams redirected to one file stay in order.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO

__all__ = ["progress", "write", "PlainProgress", "DEFAULT_INTERVAL", "INTERVAL_ENV", "is_terminal"]

#: Environment variable: seconds between two plain progress lines of one bar.
INTERVAL_ENV = "GRAPHMATCH_PROGRESS_INTERVAL"
#: Default seconds between two plain progress lines of one bar.
DEFAULT_INTERVAL = 10.0


def _default_interval() -> float:
    raw = os.environ.get(INTERVAL_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${INTERVAL_ENV}={raw!r} is not a number of seconds") from None
    if not value >= 0:
        raise ValueError(f"${INTERVAL_ENV}={raw!r} must be >= 0 seconds")
    return value


def _in_notebook(stream: Any) -> bool:
    return type(stream).__module__.split(".")[0] == "ipykernel"


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (or a notebook output), where redrawn bars
    are readable."""
    if _in_notebook(stream):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)}:{int(s % 60):02d} min"
    return f"{int(s // 3600)}:{int(s % 3600 // 60):02d} h"


class PlainProgress:
    """Progress as sparse plain lines (see the module docstring); ``disable=True`` prints nothing.

    Accepts and ignores the tqdm options that only concern drawing (``leave``, ``dynamic_ncols``,
    ``mininterval``, ``position``, ...).
    """

    def __init__(self, iterable: Optional[Iterable[Any]] = None, *, total: Optional[float] = None,
                 desc: Optional[str] = None, unit: str = "it", initial: float = 0, disable: bool = False,
                 file: Optional[TextIO] = None, interval: Optional[float] = None, **_ignored: Any) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc or ""
        self.unit = (unit or "it").strip() or "it"
        self.n = initial
        self.initial = initial
        self.disable = disable
        self.file = file
        self.interval = _default_interval() if interval is None else float(interval)
        self.postfix = ""
        self.lines = 0  # lines written so far
        self._start = time.monotonic()
        self._last_line = self._start
        self._last_n = initial
        self._next_step = self._step_of(initial) + 1
        self._closed = False

    # -- tqdm API ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar has no iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable or self._closed:
            return
        now = time.monotonic()
        if self.total:
            step = self._step_of(self.n)
            if step >= self._next_step and now - self._last_line >= self.interval:
                self._emit(now)
                self._next_step = step + 1
        elif now - self._last_line >= max(self.interval, 1.0):
            self._emit(now)

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: Optional[str] = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.lines and self.n != self._last_n:
            self._emit(time.monotonic())

    @staticmethod
    def write(s: str, file: Optional[TextIO] = None, end: str = "\n", nolock: bool = False) -> None:
        write(s, file=file, end=end)

    # -- lines -------------------------------------------------------------------------------

    def _step_of(self, n: float) -> int:
        return int(10 * n // self.total) if self.total else 0

    def format_line(self, now: Optional[float] = None) -> str:
        """The text of the line this bar would print now."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 0.0)
        done = self.n - self.initial
        n = int(self.n) if float(self.n).is_integer() else self.n
        parts = [f"{n}/{int(self.total) if float(self.total).is_integer() else self.total} "
                 f"({100.0 * self.n / self.total:.0f}%)" if self.total else f"{n} {self.unit}"]
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/{self.unit}")
        parts.append(_fmt_seconds(elapsed))
        if self.postfix:
            parts.append(self.postfix)
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts)

    def _emit(self, now: float) -> None:
        stream = self.file or sys.stderr
        if stream is not sys.stdout:
            _flush(sys.stdout)
        try:
            stream.write(self.format_line(now) + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            return
        self.lines += 1
        self._last_line = now
        self._last_n = self.n


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass


def progress(iterable: Optional[Iterable[Any]] = None, *, total: Optional[float] = None, desc: Optional[str] = None,
             unit: str = "it", disable: bool = False, file: Optional[TextIO] = None,
             interval: Optional[float] = None, **tqdm_options: Any) -> Any:
    """A progress bar over ``iterable`` (or updated by hand up to ``total``).

    On a terminal (``file``, default ``sys.stderr``, is a tty) or in a notebook: a tqdm bar
    (``tqdm.auto``) with ``tqdm_options`` (``leave``, ``initial``, ``dynamic_ncols``, ...).
    Elsewhere (a file, a pipe): a :class:`PlainProgress` writing sparse lines; ``interval``
    overrides its seconds between lines. ``disable=True``: nothing is shown.
    """
    stream = file if file is not None else sys.stderr
    if not disable and is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=file, **tqdm_options)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, disable=disable, file=file,
                         interval=interval, **tqdm_options)


def write(s: str, file: Optional[TextIO] = None, end: str = "\n") -> None:
    """Print ``s`` (default to ``sys.stdout``) without breaking a progress bar drawn on a terminal;
    elsewhere a plain, flushed print."""
    stream = file if file is not None else sys.stdout
    if is_terminal(stream) or is_terminal(sys.stderr):
        from tqdm.auto import tqdm

        tqdm.write(s, file=file, end=end)
        _flush(stream)
        return
    stream.write(s + end)
    _flush(stream)
