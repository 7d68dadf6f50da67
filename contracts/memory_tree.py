"""The newest version of a state tree, held in memory and changed in place.

The same trie as contracts.state_tree (same shape, same node bytes, same roots),
kept for a different job: the auditor's replay needs only the newest root, so
nodes are addressed by their position, not by their hash. A write walks down
its path, marking the nodes it passes; at the end of a batch each marked node
is hashed once, deepest first. Nothing is looked up by hash, no old node is
deleted and no new one stored, and the updates need no sorting.

The work is done by a compiled core (contracts/_memory_tree.c): the walk is a
few pointer steps per level, and in Python those steps cost several times the
hashing. contracts.state_tree is the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts._memory_tree import Tree
from primitives.crypto import sha256
from primitives.encoding import canonical_bytes


class MemoryTree:
    """Set and delete keys batch by batch; `root` is the state root after the last batch."""

    def __init__(self) -> None:
        self._tree = Tree()
        self._index: dict[bytes, bytes] | None = None  # hash -> node bytes, for get_node

    @property
    def root(self) -> str:
        return self._tree.root  # type: ignore[no-any-return]

    def apply(self, changes: Mapping[str, Any | None]) -> str:
        """Set (or, for None, delete) each key; return the new root (hex)."""
        return self.apply_encoded(
            {
                key: None if value is None else canonical_bytes(value)
                for key, value in changes.items()
            }
        )

    def apply_encoded(self, changes: dict[str, bytes | None]) -> str:
        """apply() with each value given as its canonical bytes (encoded by the caller, say
        in another process)."""
        self._index = None
        return self._tree.apply_encoded(changes)  # type: ignore[no-any-return]

    def get_node(self, node_hash: bytes) -> bytes | None:
        """A node of the newest version by its hash, so contracts.state_tree.prove serves
        proofs of the newest root (the index is built on first use after a change: proofs
        from this tree are for tests and occasional checks)."""
        if self._index is None:
            self._index = {sha256(data): data for data in self._tree.nodes()}
        return self._index.get(node_hash)
