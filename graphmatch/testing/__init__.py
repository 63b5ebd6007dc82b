"""Reference implementations the tests and benchmarks compare the fast paths with.

* :func:`scan_t2i_loop` / :func:`scan_i2t_loop` — SCAN scored caption by caption as the released
  code does (:mod:`graphmatch.testing.reference`), the reference of the batched
  :func:`graphmatch.nn.functional.scan_t2i` / :func:`~graphmatch.nn.functional.scan_i2t`.

Nothing in the package's training or evaluation path imports this package.
"""

from __future__ import annotations

from graphmatch.testing.reference import scan_i2t_loop, scan_t2i_loop

__all__ = ["scan_t2i_loop", "scan_i2t_loop"]
