"""A testing aid: kill this process with ``SIGKILL`` at a named point of the code.

Fault-injection tests need a process to die at an exact point (between a validation record and the
next checkpoint, while a file is being replaced, ...) without timing games. The environment
variable ``GRAPHMATCH_FAULT`` chooses the point::

    GRAPHMATCH_FAULT="<point>[:key=value[,key=value...]]"
    GRAPHMATCH_FAULT="after_step:step=15"                    # training, after global step 15
    GRAPHMATCH_FAULT="after_validation:epoch=2"              # after epoch 2's log record, before any save
    GRAPHMATCH_FAULT="checkpoint_written:name=best,epoch=2"  # checkpoint complete in its temporary folder
    GRAPHMATCH_FAULT="before_replace:file=eval_test.json"    # an atomic write done, not yet renamed

A point fires when its name matches and every ``key=value`` equals the point's context (compared as
text). Without the variable (the normal case) :func:`fault_point` only reads the environment.
It is not a user feature and changes nothing else.
"""
from __future__ import annotations

import os
import signal

ENV = "GRAPHMATCH_FAULT"


def fault_point(point_name: str, /, **context: object) -> None:
    """Kill the process (``SIGKILL``: no clean-up runs) if ``$GRAPHMATCH_FAULT`` names this point."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, conditions = spec.partition(":")
    if point.strip() != point_name:
        return
    for cond in filter(None, (c.strip() for c in conditions.split(","))):
        key, _, value = cond.partition("=")
        if str(context.get(key.strip())) != value.strip():
            return
    os.kill(os.getpid(), signal.SIGKILL)
