"""Byzantine behaviours: what a faulty validator does with the messages its replica emits.

A Byzantine node runs an ordinary Replica (so it keeps up with the chain) and a
behaviour rewrites its outgoing traffic. It holds its own signing key, so what it
signs is validly signed; what it forges for other validators is not. Every choice is
drawn from the simulation's seeded random.Random.
"""

from __future__ import annotations

import random
from typing import Any

from consensus import messages
from consensus.types import Block
from primitives.crypto import SigningKey
from simulation.ledger import SimulatedLedger

# (recipients or None for everyone else, bytes)
Outgoing = list[tuple[list[str] | None, bytes]]


class Behaviour:
    name = "honest"

    def __init__(self, rng: random.Random, signer: SigningKey, chain_id: str) -> None:
        self.rng = rng
        self.signer = signer
        self.chain_id = chain_id
        self.injected = 0

    def outgoing(self, data: bytes, ledger: SimulatedLedger, validators: list[str], now_ms: int) -> Outgoing:
        return [(None, data)]

    def observe(self, data: bytes) -> None:
        """See a message the node received (for replays)."""


class EquivocatingLeader(Behaviour):
    """Proposes two different blocks to two halves of the validators and votes for both."""

    name = "equivocating_leader"

    def __init__(self, rng: random.Random, signer: SigningKey, chain_id: str, forge: bool = False) -> None:
        super().__init__(rng, signer, chain_id)
        self.forge = forge
        # (height, view) -> (block A, block B, group A, group B)
        self.splits: dict[tuple[int, int], tuple[str, str, list[str], list[str]]] = {}

    def outgoing(self, data: bytes, ledger: SimulatedLedger, validators: list[str], now_ms: int) -> Outgoing:
        message = messages.decode(data)
        others = [v for v in validators if v != self.signer.public_key]
        if isinstance(message, messages.Proposal):
            twin = _twin_block(ledger, message.block, self.rng)
            if twin is None:
                return [(None, data)]
            shuffled = list(others)
            self.rng.shuffle(shuffled)
            cut = self.rng.randint(1, max(1, len(shuffled) - 1))
            group_a, group_b = shuffled[:cut], shuffled[cut:]
            self.splits[(message.height, message.view)] = (message.block.hash, twin.hash, group_a, group_b)
            second = messages.make_proposal(
                self.chain_id, self.signer, message.height, message.view, twin, message.justification
            )
            self.injected += 1
            sends: Outgoing = [(group_a, data), (group_b, messages.encode(second))]
            if self.forge:
                sends += self._forged_quorum(message.height, message.view, message.block.hash, group_a, validators)
                sends += self._forged_quorum(message.height, message.view, twin.hash, group_b, validators)
            return sends
        if isinstance(message, messages.Vote):
            split = self.splits.get((message.height, message.view))
            if split is not None and message.block == split[0]:
                other = messages.make_vote(
                    self.chain_id, self.signer, message.kind, message.height, message.view, split[1]
                )
                self.injected += 1
                return [(split[2], data), (split[3], messages.encode(other))]
        return [(None, data)]

    def _forged_quorum(
        self, height: int, view: int, block: str, group: list[str], validators: list[str]
    ) -> Outgoing:
        """Votes 'from' every other validator, with signatures that cannot be valid."""
        sends: Outgoing = []
        for kind in (messages.PREPARE, messages.COMMIT):
            for validator in validators:
                if validator == self.signer.public_key:
                    continue
                forged = messages.Vote(kind, validator, height, view, block, self.rng.randbytes(64).hex())
                sends.append((group, messages.encode(forged)))
                self.injected += 1
        return sends


class InvalidProposer(Behaviour):
    """Proposes blocks that break one rule or another, validly signed."""

    name = "invalid_proposer"

    def outgoing(self, data: bytes, ledger: SimulatedLedger, validators: list[str], now_ms: int) -> Outgoing:
        message = messages.decode(data)
        if not isinstance(message, messages.Proposal):
            return [(None, data)]
        header = dict(message.block.header)
        txs = list(message.block.txs)
        flaw = self.rng.randrange(7)
        if flaw == 0:
            header["state_root"] = self.rng.randbytes(32).hex()
        elif flaw == 1:
            header["parent"] = self.rng.randbytes(32).hex()
        elif flaw == 2:
            header["time"] = now_ms + 10 * ledger.max_clock_drift_ms()
        elif flaw == 3:
            header["height"] = message.height + 1
        elif flaw == 4:
            txs.append("zz")
        elif flaw == 5:
            header["time"] = int(ledger.last_header()["time"])
        else:
            header["proposer"] = self.rng.choice(validators)
            header["tx_root"] = self.rng.randbytes(32).hex()
        block = Block(header=header, txs=tuple(txs))
        bad = messages.make_proposal(self.chain_id, self.signer, message.height, message.view, block, message.justification)
        self.injected += 1
        return [(None, messages.encode(bad))]


class Forger(EquivocatingLeader):
    """Equivocates with forged quorums, and litters the network with forged, replayed,
    corrupted and meaningless messages."""

    name = "forger"

    def __init__(self, rng: random.Random, signer: SigningKey, chain_id: str) -> None:
        super().__init__(rng, signer, chain_id, forge=True)
        self.seen: list[bytes] = []

    def observe(self, data: bytes) -> None:
        if len(self.seen) < 256:
            self.seen.append(data)
        else:
            self.seen[self.rng.randrange(256)] = data

    def outgoing(self, data: bytes, ledger: SimulatedLedger, validators: list[str], now_ms: int) -> Outgoing:
        sends = super().outgoing(data, ledger, validators, now_ms)
        for _ in range(self.rng.randrange(3)):
            sends.append((None, self._noise(data, validators)))
            self.injected += 1
        return sends

    def _noise(self, data: bytes, validators: list[str]) -> bytes:
        choice = self.rng.randrange(5)
        if choice == 0:
            return self.rng.randbytes(self.rng.randint(1, 200))
        if choice == 1:
            flipped = bytearray(data)
            flipped[self.rng.randrange(len(flipped))] ^= 1 << self.rng.randrange(8)
            return bytes(flipped)
        if choice == 2 and self.seen:
            return self.rng.choice(self.seen)  # a stale replay
        message = messages.decode(data)
        if isinstance(message, messages.Vote):
            forged = messages.Vote(
                message.kind,
                self.rng.choice(validators),
                message.height,
                message.view,
                message.block,
                self.rng.randbytes(64).hex(),
            )
            return messages.encode(forged)
        stale = messages.make_vote(
            self.chain_id, self.signer, messages.COMMIT, max(1, ledger_height(message) - 1), 0, self.rng.randbytes(32).hex()
        )
        return messages.encode(stale)


def ledger_height(message: Any) -> int:
    return int(getattr(message, "height", 1))


def _twin_block(ledger: SimulatedLedger, block: Block, rng: random.Random) -> Block | None:
    """A different valid block for the same height: a millisecond later, maybe other txs."""
    if block.height != ledger.committed_height() + 1:
        return None
    txs = list(block.txs)
    if txs and rng.random() < 0.5:
        txs = txs[:-1]
    return ledger.build_block(block.height, block.time_ms + 1, block.header["proposer"], txs)
