"""The replay core: check a chain from genesis against the rules, trusting no node.

Pure code over a block source (an iterator of SourceBlock from height 1 on):
for every block, in this order, the first failure raising an AuditError that
names the height, the transaction (index and id) and what differs:

1. height is the next one (a reordered or missing block shows here) and the
   chain id is the genesis chain's;
2. parent is the hash of the previous header (64 zeros for block 1), time is
   strictly after the parent's (the genesis time for block 1);
3. the commit certificate holds a quorum of valid signatures, all from the
   validator set in force at this height as the replayed state says (a change
   executed in block h applies from h+2), over this header's hash;
4. the proposer is a validator at this height; at most max_block_txs txs;
5. every transaction is well formed, for this chain, and correctly signed
   (signatures are checked in a process pool ahead of execution);
6. tx_root matches the transaction ids;
7. re-execution with contracts gives, for every transaction, the result code
   the node claims;
8. results_root and state_root match the re-executed results and state.

The state tree is hashed in its own process (state_roots.py) while the main
process executes the next blocks; observers see a block only once its state
root is confirmed, and a mismatch is always reported at the lowest height.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from consensus.types import (
    ZERO_HASH,
    CertificateError,
    CommitCertificate,
    ValidatorSet,
    header_hash,
)
from contracts.block import compute_results_root, compute_tx_root
from contracts.execution import BlockContext, Result, execute_block
from contracts.genesis import Genesis, GenesisError, genesis_writes, load_genesis
from contracts.queries import params_info, validator_set_at
from contracts.state import DictView, apply_writes
from contracts.transactions import SignedTx
from node.audit.errors import AuditError
from node.audit.signatures import Checked, SignatureChecker, TxProblem, signed_tx_from
from node.audit.sources import SourceBlock
from node.audit.state_roots import StateRoots
from primitives.crypto import sha256_hex
from primitives.encoding import EncodingError, canonical_bytes

GOVERNANCE_TYPES = ("propose", "approve")
# How far signature checks run ahead of execution, in blocks and in transactions.
LOOKAHEAD_BLOCKS = 128
LOOKAHEAD_TXS = 100_000
# How many executed blocks may wait for their state root from the tree thread.
# Enough for execution and signature checks to go on while the tree thread hashes a
# block of mints (200,000 writes or so), bounded in what the waiting blocks hold.
MAX_UNCONFIRMED_BLOCKS = 64
MAX_UNCONFIRMED_WRITES = 1_000_000


@dataclass(frozen=True)
class ReplayedBlock:
    """What one checked block did; handed to observers (report, export)."""

    height: int
    hash: str
    header: dict[str, Any]
    view: int
    signers: tuple[str, ...]
    txs: list[SignedTx]
    results: list[Result]
    writes: dict[str, Any]  # key -> value after this block (None: deleted)
    # The same keys -> value before this block (None: absent), in blocks with governance
    # transactions (only those can change parameters, roles or validators); else empty,
    # which spares copying five values per transaction that no observer reads.
    before: dict[str, Any]


class BlockObserver(Protocol):
    def on_block(self, block: ReplayedBlock) -> None: ...


@dataclass
class ReplayedChain:
    genesis: Genesis
    genesis_state_root: str
    height: int
    head_hash: str
    state_root: str
    blocks: int = 0
    txs: int = 0
    elapsed_s: float = 0.0
    state: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class _Prepared:
    source: SourceBlock
    futures: list[Future[tuple[Checked, TxProblem | None]]]


class _Replayer:
    def __init__(
        self,
        genesis_obj: dict[str, Any],
        checker: SignatureChecker,
        roots: StateRoots,
        observers: Iterable[BlockObserver],
        on_progress: Callable[[int, int], None] | None,
    ) -> None:
        try:
            self.genesis = load_genesis(genesis_obj)
        except GenesisError as exc:
            raise AuditError(0, str(exc), check="genesis") from None
        self.chain_id = self.genesis.chain_id
        self.checker = checker
        self.observers = list(observers)
        self.on_progress = on_progress
        # One live view over the replayed state (DictView copies what it is given).
        self.view = DictView()
        self.state: dict[str, Any] = self.view.values
        self.roots = roots
        writes = genesis_writes(self.genesis)
        self._apply_writes(writes)
        roots.submit(0, writes)
        _, self.genesis_root = roots.next_root()
        self.root = self.genesis_root
        # Executed blocks whose state root the tree thread has not confirmed yet.
        self.unconfirmed: deque[ReplayedBlock] = deque()
        self.unconfirmed_writes = 0
        self.height = 0
        self.head_hash = ZERO_HASH
        self.head_time_ms = self.genesis.genesis_time
        self.confirmed_height = 0
        self.tx_count = 0

    def _apply_writes(self, writes: dict[str, Any]) -> None:
        apply_writes(self.state, writes)

    # -- preparing ahead: parsing and signature checks start in the pool --------------
    def prepare(self, source_block: SourceBlock) -> _Prepared:
        objs = source_block.txs if isinstance(source_block.txs, list) else []
        return _Prepared(source_block, self.checker.submit(self.chain_id, objs))

    def _checked_txs(self, height: int, prepared: _Prepared) -> list[SignedTx]:
        objs = prepared.source.txs
        if not isinstance(objs, list):
            raise AuditError(height, "the block's transactions are not a list", check="transaction")
        txs: list[SignedTx] = []
        for future in prepared.futures:
            checked, problem = future.result()
            first = len(txs)
            txs.extend(
                signed_tx_from(objs[first + offset], tx_id) for offset, tx_id in enumerate(checked)
            )
            if problem is not None:
                raise AuditError(
                    height,
                    problem.message,
                    tx_index=problem.index,
                    tx_id=problem.tx_id,
                    check=problem.check,
                )
        return txs

    # -- checking one block ------------------------------------------------------------
    def check(self, prepared: _Prepared) -> None:
        source_block = prepared.source
        header = source_block.header
        expected = self.height + 1
        if not isinstance(header, dict):
            raise AuditError(expected, "header is not a map", check="header")
        height = header.get("height")
        if not isinstance(height, int) or isinstance(height, bool) or height != expected:
            raise AuditError(
                expected,
                "expected block %d next, the node gave block %r"
                " (a block is missing or out of order)" % (expected, height),
                check="height",
            )
        try:
            block_hash = header_hash(header)
        except EncodingError as exc:
            raise AuditError(
                expected, "header is not canonical: %s" % exc, check="header"
            ) from None
        if header.get("chain_id") != self.chain_id:
            raise AuditError(
                expected,
                "header chain_id %r is not %r" % (header.get("chain_id"), self.chain_id),
                check="header",
            )
        if header.get("parent") != self.head_hash:
            raise AuditError(
                expected,
                "parent %s is not the hash of block %d (%s)"
                % (header.get("parent"), self.height, self.head_hash),
                check="parent",
            )
        block_time = header.get("time")
        if (
            not isinstance(block_time, int)
            or isinstance(block_time, bool)
            or block_time <= self.head_time_ms
        ):
            raise AuditError(
                expected,
                "time %r is not after the parent's time %d" % (block_time, self.head_time_ms),
                check="time",
            )
        view = self.view
        validators = ValidatorSet(
            tuple(item["pubkey"] for item in validator_set_at(view, expected))
        )
        certificate = self._certificate(expected, block_hash, source_block.commit)
        try:
            certificate.verify(self.chain_id, validators, block_hash)
        except CertificateError as exc:
            raise AuditError(expected, str(exc), check="certificate") from None
        if source_block.claimed_hash is not None and source_block.claimed_hash != block_hash:
            raise AuditError(
                expected,
                "the node says the block hash is %s, its header hashes to %s"
                % (source_block.claimed_hash, block_hash),
                check="hash",
            )
        if header.get("proposer") not in validators:
            raise AuditError(
                expected,
                "proposer %r is not a validator at this height" % (header.get("proposer"),),
                check="header",
            )
        max_block_txs = params_info(view)["params"]["max_block_txs"]
        if isinstance(source_block.txs, list) and len(source_block.txs) > max_block_txs:
            raise AuditError(
                expected,
                "%d transactions, max_block_txs is %d" % (len(source_block.txs), max_block_txs),
                check="transaction",
            )
        txs = self._checked_txs(expected, prepared)
        tx_root = compute_tx_root(txs)
        if header.get("tx_root") != tx_root:
            raise AuditError(
                expected,
                "tx_root in header %s, the transactions give %s" % (header.get("tx_root"), tx_root),
                check="tx_root",
            )
        context = BlockContext(chain_id=self.chain_id, height=expected, time_ms=block_time)
        outcome = execute_block(view, txs, context)
        claimed = source_block.results
        if len(claimed) != len(outcome.results):
            raise AuditError(
                expected,
                "the node gives %d results for %d transactions"
                % (len(claimed), len(outcome.results)),
                check="results",
            )
        for index, (claimed_code, result) in enumerate(zip(claimed, outcome.results, strict=True)):
            if claimed_code != result.code:
                raise AuditError(
                    expected,
                    "the node says result %r, the rules give %r (%s)"
                    % (claimed_code, result.code, result.message),
                    tx_index=index,
                    tx_id=txs[index].id,
                    check="result",
                )
        results_root = compute_results_root(outcome.results)
        if header.get("results_root") != results_root:
            raise AuditError(
                expected,
                "results_root in header %s, re-execution gives %s"
                % (header.get("results_root"), results_root),
                check="results_root",
            )
        governs = any(tx.type in GOVERNANCE_TYPES for tx in txs)
        before = {key: self.state.get(key) for key in outcome.writes} if governs else {}
        self._apply_writes(outcome.writes)
        self.roots.submit(expected, outcome.writes)
        self.height = expected
        self.head_hash = block_hash
        self.head_time_ms = block_time
        self.unconfirmed_writes += len(outcome.writes)
        self.unconfirmed.append(
            ReplayedBlock(
                height=expected,
                hash=block_hash,
                header=header,
                view=certificate.view,
                signers=tuple(validator for validator, _ in certificate.signatures),
                txs=txs,
                results=outcome.results,
                writes=outcome.writes,
                before=before,
            )
        )

    # -- state roots arrive from the tree thread in height order -----------------------
    def confirm(self, *, wait: bool) -> None:
        """Compare the roots that came back (all outstanding ones when `wait`); each
        confirmed block goes to the observers, so they only ever see checked blocks."""
        while self.unconfirmed and (wait or self.roots.ready()):
            self._confirm_next()

    def _confirm_next(self) -> None:
        """Wait for the oldest unconfirmed block's root and compare it."""
        height, state_root = self.roots.next_root()
        record = self.unconfirmed.popleft()
        self.unconfirmed_writes -= len(record.writes)
        if record.height != height:
            raise RuntimeError(
                "state roots came back out of order (%d for %d)" % (height, record.height)
            )
        claimed = record.header.get("state_root")
        if claimed != state_root:
            raise AuditError(
                height,
                "state_root in header %s, re-execution gives %s" % (claimed, state_root),
                check="state_root",
            )
        self.root = state_root
        self.confirmed_height = height
        self.tx_count += len(record.txs)
        for observer in self.observers:
            observer.on_block(record)
        if self.on_progress is not None:
            self.on_progress(height, self.tx_count)

    @staticmethod
    def _certificate(height: int, block_hash: str, commit: Any) -> CommitCertificate:
        if not isinstance(commit, dict) or not isinstance(commit.get("signatures"), list):
            raise AuditError(height, "the block has no commit certificate", check="certificate")
        try:
            signatures = tuple(
                sorted((item["validator"], item["signature"]) for item in commit["signatures"])
            )
        except (KeyError, TypeError):
            raise AuditError(
                height, "malformed commit certificate signatures", check="certificate"
            ) from None
        if not all(isinstance(part, str) for pair in signatures for part in pair):
            raise AuditError(height, "malformed commit certificate signatures", check="certificate")
        view = commit.get("view")
        if not isinstance(view, int) or isinstance(view, bool) or view < 0:
            raise AuditError(
                height,
                "commit view %r is not a non-negative integer" % (view,),
                check="certificate",
            )
        return CommitCertificate(height=height, view=view, block=block_hash, signatures=signatures)

    # -- the pipeline ------------------------------------------------------------------
    def run(self, blocks: Iterable[SourceBlock], expected_height: int | None) -> ReplayedChain:
        started = time.perf_counter()
        pending: deque[_Prepared] = deque()
        pending_txs = 0
        iterator: Iterator[SourceBlock] = iter(blocks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < LOOKAHEAD_BLOCKS and pending_txs < LOOKAHEAD_TXS:
                try:
                    source_block = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                prepared = self.prepare(source_block)
                pending.append(prepared)
                pending_txs += len(prepared.source.txs)
            if not pending:
                break
            prepared = pending.popleft()
            pending_txs -= len(prepared.source.txs)
            try:
                self.check(prepared)
            except AuditError:
                # An earlier block's state root may be wrong too: the lowest height is reported.
                self.confirm(wait=True)
                raise
            self.confirm(wait=False)
            while (
                len(self.unconfirmed) >= MAX_UNCONFIRMED_BLOCKS
                or self.unconfirmed_writes >= MAX_UNCONFIRMED_WRITES
            ):
                self._confirm_next()
            # The replayed state is a million long-lived maps without reference cycles; left
            # in the collector's generations, every full collection walks all of them (a fifth
            # of execution time). Frozen, they are freed by reference counting as before.
            gc.freeze()
        self.confirm(wait=True)
        if expected_height is not None and self.height < expected_height:
            raise AuditError(
                self.height + 1,
                "the node reports height %d but block %d is missing"
                % (expected_height, self.height + 1),
                check="height",
            )
        return ReplayedChain(
            genesis=self.genesis,
            genesis_state_root=self.genesis_root,
            height=self.height,
            head_hash=self.head_hash,
            state_root=self.root,
            blocks=self.height,
            txs=self.tx_count,
            elapsed_s=time.perf_counter() - started,
            state=self.state,
        )


def replay_chain(
    genesis_obj: dict[str, Any],
    blocks: Iterable[SourceBlock],
    *,
    checker: SignatureChecker,
    expected_height: int | None = None,
    observers: Iterable[BlockObserver] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayedChain:
    """Check every block from genesis; raise AuditError at the first mismatch."""
    roots = StateRoots()
    try:
        replayer = _Replayer(genesis_obj, checker, roots, observers, on_progress)
        return replayer.run(blocks, expected_height)
    finally:
        roots.close()
        # Objects frozen during the run (see _Replayer.run) are the collector's again.
        gc.unfreeze()


def genesis_hash_of(genesis_obj: dict[str, Any]) -> str:
    return sha256_hex(canonical_bytes(genesis_obj))
