"""Run a whole cluster of replicas in one process from one seed, and check it.

Network (delay, loss, duplication, reordering, partitions symmetric and not),
processes (crash at any point of a call, restart from the persisted journal and the
durable ledger only), clocks (skew within and beyond the allowed drift) and Byzantine
validators (equivocation, Twins, invalid proposals, forged, stale and corrupt
messages) are all drawn from random.Random(seed), so a seed replays exactly.

After every step: no two honest replicas commit different blocks at one height, all
commit the same state roots, and evidence only ever accuses faulty validators. After
the faults heal: every honest replica commits new blocks within a bounded number of
view changes.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from consensus import messages
from consensus.effects import Broadcast, Committed, Discarded, EvidenceFound, Persist, Send, ViewChanged
from consensus.evidence import verify_evidence
from consensus.replica import Replica, ReplicaConfig
from primitives.crypto import SigningKey, sha256
from simulation.byzantine import Behaviour, EquivocatingLeader, Forger, InvalidProposer
from simulation.ledger import SimulatedLedger

CHAIN_ID = "yuxi-sim"
GENESIS_TIME_MS = 1_700_000_000_000
TICK_MS = 50
MAX_CLOCK_DRIFT_MS = 1000
FAULT_KINDS = (
    "network",
    "partition",
    "adaptive_partition",
    "crash",
    "clock",
    "equivocating_leader",
    "twins",
    "invalid_proposer",
    "forger",
    "validator_change",
    "mixed",
)
LIVENESS_BLOCKS = 3
SIMULATION_CONFIG = ReplicaConfig(
    chain_id=CHAIN_ID,
    base_timeout_ms=300,
    max_timeout_ms=2400,
    empty_block_interval_ms=150,
    min_block_interval_ms=20,
    sync_batch=8,
)


class SimulationFailure(AssertionError):
    """An invariant broke; the message names the seed and how to replay it."""


def scenario_for(seed: int) -> tuple[str, int]:
    """The fault kind and cluster size a seed runs by default: every kind, both sizes."""
    return FAULT_KINDS[seed % len(FAULT_KINDS)], (4, 7)[(seed // len(FAULT_KINDS)) % 2]


def replay_command(seed: int, kind: str, validators: int, variant: str | None) -> str:
    command = "python scripts/simulate.py --seed %d --kind %s --validators %d" % (seed, kind, validators)
    return command + (" --variant %s" % variant if variant else "")


@dataclass
class Node:
    index: int
    signer: SigningKey
    ledger: SimulatedLedger
    replica: Replica
    skew_ms: int = 0
    alive: bool = True
    honest: bool = True  # runs the replica alone with its own key (safety is checked)
    live: bool = True  # must commit after the faults heal (not when its clock is off)
    behaviour: Behaviour | None = None
    crash_mid_call: bool = False
    journal: list[dict[str, Any]] = field(default_factory=list)
    view_changes: int = 0
    view_changes_after_heal: int = 0
    commits_after_heal: int = 0
    blocks_to_liveness: int | None = None

    @property
    def key(self) -> str:
        return self.signer.public_key


@dataclass
class SimulationResult:
    seed: int
    kind: str
    validators: int
    simulated_ms: int
    blocks: int
    view_changes: int
    faults: dict[str, int]
    evidence: int


class Simulation:
    def __init__(
        self,
        seed: int,
        kind: str | None = None,
        validators: int | None = None,
        replica_class: type[Replica] = Replica,
        variant: str | None = None,
        fault_ms: int = 5000,
        healthy_ms: int = 8000,
    ) -> None:
        default_kind, default_size = scenario_for(seed)
        self.seed = seed
        self.kind = kind or default_kind
        self.size = validators or default_size
        if self.kind not in FAULT_KINDS:
            raise ValueError("unknown fault kind %r" % self.kind)
        self.replica_class = replica_class
        self.variant = variant
        self.rng = random.Random(seed)
        self.fault_end_ms = GENESIS_TIME_MS + fault_ms
        self.end_ms = self.fault_end_ms + healthy_ms
        self.now_ms = GENESIS_TIME_MS
        self.faults: dict[str, int] = {}
        self.max_faulty = (self.size - 1) // 3
        self._events: list[tuple[int, int, str, Any]] = []
        self._sequence = 0
        self.canonical: dict[int, tuple[str, str]] = {}  # height -> (block hash, state root)
        self.evidence = 0
        self.blocked: set[tuple[int, int]] = set()
        self.loss = 0.0
        self.duplication = 0.0
        self.delay_ms = (1, 20)
        self.faulty_keys: set[str] = set()
        self._well_formed: set[bytes] = set()
        # The adaptive adversary: armed, it waits for the first commit of a height, then
        # hides the commit votes of the view that committed it from everyone else and cuts
        # the outgoing links of whoever has committed it, until one of the others decides
        # the height (or the fault phase ends): the rest must decide without them, in a
        # later view, and the certificate that block was prepared with must carry over.
        self.adversary_armed = False
        self.adversary_height = 0
        self.adversary_view = 0
        self.adversary_until_ms = 0
        self.adversary_isolated: set[int] = set()
        self.nodes: list[Node] = []
        self._build()

    # ------------------------------------------------------------ set-up

    def _count(self, fault: str, amount: int = 1) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + amount

    def _build(self) -> None:
        extra = 2 if self.kind in ("validator_change", "mixed") else 0
        keys = [SigningKey(sha256(b"sim %d validator %d" % (self.seed, i))) for i in range(self.size + extra)]
        validators = [k.public_key for k in keys[: self.size]]
        self.validator_keys = validators
        self.all_keys = [k.public_key for k in keys]
        for index, signer in enumerate(keys):
            self.nodes.append(self._new_node(index, signer, validators))
        self._choose_faults(keys, validators)
        for node in self.nodes:
            self._schedule(GENESIS_TIME_MS + self.rng.randrange(TICK_MS), "start", node.index)
        submit_at = GENESIS_TIME_MS
        while submit_at < self.end_ms:
            submit_at += self.rng.randint(50, 400)
            self._schedule(submit_at, "submit", self.rng.randbytes(self.rng.randint(1, 24)).hex())

    def _new_node(self, index: int, signer: SigningKey, validators: list[str]) -> Node:
        ledger = SimulatedLedger(CHAIN_ID, validators, GENESIS_TIME_MS, MAX_CLOCK_DRIFT_MS)
        replica = self.replica_class(ledger, signer, [], SIMULATION_CONFIG)
        return Node(index, signer, ledger, replica)

    def _mark_faulty(self, node: Node, behaviour: Behaviour | None) -> None:
        """A Byzantine node, or one of a pair of Twins: counted among the f, unchecked."""
        node.honest = False
        node.live = False
        node.behaviour = behaviour
        self.faulty_keys.add(node.key)

    def _choose_faults(self, keys: list[SigningKey], validators: list[str]) -> None:
        rng, kind = self.rng, self.kind
        voters = list(range(self.size))
        network = kind in ("network", "mixed") or rng.random() < 0.3
        if network:
            self.loss = rng.choice([0.01, 0.05, 0.1, 0.2])
            self.duplication = rng.choice([0.0, 0.02, 0.1])
            self.delay_ms = (1, rng.choice([20, 60, 150, 300]))
        if kind in ("partition", "mixed"):
            at = GENESIS_TIME_MS + rng.randint(0, 1000)
            while at < self.fault_end_ms - 200:
                length = rng.randint(50, 1500)
                self._schedule(at, "partition", None)
                at += length
                self._schedule(min(at, self.fault_end_ms), "heal_partition", None)
                at += rng.randint(0, 800)
        if kind == "adaptive_partition" or kind == "mixed" and rng.random() < 0.5:
            at = GENESIS_TIME_MS + rng.randint(0, 500)
            while at < self.fault_end_ms - 1500:
                self._schedule(at, "arm_adversary", None)
                at += rng.randint(700, 1500)
        if kind in ("crash", "mixed"):
            victims = rng.randint(1, self.size if kind == "crash" else self.max_faulty)
            for _ in range(victims * rng.randint(1, 3)):
                index = rng.randrange(len(self.nodes))
                down_at = GENESIS_TIME_MS + rng.randint(0, self.fault_end_ms - GENESIS_TIME_MS - 300)
                up_at = min(self.fault_end_ms, down_at + rng.randint(50, 2500))
                self._schedule(down_at, "crash", index)
                self._schedule(up_at, "restart", index)
        skew_bound = MAX_CLOCK_DRIFT_MS // 3
        if kind in ("clock", "mixed"):
            for node in self.nodes:
                node.skew_ms = rng.randint(-skew_bound, skew_bound)
            if kind == "clock":
                for index in rng.sample(voters, rng.randint(1, self.max_faulty)):
                    beyond = rng.randint(MAX_CLOCK_DRIFT_MS + 100, 4 * MAX_CLOCK_DRIFT_MS)
                    self.nodes[index].skew_ms = beyond if rng.random() < 0.5 else -beyond
                    # Its replica is honest (checked for safety), but it cannot be
                    # expected to keep up: it counts among the f.
                    self.nodes[index].live = False
                    self._count("clock_beyond_drift")
            self._count("clock_skewed", len(self.nodes))
        byzantine_count = rng.randint(1, self.max_faulty)
        if kind == "mixed":
            byzantine_count = rng.randint(0, self.max_faulty)
            kind = rng.choice(["equivocating_leader", "twins", "invalid_proposer", "forger"])
        chosen = rng.sample(voters, byzantine_count)
        if kind in ("equivocating_leader", "invalid_proposer", "forger"):
            makers = {"equivocating_leader": EquivocatingLeader, "invalid_proposer": InvalidProposer, "forger": Forger}
            for index in chosen:
                node = self.nodes[index]
                self._mark_faulty(node, makers[kind](random.Random(rng.random()), node.signer, CHAIN_ID))
                self._count("byzantine_" + kind)
        elif kind == "twins":
            for index in chosen:
                original = self.nodes[index]
                twin = self._new_node(len(self.nodes), original.signer, validators)
                self.nodes.append(twin)
                self._mark_faulty(original, None)
                self._mark_faulty(twin, None)
                self._count("twins")
        if self.kind == "validator_change":
            self._schedule_validator_changes(keys)

    def _schedule_validator_changes(self, keys: list[SigningKey]) -> None:
        rng = self.rng
        newcomers = [k.public_key for k in keys[self.size :]]
        at = GENESIS_TIME_MS + rng.randint(100, 800)
        for newcomer in newcomers:
            self._schedule(at, "submit", {"op": "add_validator", "pubkey": newcomer})
            at += rng.randint(200, 1500)
        for leaving in rng.sample(self.validator_keys, min(len(newcomers), len(self.validator_keys))):
            self._schedule(at, "submit", {"op": "remove_validator", "pubkey": leaving})
            at += rng.randint(200, 1500)

    # ------------------------------------------------------------ event loop

    def _schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (at_ms, self._sequence, kind, payload))

    def run(self) -> SimulationResult:
        try:
            while self._events and self._events[0][0] <= self.end_ms:
                at_ms, _, kind, payload = heapq.heappop(self._events)
                self.now_ms = at_ms
                self._step(kind, payload)
            self._check_liveness()
        except SimulationFailure:
            raise
        except Exception as exc:
            self._fail("%s: %s" % (type(exc).__name__, exc), exc)
        return SimulationResult(
            seed=self.seed,
            kind=self.kind,
            validators=self.size,
            simulated_ms=self.now_ms - GENESIS_TIME_MS,
            blocks=max((n.ledger.committed_height() for n in self.nodes if n.honest), default=0),
            view_changes=sum(n.view_changes for n in self.nodes if n.honest),
            faults=dict(sorted(self.faults.items())),
            evidence=self.evidence,
        )

    def _fail(self, reason: str, cause: BaseException | None = None) -> None:
        message = "seed %d (%s, %d validators%s) at %d ms: %s\n  replay: %s" % (
            self.seed,
            self.kind,
            self.size,
            ", variant " + self.variant if self.variant else "",
            self.now_ms - GENESIS_TIME_MS,
            reason,
            replay_command(self.seed, self.kind, self.size, self.variant),
        )
        raise SimulationFailure(message) from cause

    def _local_ms(self, node: Node) -> int:
        return self.now_ms + node.skew_ms

    def _step(self, kind: str, payload: Any) -> None:
        if kind == "deliver":
            index, sender_index, data = payload
            node = self.nodes[index]
            if (sender_index, index) in self.blocked:
                self._count("dropped_by_partition")  # the link broke while it was in flight
            elif self._adversary_drops(sender_index, index, data):
                self._count("dropped_by_adversary")
            elif node.alive:
                sender = self.nodes[sender_index].key
                if node.behaviour is not None:
                    node.behaviour.observe(data)
                self._carry_out(node, node.replica.receive(sender, data, self._local_ms(node)))
        elif kind == "tick":
            node = self.nodes[payload]
            if node.alive:
                self._carry_out(node, node.replica.tick(self._local_ms(node)))
                self._schedule(self.now_ms + TICK_MS, "tick", payload)
        elif kind == "start":
            node = self.nodes[payload]
            self._carry_out(node, node.replica.start(self._local_ms(node)))
            self._schedule(self.now_ms + TICK_MS, "tick", payload)
        elif kind == "submit":
            for node in self.nodes:
                if self.rng.random() < 0.7:
                    node.ledger.submit(payload)
        elif kind == "partition":
            self._partition()
        elif kind == "heal_partition":
            self.blocked = set()
        elif kind == "arm_adversary":
            self.adversary_armed = True
        elif kind == "crash":
            node = self.nodes[payload]
            if node.alive:
                if self.rng.random() < 0.5:
                    node.crash_mid_call = True  # dies part-way through its next call
                else:
                    self._crash(node)
        elif kind == "restart":
            node = self.nodes[payload]
            node.crash_mid_call = False
            if not node.alive:
                self._restart(node)
        if self.now_ms >= self.fault_end_ms and (self.loss or self.blocked):
            self.loss, self.duplication, self.delay_ms, self.blocked = 0.0, 0.0, (1, 20), set()

    def _partition(self) -> None:
        count = len(self.nodes)
        members = list(range(count))
        self.rng.shuffle(members)
        cut = self.rng.randint(1, count - 1)
        side_a, side_b = members[:cut], members[cut:]
        shape = self.rng.randrange(3)
        if shape == 2:
            # Flaky links: each direction of each link fails on its own.
            self.blocked = {
                (a, b) for a in members for b in members if a != b and self.rng.random() < 0.5
            }
            self._count("partition_links")
            return
        self.blocked = {(a, b) for a in side_a for b in side_b}
        if shape == 0:
            self.blocked |= {(b, a) for a in side_a for b in side_b}
        self._count("partition" if shape == 0 else "partition_asymmetric")

    def _crash(self, node: Node) -> None:
        node.alive = False
        node.crash_mid_call = False
        self._count("crash")

    def _restart(self, node: Node) -> None:
        node.ledger.mempool.clear()
        node.replica = self.replica_class(node.ledger, node.signer, list(node.journal), SIMULATION_CONFIG)
        node.alive = True
        self._count("restart")
        self._carry_out(node, node.replica.start(self._local_ms(node)))
        self._schedule(self.now_ms + TICK_MS, "tick", node.index)

    # ------------------------------------------------------------ effects and invariants

    def _carry_out(self, node: Node, effects: list[Any]) -> None:
        if node.crash_mid_call:
            effects = effects[: self.rng.randint(0, len(effects))]
            self._count("crash_mid_call")
        for effect in effects:
            if isinstance(effect, Persist):
                node.journal.append(effect.record)
            elif isinstance(effect, Broadcast):
                self._send(node, None, effect.data)
            elif isinstance(effect, Send):
                self._send(node, [effect.to], effect.data)
            elif isinstance(effect, Committed):
                self._check_commit(node, effect)
            elif isinstance(effect, ViewChanged):
                node.view_changes += 1
                if self.now_ms >= self.fault_end_ms and node.blocks_to_liveness is None:
                    node.view_changes_after_heal += 1
            elif isinstance(effect, EvidenceFound):
                self._check_evidence(effect.evidence)
            elif isinstance(effect, Discarded):
                pass
        if node.crash_mid_call:
            self._crash(node)

    def _adversary_drops(self, source: int, target: int, data: bytes) -> bool:
        if self.now_ms >= self.adversary_until_ms:
            return False
        if source in self.adversary_isolated:
            return True
        try:
            message = messages.decode(data)
        except messages.MessageError:
            return False  # a Byzantine node's garbage: let the replica triage it
        return (
            isinstance(message, messages.Vote)
            and message.kind == messages.COMMIT
            and message.height == self.adversary_height
            and message.view == self.adversary_view
            and target not in self.adversary_isolated
        )

    def _adversary_sees_commit(self, node: Node, effect: Committed) -> None:
        height = effect.block.height
        if self.adversary_armed and self.now_ms < self.fault_end_ms:
            self.adversary_armed = False
            self.adversary_height = height
            self.adversary_view = effect.certificate.view
            self.adversary_until_ms = self.fault_end_ms
            self.adversary_isolated = {node.index}
            self._count("adaptive_partition")
        elif height == self.adversary_height and self.now_ms < self.adversary_until_ms:
            if effect.certificate.view == self.adversary_view:
                self.adversary_isolated.add(node.index)  # the hidden votes reached it in time
            else:
                self.adversary_until_ms = self.now_ms  # the others decided: the attack is over

    def _check_commit(self, node: Node, effect: Committed) -> None:
        block = effect.block
        self._adversary_sees_commit(node, effect)
        root = node.ledger.state_roots[block.height]
        if root != block.header["state_root"]:
            self._fail("node %d committed block %d whose state root is not its own" % (node.index, block.height))
        if node.honest:
            known = self.canonical.get(block.height)
            if known is None:
                self.canonical[block.height] = (block.hash, root)
            elif known != (block.hash, root):
                self._fail(
                    "safety: honest node %d committed %s at height %d, another honest node %s"
                    % (node.index, block.hash[:12], block.height, known[0][:12])
                )
            if self.now_ms >= self.fault_end_ms:
                node.commits_after_heal += 1
                if node.commits_after_heal == LIVENESS_BLOCKS and node.blocks_to_liveness is None:
                    node.blocks_to_liveness = node.view_changes_after_heal

    def _check_evidence(self, evidence: dict[str, Any]) -> None:
        self.evidence += 1
        if not verify_evidence(CHAIN_ID, evidence):
            self._fail("evidence that does not verify: %r" % (evidence,))
        if evidence["validator"] not in self.faulty_keys:
            self._fail("evidence accuses honest validator %s" % evidence["validator"][:12])

    def _send(self, node: Node, recipients: list[str] | None, data: bytes) -> None:
        if data not in self._well_formed:
            try:
                messages.decode(data)
            except messages.MessageError as exc:
                # Every replica runs honest code; only the Byzantine rewriting comes later.
                self._fail("node %d's replica sent a malformed message: %s" % (node.index, exc))
            if len(self._well_formed) > 4096:
                self._well_formed.clear()
            self._well_formed.add(data)  # retransmissions are the same bytes
        outgoing: list[tuple[list[str] | None, bytes]] = [(recipients, data)]
        if node.behaviour is not None and recipients is None:
            validators = list(node.ledger.validator_set(node.ledger.committed_height() + 1).validators)
            outgoing = node.behaviour.outgoing(data, node.ledger, validators, self._local_ms(node))
        for targets, payload in outgoing:
            for other in self.nodes:
                if other.index == node.index or other.key == node.key and targets is None:
                    continue
                if targets is not None and other.key not in targets:
                    continue
                self._transmit(node, other, payload)

    def _transmit(self, source: Node, target: Node, data: bytes) -> None:
        if (source.index, target.index) in self.blocked:
            self._count("dropped_by_partition")
            return
        if self._adversary_drops(source.index, target.index, data):
            self._count("dropped_by_adversary")
            return
        if self.loss and self.rng.random() < self.loss:
            self._count("dropped")
            return
        copies = 2 if self.duplication and self.rng.random() < self.duplication else 1
        if copies == 2:
            self._count("duplicated")
        for _ in range(copies):
            delay = self.rng.randint(*self.delay_ms)
            self._schedule(self.now_ms + delay, "deliver", (target.index, source.index, data))

    def _check_liveness(self) -> None:
        # f Byzantine leaders in a row can cost f views per height; three heights and a
        # few views to bring the replicas back into one view after the faults.
        bound = 3 * self.max_faulty + 4
        for node in self.nodes:
            if not node.live:
                continue
            if node.commits_after_heal < LIVENESS_BLOCKS:
                self._fail(
                    "liveness: honest node %d committed %d blocks in the %d ms after the faults healed"
                    % (node.index, node.commits_after_heal, self.end_ms - self.fault_end_ms)
                )
            if node.blocks_to_liveness is not None and node.blocks_to_liveness > bound:
                self._fail(
                    "liveness: node %d needed %d view changes after the faults healed (bound %d)"
                    % (node.index, node.blocks_to_liveness, bound)
                )


def run_seed(seed: int, **options: Any) -> SimulationResult:
    return Simulation(seed, **options).run()
