"""A small deterministic Application for the simulator.

Transactions are opaque canonical values: random byte strings written as hex, plus
`{"op": "add_validator" | "remove_validator", "pubkey": ...}` maps that change the
validator set from height h+2 (PROTOCOL §4), so the replica's per-height sets are
exercised. The state root is a hash chain over every executed transaction, so two
replicas that executed different histories can never report the same root.
"""

from __future__ import annotations

from typing import Any

from consensus.types import HEADER_FIELDS, ZERO_HASH, Block, CommitCertificate, ValidatorSet, header_hash
from primitives.crypto import is_account_id, sha256_hex
from primitives.encoding import canonical_bytes
from primitives.merkle import merkle_root

MAX_BLOCK_TXS = 64
MAX_TX_HEX_CHARS = 128
MIN_VALIDATORS = 4
VALIDATOR_OPS = ("add_validator", "remove_validator")


class LedgerError(RuntimeError):
    """The replica asked the ledger to commit something that does not follow its chain."""


def tx_shape_problem(tx: Any) -> str | None:
    if isinstance(tx, str):
        if not 0 < len(tx) <= MAX_TX_HEX_CHARS or len(tx) % 2:
            return "transaction is not a short hex string"
        try:
            bytes.fromhex(tx)
        except ValueError:
            return "transaction is not hex"
        return None
    if isinstance(tx, dict) and set(tx) == {"op", "pubkey"}:
        if tx["op"] in VALIDATOR_OPS and is_account_id(tx["pubkey"]):
            return None
    return "transaction is neither hex nor a validator change"


def tx_key(tx: Any) -> str:
    return sha256_hex(canonical_bytes(tx))


class SimulatedLedger:
    def __init__(
        self,
        chain_id: str,
        validators: list[str],
        genesis_time_ms: int,
        max_clock_drift_ms: int = 1000,
    ) -> None:
        self.chain_id = chain_id
        self._drift_ms = max_clock_drift_ms
        genesis_root = sha256_hex(b"yuxi-simulation-genesis\n" + chain_id.encode())
        self._genesis_header = {
            "chain_id": chain_id,
            "height": 0,
            "parent": ZERO_HASH,
            "time": genesis_time_ms,
            "proposer": ZERO_HASH,
            "tx_root": merkle_root([]),
            "results_root": merkle_root([]),
            "state_root": genesis_root,
        }
        self.blocks: list[tuple[Block, CommitCertificate]] = []
        self.state_roots: list[str] = [genesis_root]  # index = height
        genesis_set = ValidatorSet(tuple(validators))
        self._validator_sets: dict[int, ValidatorSet] = {1: genesis_set, 2: genesis_set}
        self._committed_txs: set[str] = set()
        self.mempool: dict[str, Any] = {}

    # ------------------------------------------------------------ Application

    def committed_height(self) -> int:
        return len(self.blocks)

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if 1 <= height <= len(self.blocks):
            return self.blocks[height - 1]
        return None

    def last_header(self) -> dict[str, Any]:
        return dict(self.blocks[-1][0].header) if self.blocks else dict(self._genesis_header)

    def validator_set(self, height: int) -> ValidatorSet:
        known = max(self._validator_sets)
        if height > known:
            raise LedgerError("validator set of height %d is not known yet" % height)
        return self._validator_sets[max(1, height)]

    def propose(self, height: int, time_ms: int, proposer: str) -> Block:
        txs: list[Any] = []
        for key, tx in list(self.mempool.items()):
            if len(txs) >= MAX_BLOCK_TXS:
                break
            if key not in self._committed_txs:
                txs.append(tx)
        return self.build_block(height, time_ms, proposer, txs)

    def check_proposal(self, block: Block) -> str | None:
        header = block.header
        if set(header) != set(HEADER_FIELDS):
            return "header fields are not the expected ones"
        if block.height != self.committed_height() + 1:
            return "height is not the next one"
        if header["parent"] != self._parent_hash():
            return "parent is not the last block"
        if header["chain_id"] != self.chain_id:
            return "wrong chain"
        if len(block.txs) > MAX_BLOCK_TXS:
            return "too many transactions"
        keys = set()
        for tx in block.txs:
            problem = tx_shape_problem(tx)
            if problem is not None:
                return problem
            key = tx_key(tx)
            if key in keys or key in self._committed_txs:
                return "transaction repeated"
            keys.add(key)
        expected = self.build_block(block.height, block.time_ms, header["proposer"], list(block.txs))
        for name in ("tx_root", "results_root", "state_root"):
            if header[name] != expected.header[name]:
                return "%s differs from local execution" % name
        return None

    def has_pending(self) -> bool:
        return any(key not in self._committed_txs for key in self.mempool)

    def max_clock_drift_ms(self) -> int:
        return self._drift_ms

    def commit(self, block: Block, certificate: CommitCertificate) -> None:
        problem = self.check_proposal(block)
        if problem is not None:
            raise LedgerError("asked to commit an invalid block %d: %s" % (block.height, problem))
        if certificate.block != block.hash or certificate.height != block.height:
            raise LedgerError("certificate does not match block %d" % block.height)
        state_root, results = self._execute(block.height, list(block.txs))
        next_set = self._validator_sets[block.height + 1]
        for tx, result in zip(block.txs, results):
            if result == "ok" and isinstance(tx, dict):
                next_set = _apply_change(next_set, tx)
        self._validator_sets[block.height + 2] = next_set
        self.blocks.append((block, certificate))
        self.state_roots.append(state_root)
        for tx in block.txs:
            key = tx_key(tx)
            self._committed_txs.add(key)
            self.mempool.pop(key, None)

    # ------------------------------------------------------------ helpers

    def submit(self, tx: Any) -> None:
        key = tx_key(tx)
        if key not in self._committed_txs:
            self.mempool.setdefault(key, tx)

    def build_block(self, height: int, time_ms: int, proposer: str, txs: list[Any]) -> Block:
        state_root, results = self._execute(height, txs)
        header = {
            "chain_id": self.chain_id,
            "height": height,
            "parent": self._parent_hash(),
            "time": time_ms,
            "proposer": proposer,
            "tx_root": merkle_root([canonical_bytes(tx) for tx in txs]),
            "results_root": merkle_root([canonical_bytes(result) for result in results]),
            "state_root": state_root,
        }
        return Block(header=header, txs=tuple(txs))

    def _parent_hash(self) -> str:
        return header_hash(self.blocks[-1][0].header) if self.blocks else ZERO_HASH

    def _execute(self, height: int, txs: list[Any]) -> tuple[str, list[str]]:
        root = bytes.fromhex(self.state_roots[-1])
        current = self._validator_sets.get(height + 1, self._validator_sets[max(self._validator_sets)])
        results = []
        for tx in txs:
            result = "ok"
            if isinstance(tx, dict):
                changed = _apply_change(current, tx)
                if changed == current:
                    result = "rejected"
                current = changed
            results.append(result)
            root = bytes.fromhex(sha256_hex(root + canonical_bytes([tx, result])))
        return root.hex(), results


def _apply_change(validators: ValidatorSet, change: dict[str, Any]) -> ValidatorSet:
    members = set(validators.validators)
    if change["op"] == "add_validator":
        members.add(change["pubkey"])
    elif len(members) > MIN_VALIDATORS:
        members.discard(change["pubkey"])
    return ValidatorSet(tuple(members))
