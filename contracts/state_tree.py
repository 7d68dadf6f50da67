"""Authenticated state: a 16-ary sparse Merkle trie over sha256(state key), Jellyfish-style.

Shape. A key's path is the 64 nibbles of sha256(key as UTF-8). The node for a
path prefix is: nothing (the empty hash, 32 zero bytes) when no key has that
prefix; a leaf when exactly one key does; otherwise an internal node with 16
child slots for the next nibble. So the shape depends only on the set of keys,
never on the order they were inserted, and a block's update reads and writes
O(keys touched x log16(state size)) nodes.

Nodes are content-addressed (hash = sha256 of the node's bytes) and never
overwritten, so every old root stays readable and provable:
- leaf:     0x00 || key_hash (32) || value_hash (32), value_hash = sha256(canonical bytes)
- internal: 0x01 || bitmap (2 bytes, big-endian, bit i = child for nibble i) || the present
            children's hashes in nibble order
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from primitives.crypto import is_hex, sha256
from primitives.encoding import canonical_bytes

EMPTY_HASH = bytes(32)
EMPTY_ROOT = EMPTY_HASH.hex()
LEAF_TAG = 0
INTERNAL_TAG = 1
LEAF_BYTES = 65
KEY_NIBBLES = 64


class StateTreeError(ValueError):
    """The node store lacks a node the tree refers to, or holds a corrupt one."""


class NodeStore(Protocol):
    def get_node(self, node_hash: bytes) -> bytes | None: ...


class MemoryNodeStore:
    """Nodes in a dict: for tests, the simulator and the auditor."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}

    def get_node(self, node_hash: bytes) -> bytes | None:
        return self.nodes.get(node_hash)

    def put_nodes(self, nodes: Mapping[bytes, bytes]) -> None:
        self.nodes.update(nodes)


def key_hash(key: str) -> bytes:
    return sha256(key.encode("utf-8"))


def value_hash(value: Any) -> bytes:
    return sha256(canonical_bytes(value))


def nibble(path: bytes, depth: int) -> int:
    byte = path[depth >> 1]
    return byte >> 4 if depth & 1 == 0 else byte & 0x0F


def encode_leaf(path: bytes, hashed_value: bytes) -> bytes:
    return bytes((LEAF_TAG,)) + path + hashed_value


def encode_internal(children: list[bytes]) -> bytes:
    bitmap = 0
    present = []
    for index, child in enumerate(children):
        if child != EMPTY_HASH:
            bitmap |= 1 << index
            present.append(child)
    return bytes((INTERNAL_TAG,)) + bitmap.to_bytes(2, "big") + b"".join(present)


def decode_internal(data: bytes) -> list[bytes] | None:
    """The 16 child hashes of an internal node's bytes, or None when they are not one."""
    if len(data) < 3 or data[0] != INTERNAL_TAG:
        return None
    bitmap = int.from_bytes(data[1:3], "big")
    if bitmap == 0 or len(data) != 3 + 32 * bin(bitmap).count("1"):
        return None
    children = []
    offset = 3
    for index in range(16):
        if bitmap >> index & 1:
            child = data[offset : offset + 32]
            if child == EMPTY_HASH:
                return None
            children.append(child)
            offset += 32
        else:
            children.append(EMPTY_HASH)
    return children


def decode_leaf(data: bytes) -> tuple[bytes, bytes] | None:
    if len(data) != LEAF_BYTES or data[0] != LEAF_TAG:
        return None
    return data[1:33], data[33:65]


class _Updater:
    """One batch update: reads nodes from the store (or this batch), collects new nodes."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.new_nodes: dict[bytes, bytes] = {}

    def load(self, node_hash: bytes) -> bytes:
        data = self.new_nodes.get(node_hash)
        if data is None:
            data = self.store.get_node(node_hash)
        if data is None:
            raise StateTreeError("missing tree node %s" % node_hash.hex())
        return data

    def save(self, data: bytes) -> bytes:
        node_hash = sha256(data)
        self.new_nodes[node_hash] = data
        return node_hash

    def build(self, depth: int, entries: list[tuple[bytes, bytes]]) -> bytes:
        """The subtree holding exactly `entries` (sorted by path, values present)."""
        if not entries:
            return EMPTY_HASH
        if len(entries) == 1:
            return self.save(encode_leaf(*entries[0]))
        children = [EMPTY_HASH] * 16
        for index, group in _groups(entries, depth):
            children[index] = self.build(depth + 1, group)
        return self.save(encode_internal(children))

    def update(
        self, node_hash: bytes, depth: int, updates: list[tuple[bytes, bytes | None]]
    ) -> bytes:
        """The subtree `node_hash` after `updates` (sorted by path; None deletes)."""
        if not updates:
            return node_hash
        if node_hash == EMPTY_HASH:
            return self.build(
                depth, [(path, value) for path, value in updates if value is not None]
            )
        data = self.load(node_hash)
        leaf = decode_leaf(data)
        if leaf is not None:
            # Re-split the leaf together with the updates; an update of its own key wins.
            touched = {path for path, _ in updates}
            merged = [leaf] if leaf[0] not in touched else []
            merged.extend((path, value) for path, value in updates if value is not None)
            merged.sort()
            return self.build(depth, merged)
        children = decode_internal(data)
        if children is None:
            raise StateTreeError("corrupt tree node %s" % node_hash.hex())
        for index, group in _groups(updates, depth):
            children[index] = self.update(children[index], depth + 1, group)
        present = [child for child in children if child != EMPTY_HASH]
        if not present:
            return EMPTY_HASH
        # A subtree left with a single leaf is that leaf: it moves up, keeping the shape canonical.
        if len(present) == 1 and decode_leaf(self.load(present[0])) is not None:
            return present[0]
        return self.save(encode_internal(children))


def _groups(entries: list[Any], depth: int) -> Iterable[tuple[int, list[Any]]]:
    """Split path-sorted entries into runs sharing the nibble at `depth`."""
    start = 0
    count = len(entries)
    while start < count:
        index = nibble(entries[start][0], depth)
        end = start + 1
        while end < count and nibble(entries[end][0], depth) == index:
            end += 1
        yield index, entries[start:end]
        start = end


def apply_changes(
    store: NodeStore, root_hex: str, changes: Mapping[str, Any | None]
) -> tuple[str, dict[bytes, bytes]]:
    """The root after setting (or, for None, deleting) each key, and the nodes to persist."""
    updates = sorted(
        (key_hash(key), None if value is None else value_hash(value))
        for key, value in changes.items()
    )
    updater = _Updater(store)
    root = updater.update(bytes.fromhex(root_hex), 0, updates)
    return root.hex(), updater.new_nodes


def compute_root(values: Mapping[str, Any]) -> str:
    """The root of a whole state held in memory (genesis, tests, the auditor)."""
    root, _ = apply_changes(MemoryNodeStore(), EMPTY_ROOT, values)
    return root


def prove(store: NodeStore, root_hex: str, key: str) -> dict[str, Any]:
    """A proof that `key` has its value (or no value) under `root_hex`:
    {"nodes": [internal nodes from the root down, hex], "leaf": the leaf met on the way, hex}
    ("leaf" left out when the path ends in an empty slot)."""
    path = key_hash(key)
    updater = _Updater(store)
    node_hash = bytes.fromhex(root_hex)
    nodes: list[str] = []
    depth = 0
    while node_hash != EMPTY_HASH:
        data = updater.load(node_hash)
        if decode_leaf(data) is not None:
            return {"nodes": nodes, "leaf": data.hex()}
        children = decode_internal(data)
        if children is None:
            raise StateTreeError("corrupt tree node %s" % node_hash.hex())
        nodes.append(data.hex())
        node_hash = children[nibble(path, depth)]
        depth += 1
    return {"nodes": nodes}


def _hex_bytes(value: Any, max_bytes: int) -> bytes | None:
    if not isinstance(value, str) or len(value) % 2 or len(value) > 2 * max_bytes:
        return None
    if not is_hex(value, len(value) // 2):
        return None
    return bytes.fromhex(value)


def verify_proof(root_hex: str, key: str, value: Any | None, proof: Any) -> bool:
    """True when `proof` shows that under `root_hex`, `key` holds `value` (None: is absent).
    Needs nothing but its arguments; any malformed input simply fails."""
    if not is_hex(root_hex, 32) or not isinstance(key, str) or not isinstance(proof, dict):
        return False
    if not set(proof) <= {"nodes", "leaf"} or not isinstance(proof.get("nodes"), list):
        return False
    if len(proof["nodes"]) > KEY_NIBBLES:
        return False
    path = key_hash(key)
    expected = bytes.fromhex(root_hex)
    for depth, node_hex in enumerate(proof["nodes"]):
        data = _hex_bytes(node_hex, 3 + 16 * 32)
        if data is None or sha256(data) != expected:
            return False
        children = decode_internal(data)
        if children is None:
            return False
        expected = children[nibble(path, depth)]
    if expected == EMPTY_HASH:
        return "leaf" not in proof and value is None
    leaf_data = _hex_bytes(proof.get("leaf"), LEAF_BYTES)
    if leaf_data is None or sha256(leaf_data) != expected:
        return False
    leaf = decode_leaf(leaf_data)
    if leaf is None:
        return False
    if leaf[0] != path:
        # Another key's leaf fills this key's slot: that subtree holds only it, so ours is absent.
        return value is None
    try:
        return value is not None and leaf[1] == value_hash(value)
    except ValueError:
        return False
