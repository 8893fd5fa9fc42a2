"""Pausing the cyclic garbage collector while millions of long-lived objects are built."""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def paused_gc(freeze: bool = False):
    """Pause the cyclic garbage collector.

    Loading and planning build millions of small objects that stay alive and
    form no garbage cycles; with the collector running, each full collection
    rescans all of them, which costs more than the work itself at 100k
    extensions. Reference counting still frees everything as usual.

    With `freeze`, what was built is moved out of the collector's sight when
    the pause ends (`gc.freeze`): the CLI keeps a plan until it exits, and
    the first collection after the pause would otherwise scan every object
    allocated during it (seconds at 100k extensions).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if freeze:
                gc.freeze()
            gc.enable()
