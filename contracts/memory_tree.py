"""The newest version of a state tree, held in memory and changed in place.

The same trie as contracts.state_tree (same shape, same node bytes, same roots),
kept for a different job: the auditor's replay needs only the newest
root, so nodes are Python objects addressed by their position, not by their
hash. A write walks down the path, marking the nodes it passes; at the end of
a batch each marked node is hashed once, deepest first. Nothing is looked up
by hash, no old node is deleted and no new one stored, and the updates need
no sorting: the cost is the hashing itself plus a few steps per level.

A position's content follows the trie's canonical shape: no key below it -> empty;
one key -> that key's leaf; two or more -> an internal node (_Node). Each node
counts the keys below it, so a delete that leaves one key collapses the subtree
into that key's leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from contracts.state_tree import EMPTY_HASH, INTERNAL_TAG, KEY_NIBBLES, LEAF_TAG
from primitives.encoding import canonical_bytes

_sha256 = hashlib.sha256
_LEAF_PREFIX = bytes((LEAF_TAG,))
_INTERNAL_PREFIX = bytes((INTERNAL_TAG,))
# A path as 64 bytes of 0..15, one per nibble: indexing it gives the slot directly.
_TO_NIBBLES = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))


class _Leaf:
    """A key's leaf: its path as nibbles and the leaf node's bytes."""

    __slots__ = ("nibbles", "data")

    def __init__(self, nibbles: bytes) -> None:
        self.nibbles = nibbles
        self.data = b""


class _Node:
    """An internal node: per nibble, the child's hash (b"" when empty) and the child
    itself (None, a _Leaf or a _Node)."""

    __slots__ = ("hashes", "children", "bitmap", "keys", "dirty", "dead")

    def __init__(self) -> None:
        self.hashes: list[bytes] = [b""] * 16
        self.children: list[_Node | _Leaf | None] = [None] * 16
        self.bitmap = 0  # bit i set: slot i is not empty
        self.keys = 0  # how many keys are below this node
        self.dirty = False  # changed in this batch, its hash not yet recomputed
        self.dead = False  # collapsed away in this batch

    def node_bytes(self) -> bytes:
        return _INTERNAL_PREFIX + self.bitmap.to_bytes(2, "big") + b"".join(self.hashes)


# A changed node waiting to be hashed: the node, its parent (None for the root), its slot.
_Mark = tuple[_Node, "_Node | None", int]


class MemoryTree:
    """Set and delete keys batch by batch; `root` is the state root after the last batch."""

    def __init__(self) -> None:
        self._top = _Node()  # the root position; never collapsed, hashed as the root rules say
        self._leaves: dict[str, _Leaf] = {}  # by key: a key set again is not hashed again
        self._index: dict[bytes, bytes] | None = None  # hash -> node bytes, built for get_node

    @property
    def root(self) -> str:
        top = self._top
        if top.keys == 0:
            return EMPTY_HASH.hex()
        if top.keys == 1:  # a lone key's leaf is the root itself
            return b"".join(top.hashes).hex()
        return _sha256(top.node_bytes()).hexdigest()

    def apply(self, changes: Mapping[str, Any | None]) -> str:
        """Set (or, for None, delete) each key; return the new root (hex)."""
        return self.apply_encoded(
            {
                key: None if value is None else canonical_bytes(value)
                for key, value in changes.items()
            }
        )

    def apply_encoded(self, changes: Mapping[str, bytes | None]) -> str:
        """apply() with each value given as its canonical bytes (encoded by the caller, say
        in another process)."""
        self._index = None
        leaves = self._leaves
        marks: list[list[_Mark]] = [[] for _ in range(KEY_NIBBLES)]  # changed nodes by depth
        for key, encoded in changes.items():
            leaf = leaves.get(key)
            if encoded is None:
                if leaf is not None:
                    self._delete(leaf, marks)
                    del leaves[key]
                continue
            if leaf is None:
                path = _sha256(key.encode("utf-8")).digest()
                leaf = leaves[key] = _Leaf(path.hex().encode("ascii").translate(_TO_NIBBLES))
                leaf.data = _LEAF_PREFIX + path + _sha256(encoded).digest()
                self._set(leaf, _sha256(leaf.data).digest(), True, marks)
            else:
                leaf.data = leaf.data[:33] + _sha256(encoded).digest()
                self._set(leaf, _sha256(leaf.data).digest(), False, marks)
        self._rehash(marks)
        return self.root

    def _set(self, leaf: _Leaf, leaf_hash: bytes, new: bool, marks: list[list[_Mark]]) -> None:
        nibbles = leaf.nibbles
        node = self._top
        parent: _Node | None = None
        slot = depth = 0
        while True:
            if not node.dirty:
                node.dirty = True
                marks[depth].append((node, parent, slot))
            if new:
                node.keys += 1
            index = nibbles[depth]
            child = node.children[index]
            if child is None:
                node.children[index] = leaf
                node.hashes[index] = leaf_hash
                node.bitmap |= 1 << index
                return
            if child.__class__ is _Node:
                parent, slot, node, depth = node, index, child, depth + 1  # type: ignore[assignment]
                continue
            if child is leaf:
                node.hashes[index] = leaf_hash
                return
            # Another key's leaf holds the slot: a node for the two of them takes its place
            # (one key so far; the next round of the loop counts ours and goes on).
            split = _Node()
            other = child.nibbles[depth + 1]  # type: ignore[union-attr]
            split.children[other] = child
            split.hashes[other] = node.hashes[index]
            split.bitmap = 1 << other
            split.keys = 1
            node.children[index] = split
            parent, slot, node, depth = node, index, split, depth + 1

    def _delete(self, leaf: _Leaf, marks: list[list[_Mark]]) -> None:
        """Remove a present key; the highest node left with one key becomes that key's leaf."""
        nibbles = leaf.nibbles
        node = self._top
        parent: _Node | None = None
        slot = depth = 0
        collapse: tuple[_Node, int, _Node] | None = None  # (parent, slot, node)
        while True:
            if not node.dirty:
                node.dirty = True
                marks[depth].append((node, parent, slot))
            node.keys -= 1
            if collapse is None and parent is not None and node.keys == 1:
                collapse = (parent, slot, node)
            index = nibbles[depth]
            child = node.children[index]
            if child.__class__ is _Node:
                parent, slot, node, depth = node, index, child, depth + 1  # type: ignore[assignment]
                continue
            node.children[index] = None
            node.hashes[index] = b""
            node.bitmap &= ~(1 << index)
            break
        if collapse is not None:
            above, above_slot, lone = collapse
            while True:  # down to the key that is left, marking the nodes on the way dead
                lone.dead = True
                remaining = next(child for child in lone.children if child is not None)
                if remaining.__class__ is not _Node:
                    break
                lone = remaining  # type: ignore[assignment]
            above.children[above_slot] = remaining
            above.hashes[above_slot] = _sha256(remaining.data).digest()  # type: ignore[union-attr]

    @staticmethod
    def _rehash(marks: list[list[_Mark]]) -> None:
        """Hash every changed node, deepest first, into its parent's slot."""
        for depth_marks in reversed(marks):
            for node, parent, slot in depth_marks:
                node.dirty = False
                if parent is None or node.dead:
                    continue
                parent.hashes[slot] = _sha256(
                    _INTERNAL_PREFIX + node.bitmap.to_bytes(2, "big") + b"".join(node.hashes)
                ).digest()

    # -- serving proofs of the newest root (contracts.state_tree.prove) -------------------
    def get_node(self, node_hash: bytes) -> bytes | None:
        """A node of the newest version by its hash (the index is built on first use after
        a change: proofs from this tree are for tests and occasional checks)."""
        if self._index is None:
            self._index = {}
            self._collect(self._top, self._index)
        return self._index.get(node_hash)

    def _collect(self, node: _Node, index: dict[bytes, bytes]) -> None:
        if node is not self._top or node.keys >= 2:
            data = node.node_bytes()
            index[_sha256(data).digest()] = data
        for child in node.children:
            if child.__class__ is _Node:
                self._collect(child, index)  # type: ignore[arg-type]
            elif child is not None:
                data = child.data  # type: ignore[union-attr]
                index[_sha256(data).digest()] = data
