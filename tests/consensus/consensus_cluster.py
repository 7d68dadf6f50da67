"""A tiny synchronous in-memory wiring of replicas for unit tests (no delays, no randomness)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from consensus.effects import Broadcast, Committed, Effect, Persist, Send
from consensus.replica import Replica, ReplicaConfig
from primitives.crypto import SigningKey, sha256
from simulation.ledger import SimulatedLedger

CHAIN_ID = "yuxi-test"
GENESIS_TIME_MS = 1_000_000
CONFIG = ReplicaConfig(
    chain_id=CHAIN_ID,
    base_timeout_ms=1000,
    max_timeout_ms=8000,
    empty_block_interval_ms=200,
    min_block_interval_ms=10,
    sync_batch=8,
)


def key(index: int) -> SigningKey:
    return SigningKey(sha256(b"test validator %d" % index))


@dataclass
class Member:
    signer: SigningKey
    ledger: SimulatedLedger
    replica: Replica
    journal: list[dict] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


class Cluster:
    """Replicas wired together; `drop(sender, receiver, data)` can filter deliveries."""

    def __init__(self, size: int, extra_keys: int = 0, replica_class: type[Replica] = Replica) -> None:
        self.keys = [key(i) for i in range(size + extra_keys)]
        self.validators = [k.public_key for k in self.keys[:size]]
        self.replica_class = replica_class
        self.members: dict[str, Member] = {}
        for signer in self.keys:
            ledger = SimulatedLedger(CHAIN_ID, self.validators, GENESIS_TIME_MS)
            self.members[signer.public_key] = Member(signer, ledger, replica_class(ledger, signer, [], CONFIG))
        self.now_ms = GENESIS_TIME_MS
        self.queue: list[tuple[str, str, bytes]] = []
        self.drop: Callable[[str, str, bytes], bool] = lambda sender, receiver, data: False
        self.down: set[str] = set()

    def member_at(self, index: int) -> Member:
        return self.members[self.keys[index].public_key]

    def handle(self, sender: str, effects: list[Effect]) -> None:
        member = self.members[sender]
        member.effects.extend(effects)
        for effect in effects:
            if isinstance(effect, Persist):
                member.journal.append(effect.record)
            elif isinstance(effect, Broadcast):
                for other in self.members:
                    if other != sender:
                        self.queue.append((sender, other, effect.data))
            elif isinstance(effect, Send):
                self.queue.append((sender, effect.to, effect.data))

    def start(self) -> None:
        for public_key, member in self.members.items():
            self.handle(public_key, member.replica.start(self.now_ms))
        self.deliver()

    def deliver(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            if not self.queue:
                return
            sender, receiver, data = self.queue.pop(0)
            if receiver in self.down or sender in self.down or self.drop(sender, receiver, data):
                continue
            member = self.members[receiver]
            self.handle(receiver, member.replica.receive(sender, data, self.now_ms))
        raise AssertionError("messages keep flowing")

    def advance(self, duration_ms: int, step_ms: int = 50) -> None:
        end = self.now_ms + duration_ms
        while self.now_ms < end:
            self.now_ms += step_ms
            for public_key, member in self.members.items():
                if public_key not in self.down:
                    self.handle(public_key, member.replica.tick(self.now_ms))
            self.deliver()

    def restart(self, public_key: str) -> None:
        member = self.members[public_key]
        member.ledger.mempool.clear()
        member.replica = self.replica_class(member.ledger, member.signer, list(member.journal), CONFIG)
        self.down.discard(public_key)
        self.handle(public_key, member.replica.start(self.now_ms))
        self.deliver()

    def heights(self) -> list[int]:
        return [member.ledger.committed_height() for member in self.members.values()]

    def committed(self, public_key: str) -> list[Committed]:
        return [effect for effect in self.members[public_key].effects if isinstance(effect, Committed)]
