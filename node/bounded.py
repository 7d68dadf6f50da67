"""The node's caches (blocks, results, tree nodes, state values, executions, checked
signatures): bounded, oldest out."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(OrderedDict[K, V]):
    """A dict of at most `capacity` entries; `put` drops the oldest one to make room.

    An OrderedDict, not a dict: popping a dict's first key again and again leaves a
    growing run of dead slots that each next(iter()) walks over, so a FIFO over a plain
    dict slowed down with its history (docs/PERFORMANCE.md, second round)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def put(self, key: K, value: V) -> None:
        self[key] = value  # a key already held keeps its place and the size
        if len(self) > self.capacity:
            self.popitem(last=False)
