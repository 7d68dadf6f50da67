"""Unit tests of the PBFT replica, wired in memory with the simulator's ledger."""

from __future__ import annotations

from consensus_cluster import CHAIN_ID, CONFIG, GENESIS_TIME_MS, Cluster, key

from consensus import messages
from consensus.effects import Broadcast, Committed, Discarded, EvidenceFound, Persist, ViewChanged
from consensus.evidence import verify_evidence
from consensus.replica import Replica
from consensus.types import CommitCertificate
from primitives.crypto import SigningKey
from simulation.ledger import SimulatedLedger


def kind_of(data: bytes) -> str:
    return messages.decode(data).__class__.__name__


def test_four_replicas_commit_blocks_with_verifiable_certificates() -> None:
    """In the normal case every replica commits the same chain, each block with a
    certificate a third party verifies with the validator set alone."""
    cluster = Cluster(4)
    cluster.start()
    cluster.member_at(0).ledger.submit("ab" * 8)
    cluster.advance(2000)
    chains = [[block.hash for block, _ in m.ledger.blocks] for m in cluster.members.values()]
    assert len(chains[0]) >= 5
    assert all(chain[: len(chains[0]) - 1] == chains[0][: len(chains[0]) - 1] for chain in chains)
    ledger = cluster.member_at(1).ledger
    for block, certificate in ledger.blocks:
        certificate.verify(CHAIN_ID, ledger.validator_set(block.height), block.hash)
        again = CommitCertificate.from_dict(certificate.to_dict())
        again.verify(CHAIN_ID, ledger.validator_set(block.height), block.hash)
    assert any("ab" * 8 in block.txs for block, _ in ledger.blocks)


def test_what_is_signed_is_persisted_before_it_is_sent() -> None:
    """Every vote or proposal leaves in an effect list after a Persist of its record."""
    cluster = Cluster(4)
    cluster.start()
    cluster.advance(1000)
    for member in cluster.members.values():
        persisted: set[tuple[str, int, int, str]] = set()
        for effect in member.effects:
            if isinstance(effect, Persist) and effect.record["record"] == "signed":
                record = effect.record
                persisted.add((record["kind"], record["height"], record["view"], record["block"]))
            elif isinstance(effect, Broadcast):
                message = messages.decode(effect.data)
                if isinstance(message, messages.Vote):
                    assert (message.kind, message.height, message.view, message.block) in persisted
                elif isinstance(message, messages.Proposal):
                    step = ("proposal", message.height, message.view, message.block.hash)
                    assert step in persisted


def test_silent_leader_is_replaced_by_a_view_change() -> None:
    """With the height-1 leader cut off, the others time out, move to view 1 and commit."""
    cluster = Cluster(4)
    ledger = cluster.member_at(0).ledger
    silent = ledger.validator_set(1).leader(1, 0)
    cluster.down.add(silent)
    cluster.start()
    cluster.advance(3000)
    for public_key, member in cluster.members.items():
        if public_key != silent:
            assert member.ledger.committed_height() >= 1
            assert any(isinstance(e, ViewChanged) for e in member.effects)
            assert member.ledger.blocks[0][1].view >= 1


def test_prepared_block_survives_a_view_change() -> None:
    """A block prepared in view 0 whose commit votes were lost is the one committed in view 1."""
    cluster = Cluster(4)

    def view_zero_commit(sender: str, receiver: str, data: bytes) -> bool:
        message = messages.decode(data)
        return isinstance(message, messages.Vote) and message.kind == "commit" and message.view == 0

    cluster.drop = view_zero_commit
    cluster.start()
    cluster.advance(400)
    assert cluster.heights() == [0, 0, 0, 0]
    prepared = {
        record["block"]
        for member in cluster.members.values()
        for record in member.journal
        if record["record"] == "prepared"
    }
    assert len(prepared) == 1
    cluster.advance(3000)
    first = cluster.member_at(0).ledger.blocks[0]
    assert first[0].hash in prepared and first[1].view >= 1


def test_restarted_replica_never_signs_a_conflicting_vote() -> None:
    """After a restart from its journal a replica refuses a second block for a view it voted in."""
    cluster = Cluster(4)
    cluster.start()
    cluster.advance(300)
    height = cluster.member_at(0).replica.height
    leader = cluster.member_at(0).ledger.validator_set(height).leader(height, 0)
    leader_key = next(k for k in cluster.keys if k.public_key == leader)
    voter = next(m for m in cluster.members.values() if m.signer.public_key != leader)
    cluster.drop = lambda sender, receiver, data: True
    cluster.advance(300)  # the height-`height` leader proposes, but nothing is delivered
    journal_before = list(voter.journal)
    cluster.drop = lambda sender, receiver, data: receiver != voter.signer.public_key
    leader_member = cluster.members[leader_key.public_key]
    original = next(
        messages.decode(e.data) for e in leader_member.effects
        if isinstance(e, Broadcast) and kind_of(e.data) == "Proposal"
        and messages.decode(e.data).height == height
    )
    cluster.queue.append((leader_key.public_key, voter.signer.public_key, messages.encode(original)))
    cluster.deliver()
    signed = [r for r in voter.journal[len(journal_before):] if r["record"] == "signed"]
    assert [(r["kind"], r["block"]) for r in signed] == [("prepare", original.block.hash)]
    cluster.restart(voter.signer.public_key)
    other = leader_member.ledger.build_block(height, original.block.time_ms + 1, leader_key.public_key, ["cd" * 4])
    conflicting = messages.make_proposal(CHAIN_ID, leader_key, height, 0, other, ())
    before = len(voter.journal)
    effects = voter.replica.receive(leader_key.public_key, messages.encode(conflicting), cluster.now_ms)
    assert not any(isinstance(e, Persist) for e in effects)
    assert not any(
        isinstance(e, Broadcast) and kind_of(e.data) == "Vote" and messages.decode(e.data).block == other.hash
        for e in effects
    )
    assert len(voter.journal) == before


def test_equivocating_leader_leaves_verifiable_evidence() -> None:
    """Two signed proposals for one height and view produce evidence anyone can verify."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    ledger = member.ledger
    leader_key = next(k for k in cluster.keys if k.public_key == ledger.validator_set(1).leader(1, 0))
    receiver = next(k for k in cluster.keys if k.public_key != leader_key.public_key)
    replica = cluster.members[receiver.public_key].replica
    now = GENESIS_TIME_MS + 100
    replica.start(now)
    first = ledger.build_block(1, now, leader_key.public_key, [])
    second = ledger.build_block(1, now + 1, leader_key.public_key, [])
    replica.receive(leader_key.public_key, messages.encode(messages.make_proposal(CHAIN_ID, leader_key, 1, 0, first, ())), now)
    effects = replica.receive(leader_key.public_key, messages.encode(messages.make_proposal(CHAIN_ID, leader_key, 1, 0, second, ())), now)
    found = [e.evidence for e in effects if isinstance(e, EvidenceFound)]
    assert len(found) == 1 and replica.evidence == found
    assert verify_evidence(CHAIN_ID, found[0])
    assert not verify_evidence("another-chain", found[0])
    tampered = dict(found[0], view=1)
    assert not verify_evidence(CHAIN_ID, tampered)


def test_hostile_inputs_are_discarded_with_a_reason() -> None:
    """Garbage, forged signatures, outsiders and wrong leaders are triaged away, never raised."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    replica, ledger = member.replica, member.ledger
    now = GENESIS_TIME_MS
    replica.start(now)
    outsider = key(99)
    leader = ledger.validator_set(1).leader(1, 0)
    not_leader = next(k for k in cluster.keys if k.public_key not in (leader, member.signer.public_key))
    block = ledger.build_block(1, now, not_leader.public_key, [])
    forged_vote = messages.Vote("commit", cluster.keys[1].public_key, 1, 0, block.hash, "00" * 64)
    inputs = [
        b"",
        b"\xc1",
        b"\x81\xa4kind\xa4vote",
        messages.encode(messages.SyncRequest(1))[:-1],
        messages.encode(forged_vote),
        messages.encode(messages.make_vote(CHAIN_ID, outsider, "prepare", 1, 0, block.hash)),
        messages.encode(messages.make_proposal(CHAIN_ID, not_leader, 1, 0, block, ())),
        messages.encode(messages.make_vote(CHAIN_ID, cluster.keys[1], "prepare", 1, 10_000, block.hash)),
    ]
    for data in inputs:
        effects = replica.receive(cluster.keys[1].public_key, data, now)
        assert [type(e) for e in effects] == [Discarded], data
    assert replica.height == 1 and replica.view == 0


def test_invalid_and_mistimed_blocks_get_no_vote() -> None:
    """A block with a wrong root, a time beyond the drift or not after its parent is refused."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    ledger = member.ledger
    leader_key = next(k for k in cluster.keys if k.public_key == ledger.validator_set(1).leader(1, 0))
    voter = next(m for m in cluster.members.values() if m.signer.public_key != leader_key.public_key)
    now = GENESIS_TIME_MS + 5000
    voter.replica.start(now)
    good = ledger.build_block(1, now, leader_key.public_key, [])
    bad_root = type(good)(header=dict(good.header, state_root="11" * 32), txs=())
    future = ledger.build_block(1, now + ledger.max_clock_drift_ms() + 1, leader_key.public_key, [])
    past = ledger.build_block(1, now - ledger.max_clock_drift_ms() - 1, leader_key.public_key, [])
    not_after_parent = ledger.build_block(1, GENESIS_TIME_MS, leader_key.public_key, [])
    for block in (bad_root, future, past, not_after_parent):
        fresh = Replica(ledger, voter.signer, [], CONFIG)
        fresh.start(now)
        effects = fresh.receive(
            leader_key.public_key,
            messages.encode(messages.make_proposal(CHAIN_ID, leader_key, 1, 0, block, ())),
            now,
        )
        assert [type(e) for e in effects] == [Discarded], block.header
    effects = voter.replica.receive(
        leader_key.public_key, messages.encode(messages.make_proposal(CHAIN_ID, leader_key, 1, 0, good, ())), now
    )
    assert any(isinstance(e, Broadcast) for e in effects)


def test_lagging_replica_catches_up_from_certified_blocks() -> None:
    """A replica cut off for many blocks catches up by verifying peers' certificates."""
    cluster = Cluster(4)
    lagging = cluster.member_at(3).signer.public_key
    cluster.down.add(lagging)
    cluster.start()
    cluster.advance(3000)
    ahead = cluster.member_at(0).ledger.committed_height()
    assert ahead >= 5 and cluster.members[lagging].ledger.committed_height() == 0
    cluster.restart(lagging)
    cluster.advance(1000)
    member = cluster.members[lagging]
    assert member.ledger.committed_height() >= ahead
    assert [b.hash for b, _ in member.ledger.blocks[:ahead]] == [
        b.hash for b, _ in cluster.member_at(0).ledger.blocks[:ahead]
    ]


def test_forged_sync_response_is_rejected() -> None:
    """Blocks offered for catch-up without a valid quorum certificate are refused."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    ledger = member.ledger
    now = GENESIS_TIME_MS + 100
    member.replica.start(now)
    block = ledger.build_block(1, now, cluster.keys[1].public_key, [])
    signers = cluster.keys[1:3]  # two signatures: one short of a quorum of 3
    signatures = tuple(
        sorted((k.public_key, messages.make_vote(CHAIN_ID, k, "commit", 1, 0, block.hash).signature) for k in signers)
    )
    short = CommitCertificate(1, 0, block.hash, signatures)
    effects = member.replica.receive(
        cluster.keys[1].public_key, messages.encode(messages.SyncResponse(((block, short),))), now
    )
    assert [type(e) for e in effects] == [Discarded] and ledger.committed_height() == 0
    third = cluster.keys[3]
    full = CommitCertificate(
        1, 0, block.hash,
        tuple(sorted(signatures + ((third.public_key, messages.make_vote(CHAIN_ID, third, "commit", 1, 0, block.hash).signature),))),
    )
    effects = member.replica.receive(
        cluster.keys[1].public_key, messages.encode(messages.SyncResponse(((block, full),))), now
    )
    assert any(isinstance(e, Committed) for e in effects) and ledger.committed_height() == 1


def test_replica_joins_a_higher_view_seen_from_f_plus_one_validators() -> None:
    """Two view changes (f+1 of 4) for view 3 pull a replica in view 0 along to view 3."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    now = GENESIS_TIME_MS
    member.replica.start(now)
    others = [k for k in cluster.keys if k.public_key != member.signer.public_key]
    first = messages.make_view_change(CHAIN_ID, others[0], 1, 3, None, None)
    effects = member.replica.receive(others[0].public_key, messages.encode(first), now)
    assert member.replica.view == 0
    second = messages.make_view_change(CHAIN_ID, others[1], 1, 3, None, None)
    effects = member.replica.receive(others[1].public_key, messages.encode(second), now)
    assert member.replica.view == 3
    assert any(isinstance(e, ViewChanged) and e.view == 3 for e in effects)
    sent = [messages.decode(e.data) for e in effects if isinstance(e, Broadcast)]
    assert any(isinstance(m, messages.ViewChange) and m.view == 3 for m in sent)


def test_validator_set_change_applies_two_heights_later() -> None:
    """A validator added by the block at height h votes from height h+2, counted in the quorum."""
    cluster = Cluster(4, extra_keys=1)
    newcomer = cluster.keys[4].public_key
    cluster.start()
    for member in cluster.members.values():
        member.ledger.submit({"op": "add_validator", "pubkey": newcomer})
    cluster.advance(3000)
    ledger = cluster.member_at(0).ledger
    change_height = next(
        block.height for block, _ in ledger.blocks if {"op": "add_validator", "pubkey": newcomer} in block.txs
    )
    assert newcomer not in ledger.validator_set(change_height + 1)
    assert newcomer in ledger.validator_set(change_height + 2)
    newcomer_chain = [block.hash for block, _ in cluster.members[newcomer].ledger.blocks]
    assert newcomer_chain == [block.hash for block, _ in ledger.blocks][: len(newcomer_chain)]
    later = [certificate for block, certificate in ledger.blocks if block.height >= change_height + 2]
    assert later and any(newcomer in dict(c.signatures) for c in later)
    assert all(len(c.signatures) >= 4 for c in later)  # quorum of 5 validators is 4


def test_follower_without_a_key_follows_the_chain() -> None:
    """A non-voting follower commits the same blocks and never signs anything."""
    cluster = Cluster(4)
    follower_ledger = SimulatedLedger(CHAIN_ID, cluster.validators, GENESIS_TIME_MS)
    follower = Replica(follower_ledger, None, [], CONFIG)
    follower_key = SigningKey(b"\x07" * 32).public_key
    cluster.start()
    effects = follower.start(cluster.now_ms)
    original_handle = cluster.handle

    def handle(sender, effects):  # type: ignore[no-untyped-def]
        original_handle(sender, effects)
        for effect in effects:
            if isinstance(effect, Broadcast):
                follower_effects.extend(follower.receive(sender, effect.data, cluster.now_ms))

    follower_effects = list(effects)
    cluster.handle = handle  # type: ignore[method-assign]
    cluster.advance(2000)
    assert follower_ledger.committed_height() >= 3
    leader_chain = [b.hash for b, _ in cluster.member_at(0).ledger.blocks]
    assert [b.hash for b, _ in follower_ledger.blocks] == leader_chain[: follower_ledger.committed_height()]
    assert not any(isinstance(e, Persist) for e in follower_effects)
    assert follower_key not in cluster.validators


def test_restart_after_a_view_change_stays_out_of_the_abandoned_view() -> None:
    """A replica that left view 0 and restarts resumes in view 1 and never votes in view 0."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    ledger = member.ledger
    leader = ledger.validator_set(1).leader(1, 0)
    voter = next(m for m in cluster.members.values() if m.signer.public_key != leader)
    leader_key = next(k for k in cluster.keys if k.public_key == leader)
    now = GENESIS_TIME_MS
    voter.journal.extend(
        effect.record for effect in voter.replica.start(now) if isinstance(effect, Persist)
    )
    later = now + CONFIG.empty_block_interval_ms + CONFIG.base_timeout_ms
    effects = voter.replica.tick(later)
    voter.journal.extend(effect.record for effect in effects if isinstance(effect, Persist))
    assert voter.replica.view == 1
    assert {"record": "view_change", "height": 1, "view": 1} in voter.journal
    restarted = Replica(ledger, voter.signer, list(voter.journal), CONFIG)
    effects = restarted.start(later + 10)
    assert restarted.view == 1
    resent = [messages.decode(e.data) for e in effects if isinstance(e, Broadcast)]
    assert any(isinstance(m, messages.ViewChange) and m.view == 1 for m in resent)
    block = ledger.build_block(1, later + 10, leader, [])
    late = messages.make_proposal(CHAIN_ID, leader_key, 1, 0, block, ())
    effects = restarted.receive(leader, messages.encode(late), later + 10)
    assert [type(e) for e in effects] == [Discarded]


def test_restart_in_a_voted_view_resends_a_well_formed_view_change() -> None:
    """Found by the simulator (seed 5001, mixed): a replica that asked for view 1, then
    prepared a block in view 1 and restarted, re-sent its view change carrying the view-1
    certificate, which every peer rejects as malformed. It must carry only lower ones."""
    cluster = Cluster(4)
    member = cluster.member_at(0)
    ledger = member.ledger
    block = ledger.build_block(1, GENESIS_TIME_MS + 10, cluster.keys[1].public_key, [])
    earlier = ledger.build_block(1, GENESIS_TIME_MS + 5, cluster.keys[2].public_key, [])
    signatures = [[k.public_key, "00" * 64] for k in sorted(cluster.keys[:3], key=lambda k: k.public_key)]
    journal = [
        {"record": "signed", "kind": "prepare", "height": 1, "view": 0, "block": earlier.hash},
        {"record": "prepared", "height": 1, "view": 0, "block": earlier.hash, "signatures": signatures, "body": earlier.to_dict()},
        {"record": "view_change", "height": 1, "view": 1},
        {"record": "signed", "kind": "prepare", "height": 1, "view": 1, "block": block.hash},
        {"record": "prepared", "height": 1, "view": 1, "block": block.hash, "signatures": signatures, "body": block.to_dict()},
    ]
    replica = Replica(ledger, member.signer, journal, CONFIG)
    effects = replica.start(GENESIS_TIME_MS + 20)
    sent = [messages.decode(e.data) for e in effects if isinstance(e, Broadcast)]
    view_changes = [m for m in sent if isinstance(m, messages.ViewChange)]
    assert len(view_changes) == 1 and view_changes[0].view == 1
    assert view_changes[0].prepared is not None and view_changes[0].prepared.view == 0
    assert view_changes[0].prepared.block == earlier.hash
