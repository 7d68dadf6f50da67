"""Mempool: nonce ordering with gaps held back, bounds, idempotence, eviction and one signature check."""

from __future__ import annotations

import dataclasses

import pytest
from node_test_helpers import register, user_key

from contracts.genesis import devnet_authority_key
from contracts.transactions import SignedTx, TxError, parse_tx
from node.mempool import Mempool, SignatureCache
from node.rpc_support import RpcError

AUTHORITY = devnet_authority_key()


class Accounts:
    def __init__(self) -> None:
        self.nonces = {AUTHORITY.public_key: 0}
        self.reads = 0

    def nonce(self, account: str) -> int | None:
        self.reads += 1
        return self.nonces.get(account)


def make_pool(
    max_txs: int = 100,
    max_per_sender: int = 10,
    store: DictStore | None = None,
    accounts: Accounts | None = None,
) -> tuple[Mempool, Accounts, SignatureCache]:
    accounts = accounts or Accounts()
    signatures = SignatureCache()
    pool = Mempool(
        chain_id="yuxi-devnet",
        account_nonce=accounts.nonce,
        signatures=signatures,
        max_txs=max_txs,
        max_per_sender=max_per_sender,
        store=store,
    )
    return pool, accounts, signatures


def never_committed(tx_id: str) -> bool:
    return False


def admit_registrations(pool: Mempool, prefix: str, count: int) -> list[SignedTx]:
    """The authority's registrations of users prefix0.. with nonces 0..count-1, admitted."""
    return [
        pool.admit(
            register(AUTHORITY, nonce, user_key("%s%d" % (prefix, nonce)).public_key),
            is_committed=never_committed,
        ).tx
        for nonce in range(count)
    ]


def test_reap_takes_consecutive_nonces_and_holds_gaps_back() -> None:
    """A block gets nonces 0,1 but not 3 while 2 is missing; once 2 arrives all follow in order."""
    pool, _, _ = make_pool()
    for nonce in (3, 0, 1):
        pool.admit(
            register(AUTHORITY, nonce, user_key("n%d" % nonce).public_key),
            is_committed=never_committed,
        )
    assert [tx.nonce for tx in pool.reap(100)] == [0, 1]
    pool.admit(register(AUTHORITY, 2, user_key("n2").public_key), is_committed=never_committed)
    assert [tx.nonce for tx in pool.reap(100)] == [0, 1, 2, 3]
    assert [tx.nonce for tx in pool.reap(2)] == [0, 1]


def test_reap_stops_at_the_byte_budget_but_always_takes_one() -> None:
    """A byte budget cuts the block short in nonce order, and a budget below one transaction still yields it."""
    pool, _, _ = make_pool()
    for nonce in range(4):
        pool.admit(
            register(AUTHORITY, nonce, user_key("b%d" % nonce).public_key),
            is_committed=never_committed,
        )
    size = len(pool.reap(1)[0].encoded)
    assert [tx.nonce for tx in pool.reap(100, max_bytes=2 * size + size // 2)] == [0, 1]
    assert [tx.nonce for tx in pool.reap(100, max_bytes=1)] == [0]
    assert len(pool.reap(100, max_bytes=None)) == 4


def test_commit_evicts_included_and_stale_transactions() -> None:
    """After a commit the included transactions and any now-stale ones leave the pool."""
    pool, accounts, _ = make_pool()
    first = pool.admit(
        register(AUTHORITY, 0, user_key("a").public_key), is_committed=never_committed
    ).tx
    rival = pool.admit(
        register(AUTHORITY, 0, user_key("b").public_key), is_committed=never_committed
    ).tx
    later = pool.admit(
        register(AUTHORITY, 1, user_key("c").public_key), is_committed=never_committed
    ).tx
    accounts.nonces[AUTHORITY.public_key] = 1
    pool.remove_committed([first.id], [AUTHORITY.public_key])
    assert first.id not in pool and rival.id not in pool and later.id in pool
    assert len(pool) == 1 and pool.has_ready()


def test_bounds_per_sender_and_in_total() -> None:
    """Past the per-sender or total bound admission answers 503 mempool_full."""
    pool, _, _ = make_pool(max_txs=100, max_per_sender=2)
    for nonce in range(2):
        pool.admit(
            register(AUTHORITY, nonce, user_key("x%d" % nonce).public_key),
            is_committed=never_committed,
        )
    with pytest.raises(RpcError) as caught:
        pool.admit(register(AUTHORITY, 2, user_key("x2").public_key), is_committed=never_committed)
    assert (caught.value.status, caught.value.code) == (503, "mempool_full")


def test_a_full_mempool_refuses_before_checking_the_signature() -> None:
    """Past the total bound a new transaction gets 503 mempool_full without a signature
    check (shedding load costs no verification), even one whose signature is bad; one
    already pending is still answered as pending."""
    pool, _, signatures = make_pool(max_txs=2)
    pending = admit_registrations(pool, "f", 2)
    later = parse_tx(register(AUTHORITY, 2, user_key("f2").public_key))
    forged = parse_tx(dict(register(AUTHORITY, 2, user_key("f3").public_key),
                           signature=pending[0].signature))
    for tx in (later, forged):
        with pytest.raises(RpcError) as caught:
            pool.admit_parsed(tx, is_committed=never_committed)
        assert (caught.value.status, caught.value.code) == (503, "mempool_full")
        assert tx not in signatures  # never checked
    again = pool.admit_parsed(pending[1], is_committed=never_committed)
    assert again.tx is pending[1] and not again.is_new

def test_signature_cache_checks_another_signature_anew_and_keeps_its_bound() -> None:
    """A transaction already checked passes unchecked, the same transaction under another
    signature is checked anew, and past its bound the oldest entry leaves."""
    signatures = SignatureCache(capacity=2)
    txs = [parse_tx(register(AUTHORITY, n, user_key("s%d" % n).public_key)) for n in range(3)]
    for tx in txs:
        signatures.check(tx, "yuxi-devnet")
    assert txs[0] not in signatures and txs[1] in signatures and txs[2] in signatures
    signatures.check(txs[2], "yuxi-devnet")
    forged = dataclasses.replace(txs[2], signature=txs[1].signature)
    with pytest.raises(TxError) as caught:
        signatures.check(forged, "yuxi-devnet")
    assert caught.value.code == "bad_signature" and forged not in signatures


def test_resubmission_is_idempotent_and_signatures_are_checked_once() -> None:
    """The same transaction admitted twice is one entry, and its signature is verified only once."""
    pool, _, signatures = make_pool()
    tx = register(AUTHORITY, 0, user_key("once").public_key)
    first = pool.admit(tx, is_committed=never_committed)
    second = pool.admit(tx, is_committed=never_committed)
    assert first.is_new and not second.is_new and first.tx.id == second.tx.id and len(pool) == 1
    assert first.tx in signatures
    committed = pool.admit(
        register(AUTHORITY, 5, user_key("old").public_key), is_committed=lambda tx_id: True
    )
    assert not committed.is_new and len(pool) == 1


def test_has_pending_does_not_read_every_account_on_each_call() -> None:
    """Repeated has_ready() calls between commits cost no account reads (the replica asks every tick)."""
    pool, accounts, _ = make_pool()
    pool.admit(register(AUTHORITY, 1, user_key("gap").public_key), is_committed=never_committed)
    pool.remove_committed([], [])
    assert pool.has_ready() is False
    reads = accounts.reads
    for _ in range(100):
        pool.has_ready()
    assert accounts.reads == reads


class DictStore:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def pending_put_many(self, txs: dict[str, bytes]) -> None:
        self.entries.update(txs)

    def pending_delete(self, tx_ids: list[str]) -> None:
        for tx_id in tx_ids:
            self.entries.pop(tx_id, None)

    def pending_all(self) -> list[bytes]:
        return list(self.entries.values())


def test_pending_transactions_survive_a_restart_minus_committed_and_stale() -> None:
    """Admitted transactions are kept; a new pool restores them, dropping those committed or stale meanwhile."""
    store = DictStore()
    pool, accounts, _ = make_pool(store=store)
    txs = admit_registrations(pool, "r", 4)
    assert store.entries == {}  # written together, by save_pending
    pool.save_pending()
    assert len(store.entries) == 4
    accounts.nonces[AUTHORITY.public_key] = (
        2  # nonces 0 and 1 were committed while the node was down
    )
    restarted, _, _ = make_pool(store=store, accounts=accounts)
    assert restarted.restore(is_committed=lambda tx_id: tx_id == txs[0].id) == 2
    assert [tx.nonce for tx in restarted.reap(10)] == [2, 3]
    assert set(store.entries) == {txs[2].id, txs[3].id}
    accounts.nonces[AUTHORITY.public_key] = 4
    restarted.remove_committed([txs[2].id, txs[3].id], [AUTHORITY.public_key])
    assert store.entries == {}


def test_a_block_transaction_matches_a_pending_one_only_if_identical_in_type() -> None:
    """known_parsed() reuses a pending transaction only for an exact match, never for True standing in for 1."""
    pool, _, _ = make_pool()
    tx = pool.admit(
        register(AUTHORITY, 1, user_key("typed").public_key), is_committed=never_committed
    ).tx
    assert pool.known_parsed(tx.to_dict()) is tx
    assert pool.known_parsed(dict(tx.to_dict(), nonce=True)) is None
    assert (
        pool.known_parsed(dict(tx.to_dict(), body=dict(tx.body, birth_date="1990-01-01"))) is None
    )
    assert pool.known_parsed(dict(tx.to_dict(), nonce=float(tx.nonce))) is None
    assert pool.known_parsed(dict(tx.to_dict(), nonce=2**70)) is None  # not encodable
    assert pool.known_parsed("not a map") is None


def test_a_transaction_gone_before_it_was_saved_is_never_written() -> None:
    """save_pending() writes only what is still pending: a transaction committed (or made
    stale) before the write does not come back on a restart."""
    store = DictStore()
    pool, accounts, _ = make_pool(store=store)
    first, second = (
        pool.admit(
            register(AUTHORITY, nonce, user_key("g%d" % nonce).public_key),
            is_committed=never_committed,
        ).tx
        for nonce in range(2)
    )
    accounts.nonces[AUTHORITY.public_key] = 1
    pool.remove_committed([first.id], [AUTHORITY.public_key])
    pool.save_pending()
    assert set(store.entries) == {second.id}
