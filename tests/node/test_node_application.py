"""The ledger side of a node: the committed-state read cache follows what a commit writes."""

from __future__ import annotations

from pathlib import Path

from node_test_helpers import register, user_key

from consensus.types import CommitCertificate
from contracts.genesis import devnet_authority_key, devnet_genesis, genesis_writes, load_genesis
from contracts.state import account_key
from contracts.state_tree import EMPTY_ROOT, apply_changes
from node.application import NodeApplication
from node.mempool import Mempool, SignatureCache
from node.metrics import NodeMetrics
from node.storage import Storage

AUTHORITY = devnet_authority_key()


def test_cached_account_reads_follow_a_commit(tmp_path: Path) -> None:
    """An account read (and cached) before a block reads as committed after it, equal to the database."""
    genesis = load_genesis(devnet_genesis(genesis_time_ms=1_000))
    storage = Storage(tmp_path / "db")
    writes = genesis_writes(genesis)
    root, nodes, *_ = apply_changes(storage, EMPTY_ROOT, writes)
    storage.write_genesis(genesis.hash, writes, nodes, root)
    signatures = SignatureCache()
    holder: list[NodeApplication] = []
    mempool = Mempool(
        chain_id=genesis.chain_id,
        account_nonce=lambda account: holder[0].committed_value(account_key(account))["nonce"],
        signatures=signatures,
        max_txs=100,
        max_per_sender=100,
    )
    app = NodeApplication(
        genesis=genesis,
        storage=storage,
        mempool=mempool,
        signatures=signatures,
        metrics=NodeMetrics(),
        names=dict,
    )
    holder.append(app)
    try:
        key = account_key(AUTHORITY.public_key)
        assert app.committed_value(key)["nonce"] == 0
        newcomer = user_key("cache")
        mempool.admit(register(AUTHORITY, 0, newcomer.public_key), is_committed=lambda _: False)
        assert app.committed_value(account_key(newcomer.public_key)) is None
        block = app.propose(1, 2_000, app.validator_set(1).leader(1, 0))
        app.commit(block, CommitCertificate(1, 0, block.hash, ()))
        assert app.committed_value(key)["nonce"] == 1
        assert app.committed_value(key) == storage.state_get(key)
        registered = account_key(newcomer.public_key)
        assert app.committed_value(registered) == storage.state_get(registered) is not None
    finally:
        storage.close()
