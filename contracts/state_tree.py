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

The batch update (apply_changes) walks the tree in compiled code (contracts/_state_tree.c):
on a validator the walk in Python was a fifth of the CPU. The Python walk below (_Updater,
reference_apply_changes) is the reference it is tested against, node for node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from contracts._state_tree import hash_changes as _compiled_hash_changes
from contracts._state_tree import update as _compiled_update
from primitives.crypto import is_hex, sha256
from primitives.encoding import canonical_bytes, encode_trusted

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


class CachingNodeStore(NodeStore, Protocol):
    """A store whose caches the compiled walk reads itself, before calling get_node (a
    Python call per node read was a tenth of a block's walk on a validator)."""

    def node_maps(self) -> tuple[dict[bytes, bytes], ...]:
        """Dicts of nodes by hash, read in order; get_node still answers for every node."""
        ...


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


# Nodes are handled as their bytes, never decoded into objects: a child's hash is a slice at
# 3 + 32 * (number of present children before it), and a changed node is its old bytes with
# one 32-byte span replaced, inserted or cut (one copy of some 500 bytes, where a decoded
# node would touch sixteen child objects twice). A node of 65 bytes is a leaf (an internal
# node is 3 + 32k bytes). Inside an update the empty subtree is b"".
_LEAF_PREFIX = bytes((LEAF_TAG,))
_INTERNAL_PREFIX = bytes((INTERNAL_TAG,))
_NIBBLE = {character: int(character, 16) for character in "0123456789abcdef"}
_sha256 = hashlib.sha256
# An update: (path as hex, path, value hash or None to delete); sorted, they are in path order.
_Update = tuple[str, bytes, "bytes | None"]


def _well_formed(data: bytes) -> bool:
    return decode_leaf(data) is not None or decode_internal(data) is not None


def _children(data: bytes) -> list[bytes]:
    """The 16 child slots of an internal node's bytes (b"" where empty)."""
    bitmap = data[1] << 8 | data[2]
    children = []
    offset = 3
    for index in range(16):
        if bitmap >> index & 1:
            children.append(data[offset : offset + 32])
            offset += 32
        else:
            children.append(b"")
    return children


class _Updater:
    """One batch update. Reads nodes from this batch, then from the store (checked there);
    collects the nodes it makes (`new_nodes`) and the stored ones it walks through
    (`stale`: the walk only ever descends through stored nodes); `result` sorts them out."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.new_nodes: dict[bytes, bytes] = {}
        self.stale: list[bytes] = []

    def result(self) -> tuple[dict[bytes, bytes], set[bytes]]:
        """The nodes made that the old tree lacks, and the stored nodes walked through that
        were not made again. A node made again with the same bytes (a value set to what it
        was) is in neither: it stays where it is stored."""
        walked = set(self.stale)
        made = {h: data for h, data in self.new_nodes.items() if h not in walked}
        return made, walked.difference(self.new_nodes)

    def load(self, node_hash: bytes) -> bytes:
        data = self.new_nodes.get(node_hash)
        if data is not None:
            return data
        data = self.store.get_node(node_hash)
        if data is None:
            raise StateTreeError("missing tree node %s" % node_hash.hex())
        if not _well_formed(data):
            raise StateTreeError("corrupt tree node %s" % node_hash.hex())
        return data

    def leaf(self, path: bytes, hashed_value: bytes) -> bytes:
        data = _LEAF_PREFIX + path + hashed_value
        node_hash = _sha256(data).digest()
        self.new_nodes[node_hash] = data
        return node_hash

    def save_internal(self, bitmap: int, children_bytes: bytes) -> bytes:
        """The hash of the internal node with these present children (joined), which is
        saved, unless it is empty (b"") or holds a single leaf, which then takes its place
        (the canonical shape)."""
        if bitmap & (bitmap - 1) == 0:
            if bitmap == 0:
                return b""
            if len(self.load(children_bytes)) == LEAF_BYTES:
                return children_bytes
        data = _INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + children_bytes
        node_hash = _sha256(data).digest()
        self.new_nodes[node_hash] = data
        return node_hash

    def internal(self, children: list[bytes]) -> bytes:
        bitmap = 0
        for index, child in enumerate(children):
            if child:
                bitmap |= 1 << index
        return self.save_internal(bitmap, b"".join(children))

    def build(self, depth: int, entries: list[_Update]) -> bytes:
        """The subtree holding exactly `entries` (sorted by path, values present)."""
        if not entries:
            return b""
        if len(entries) == 1:
            _, path, hashed_value = entries[0]
            return self.leaf(path, hashed_value)  # type: ignore[arg-type]
        if len(entries) == 2:
            return self.build_pair(depth, entries[0], entries[1])
        children = [b""] * 16
        for index, group in _groups(entries, depth):
            children[index] = self.build(depth + 1, group)
        return self.internal(children)

    def build_pair(self, depth: int, first: _Update, second: _Update) -> bytes:
        """build() for two entries (first < second): an internal node where their paths part,
        under a chain of one-child internal nodes for the nibbles they share."""
        first_hex, second_hex = first[0], second[0]
        split = depth
        while first_hex[split] == second_hex[split]:
            split += 1
        first_index, second_index = _NIBBLE[first_hex[split]], _NIBBLE[second_hex[split]]
        first_leaf = self.leaf(first[1], first[2])  # type: ignore[arg-type]
        second_leaf = self.leaf(second[1], second[2])  # type: ignore[arg-type]
        child = self.save_internal(1 << first_index | 1 << second_index, first_leaf + second_leaf)
        while split > depth:
            split -= 1
            child = self.save_internal(1 << _NIBBLE[first_hex[split]], child)
        return child

    def update(self, node_hash: bytes, depth: int, updates: list[_Update]) -> bytes:
        """The subtree `node_hash` after `updates` (sorted by path; None deletes)."""
        if len(updates) == 1:
            return self.update_one(node_hash, depth, updates[0])
        if not node_hash:
            return self.build(depth, [update for update in updates if update[2] is not None])
        data = self.load(node_hash)
        self.stale.append(node_hash)
        if len(data) == LEAF_BYTES:
            # Re-split the leaf together with the updates; an update of its own key wins.
            path = data[1:33]
            merged = [update for update in updates if update[2] is not None]
            if not any(update[1] == path for update in updates):
                merged.append((path.hex(), path, data[33:]))
                merged.sort()
            return self.build(depth, merged)
        children = _children(data)
        for index, group in _groups(updates, depth):
            children[index] = self.update(children[index], depth + 1, group)
        return self.internal(children)

    def update_one(self, node_hash: bytes, depth: int, update: _Update) -> bytes:
        """update() for a single key: walk down to its slot, then re-hash the way back up."""
        hex_path, path, hashed_value = update
        stale = self.stale
        above: list[bytes] = []
        indexes: list[int] = []
        while True:
            if not node_hash:
                child = b"" if hashed_value is None else self.leaf(path, hashed_value)
                break
            data = self.load(node_hash)
            if len(data) == LEAF_BYTES:
                leaf_path = data[1:33]
                if leaf_path == path:
                    stale.append(node_hash)
                    child = b"" if hashed_value is None else self.leaf(path, hashed_value)
                elif hashed_value is None:
                    # Deleting an absent key: the leaf stays (walked through and made again,
                    # so it is neither new nor stale).
                    stale.append(node_hash)
                    child = self.leaf(leaf_path, data[33:])
                else:
                    stale.append(node_hash)
                    entries = [(leaf_path.hex(), leaf_path, data[33:]), update]
                    entries.sort()
                    child = self.build(depth, entries)
                break
            stale.append(node_hash)
            index = _NIBBLE[hex_path[depth]]
            above.append(data)
            indexes.append(index)
            bit = 1 << index
            bitmap = data[1] << 8 | data[2]
            if bitmap & bit:
                offset = 3 + 32 * (bitmap & (bit - 1)).bit_count()
                node_hash = data[offset : offset + 32]
            else:
                node_hash = b""
            depth += 1
        new_nodes = self.new_nodes
        while above:
            data = above.pop()
            bit = 1 << indexes.pop()
            bitmap = data[1] << 8 | data[2]
            offset = 3 + 32 * (bitmap & (bit - 1)).bit_count()
            if bitmap & bit:
                if child:
                    children_bytes = data[3:offset] + child + data[offset + 32 :]
                else:
                    bitmap &= ~bit
                    children_bytes = data[3:offset] + data[offset + 32 :]
            elif child:
                bitmap |= bit
                children_bytes = data[3:offset] + child + data[offset:]
            else:
                children_bytes = data[3:]
            if bitmap & (bitmap - 1) == 0:
                child = self.save_internal(bitmap, children_bytes)  # maybe empty or a leaf
                continue
            data = _INTERNAL_PREFIX + bitmap.to_bytes(2, "big") + children_bytes
            child = _sha256(data).digest()
            new_nodes[child] = data
        return child


def _groups(entries: list[_Update], depth: int) -> list[tuple[int, list[_Update]]]:
    """Split path-sorted entries into runs sharing the nibble at `depth`."""
    groups = []
    start = 0
    count = len(entries)
    while start < count:
        character = entries[start][0][depth]
        end = start + 1
        while end < count and entries[end][0][depth] == character:
            end += 1
        groups.append((_NIBBLE[character], entries[start:end]))
        start = end
    return groups


def _hashed(
    changes: Mapping[str, Any | None],
) -> tuple[list[tuple[bytes, bytes | None]], dict[str, bytes]]:
    """(path, value hash or None to delete) for each change, and the canonical bytes of
    each value set. The values are the state's own (execution builds them from checked
    parts, genesis is checked on load), so the compiled encoder writes them."""
    hashed: list[tuple[bytes, bytes | None]] = []
    encoded: dict[str, bytes] = {}
    for key, value in changes.items():
        path = _sha256(key.encode("utf-8")).digest()
        if value is None:
            hashed.append((path, None))
        else:
            data = encoded[key] = encode_trusted(value)
            hashed.append((path, _sha256(data).digest()))
    return hashed, encoded


class TreeUpdate(NamedTuple):
    root: str  # hex
    new_nodes: dict[bytes, bytes]  # hash -> bytes: nodes the new root holds, the old one not
    stale_nodes: set[bytes]  # stored nodes of the old root that the new root no longer holds
    # The canonical bytes of each value set (as hashed into the tree), so a store writes
    # the state without encoding every value a second time.
    encoded_values: Mapping[str, bytes] = {}


def apply_changes(
    store: NodeStore,
    root_hex: str,
    changes: Mapping[str, Any | None],
    current: Callable[[str], Any | None] | None = None,
) -> TreeUpdate:
    """The root after setting (or, for None, deleting) each key, the nodes to persist, and
    the old root's nodes that only older roots need (a store that keeps the newest
    version only deletes those). `current`, when given, reads a key's value under
    `root_hex` (a caller that has them cached spares the store a read per changed key, see
    _current_leaves). The values are encoded unchecked (_hashed): never pass one that
    came from outside without check_value. The walk is compiled; reference_apply_changes
    is the same in Python."""
    # _hashed and _current_leaves in one compiled pass (half the time of the two).
    updates, encoded, leaves = _compiled_hash_changes(
        changes if type(changes) is dict else dict(changes), current, encode_trusted
    )
    node_maps = getattr(store, "node_maps", None)  # a CachingNodeStore
    maps = node_maps() if node_maps is not None else ()
    if current is not None:
        maps = (leaves, *maps)
    # The compiled walk sorts the updates; a node it made again with the bytes it had (a
    # value set to what it was) is neither new nor stale.
    root, new_nodes, stale = _compiled_update(
        store.get_node, bytes.fromhex(root_hex) or EMPTY_HASH, updates, StateTreeError, maps
    )
    return TreeUpdate(root.hex(), new_nodes, stale, encoded)


def _current_leaves(
    changes: Mapping[str, Any | None],
    updates: list[tuple[bytes, bytes | None]],
    current: Callable[[str], Any | None],
) -> dict[bytes, bytes]:
    """The leaves the changed keys have now, by hash, rebuilt from their values (leaf =
    tag, path, sha256 of the value's canonical bytes): the walk reads them first. Each changed
    key's walk ends at its old leaf, the one node of its path a node cache rarely holds
    (with a million tokens, most of a block's random reads). Nodes are content-addressed:
    a rebuilt leaf is either exactly the node asked for or never asked for. With _hashed,
    the Python reference of the compiled hash_changes that apply_changes runs."""
    leaves: dict[bytes, bytes] = {}
    for key, (path, _) in zip(changes, updates):
        value = current(key)
        if value is not None:
            leaf = _LEAF_PREFIX + path + _sha256(encode_trusted(value)).digest()
            leaves[_sha256(leaf).digest()] = leaf
    return leaves


def reference_apply_changes(
    store: NodeStore, root_hex: str, changes: Mapping[str, Any | None]
) -> TreeUpdate:
    """apply_changes in Python (the reference the compiled walk is tested against)."""
    updater = _Updater(store)
    root = bytes.fromhex(root_hex)
    hashed, encoded = _hashed(changes)
    updates = sorted((path.hex(), path, value_hash) for path, value_hash in hashed)
    root = updater.update(b"" if root == EMPTY_HASH else root, 0, updates)
    new_nodes, stale = updater.result()
    return TreeUpdate((root or EMPTY_HASH).hex(), new_nodes, stale, encoded)


def compute_root(values: Mapping[str, Any]) -> str:
    """The root of a whole state held in memory (genesis, tests); contracts.memory_tree
    keeps such a state up to date batch after batch."""
    return apply_changes(MemoryNodeStore(), EMPTY_ROOT, values).root


def _load_bytes(store: NodeStore, node_hash: bytes) -> bytes:
    data = store.get_node(node_hash)
    if data is None:
        raise StateTreeError("missing tree node %s" % node_hash.hex())
    return data


def prove(store: NodeStore, root_hex: str, key: str) -> dict[str, Any]:
    """A proof that `key` has its value (or no value) under `root_hex`:
    {"nodes": [internal nodes from the root down, hex], "leaf": the leaf met on the way, hex}
    ("leaf" left out when the path ends in an empty slot)."""
    path = key_hash(key)
    node_hash = bytes.fromhex(root_hex)
    nodes: list[str] = []
    depth = 0
    while node_hash != EMPTY_HASH:
        data = _load_bytes(store, node_hash)
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
