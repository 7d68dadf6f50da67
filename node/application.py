"""The ledger side of the consensus boundary (consensus.application.Application).

A proposal is executed without committing: its write set, results and new
state-tree nodes are cached by block hash, so the commit that follows writes
them without executing again. Every transaction's signature is checked once
per node (on admission or when first seen in a proposal) and remembered by id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from consensus.types import ZERO_HASH, Block, CommitCertificate, ValidatorSet
from contracts.block import compute_results_root, compute_tx_root, seal_block
from contracts.context import BlockContext, BlockOutcome
from contracts.execution import execute_block
from contracts.genesis import Genesis, genesis_header
from contracts.helpers import get_params
from contracts.queries import validator_set_at
from contracts.state_tree import TreeUpdate, apply_changes
from contracts.transactions import SignedTx, TxError, parse_tx
from node.bounded import BoundedCache
from node.mempool import Mempool, SignatureCache
from node.metrics import NodeMetrics
from node.storage import Storage

log = logging.getLogger("yuxi.chain")

MAX_CACHED_EXECUTIONS = 16
# Cached state values (a token record is ~1 KB in Python). A gift reads a token that is
# rarely read again; 20,000 still spans well over the seconds between its admission and
# its execution, and the accounts and parameters read for every transaction.
READ_CACHE_LIMIT = 20_000
# What this node puts in one proposal (a proposer's choice, not a validity rule; the
# chain parameter max_block_txs stays the bound others check). Every validator executes
# a proposal before it votes, so a proposal must run well within the 2 s view timeout
# even on a busy machine: in scripts/bench.py on two shared cores, blocks of 5,000 gifts
# or of 150 full mints (12,000 new tokens) ended every height in view changes, and
# blocks of 1,000 gifts or 75 mints still often did. Smaller blocks cost a few more
# fsyncs and votes per transaction; the next block is proposed as soon as this one
# commits, so throughput does not depend on one block holding everything pending.
MAX_PROPOSAL_TXS = 500
MAX_PROPOSAL_BYTES = 512 * 1024


class LocalDivergence(RuntimeError):
    """A certified block that this node's execution disagrees with: stop rather than fork."""


@dataclass(frozen=True)
class _Execution:
    txs: list[SignedTx]
    outcome: BlockOutcome
    tree: TreeUpdate


class _ReadCache(BoundedCache[str, Any]):
    """State values by key; a miss reads the storage in __missing__, so that a hit stays
    one compiled dict lookup (the rules read a dozen keys a transaction)."""

    def __init__(self, read: Callable[[str], Any | None], capacity: int) -> None:
        super().__init__(capacity)
        self._read = read

    def __missing__(self, key: str) -> Any | None:
        value = self._read(key)
        self.put(key, value)
        return value


class _CommittedView:
    """The committed state, with reads cached (the rules read the same keys, such as the
    parameters, for every transaction, and admission reads every sender's account).
    A commit updates the cached keys it wrote instead of emptying the cache, so entries
    stay right and warm across blocks; values are never mutated. Bounded, oldest out."""

    def __init__(self, storage: Storage) -> None:
        self._cache = _ReadCache(storage.state_get, READ_CACHE_LIMIT)
        # The value at a key, or None when absent (StateView.get).
        self.get: Callable[[str], Any | None] = self._cache.__getitem__

    def committed(self, writes: Mapping[str, Any]) -> None:
        """The state now holds `writes` (None: deleted); keep cached keys equal to it."""
        cache = self._cache
        for key, value in writes.items():
            if key in cache:
                cache[key] = value


class NodeApplication:
    def __init__(
        self,
        *,
        genesis: Genesis,
        storage: Storage,
        mempool: Mempool,
        signatures: SignatureCache,
        metrics: NodeMetrics,
        names: Callable[[], dict[str, str]],
    ) -> None:
        self.chain_id = genesis.chain_id
        self.genesis_hash = genesis.hash
        self._genesis = genesis
        self._storage = storage
        self._mempool = mempool
        self._signatures = signatures
        self._metrics = metrics
        self._names = names
        self._view = _CommittedView(storage)
        self._executions: BoundedCache[str, _Execution] = BoundedCache(MAX_CACHED_EXECUTIONS)
        self._genesis_header: dict[str, Any] | None = None
        self.on_commit: Callable[[Block, CommitCertificate, list[dict[str, Any]]], None] = (
            lambda b, c, r: None
        )

    # ---- reads -----------------------------------------------------------
    def committed_value(self, key: str) -> Any | None:
        """A value of the committed state, through the read cache each commit keeps equal
        to the state (admission reads the sender's account for every transaction)."""
        return self._view.get(key)

    def committed_height(self) -> int:
        return self._storage.height()

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if height < 1:
            return None
        block = self._storage.block(height)
        certificate = self._storage.certificate(height)
        if block is None or certificate is None:
            return None
        return block, certificate

    def last_header(self) -> dict[str, Any]:
        height = self._storage.height()
        if height > 0:
            block = self._storage.block(height)
            if block is None:
                raise RuntimeError("the database has no block at its own height %d" % height)
            return block.header
        if self._genesis_header is None:
            self._genesis_header = genesis_header(self._genesis)
        return self._genesis_header

    def validator_set(self, height: int) -> ValidatorSet:
        return ValidatorSet(
            tuple(entry["pubkey"] for entry in validator_set_at(self._view, height))
        )

    def max_clock_drift_ms(self) -> int:
        return int(get_params(self._view)["max_clock_drift_ms"])

    def has_pending(self) -> bool:
        return self._mempool.has_ready()

    # ---- proposing and checking -----------------------------------------
    def _parent_hash(self) -> str:
        return self._storage.head_hash() or ZERO_HASH

    def _execute(self, height: int, time_ms: int, txs: list[SignedTx]) -> _Execution:
        context = BlockContext(chain_id=self.chain_id, height=height, time_ms=time_ms)
        outcome = execute_block(self._view, txs, context)
        tree = apply_changes(
            self._storage, self._storage.state_root() or "", outcome.writes, self._view.get
        )
        return _Execution(txs=txs, outcome=outcome, tree=tree)

    def propose(self, height: int, time_ms: int, proposer: str) -> Block:
        max_txs = min(MAX_PROPOSAL_TXS, int(get_params(self._view)["max_block_txs"]))
        txs = self._mempool.reap(max_txs, MAX_PROPOSAL_BYTES)
        header, outcome, tree = seal_block(
            self._view,
            self._storage,
            self.last_header(),
            txs,
            self.chain_id,
            height,
            time_ms,
            proposer,
        )
        block = Block(header=header, txs=tuple(tx.to_dict() for tx in txs))
        self._executions.put(block.hash, _Execution(txs, outcome, tree))
        return block

    def check_proposal(self, block: Block) -> str | None:
        header = block.header
        height = self._storage.height() + 1
        if header.get("chain_id") != self.chain_id:
            return "block is for chain %r" % header.get("chain_id")
        if header.get("height") != height:
            return "block height %r, expected %d" % (header.get("height"), height)
        if header.get("parent") != self._parent_hash():
            return "block does not extend our last committed block"
        if block.hash in self._executions:
            return None
        max_txs = int(get_params(self._view)["max_block_txs"])
        if len(block.txs) > max_txs:
            return "block holds %d transactions, at most %d" % (len(block.txs), max_txs)
        txs: list[SignedTx] = []
        seen: set[str] = set()
        for index, obj in enumerate(block.txs):
            try:
                known = self._mempool.known_parsed(obj)
                tx = known if known is not None else parse_tx(obj)
                self._signatures.check(tx, self.chain_id)
            except TxError as exc:
                return "transaction %d: %s" % (index, exc)
            if tx.id in seen:
                return "transaction %d appears twice" % index
            seen.add(tx.id)
            txs.append(tx)
        if header.get("tx_root") != compute_tx_root(txs):
            return "tx_root does not match the transactions"
        time_ms = header.get("time")
        if isinstance(time_ms, bool) or not isinstance(time_ms, int):
            return "block time is not an integer"
        try:
            execution = self._execute(height, time_ms, txs)
        except Exception as exc:  # a proposal must never crash the node
            # Rules that fail on some input are a bug here, but the proposal came from
            # outside: refuse to vote for it rather than stop (a certified block that
            # fails is handled in commit(), where stopping is the right answer).
            log.exception("executing proposed block %d failed", height)
            return "execution failed: %s" % exc.__class__.__name__
        if header.get("results_root") != compute_results_root(execution.outcome.results):
            return "results_root differs from local execution"
        if header.get("state_root") != execution.tree.root:
            return "state_root differs from local execution"
        self._executions.put(block.hash, execution)
        return None

    # ---- committing -------------------------------------------------------
    def commit(self, block: Block, certificate: CommitCertificate) -> None:
        execution = self._executions.get(block.hash)
        if execution is None:
            reason = self.check_proposal(block)
            if reason is not None:
                raise LocalDivergence(
                    "certified block %d %s fails here: %s" % (block.height, block.hash, reason)
                )
            execution = self._executions[block.hash]
        results = [result.to_dict() for result in execution.outcome.results]
        tx_ids = [tx.id for tx in execution.txs]
        # The view still holds the parent's state, with the tokens execution read cached.
        self._storage.commit(
            block,
            certificate,
            results,
            execution.outcome.writes,
            execution.tree,
            tx_ids,
            previous=self._view.get,
        )
        self._view.committed(execution.outcome.writes)
        self._executions.clear()
        self._mempool.remove_committed(tx_ids, [tx.sender for tx in execution.txs])
        self._metrics.commits.inc()
        self._metrics.committed_txs.inc(len(tx_ids))
        self._metrics.height.set(block.height)
        ok_count = sum(1 for result in results if result["code"] == "ok")
        proposer = str(block.header.get("proposer", ""))
        log.info(
            "committed block %d %s… view %d, %d txs (%d ok), proposer %s",
            block.height,
            block.hash[:12],
            certificate.view,
            len(tx_ids),
            ok_count,
            self._names().get(proposer, proposer[:8]),
        )
        self.on_commit(block, certificate, results)
