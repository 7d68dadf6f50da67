"""The node's clock: wall time plus an offset that only a development chain may set."""

from __future__ import annotations

import time


class NodeClock:
    """Milliseconds since the Unix epoch, `offset_ms` ahead of the wall clock."""

    def __init__(self, offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms
