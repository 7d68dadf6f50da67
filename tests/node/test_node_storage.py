"""LevelDB storage: a committed block and everything it changes survive reopening; the journal; the genesis guard."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import plyvel
import pytest
from node_test_helpers import block_with_certificate, register, user_key

from consensus.types import Block
from contracts.genesis import devnet_genesis, load_genesis
from contracts.state_tree import TreeUpdate, prove, verify_proof
from contracts.transactions import compute_tx_id
from node import storage as storage_module
from node.config import load_config, render_config
from node.errors import NodeSetupError
from node.runner import open_storage
from node.storage import JOURNAL_FILE, Storage
from primitives.encoding import canonical_bytes


def test_commit_writes_block_certificate_results_index_and_state_together(tmp_path: Path) -> None:
    """After commit and reopen, the block, certificate, results, tx index, state, owner index and meta agree."""
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {"account/a": {"nonce": 0}}, {}, "3" * 64)
    block, certificate = block_with_certificate(1, "4" * 64)
    writes = {"account/a": {"nonce": 1}, "token/moon:1": {"owner": "a" * 64}, "gone": None}
    storage.commit(
        block,
        certificate,
        [{"code": "ok", "message": ""}],
        writes,
        TreeUpdate("4" * 64, {b"n" * 32: b"node"}, set()),
        ["f" * 64],
    )
    storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert (
            storage.height() == 1
            and storage.head_hash() == block.hash
            and storage.state_root() == "4" * 64
        )
        assert storage.block(1) == block and storage.certificate(1) == certificate
        assert storage.results(1) == [{"code": "ok", "message": ""}]
        assert storage.tx_location("f" * 64) == (1, 0) and storage.height_of_hash(block.hash) == 1
        assert (
            storage.state_get("account/a") == {"nonce": 1}
            and storage.get_node(b"n" * 32) == b"node"
        )
        assert storage.tokens_of("a" * 64, after=None, limit=10) == ["moon:1"]
        block2, certificate2 = block_with_certificate(2, "5" * 64)
        tree = TreeUpdate("5" * 64, {}, set())
        storage.commit(block2, certificate2, [], {"token/moon:1": {"owner": "b" * 64}}, tree, [])
        assert storage.tokens_of("a" * 64, after=None, limit=10) == []
        assert storage.tokens_of("b" * 64, after=None, limit=10) == ["moon:1"]
    finally:
        storage.close()


def test_journal_survives_reopen_in_order_and_prunes_by_height(tmp_path: Path) -> None:
    """Journal records come back in write order after a reopen; pruning drops only decided heights."""
    storage = Storage(tmp_path / "db")
    records = [
        {"height": 3, "kind": "prepare"},
        {"height": 2, "kind": "late"},
        {"height": 3, "kind": "commit"},
        {"height": 4, "kind": "x"},
    ]
    for record in records:
        storage.journal_append(record)
    storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert storage.journal_records() == records
        storage.journal_prune_below(4)
        assert storage.journal_records() == [{"height": 4, "kind": "x"}]
        storage.journal_append({"height": 5})
        assert storage.journal_records()[-1] == {"height": 5}
    finally:
        storage.close()


def test_journal_records_appended_together_keep_their_order(tmp_path: Path) -> None:
    """Records appended in one batch come back after a reopen in order, between single appends."""
    storage = Storage(tmp_path / "db")
    storage.journal_append({"height": 7, "kind": "prepare"})
    storage.journal_append_many(
        [{"height": 7, "kind": "prepared"}, {"height": 7, "kind": "commit"}]
    )
    storage.journal_append({"height": 8, "kind": "prepare"})
    storage.close()
    storage = Storage(tmp_path / "db")
    try:
        kinds = [record["kind"] for record in storage.journal_records()]
        assert kinds == ["prepare", "prepared", "commit", "prepare"]
    finally:
        storage.close()


def test_a_journal_append_cut_short_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    """A kill in the middle of an append (never acknowledged, so never sent) loses only it."""
    storage = Storage(tmp_path / "db")
    storage.journal_append({"height": 3, "kind": "prepare"})
    whole = (tmp_path / "db" / JOURNAL_FILE).stat().st_size
    storage.journal_append({"height": 3, "kind": "commit"})
    storage.close()
    with open(tmp_path / "db" / JOURNAL_FILE, "r+b") as file:
        file.truncate(whole + 10)
    storage = Storage(tmp_path / "db")
    try:
        assert storage.journal_records() == [{"height": 3, "kind": "prepare"}]
        storage.journal_append({"height": 3, "kind": "commit again"})
    finally:
        storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert [r["kind"] for r in storage.journal_records()] == ["prepare", "commit again"]
    finally:
        storage.close()


def test_a_reopened_journal_holds_no_decided_height(tmp_path: Path) -> None:
    """Records of heights the database has committed are not handed back after a reopen,
    though the file still held them (it is rewritten only when it grows)."""
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {"account/a": {"nonce": 0}}, {}, "3" * 64)
    storage.journal_append_many([{"height": 1, "kind": "commit"}, {"height": 2, "kind": "x"}])
    block, certificate = block_with_certificate(1, "4" * 64)
    storage.commit(
        block, certificate, [], {}, TreeUpdate("4" * 64, {b"n" * 32: b"node"}, set()), []
    )
    storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert storage.height() == 1
        assert storage.journal_records() == [{"height": 2, "kind": "x"}]
    finally:
        storage.close()


def test_the_journal_file_is_rewritten_without_decided_heights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "JOURNAL_REWRITE_BYTES", 2048)
    storage = Storage(tmp_path / "db")
    path = tmp_path / "db" / JOURNAL_FILE
    try:
        for height in range(1, 200):
            storage.journal_append_many([{"height": height, "kind": k} for k in ("a", "b")])
            storage.journal_prune_below(height)
            assert path.stat().st_size < 2048 + 200
        assert storage.journal_records() == [{"height": 199, "kind": k} for k in ("a", "b")]
    finally:
        storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert {r["height"] for r in storage.journal_records()} >= {199}
        assert len(storage.journal_records()) < 100
    finally:
        storage.close()


def test_journal_entries_of_an_older_database_move_into_the_file(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db")
    storage.close()
    (tmp_path / "db" / JOURNAL_FILE).unlink()
    db = plyvel.DB(str(tmp_path / "db"))
    records = [{"height": 5, "kind": "second"}, {"height": 4, "kind": "first"}]
    for sequence, record in ((2, records[0]), (1, records[1])):  # as nodes before wrote them
        db.put(b"j" + struct.pack(">QQ", record["height"], sequence), canonical_bytes(record))
    db.close()
    storage = Storage(tmp_path / "db")
    try:
        assert storage.journal_records() == [records[1], records[0]]  # in write order
        assert list(storage._db.iterator(prefix=b"j")) == []
    finally:
        storage.close()


def test_database_of_another_chain_is_refused(tmp_path: Path) -> None:
    """A data directory made for one genesis will not start with another, and proofs work from stored nodes."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        render_config(
            mode="validator", moniker="n", rpc_listen="127.0.0.1:1", peer_listen="127.0.0.1:2"
        )
    )
    config = load_config(home)
    first = load_genesis(devnet_genesis(1, time.time_ns() // 1_000_000, 9000))
    storage = open_storage(config, first)
    root = storage.state_root()
    assert root is not None
    authority_key = next(key for key, _ in storage.state_items("account/"))
    proof = prove(storage, root, authority_key)
    assert verify_proof(root, authority_key, storage.state_get(authority_key), proof)
    storage.close()
    second = load_genesis(devnet_genesis(2, 1, 9000))
    with pytest.raises(NodeSetupError, match="holds chain data of genesis"):
        open_storage(config, second)


def test_a_second_node_on_the_same_home_is_refused(tmp_path: Path) -> None:
    """LevelDB's lock keeps two processes from sharing a database; the error says so."""
    storage = Storage(tmp_path / "db")
    try:
        with pytest.raises(NodeSetupError, match="another node"):
            Storage(tmp_path / "db")
    finally:
        storage.close()


def test_tree_node_cache_keeps_wide_nodes_apart_from_narrow_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The internal nodes of a flushed tree are cached (leaves are not) in two bounded FIFOs
    by width, so a run of narrow nodes never pushes out the wide ones every path goes
    through; a node evicted from the cache is still read from LevelDB."""
    import node.storage as storage_module
    from contracts.state_tree import apply_changes

    monkeypatch.setattr(storage_module, "NARROW_NODES_CACHED", 4)
    monkeypatch.setattr(storage_module, "TREE_FLUSH_BLOCKS", 1)
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, "0" * 64)
    tree = apply_changes(storage, "0" * 64, {"token/c:%d" % i: {"n": i} for i in range(40)})
    nodes = tree.new_nodes
    block, certificate = block_with_certificate(1, tree.root)
    storage.commit(block, certificate, [], {}, tree, [])
    storage.wait_for_tree_write()
    internal = [h for h, data in nodes.items() if len(data) != 65]
    wide = [h for h in internal if len(nodes[h]) >= storage_module.WIDE_NODE_BYTES]
    narrow = [h for h in internal if h not in wide]
    assert wide and len(narrow) > 4
    assert list(storage._wide_nodes) == wide
    assert list(storage._narrow_nodes) == narrow[-4:]
    for node_hash, data in nodes.items():
        assert storage.get_node(node_hash) == data
    assert list(storage._wide_nodes) == wide and len(storage._narrow_nodes) == 4
    storage.close()


def test_commits_keep_only_the_newest_tree_in_the_database(tmp_path: Path) -> None:
    """The tree nodes only an older root held are deleted: after many blocks rewriting the
    same keys and a close (which flushes the tree) the database holds as many nodes as
    one version, and every key still proves against the newest root."""
    from contracts.state_tree import apply_changes

    storage = Storage(tmp_path / "db")
    values = {"token/c:%d" % i: {"n": 0} for i in range(200)}
    genesis = apply_changes(storage, "0" * 64, values)
    storage.write_genesis("g" * 64, values, genesis.new_nodes, genesis.root)
    one_version = len(genesis.new_nodes)
    root = genesis.root
    for height in range(1, 31):
        changes = {"token/c:%d" % i: {"n": height} for i in range(0, 200, 7)}
        tree = apply_changes(storage, root, changes)
        block, certificate = block_with_certificate(height, tree.root)
        storage.commit(block, certificate, [], changes, tree, [])
        root = tree.root
        values.update(changes)
    storage.close()
    storage = Storage(tmp_path / "db")
    stored = sum(1 for _ in storage._db.iterator(prefix=b"n", include_value=False))
    assert stored == one_version
    for key in ("token/c:0", "token/c:1", "token/c:999"):
        assert verify_proof(root, key, values.get(key), prove(storage, root, key))
    storage.close()


def test_a_transaction_included_again_keeps_the_location_of_its_first_inclusion(
    tmp_path: Path,
) -> None:
    """A faulty proposer can include a committed transaction again: it gets bad_nonce and
    changes nothing, so its id still points where it took effect. A bad_nonce inclusion
    of a transaction never included before is indexed like any other."""
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, "3" * 64)
    ok, bad = {"code": "ok", "message": ""}, {"code": "bad_nonce", "message": "nonce"}
    tree = TreeUpdate("4" * 64, {}, set())
    try:
        block, certificate = block_with_certificate(1, "4" * 64)
        storage.commit(block, certificate, [ok], {}, tree, ["a" * 64])
        block, certificate = block_with_certificate(2, "4" * 64)
        storage.commit(block, certificate, [bad, bad], {}, tree, ["b" * 64, "a" * 64])
        assert storage.tx_location("a" * 64) == (1, 0)
        assert storage.tx_location("b" * 64) == (2, 0)
        block, certificate = block_with_certificate(3, "4" * 64)
        storage.commit(block, certificate, [ok], {}, tree, ["b" * 64])
        assert storage.tx_location("b" * 64) == (3, 0)
    finally:
        storage.close()


def test_a_stored_block_lists_its_transaction_ids_before_and_after_reopen(
    tmp_path: Path,
) -> None:
    """The ids handed to commit are kept for the recent blocks; an older or reopened block's
    are computed from its transactions, and both agree."""
    authority = user_key("authority")
    txs = tuple(register(authority, nonce, user_key(str(nonce)).public_key) for nonce in (1, 2))
    ids = [compute_tx_id(tx) for tx in txs]
    storage = Storage(tmp_path / "db")
    storage.write_genesis("g" * 64, {}, {}, "3" * 64)
    empty, certificate = block_with_certificate(1, "4" * 64)
    block = Block(header=empty.header, txs=txs)
    ok = {"code": "ok", "message": ""}
    tree = TreeUpdate("4" * 64, {b"n" * 32: b"node"}, set())
    storage.commit(block, certificate, [ok, ok], {}, tree, ids)
    assert storage.tx_ids(1) == ids and storage.tx_ids(2) is None
    storage.close()
    storage = Storage(tmp_path / "db")
    try:
        assert storage.tx_ids(1) == ids
    finally:
        storage.close()
