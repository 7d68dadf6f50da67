"""The state tree in LevelDB: after every commit the database holds exactly the newest
tree (no node missing, none left over), across reopening."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from node_test_helpers import block_with_certificate

from contracts.state_tree import (
    EMPTY_ROOT,
    LEAF_BYTES,
    MemoryNodeStore,
    apply_changes,
    decode_internal,
    prove,
    verify_proof,
)
from node.storage import Storage


def _stored_nodes(storage: Storage) -> dict[bytes, bytes]:
    return {key[1:]: node for key, node in storage._db.iterator(prefix=b"n")}


def _tree_nodes(root_hex: str, nodes: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """Every node of the tree under `root_hex`, read from `nodes` (KeyError if one is missing)."""
    found: dict[bytes, bytes] = {}
    pending = [bytes.fromhex(root_hex)]
    while pending:
        node_hash = pending.pop()
        if node_hash == bytes(32):
            continue
        node = found[node_hash] = nodes[node_hash]
        assert hashlib.sha256(node).digest() == node_hash
        if len(node) != LEAF_BYTES:
            children = decode_internal(node)
            assert children is not None
            pending.extend(children)
    return found


def _changes(rng: random.Random, live: set[int], next_key: int, height: int) -> dict[str, Any]:
    """A block's changes, by turns growing the state, rewriting it, and shrinking it to a
    few keys (which hoists leaves up the tree) or to nothing."""
    mode = rng.choice(["grow", "grow", "rewrite", "shrink", "mixed"])
    changes: dict[str, Any] = {}
    if mode in ("grow", "mixed"):
        for serial in range(next_key, next_key + rng.randrange(20, 300)):
            changes["token/c:%d" % serial] = {"n": height}
    if mode in ("rewrite", "mixed") and live:
        for serial in rng.sample(sorted(live), min(len(live), rng.randrange(1, 60))):
            changes["token/c:%d" % serial] = {"n": height}
    if mode in ("shrink", "mixed") and live:
        keep = 0 if rng.random() < 0.2 else rng.randrange(0, 8)
        share = 1.0 if mode == "shrink" else 0.3
        for serial in rng.sample(sorted(live), int((len(live) - keep) * share)):
            changes["token/c:%d" % serial] = None
    changes["token/c:absent-%d" % height] = None  # deleting a key that is not there
    return changes


def test_the_database_holds_exactly_the_newest_tree(tmp_path: Path) -> None:
    """Blocks that grow, rewrite, shrink and empty the state; after each commit the database
    holds exactly the nodes of the new root, the roots are those of a tree in memory, and
    after reopening every key still proves."""
    rng = random.Random(7)
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, EMPTY_ROOT)
    reference = MemoryNodeStore()
    root = EMPTY_ROOT
    values: dict[str, Any] = {}
    live: set[int] = set()
    for height in range(1, 41):
        changes = _changes(rng, live, max(live, default=0) + 1, height)
        expected = apply_changes(reference, root, changes)
        reference.put_nodes(expected.new_nodes)
        tree = apply_changes(storage, root, changes, storage.state_get)
        assert tree.root == expected.root
        block, certificate = block_with_certificate(height, tree.root)
        storage.commit(block, certificate, [], changes, tree, [])
        root = tree.root
        for key, value in changes.items():
            serial = key.rpartition(":")[2]
            if value is None:
                values.pop(key, None)
                live.discard(int(serial)) if serial.isdigit() else None
            else:
                values[key] = value
                live.add(int(serial))
        stored = _stored_nodes(storage)
        assert stored == _tree_nodes(root, stored)
        if height % 10 == 0:
            storage.close()
            storage = Storage(tmp_path / "db")
    for key in [*rng.sample(sorted(values), min(20, len(values))), "token/c:never"]:
        assert verify_proof(root, key, values.get(key), prove(storage, root, key))
    storage.close()
