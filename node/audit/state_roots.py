"""State roots computed beside execution: the state tree runs in its own process.

Hashing the state tree costs more than executing the transactions, so the main
process hands each block's write set to a tree process and goes on executing
the next block; the root comes back a few blocks later and is compared then.
The tree process keeps the newest version of the state tree in memory and changes it in
place (contracts.memory_tree: the validators' trie, same roots, without their hash-addressed
node store). With processes=False the same work runs inline (tests, one-core machines).
"""

from __future__ import annotations

import gc
import multiprocessing
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from contracts.memory_tree import MemoryTree
from primitives.encoding import encode_trusted

PRELOAD_MODULES = ["node.audit.signatures", "node.audit.state_roots"]


def process_context() -> Any:
    """Worker processes come from a fork server, not from a fork of this process:
    the replay runs a fetching thread, and forking a threaded process is unsafe.
    The server preloads the contracts, so each worker starts in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD_MODULES)
    return context


def _tree_loop(requests: Any, answers: Any) -> None:
    tree = MemoryTree()
    while True:
        message = requests.recv()
        if message is None:
            return
        height, encoded_writes = message
        answers.send((height, tree.apply_encoded(encoded_writes)))
        # The tree is some hundred thousand long-lived nodes: kept out of the collector's
        # generations (as the main process keeps the state), full collections stay cheap.
        gc.freeze()


def encode_writes(writes: dict[str, Any]) -> dict[str, bytes | None]:
    """A write set with each value as its canonical bytes: bytes cross the pipe for a fraction
    of what pickling the values costs, and the tree hashes them as they are. The values are
    the replayed execution's own (built from checked transactions), so the fast encoder
    serves."""
    return {key: None if value is None else encode_trusted(value) for key, value in writes.items()}


class StateRoots:
    """Feed write sets in height order; collect (height, root) answers in the same order."""

    def __init__(self, *, processes: bool = True) -> None:
        self._inline_tree = MemoryTree()
        self._inline_answers: deque[tuple[int, str]] = deque()
        self._process: Any = None
        self.in_flight = 0
        if processes:
            context = process_context()
            their_requests, self._requests = context.Pipe(duplex=False)
            self._answers, their_answers = context.Pipe(duplex=False)
            self._process = context.Process(
                target=_tree_loop,
                args=(their_requests, their_answers),
                name="audit-state-tree",
                daemon=True,
            )
            self._process.start()
            their_requests.close()
            their_answers.close()
            # One thread sends, in order: a block of mints writes some 200,000 keys, and
            # sending it from the main process would hold execution until the tree process
            # had hashed the block before and read this one.
            self._sender = ThreadPoolExecutor(1, thread_name_prefix="audit-state-tree-send")

    def submit(self, height: int, writes: dict[str, Any]) -> None:
        self.in_flight += 1
        if self._process is not None:
            self._sender.submit(self._requests.send, (height, encode_writes(writes)))
            return
        self._inline_answers.append(
            (height, self._inline_tree.apply_encoded(encode_writes(writes)))
        )

    def ready(self) -> bool:
        if self._process is not None:
            return bool(self._answers.poll())
        return bool(self._inline_answers)

    def next_root(self) -> tuple[int, str]:
        """The oldest outstanding answer, waiting for it if needed."""
        self.in_flight -= 1
        if self._process is not None:
            try:
                return self._answers.recv()  # type: ignore[no-any-return]
            except EOFError:
                raise RuntimeError("the state-tree process stopped") from None
        return self._inline_answers.popleft()

    def close(self) -> None:
        """Stop the tree process: at once when answers are outstanding (the replay failed and
        nobody needs them), else after it has read the stop message."""
        if self._process is None:
            return
        if self.in_flight == 0:
            self._sender.submit(self._requests.send, None)
            self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        # With the process gone a send still under way fails (its error stays in its future).
        self._sender.shutdown(wait=True, cancel_futures=True)
        self._requests.close()
        self._answers.close()
        self._process = None
