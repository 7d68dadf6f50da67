"""What the RPC handlers call: reads over storage and contracts queries, admission, events.

Reads see the latest committed state (flat values in LevelDB); pending
transactions live in the mempool. Committed blocks are announced through an
asyncio.Condition so the events socket follows commits with no gaps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from consensus.types import Block
from contracts import queries
from contracts.context import BlockContext
from contracts.execution import check_tx
from contracts.genesis import Genesis
from contracts.transactions import TxError, parse_tx
from node.bounded import BoundedCache
from node.clock import NodeClock
from node.config import NodeConfig
from node.mempool import Mempool, SignatureCache
from node.metrics import NodeMetrics
from node.rpc_support import RpcError
from node.storage import Storage

# Event texts of the latest blocks, shared by every subscriber that follows live.
EVENTS_CACHED = 64


class StorageView:
    """The latest committed state as a contracts StateView."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, key: str) -> Any | None:
        return self._storage.state_get(key)


class NodeService:
    def __init__(
        self,
        *,
        config: NodeConfig,
        genesis: Genesis,
        storage: Storage,
        mempool: Mempool,
        signatures: SignatureCache,
        metrics: NodeMetrics,
        clock: NodeClock,
        node_key: str | None,
    ) -> None:
        self.config = config
        self.genesis = genesis
        self.storage = storage
        self.mempool = mempool
        self.signatures = signatures
        self.metrics = metrics
        self.clock = clock
        self.node_key = node_key
        self.view = StorageView(storage)
        self.is_dev = bool(genesis.dev)
        self._events: BoundedCache[int, str] = BoundedCache(EVENTS_CACHED)
        self.current_view: Callable[[], int] = lambda: 0
        self.syncing: Callable[[], bool] = lambda: False
        self.peer_count: Callable[[], int] = lambda: 0
        self.on_new_tx: Callable[[Any], None] = lambda tx: None
        self._commit_signal = asyncio.Condition()

    # ---- writes ----------------------------------------------------------
    def submit(self, obj: Any) -> dict[str, Any]:
        admitted = self.mempool.admit(
            obj, is_committed=lambda tx_id: self.storage.tx_location(tx_id) is not None
        )
        if admitted.is_new:
            self.on_new_tx(admitted.tx)
        return {"id": admitted.tx.id, "status": "pending"}

    def check(self, obj: Any) -> dict[str, Any]:
        try:
            tx = parse_tx(obj, require_signature=False)
            if tx.chain_id != self.genesis.chain_id:
                raise TxError(
                    "wrong_chain",
                    "transaction is for chain %r, this is %r"
                    % (tx.chain_id, self.genesis.chain_id),
                )
            if tx.signature is not None:
                self.signatures.check(tx, self.genesis.chain_id)
        except TxError as exc:
            raise RpcError(400, exc.code, exc.message) from None
        height = self.storage.height()
        last_time_ms = self.last_block_time_ms()
        context = BlockContext(
            chain_id=self.genesis.chain_id,
            height=height + 1,
            time_ms=max(self.clock.now_ms(), last_time_ms + 1),
        )
        return check_tx(self.view, tx, context).to_dict()

    def set_clock_offset(self, offset_ms: int) -> dict[str, Any]:
        wall_ms = self.clock.now_ms() - self.clock.offset_ms
        if wall_ms + offset_ms < self.last_block_time_ms():
            # Block times only go forward; a clock behind the chain would stall this validator.
            raise RpcError(
                400,
                "clock_behind_chain",
                "offset_ms %d puts the clock before the last block time %d"
                % (offset_ms, self.last_block_time_ms()),
            )
        self.clock.offset_ms = offset_ms
        self.storage.put_meta("clock_offset_ms", offset_ms)
        return {"offset_ms": offset_ms, "now": self.clock.now_ms()}

    # ---- reads -----------------------------------------------------------
    def last_block_time_ms(self) -> int:
        head_time_ms = self.storage.head_time_ms()
        return int(self.genesis.genesis_time) if head_time_ms is None else head_time_ms

    def transaction(self, tx_id: str) -> dict[str, Any] | None:
        location = self.storage.tx_location(tx_id)
        if location is not None:
            height, index = location
            block = self.storage.block(height)
            results = self.storage.results(height)
            if block is None or results is None:
                return None
            return {
                "id": tx_id,
                "tx": block.txs[index],
                "status": "committed",
                "height": height,
                "index": index,
                "result": results[index],
            }
        pending = self.mempool.get(tx_id)
        if pending is None:
            return None
        return {
            "id": tx_id,
            "tx": pending.to_dict(),
            "status": "pending",
            "height": None,
            "index": None,
            "result": None,
        }

    def account(self, account: str) -> dict[str, Any] | None:
        return queries.account_info(
            self.view, account, max(self.clock.now_ms(), self.last_block_time_ms())
        )

    def tokens_of(self, account: str, limit: int, cursor: str | None) -> dict[str, Any]:
        tokens = self.storage.tokens_of(account, after=cursor, limit=limit + 1)
        more = len(tokens) > limit
        tokens = tokens[:limit]
        return {"tokens": tokens, "next": tokens[-1] if more else None}

    def token(self, token_id: str) -> dict[str, Any] | None:
        return queries.token_info(self.view, token_id)

    def collection(self, collection: str) -> dict[str, Any] | None:
        return queries.collection_info(self.view, collection)

    def params(self) -> dict[str, Any]:
        return queries.params_info(self.view)

    def block_answer(self, height: int, *, full_txs: bool) -> dict[str, Any] | None:
        block = self.storage.block(height)
        certificate = self.storage.certificate(height)
        results = self.storage.results(height)
        if block is None or certificate is None or results is None:
            return None
        tx_ids = self.storage.tx_ids(height) if not full_txs else None
        commit = certificate.to_dict()
        return {
            "header": block.header,
            "hash": block.hash,
            "txs": list(block.txs) if full_txs else tx_ids,
            "results": [result["code"] for result in results],
            "commit": {"view": commit["view"], "signatures": commit["signatures"]},
        }

    def status(self) -> dict[str, Any]:
        height = self.storage.height()
        validators = queries.validator_set_at(self.view, height + 1)
        return {
            "chain_id": self.genesis.chain_id,
            "height": height,
            "hash": self.storage.head_hash(),
            "view": self.current_view(),
            "node": self.node_key,
            "validators": validators,
            "syncing": self.syncing(),
            "mode": self.config.mode,
            "genesis": self.genesis.hash,
        }

    def event_text(self, height: int) -> str:
        """The events socket's message for a stored block, as JSON text. Built once per
        block however many subscribers follow it: for a block of 500 transactions that is
        milliseconds of the event loop each time."""
        text = self._events.get(height)
        if text is None:
            text = json.dumps(self.event_for(height), separators=(",", ":"))
            self._events.put(height, text)
        return text

    def event_for(self, height: int) -> dict[str, Any]:
        block = self.storage.block(height)
        results = self.storage.results(height)
        tx_ids = self.storage.tx_ids(height)
        if block is None or results is None or tx_ids is None:
            raise RuntimeError("block %d announced but not stored" % height)
        txs = [
            {"id": tx_id, "type": tx["type"], "sender": tx["sender"], "code": result["code"]}
            for tx_id, tx, result in zip(tx_ids, block.txs, results, strict=True)
        ]
        return {
            "type": "block",
            "height": height,
            "hash": block.hash,
            "time": block.time_ms,
            "txs": txs,
        }

    # ---- commit notifications -------------------------------------------
    async def announce_commit(self) -> None:
        async with self._commit_signal:
            self._commit_signal.notify_all()

    async def wait_for_commit(self, next_height: int, closed: asyncio.Event) -> None:
        """Return once `next_height` is stored or the subscriber went away (checked every second)."""
        async with self._commit_signal:
            try:
                await asyncio.wait_for(
                    self._commit_signal.wait_for(
                        lambda: self.storage.height() >= next_height or closed.is_set()
                    ),
                    timeout=1.0,
                )
            except TimeoutError:
                pass

    def refresh_gauges(self) -> None:
        """Set the gauges at scrape time, not as things change: setting one takes a lock,
        and the mempool's size changed with every admitted transaction (0.6% of a loaded
        validator)."""
        self.metrics.height.set(self.storage.height())
        self.metrics.view.set(self.current_view())
        self.metrics.mempool_size.set(len(self.mempool))
        self.metrics.peer_count.set(self.peer_count())

    def block_by_height(self, height: int) -> Block | None:
        return self.storage.block(height)
