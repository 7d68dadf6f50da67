"""State roots computed beside execution, in a thread of the replay's process.

Hashing the state tree costs about as much as executing the transactions, so the main
thread hands each block's write set to a tree thread and goes on executing the next
block; the root is collected a few blocks later and compared then. The tree
(contracts.memory_tree: the validators' trie, same roots, newest version only, changed
in place) is compiled and hashes without holding the GIL, so the two threads use two
cores without a process between them: nothing is pickled or piped.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from contracts.memory_tree import MemoryTree
from primitives.encoding import encode_trusted

def encode_writes(writes: dict[str, Any]) -> dict[str, bytes | None]:
    """A write set with each value as its canonical bytes, which the tree hashes. The values
    are the replayed execution's own (built from checked transactions), so the fast encoder
    serves."""
    return {key: None if value is None else encode_trusted(value) for key, value in writes.items()}


class StateRoots:
    """Feed write sets in height order; collect (height, root) answers in the same order.
    A write set must not change once submitted."""

    def __init__(self) -> None:
        self._tree = MemoryTree()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="audit-state-tree")
        self._pending: deque[tuple[int, Future[str]]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, height: int, writes: dict[str, Any]) -> None:
        self._pending.append((height, self._thread.submit(self._apply, writes)))

    def _apply(self, writes: dict[str, Any]) -> str:
        return self._tree.apply_encoded(encode_writes(writes))

    def ready(self) -> bool:
        return bool(self._pending) and self._pending[0][1].done()

    def next_root(self) -> tuple[int, str]:
        """The oldest outstanding answer, waiting for it if needed."""
        height, answer = self._pending.popleft()
        return height, answer.result()

    def close(self) -> None:
        """Stop the tree thread; roots still outstanding are dropped (the replay failed or
        ended, and nobody needs them)."""
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
