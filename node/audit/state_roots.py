"""State roots computed beside execution: the state tree runs in its own process.

Hashing the state tree costs more than executing the transactions, so the main
process hands each block's write set to a tree process and goes on executing
the next block; the root comes back a few blocks later and is compared then.
The tree process keeps contracts' state tree decoded in memory
(contracts.state_tree.StateTree: the validators' tree code, newest version only). With processes=False the same work
runs inline (tests, one-core machines).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from typing import Any

from contracts.state_tree import StateTree
from primitives.encoding import canonical_bytes

PRELOAD_MODULES = ["node.audit.signatures", "node.audit.state_roots"]


def process_context() -> Any:
    """Worker processes come from a fork server, not from a fork of this process:
    the replay runs a fetching thread, and forking a threaded process is unsafe.
    The server preloads the contracts, so each worker starts in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD_MODULES)
    return context


def _tree_loop(connection: Any) -> None:
    tree = StateTree()
    while True:
        message = connection.recv()
        if message is None:
            connection.close()
            return
        height, encoded_writes = message
        connection.send((height, tree.apply_encoded(encoded_writes)))


def encode_writes(writes: dict[str, Any]) -> dict[str, bytes | None]:
    """A write set with each value as its canonical bytes: bytes cross the pipe for a fraction
    of what pickling the values costs, and the tree hashes them as they are."""
    return {key: None if value is None else canonical_bytes(value) for key, value in writes.items()}


class StateRoots:
    """Feed write sets in height order; collect (height, root) answers in the same order."""

    def __init__(self, *, processes: bool = True) -> None:
        self._inline_tree = StateTree()
        self._inline_answers: deque[tuple[int, str]] = deque()
        self._connection: Any = None
        self._process: Any = None
        self.in_flight = 0
        if processes:
            context = process_context()
            ours, theirs = context.Pipe()
            self._process = context.Process(
                target=_tree_loop, args=(theirs,), name="audit-state-tree", daemon=True
            )
            self._process.start()
            theirs.close()
            self._connection = ours

    def submit(self, height: int, writes: dict[str, Any]) -> None:
        self.in_flight += 1
        if self._connection is not None:
            self._connection.send((height, encode_writes(writes)))
            return
        self._inline_answers.append((height, self._inline_tree.apply(writes)))

    def ready(self) -> bool:
        if self._connection is not None:
            return bool(self._connection.poll())
        return bool(self._inline_answers)

    def next_root(self) -> tuple[int, str]:
        """The oldest outstanding answer, waiting for it if needed."""
        self.in_flight -= 1
        if self._connection is not None:
            try:
                return self._connection.recv()  # type: ignore[no-any-return]
            except EOFError:
                raise RuntimeError("the state-tree process stopped") from None
        return self._inline_answers.popleft()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._connection.close()
            self._connection = None
        if self._process is not None:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
            self._process = None
