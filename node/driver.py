"""One asyncio task owns the replica: it feeds it messages and ticks and carries out its effects.

Effects of one call are carried out in list order, and a Persist is synced to
the journal before any later Send or Broadcast leaves the process, so a crash
can never make this validator contradict what it signed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from consensus.effects import (
    Broadcast,
    Committed,
    Discarded,
    Effect,
    EvidenceFound,
    Persist,
    Send,
    ViewChanged,
)
from consensus.replica import Replica
from node.clock import NodeClock
from node.metrics import NodeMetrics
from node.peers import KIND_CONSENSUS, PeerNetwork
from node.storage import Storage
from primitives.crypto import sha256_hex
from primitives.encoding import canonical_bytes

log = logging.getLogger("yuxi.consensus")

INBOX_LIMIT = 20_000
MAX_MESSAGES_PER_TURN = 500
BEHIND_AFTER_MS = 10_000


class ReplicaDriver:
    def __init__(
        self,
        *,
        replica: Replica,
        storage: Storage,
        peers: PeerNetwork,
        clock: NodeClock,
        metrics: NodeMetrics,
        tick_ms: int,
        names: Callable[[], dict[str, str]],
        on_commit: Callable[[], None],
    ) -> None:
        self._replica = replica
        self._storage = storage
        self._peers = peers
        self._clock = clock
        self._metrics = metrics
        self._tick_s = tick_ms / 1000
        self._names = names
        self._on_commit = on_commit
        self._inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=INBOX_LIMIT)
        self.dropped_messages = 0
        self._seen_evidence: set[str] = set()

    def is_behind(self, last_block_time_ms: int) -> bool:
        """Catching up: the last committed block is far older than the chain's block pace
        (an idle chain still makes an empty block about every second)."""
        return self._clock.now_ms() - last_block_time_ms > BEHIND_AFTER_MS

    def deliver(self, peer: str, data: bytes) -> None:
        """Called by the peer links for each consensus frame; never blocks."""
        try:
            self._inbox.put_nowait((peer, data))
        except asyncio.QueueFull:
            # Consensus recovers lost messages by retransmission and sync.
            self.dropped_messages += 1

    async def run(self, stop: asyncio.Event) -> None:
        replica = self._replica
        self._carry_out(replica.start(self._clock.now_ms()))
        loop = asyncio.get_running_loop()
        next_tick_s = loop.time() + self._tick_s
        while not stop.is_set():
            timeout_s = max(0.0, next_tick_s - loop.time())
            try:
                peer, data = await asyncio.wait_for(self._inbox.get(), timeout_s)
                self._carry_out(replica.receive(peer, data, self._clock.now_ms()))
                for _ in range(MAX_MESSAGES_PER_TURN):
                    if self._inbox.empty():
                        break
                    peer, data = self._inbox.get_nowait()
                    self._carry_out(replica.receive(peer, data, self._clock.now_ms()))
            except TimeoutError:
                pass
            if loop.time() >= next_tick_s:
                self._carry_out(replica.tick(self._clock.now_ms()))
                next_tick_s = loop.time() + self._tick_s
            await asyncio.sleep(0)

    def _carry_out(self, effects: list[Effect]) -> None:
        # Consecutive Persists (a prepared certificate and the commit vote it allows, say)
        # go to the journal in one synced batch; every one is on disk before any effect
        # that follows them in the list is carried out.
        unsynced: list[dict[str, Any]] = []
        for effect in effects:
            if isinstance(effect, Persist):
                unsynced.append(effect.record)
                continue
            if unsynced:
                self._storage.journal_append_many(unsynced)
                unsynced = []
            if isinstance(effect, Send):
                self._peers.send(effect.to, KIND_CONSENSUS, effect.data)
            elif isinstance(effect, Broadcast):
                self._peers.broadcast(KIND_CONSENSUS, effect.data)
            elif isinstance(effect, Committed):
                self._metrics.view.set(0)
                self._storage.journal_prune_below(effect.block.height + 1)
                self._on_commit()
            elif isinstance(effect, ViewChanged):
                self._metrics.view.set(effect.view)
                self._metrics.view_changes.inc()
                leader = self._leader_name(effect.height, effect.view)
                log.warning(
                    "view change: height %d now in view %d (leader %s)",
                    effect.height,
                    effect.view,
                    leader,
                )
            elif isinstance(effect, EvidenceFound):
                self._record_evidence(effect.evidence)
            elif isinstance(effect, Discarded):
                log.debug("discarded a message from %s: %s", effect.peer[:8], effect.reason)
        if unsynced:
            self._storage.journal_append_many(unsynced)

    def _leader_name(self, height: int, view: int) -> str:
        leader = self._replica.app.validator_set(height).leader(height, view)
        return self._names().get(leader, leader[:8])

    def _record_evidence(self, evidence: dict[str, object]) -> None:
        evidence_id = sha256_hex(canonical_bytes(evidence))
        if evidence_id in self._seen_evidence:
            return
        self._seen_evidence.add(evidence_id)
        stored = self._storage.get_meta("evidence") or []
        stored.append(evidence)
        self._storage.put_meta("evidence", stored[-100:])
        log.error(
            "EVIDENCE: a validator signed conflicting messages (%s); kept in the node database",
            evidence_id[:12],
        )
