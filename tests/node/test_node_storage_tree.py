"""The state tree in LevelDB and memory: after every commit the database holds exactly the
tree of the last flush and memory the difference to the newest one (no node missing, none
left over), across kills and reopening."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest
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
from node.errors import NodeSetupError
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


def _newest_tree_view(storage: Storage) -> dict[bytes, bytes]:
    """The stored nodes, less those dropped since the last flush, plus those made since."""
    stored = _stored_nodes(storage)
    for node_hash in storage._tree.dropped:
        del stored[node_hash]
    return {**stored, **storage._tree.made}


def test_the_database_and_memory_hold_exactly_the_newest_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks that grow, rewrite, shrink and empty the state. After each commit the database
    holds exactly the tree of the last flush and memory the difference to the newest one
    (no node missing, none left over); the roots are those of a tree in memory; a kill
    between flushes loses nothing (reopening rebuilds the newest tree) and a clean close
    flushes; every key still proves at the end."""
    import node.storage as storage_module

    monkeypatch.setattr(storage_module, "TREE_FLUSH_BLOCKS", 3)
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
        storage.wait_for_tree_write()
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
        assert stored == _tree_nodes(storage.get_meta("tree_root"), stored)
        newest = _newest_tree_view(storage)
        assert newest == _tree_nodes(root, newest)
        if height % 7 == 0:
            storage._db.close()  # killed: no flush
            storage = Storage(tmp_path / "db")
            assert _newest_tree_view(storage) == newest
        elif height % 10 == 0:
            storage.close()
            storage = Storage(tmp_path / "db")
            assert storage.get_meta("tree_root") == root and not len(storage._tree)
            assert _stored_nodes(storage) == newest
    for key in [*rng.sample(sorted(values), min(20, len(values))), "token/c:never"]:
        assert verify_proof(root, key, values.get(key), prove(storage, root, key))
    storage.close()


def test_a_state_that_does_not_match_the_tree_is_refused(tmp_path: Path) -> None:
    """Reopening rebuilds the newest tree from the values of the keys changed since the
    flush; when they do not give the committed state root, the database is refused."""
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, EMPTY_ROOT)
    changes = {"token/c:%d" % serial: {"n": serial} for serial in range(30)}
    tree = apply_changes(storage, EMPTY_ROOT, changes)
    block, certificate = block_with_certificate(1, tree.root)
    storage.commit(block, certificate, [], changes, tree, [])
    storage._db.put(b"stoken/c:3", storage._db.get(b"stoken/c:4"))
    storage._db.close()  # killed before a flush
    with pytest.raises(NodeSetupError, match="do not agree"):
        Storage(tmp_path / "db")


def _commit_block(storage: Storage, root: str, height: int, first: int) -> str:
    changes = {"token/c:%d" % serial: {"n": height} for serial in range(first, first + 40)}
    tree = apply_changes(storage, root, changes, storage.state_get)
    block, certificate = block_with_certificate(height, tree.root)
    storage.commit(block, certificate, [], changes, tree, [])
    return tree.root


def test_blocks_commit_and_read_the_tree_while_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flush runs on its own thread: held at its start, the blocks after it commit,
    reading the nodes being written from memory; once it lands, the database holds the
    tree of its height and every key since proves."""
    import threading

    import node.storage as storage_module

    monkeypatch.setattr(storage_module, "TREE_FLUSH_BLOCKS", 2)
    release, started = threading.Event(), threading.Event()
    write_tree = Storage._write_tree

    def held_write(self: Storage, *args: Any) -> None:
        started.set()
        assert release.wait(10)
        write_tree(self, *args)

    monkeypatch.setattr(Storage, "_write_tree", held_write)
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, EMPTY_ROOT)
    root, height = EMPTY_ROOT, 0
    while not started.is_set():
        height += 1
        root = _commit_block(storage, root, height, 40 * height)
    flushed_root, flushed_height = root, height
    for _ in range(3):
        height += 1
        root = _commit_block(storage, root, height, 40 * height)
    assert storage.get_meta("tree_height") != flushed_height  # still held
    release.set()
    storage.wait_for_tree_write()
    assert storage.get_meta("tree_root") == flushed_root
    stored = _stored_nodes(storage)
    assert stored == _tree_nodes(flushed_root, stored)
    newest = _newest_tree_view(storage)
    assert newest == _tree_nodes(root, newest)
    for serial in (40, 40 * height + 39):
        key = "token/c:%d" % serial
        assert verify_proof(root, key, storage.state_get(key), prove(storage, root, key))
    storage.close()


def test_a_failed_tree_write_stops_every_later_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that fails (a full disk) raises on the committing thread at the next commit,
    before that block is written, and again at close, which then writes no tree over the
    older stored one; reopening rebuilds the newest tree from the changed keys."""
    import threading

    import node.storage as storage_module

    monkeypatch.setattr(storage_module, "TREE_FLUSH_BLOCKS", 1)
    release = threading.Event()

    def failing_write(self: Storage, *args: Any) -> None:
        assert release.wait(10)
        raise OSError("No space left on device")

    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, EMPTY_ROOT)
    root = _commit_block(storage, EMPTY_ROOT, 1, 0)
    storage.wait_for_tree_write()
    monkeypatch.setattr(Storage, "_write_tree", failing_write)
    root = _commit_block(storage, root, 2, 40)  # its flush is held, then fails
    root = _commit_block(storage, root, 3, 80)  # buffered while the flush runs
    release.set()
    with pytest.raises(OSError, match="No space"):
        storage.wait_for_tree_write()
    with pytest.raises(OSError, match="No space"):
        _commit_block(storage, root, 4, 120)
    with pytest.raises(OSError, match="No space"):
        storage.close()
    assert storage._db.closed
    monkeypatch.undo()
    reopened = Storage(tmp_path / "db")
    assert reopened.get_meta("tree_height") == 1 and reopened.height() == 3
    for serial in (79, 119):
        key = "token/c:%d" % serial
        assert verify_proof(root, key, reopened.state_get(key), prove(reopened, root, key))
    reopened.close()
