"""contracts.state_tree's trie, held decoded in memory for replay.

The validators' tree (contracts/state_tree.py) reads and writes node bytes
through a node store, so every update decodes and re-encodes each node on its
path. The auditor keeps the whole tree in memory anyway, so this version keeps
nodes as objects, updates them in place and re-hashes only what changed. The
shape and every hash are those of contracts.state_tree (docs/STATE.md):

- path    = sha256(key), read as 64 nibbles;
- leaf    = sha256(0x00 || path || sha256(canonical bytes of the value));
- internal= sha256(0x01 || 16-bit bitmap (big-endian, bit i = nibble i)
            || the present children's hashes);
- no key under a prefix: empty; exactly one: that key's leaf; more: an internal node;
  an internal node left with a single leaf child becomes that leaf.

tests/audit/test_memory_tree.py checks the roots against contracts.state_tree
on random batches of inserts, updates and deletes; replay compares every root
with the certified header anyway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from contracts.state_tree import EMPTY_ROOT
from primitives.encoding import canonical_bytes

_LEAF_TAG = b"\x00"
_INTERNAL_TAG = b"\x01"
_NIBBLE = {character: int(character, 16) for character in "0123456789abcdef"}
_sha256 = hashlib.sha256


class _Leaf:
    __slots__ = ("path", "hex_path", "value_hash", "hash")

    def __init__(self, path: bytes, hex_path: str, value_hash: bytes) -> None:
        self.path = path
        self.hex_path = hex_path
        self.value_hash = value_hash
        self.hash = _sha256(_LEAF_TAG + path + value_hash).digest()


class _Internal:
    __slots__ = ("children", "child_hashes", "bitmap", "hash")

    def __init__(self) -> None:
        self.children: list[Any] = [None] * 16
        # Kept in step with children by set_child: b"" for an empty slot, so the node's
        # encoding is one join.
        self.child_hashes: list[bytes] = [b""] * 16
        self.bitmap = 0
        self.hash = b""

    def set_child(self, index: int, child: Any) -> None:
        self.children[index] = child
        if child is None:
            self.child_hashes[index] = b""
            self.bitmap &= ~(1 << index)
        else:
            self.child_hashes[index] = child.hash
            self.bitmap |= 1 << index

    def rehash(self) -> None:
        encoded_children = b"".join(self.child_hashes)
        self.hash = _sha256(
            _INTERNAL_TAG + self.bitmap.to_bytes(2, "big") + encoded_children
        ).digest()


# An update: (hex path, path, value hash or None to delete), sorted by path.
_Update = tuple[str, bytes, "bytes | None"]


def _groups(updates: list[Any], depth: int) -> list[tuple[int, list[Any]]]:
    if len(updates) == 1:  # most calls below the top levels
        return [(_NIBBLE[updates[0][0][depth]], updates)]
    groups: list[tuple[int, list[Any]]] = []
    start = 0
    count = len(updates)
    while start < count:
        character = updates[start][0][depth]
        end = start + 1
        while end < count and updates[end][0][depth] == character:
            end += 1
        groups.append((_NIBBLE[character], updates[start:end]))
        start = end
    return groups


def _build(depth: int, entries: list[Any]) -> Any:
    """The subtree holding exactly `entries` (sorted, all with values)."""
    if not entries:
        return None
    if len(entries) == 1:
        hex_path, path, value_hash = entries[0]
        return _Leaf(path, hex_path, value_hash)
    node = _Internal()
    for index, group in _groups(entries, depth):
        node.set_child(index, _build(depth + 1, group))
    node.rehash()
    return node


def _update(node: Any, depth: int, updates: list[Any]) -> Any:
    if node is None:
        return _build(depth, [update for update in updates if update[2] is not None])
    if type(node) is _Leaf:
        touched = any(update[1] == node.path for update in updates)
        merged = [] if touched else [(node.hex_path, node.path, node.value_hash)]
        merged.extend(update for update in updates if update[2] is not None)
        merged.sort(key=lambda entry: entry[1])
        return _build(depth, merged)
    children = node.children
    for index, group in _groups(updates, depth):
        node.set_child(index, _update(children[index], depth + 1, group))
    bitmap = node.bitmap
    if bitmap == 0:
        return None
    if bitmap & (bitmap - 1) == 0:
        # A single child left: a leaf moves up in its place (the canonical shape).
        only = children[bitmap.bit_length() - 1]
        if type(only) is _Leaf:
            return only
    node.rehash()
    return node


class MemoryTree:
    """The state tree of one replay: apply each block's write set, read the root."""

    def __init__(self) -> None:
        self._root: Any = None

    @property
    def root(self) -> str:
        return EMPTY_ROOT if self._root is None else self._root.hash.hex()

    def apply(self, changes: Mapping[str, Any]) -> str:
        """Set (or, for None, delete) each key; return the new root (hex)."""
        updates = []
        for key, value in changes.items():
            path = _sha256(key.encode("utf-8")).digest()
            value_hash = None if value is None else _sha256(canonical_bytes(value)).digest()
            updates.append((path.hex(), path, value_hash))
        updates.sort(key=lambda update: update[1])
        if updates:
            self._root = _update(self._root, 0, updates)
        return self.root
