"""How long to wait before trying again, written once: sends and profile fetches, outgoing
webhook deliveries, background loops after a failed pass, and change streams reopening."""

from __future__ import annotations

import random


def delay(base: float, failures: int, cap: float, jitter: bool = False) -> float:
    """The wait after `failures` failures in a row: base·2^(failures-1) seconds, at most `cap`;
    with `jitter`, a random half to all of it, so that many waiting do not all try at once."""
    wait = min(base * 2 ** max(failures - 1, 0), cap)
    return wait * random.uniform(0.5, 1.0) if jitter else wait
