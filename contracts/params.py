"""Chain parameters (PROTOCOL §3): defaults, allowed ranges and validation.

Canonical integers are non-negative, so `utc_offset_minutes` can only name zones
at or east of UTC (0..840); the bounds below keep every derived time far from
overflow.
"""

from __future__ import annotations

from typing import Any

from contracts.transactions import MAX_HOLD_DAYS, is_int

DAY_MS = 86_400_000
MINUTE_MS = 60_000

DEFAULT_PARAMS: dict[str, int] = {
    "min_age_years": 14,
    "first_hold_days": 180,
    "later_hold_days": 730,
    "utc_offset_minutes": 480,
    "max_clock_drift_ms": 2000,
    "max_block_txs": 5000,
    "daily_gift_limit": 0,
}

PARAM_RANGES: dict[str, tuple[int, int]] = {
    "min_age_years": (0, 150),
    "first_hold_days": (0, MAX_HOLD_DAYS),
    "later_hold_days": (0, MAX_HOLD_DAYS),
    "utc_offset_minutes": (0, 840),
    "max_clock_drift_ms": (1, 3_600_000),
    # A block must be able to carry at least one transaction; the upper bound
    # is PROTOCOL §3's default, so a block's work stays bounded.
    "max_block_txs": (1, 5000),
    "daily_gift_limit": (0, 1_000_000),
}


def params_problem(changes: Any) -> str | None:
    """What is wrong with a map of parameter values, or None if every one is known and in range."""
    if not isinstance(changes, dict):
        return "parameters are a map"
    for name in sorted(changes):
        if name not in PARAM_RANGES:
            return "unknown parameter %r" % name
        low, high = PARAM_RANGES[name]
        value = changes[name]
        if not is_int(value) or not low <= value <= high:
            return "parameter %r must be an integer in %d..%d" % (name, low, high)
    return None
