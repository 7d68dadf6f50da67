"""The fresh simulator seeds of this test run, drawn once per process."""

from __future__ import annotations

import os
import secrets

FRESH_SEED_COUNT = 100
# YUXI_FRESH_SEEDS="1,2,3" replays the fresh seeds of an earlier run.
FRESH_SEEDS = (
    [int(seed) for seed in os.environ["YUXI_FRESH_SEEDS"].split(",") if seed]
    if os.environ.get("YUXI_FRESH_SEEDS")
    else [secrets.randbelow(2**32) for _ in range(FRESH_SEED_COUNT)]
)
