"""The sans-IO PBFT replica: messages and clock ticks in, effects out.

One consensus instance per height. In view v the leader `validators.leader(h, v)`
proposes a block; replicas that find it valid sign a prepare; 2f+1 prepares for the
block make it *prepared* and the replica signs a commit; 2f+1 commits of one view form
the commit certificate of PROTOCOL §5 and the block is final. A view that makes no
progress before its timeout is abandoned with a view change that carries the
replica's highest prepared certificate; the next leader re-proposes the block of the
highest certificate among a quorum of view changes, so a block that may have been
committed is never replaced. See docs/CONSENSUS.md.

Everything this replica signs is first handed out as a Persist effect (the safety
journal) and the replica rebuilds from those records, so after a crash it never signs
anything that contradicts what it signed before.

The rules a broken replica would most likely get wrong live in small methods
(`_quorum`, `_required_reproposal`, `_vote_signature_valid`) so that the simulator's
tests can swap each one for a broken version and show that they catch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from consensus.application import Application
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
from consensus.evidence import make_evidence
from consensus.messages import (
    COMMIT,
    PREPARE,
    PROPOSAL,
    Message,
    MessageError,
    PreparedCertificate,
    Proposal,
    SyncRequest,
    SyncResponse,
    ViewChange,
    Vote,
    cached_verify,
    decode,
    encode,
    make_view_change,
    signature_valid,
    vote_payload,
)
from consensus.types import ZERO_HASH, Block, CertificateError, CommitCertificate, ValidatorSet, header_hash
from primitives.crypto import SigningKey

# Votes and view changes further ahead than this are dropped, which bounds the vote tables.
VIEW_WINDOW = 64
MAX_EVIDENCE = 1024
MAX_HELD_PER_PEER = 256
MAX_SYNC_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_TIMEOUT_DOUBLINGS = 20


@dataclass
class ReplicaConfig:
    chain_id: str
    base_timeout_ms: int = 2000
    max_timeout_ms: int = 30000
    empty_block_interval_ms: int = 1000
    min_block_interval_ms: int = 20
    sync_batch: int = 64
    # How long the replica waits without sending anything new before it sends its
    # latest messages of this height again (lost messages); 0 means half the base timeout.
    retransmit_interval_ms: int = 0
    # Least time between two catch-up requests; 0 means half the base timeout.
    sync_retry_ms: int = 0
    max_held_messages: int = 4096

    @property
    def retransmit_ms(self) -> int:
        return self.retransmit_interval_ms or max(1, self.base_timeout_ms // 2)

    @property
    def sync_retry_interval_ms(self) -> int:
        return self.sync_retry_ms or max(1, self.base_timeout_ms // 2)


@dataclass
class _HeightState:
    """Everything the replica knows about the height being decided; dropped on commit."""

    validators: ValidatorSet
    parent_hash: str
    parent_time_ms: int
    signed: dict[tuple[str, int], str] = field(default_factory=dict)  # (kind, view) -> block
    proposals: dict[int, tuple[str, str]] = field(default_factory=dict)  # view -> (block, signature)
    accepted: dict[int, str] = field(default_factory=dict)  # view -> block we found valid
    bodies: dict[str, Block] = field(default_factory=dict)  # blocks that passed check_proposal
    attachments: dict[str, Block] = field(default_factory=dict)  # bodies from view changes, unchecked
    votes: dict[tuple[str, int], dict[str, tuple[str, str]]] = field(default_factory=dict)
    view_changes: dict[int, dict[str, ViewChange]] = field(default_factory=dict)
    highest_view_change: dict[str, int] = field(default_factory=dict)
    prepared: dict[int, PreparedCertificate] = field(default_factory=dict)  # view -> ours
    view_change_sent: int = 0  # highest view this replica asked to move to
    outbox: dict[tuple[str, int], bytes] = field(default_factory=dict)


class Replica:
    def __init__(
        self,
        app: Application,
        signer: SigningKey | None,
        journal: list[dict[str, Any]],
        config: ReplicaConfig,
    ) -> None:
        self.app = app
        self.signer = signer
        self.config = config
        self.chain_id = config.chain_id
        self._journal = list(journal)
        self._effects: list[Effect] = []
        self._now_ms = 0
        self._view = 0
        self._round_start_ms = 0
        self._height_started_ms = 0
        self._view_entered_ms = 0
        self._deadline_ms = 0
        self._last_send_ms = 0
        self._held: list[tuple[str, Proposal | Vote | ViewChange]] = []
        self._held_per_peer: dict[str, int] = {}
        self._evidence: list[dict[str, Any]] = []
        self._evidence_keys: set[tuple[str, int, int, str]] = set()
        self._ahead_peers: dict[str, int] = {}
        self._sync_turn = 0
        self._last_sync_request_ms: int | None = None
        self._served: dict[str, tuple[int, int]] = {}
        self._height = app.committed_height() + 1
        self._state = self._new_height_state()
        self._restore_from_journal()

    # ------------------------------------------------------------ public API

    @property
    def height(self) -> int:
        """The height being decided (one above the last committed block)."""
        return self._height

    @property
    def view(self) -> int:
        return self._view

    @property
    def evidence(self) -> list[dict[str, Any]]:
        return list(self._evidence)

    @property
    def syncing(self) -> bool:
        """Whether peers showed us heights more than one above ours (we are catching up)."""
        return any(height > self._height + 1 for height in self._ahead_peers.values())

    @property
    def public_key(self) -> str | None:
        return None if self.signer is None else self.signer.public_key

    def start(self, now_ms: int) -> list[Effect]:
        """Begin (or resume after a restart): re-send what the journal says we signed
        at this height and ask peers for blocks we may have missed."""
        return self._call(now_ms, self._on_start)

    def receive(self, peer: str, data: bytes, now_ms: int) -> list[Effect]:
        """Handle bytes that arrived on the link authenticated as validator `peer`."""
        return self._call(now_ms, lambda: self._on_bytes(peer, data))

    def tick(self, now_ms: int) -> list[Effect]:
        return self._call(now_ms, self._on_tick)

    # ------------------------------------------------------------ rules a broken replica breaks

    def _quorum(self, validators: ValidatorSet) -> int:
        """Signatures needed for a prepared certificate, a commit or a new view: 2f+1."""
        return validators.quorum

    def _required_reproposal(self, view_changes: Iterable[ViewChange]) -> str | None:
        """The block a new view must re-propose: that of the highest prepared certificate
        among a quorum of view changes (None: any valid block). Any block committed in an
        earlier view was prepared by f+1 honest replicas, one of which is in the quorum."""
        best: PreparedCertificate | None = None
        for view_change in view_changes:
            prepared = view_change.prepared
            if prepared is not None and (best is None or prepared.view > best.view):
                best = prepared
        return None if best is None else best.block

    def _vote_signature_valid(
        self, validator: str, kind: str, height: int, view: int, block: str, signature: str
    ) -> bool:
        return cached_verify(validator, vote_payload(self.chain_id, kind, height, view, block), signature)

    # ------------------------------------------------------------ driving

    def _call(self, now_ms: int, action: Callable[[], None]) -> list[Effect]:
        self._effects = []
        self._now_ms = now_ms
        action()
        self._drain_held()
        effects, self._effects = self._effects, []
        return effects

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _discard(self, peer: str, reason: str) -> None:
        self._emit(Discarded(peer, reason))

    def _on_start(self) -> None:
        state = self._state
        self._round_start_ms = self._view_entered_ms = self._now_ms
        self._set_deadline()
        if self._is_voter():
            if state.view_change_sent == self._view and self._view > 0:
                self._send_view_change()
            for (kind, view), block in sorted(state.signed.items()):
                if kind != PROPOSAL and (view == self._view or kind == COMMIT):
                    self._sign_and_send(kind, view, block)
        self._emit(Broadcast(encode(SyncRequest(self._height))))
        self._check_progress()
        self._maybe_propose()

    def _on_tick(self) -> None:
        self._maybe_propose()
        if self._now_ms >= self._deadline_ms:
            self._on_timeout()
        elif self._state.outbox and self._now_ms - self._last_send_ms >= self.config.retransmit_ms:
            self._retransmit()

    def _on_bytes(self, peer: str, data: bytes) -> None:
        try:
            message = decode(data)
        except MessageError as exc:
            self._discard(peer, "malformed: %s" % exc)
            return
        self._dispatch(peer, message)

    def _dispatch(self, peer: str, message: Message) -> None:
        if isinstance(message, Vote):
            self._on_vote(peer, message)
        elif isinstance(message, Proposal):
            self._on_proposal(peer, message)
        elif isinstance(message, ViewChange):
            self._on_view_change(peer, message)
        elif isinstance(message, SyncRequest):
            self._on_sync_request(peer, message)
        else:
            self._on_sync_response(peer, message)

    def _drain_held(self) -> None:
        """Replay messages held for a height we have now reached, in arrival order."""
        # Everything held is for the height after the one being decided when it arrived,
        # and the replica drains as soon as it advances, so all held messages share one height.
        while self._held and self._held[0][1].height <= self._height:
            ready = [(peer, m) for peer, m in self._held if m.height == self._height]
            self._held = [(peer, m) for peer, m in self._held if m.height > self._height]
            self._held_per_peer = {}
            for peer, message in ready:
                self._dispatch(peer, message)

    # ------------------------------------------------------------ height bookkeeping

    def _new_height_state(self) -> _HeightState:
        parent = self.app.last_header()
        return _HeightState(
            validators=self.app.validator_set(self._height),
            parent_hash=ZERO_HASH if self._height == 1 else header_hash(parent),
            parent_time_ms=int(parent["time"]),
        )

    def _restore_from_journal(self) -> None:
        """Rebuild what we signed at the current height, so we never contradict it."""
        state = self._state
        for record in self._journal:
            if record.get("height") != self._height:
                continue
            kind = record["record"]
            if kind == "signed":
                view = int(record["view"])
                state.signed[(record["kind"], view)] = record["block"]
                self._view = max(self._view, view)
            elif kind == "view_change":
                state.view_change_sent = max(state.view_change_sent, int(record["view"]))
                self._view = max(self._view, state.view_change_sent)
            elif kind == "prepared":
                certificate = PreparedCertificate(
                    view=int(record["view"]),
                    block=record["block"],
                    signatures=tuple((item[0], item[1]) for item in record["signatures"]),
                )
                state.prepared[certificate.view] = certificate
                state.bodies[certificate.block] = Block.from_dict(record["body"])
        self._journal = [record for record in self._journal if record.get("height", 0) > self._height]

    def _finalize(self, block: Block, certificate: CommitCertificate) -> None:
        self.app.commit(block, certificate)
        self._emit(Committed(block, certificate))
        self._height += 1
        self._view = 0
        self._state = self._new_height_state()
        self._restore_from_journal()
        self._ahead_peers = {peer: height for peer, height in self._ahead_peers.items() if height > self._height}
        self._round_start_ms = self._view_entered_ms = self._height_started_ms = self._now_ms
        self._set_deadline()
        self._maybe_propose()

    def _is_voter(self) -> bool:
        return self.signer is not None and self.signer.public_key in self._state.validators

    def _timeout_ms(self, view: int) -> int:
        doublings = min(view, MAX_TIMEOUT_DOUBLINGS)
        return min(self.config.base_timeout_ms << doublings, self.config.max_timeout_ms)

    def _set_deadline(self) -> None:
        if self._view == 0:
            # The leader may wait up to the empty-block interval before it proposes.
            self._deadline_ms = (
                self._round_start_ms + self.config.empty_block_interval_ms + self._timeout_ms(0)
            )
        else:
            self._deadline_ms = self._view_entered_ms + self._timeout_ms(self._view)

    def _extend_deadline(self) -> None:
        """A valid proposal was accepted: the view is making progress, so it gets a full
        timeout from now to gather its votes. A leader whose block takes long to execute
        and vote on is not voted away, and since a view accepts one proposal, a slow or
        Byzantine leader gains this once per view: liveness is kept."""
        self._deadline_ms = max(self._deadline_ms, self._now_ms + self._timeout_ms(self._view))

    def _triage_height(self, peer: str, message: Proposal | Vote | ViewChange) -> bool:
        """True when the message is for the height being decided; otherwise hold it
        (next height), help the sender catch up (it is behind) or drop it."""
        if message.height == self._height:
            return True
        if message.height < self._height:
            if message.height < self._height - 1 or self._settled():
                self._help_behind(peer, message.height)
            self._discard(peer, "stale height %d" % message.height)
            return False
        if message.height > self._height + 1 or self._settled():
            self._note_ahead(peer, message.height)
        held_from_peer = self._held_per_peer.get(peer, 0)
        if (
            message.height == self._height + 1
            and len(self._held) < self.config.max_held_messages
            and held_from_peer < MAX_HELD_PER_PEER
        ):
            self._held.append((peer, message))
            self._held_per_peer[peer] = held_from_peer + 1
        else:
            self._discard(peer, "height %d too far ahead" % message.height)
        return False

    def _settled(self) -> bool:
        """Whether this height began a catch-up interval ago. Until then a peer one height
        behind or ahead is most likely finishing the height it is at, with the commit
        votes it needs on the way: under load the slowest validator's votes arrive after
        the others committed, and sending it the block it is about to commit (and it
        asking for it) cost every block a sync of the whole block for nothing."""
        return self._now_ms - self._height_started_ms >= self.config.sync_retry_interval_ms

    # ------------------------------------------------------------ signing (the safety rules)

    def _sign(self, kind: str, view: int, block: str) -> str | None:
        """Sign a step, persisting it first; refuse anything contradicting the journal."""
        state = self._state
        if self.signer is None or view < state.view_change_sent:
            return None
        prior = state.signed.get((kind, view))
        if prior is not None and prior != block:
            return None
        if prior is None:
            state.signed[(kind, view)] = block
            self._emit(
                Persist(
                    {"record": "signed", "kind": kind, "height": self._height, "view": view, "block": block}
                )
            )
        return self.signer.sign(vote_payload(self.chain_id, kind, self._height, view, block))

    def _sign_and_send(self, kind: str, view: int, block: str) -> None:
        signature = self._sign(kind, view, block)
        if signature is None or self.signer is None:
            return
        vote = Vote(kind, self.signer.public_key, self._height, view, block, signature)
        self._record_vote(vote)
        self._send_out((kind, view), encode(vote))

    def _send_out(self, key: tuple[str, int], data: bytes) -> None:
        self._state.outbox[key] = data
        self._emit(Broadcast(data))
        self._last_send_ms = self._now_ms

    def _retransmit(self) -> None:
        state = self._state
        for key in [key for key in state.outbox if key[1] < self._view and key[0] != COMMIT]:
            del state.outbox[key]
        for data in state.outbox.values():
            self._emit(Broadcast(data))
        self._last_send_ms = self._now_ms

    # ------------------------------------------------------------ equivocation

    def _note_equivocation(
        self, kind: str, validator: str, view: int, first: tuple[str, str], second: tuple[str, str]
    ) -> None:
        key = (kind, self._height, view, validator)
        if key in self._evidence_keys or len(self._evidence) >= MAX_EVIDENCE:
            return
        evidence = make_evidence(kind, validator, self._height, view, first, second)
        self._evidence_keys.add(key)
        self._evidence.append(evidence)
        self._emit(EvidenceFound(evidence))

    def _record_vote(self, vote: Vote) -> bool:
        """Add a checked vote to the tables; False if it repeats or contradicts one we have."""
        table = self._state.votes.setdefault((vote.kind, vote.view), {})
        existing = table.get(vote.sender)
        if existing is not None:
            if existing[0] != vote.block:
                self._note_equivocation(vote.kind, vote.sender, vote.view, existing, (vote.block, vote.signature))
            return False
        table[vote.sender] = (vote.block, vote.signature)
        return True

    # ------------------------------------------------------------ proposals

    def _maybe_propose(self) -> None:
        """The view-0 leader proposes once the chain has rested long enough."""
        state = self._state
        if self._view != 0 or not self._is_voter() or self.signer is None:
            return
        if state.validators.leader(self._height, 0) != self.signer.public_key:
            return
        if (PROPOSAL, 0) in state.signed:
            return
        elapsed_ms = self._now_ms - self._round_start_ms
        if elapsed_ms < self.config.min_block_interval_ms:
            return
        if elapsed_ms < self.config.empty_block_interval_ms and not self.app.has_pending():
            return
        block = self.app.propose(self._height, self._fresh_time_ms(), self.signer.public_key)
        self._send_proposal(0, block, ())

    def _fresh_time_ms(self) -> int:
        return max(self._now_ms, self._state.parent_time_ms + 1)

    def _send_proposal(self, view: int, block: Block, justification: tuple[ViewChange, ...]) -> None:
        state = self._state
        signature = self._sign(PROPOSAL, view, block.hash)
        if signature is None or self.signer is None:
            return
        proposal = Proposal(self.signer.public_key, self._height, view, block, justification, signature)
        state.proposals[view] = (block.hash, signature)
        state.bodies[block.hash] = block
        state.accepted[view] = block.hash
        self._extend_deadline()
        self._send_out((PROPOSAL, view), encode(proposal))
        self._sign_and_send(PREPARE, view, block.hash)
        self._check_progress()

    def _on_proposal(self, peer: str, proposal: Proposal) -> None:
        if not self._triage_height(peer, proposal):
            return
        state = self._state
        view, block = proposal.view, proposal.block
        if proposal.sender != state.validators.leader(self._height, view):
            self._discard(peer, "proposal from a validator that does not lead view %d" % view)
            return
        if view > self._view + VIEW_WINDOW:
            self._discard(peer, "proposal for view %d, too far ahead" % view)
            return
        if not signature_valid(self.chain_id, proposal):
            self._discard(peer, "proposal with a bad signature")
            return
        seen = state.proposals.get(view)
        if seen is None:
            state.proposals[view] = (block.hash, proposal.signature)
        elif seen[0] != block.hash:
            self._note_equivocation(PROPOSAL, proposal.sender, view, seen, (block.hash, proposal.signature))
            self._discard(peer, "second proposal for view %d" % view)
            return
        if view in state.accepted:
            self._discard(peer, "duplicate proposal")
            return
        if view < self._view:
            # Too late to vote, but a quorum may have committed it: keep the body.
            if self._has_commit_votes(block.hash) and self._block_problem(block, None) is None:
                self._check_progress()
            else:
                self._discard(peer, "proposal for abandoned view %d" % view)
            return
        required: str | None = None
        if view > 0:
            problem, required = self._justification_problem(view, proposal.justification)
            if problem is not None:
                self._discard(peer, "new view not justified: %s" % problem)
                return
            if required is not None and block.hash != required:
                self._discard(peer, "new view does not re-propose the prepared block")
                return
        elif proposal.justification:
            self._discard(peer, "a view-0 proposal carries no view changes")
            return
        problem = self._block_problem(block, None if required is not None else proposal.sender)
        if problem is not None:
            self._discard(peer, "invalid block: %s" % problem)
            return
        if required is None and not self._time_within_drift(block):
            # A re-proposed block's time was accepted when it was prepared; only fresh
            # blocks must be close to our clock.
            self._discard(peer, "block time %d is outside the allowed clock drift" % block.time_ms)
            return
        if view > self._view:
            self._enter_view(view)
        state.accepted[view] = block.hash
        self._extend_deadline()
        if self._is_voter():
            self._sign_and_send(PREPARE, view, block.hash)
        self._check_progress()

    def _block_problem(self, block: Block, proposer: str | None) -> str | None:
        """Why `block` cannot be the next block (None if it can); caches valid bodies."""
        state = self._state
        if block.hash in state.bodies:
            return None
        header = block.header
        if block.height != self._height:
            return "height %d, expected %d" % (block.height, self._height)
        if header["chain_id"] != self.chain_id:
            return "chain id %r" % header["chain_id"]
        if proposer is not None and header["proposer"] != proposer:
            return "proposer is not the leader"
        if header["parent"] != state.parent_hash:
            return "parent is not the last committed block"
        if block.time_ms <= state.parent_time_ms:
            return "time not after the parent's"
        reason = self.app.check_proposal(block)
        if reason is not None:
            return reason
        state.bodies[block.hash] = block
        return None

    def _time_within_drift(self, block: Block) -> bool:
        return abs(block.time_ms - self._now_ms) <= self.app.max_clock_drift_ms()

    def _has_commit_votes(self, block: str) -> bool:
        return any(
            vote_block == block
            for (kind, _), table in self._state.votes.items()
            if kind == COMMIT
            for vote_block, _ in table.values()
        )

    # ------------------------------------------------------------ votes

    def _on_vote(self, peer: str, vote: Vote) -> None:
        if not self._triage_height(peer, vote):
            return
        if vote.sender not in self._state.validators:
            self._discard(peer, "vote from a non-validator")
            return
        if vote.view > self._view + VIEW_WINDOW:
            self._discard(peer, "vote for view %d, too far ahead" % vote.view)
            return
        if not self._vote_signature_valid(
            vote.sender, vote.kind, vote.height, vote.view, vote.block, vote.signature
        ):
            self._discard(peer, "%s vote with a bad signature" % vote.kind)
            return
        if not self._record_vote(vote):
            self._discard(peer, "repeated %s vote" % vote.kind)
            return
        self._check_progress()

    def _signers_for(self, kind: str, view: int, block: str) -> tuple[tuple[str, str], ...]:
        table = self._state.votes.get((kind, view), {})
        return tuple(sorted((validator, sig) for validator, (voted, sig) in table.items() if voted == block))

    def _check_progress(self) -> None:
        """Move on when a quorum allows: prepared -> sign commit; committed -> finalize."""
        state = self._state
        quorum = self._quorum(state.validators)
        view = self._view
        accepted = state.accepted.get(view)
        if (
            accepted is not None
            and accepted in state.bodies
            and self._is_voter()
            and (COMMIT, view) not in state.signed
        ):
            signatures = self._signers_for(PREPARE, view, accepted)
            if len(signatures) >= quorum and view >= state.view_change_sent:
                self._set_prepared(PreparedCertificate(view, accepted, signatures))
                self._sign_and_send(COMMIT, view, accepted)
        for (kind, commit_view), table in sorted(state.votes.items()):
            if kind != COMMIT:
                continue
            counts: dict[str, int] = {}
            for block, _ in table.values():
                counts[block] = counts.get(block, 0) + 1
            for block_hash, count in sorted(counts.items()):
                if count < quorum:
                    continue
                body = self._body_for(block_hash)
                if body is None:
                    for validator, _ in self._signers_for(COMMIT, commit_view, block_hash):
                        self._note_ahead(validator, self._height + 1)
                    continue
                certificate = CommitCertificate(
                    self._height, commit_view, block_hash, self._signers_for(COMMIT, commit_view, block_hash)
                )
                self._finalize(body, certificate)
                return

    def _body_for(self, block_hash: str) -> Block | None:
        state = self._state
        body = state.bodies.get(block_hash)
        if body is None and block_hash in state.attachments:
            candidate = state.attachments[block_hash]
            if self._block_problem(candidate, None) is None:
                body = candidate
        return body

    def _set_prepared(self, certificate: PreparedCertificate) -> None:
        state = self._state
        if certificate.view in state.prepared:
            return
        state.prepared[certificate.view] = certificate
        self._emit(
            Persist(
                {
                    "record": "prepared",
                    "height": self._height,
                    "view": certificate.view,
                    "block": certificate.block,
                    "signatures": [list(pair) for pair in certificate.signatures],
                    "body": state.bodies[certificate.block].to_dict(),
                }
            )
        )

    # ------------------------------------------------------------ view change

    def _on_timeout(self) -> None:
        if self._is_voter():
            self._start_view_change(self._view + 1)
        else:
            # A follower cannot vote a view away; it asks for what it may have missed.
            self._deadline_ms = self._now_ms + self._timeout_ms(self._view)
            self._emit(Broadcast(encode(SyncRequest(self._height))))

    def _enter_view(self, view: int) -> None:
        self._view = view
        self._view_entered_ms = self._now_ms
        self._set_deadline()
        self._emit(ViewChanged(self._height, view))

    def _start_view_change(self, view: int) -> None:
        state = self._state
        if view <= state.view_change_sent or view < self._view:
            return
        state.view_change_sent = view
        self._emit(Persist({"record": "view_change", "height": self._height, "view": view}))
        self._enter_view(view)
        self._send_view_change()
        self._maybe_lead_new_view()

    def _send_view_change(self) -> None:
        state = self._state
        if self.signer is None:
            return
        # The highest certificate from a view below the one we ask for: after a restart
        # in a view we already voted in, a certificate of this very view may exist too.
        below = [view for view in state.prepared if view < self._view]
        prepared = state.prepared[max(below)] if below else None
        body = None if prepared is None else state.bodies.get(prepared.block)
        view_change = make_view_change(self.chain_id, self.signer, self._height, self._view, prepared, body)
        self._record_view_change(view_change)
        self._send_out(("view_change", self._view), encode(view_change))

    def _record_view_change(self, view_change: ViewChange) -> None:
        state = self._state
        state.view_changes.setdefault(view_change.view, {}).setdefault(view_change.sender, view_change)
        if view_change.view > state.highest_view_change.get(view_change.sender, 0):
            state.highest_view_change[view_change.sender] = view_change.view

    def _on_view_change(self, peer: str, view_change: ViewChange) -> None:
        if not self._triage_height(peer, view_change):
            return
        state = self._state
        if view_change.sender not in state.validators:
            self._discard(peer, "view change from a non-validator")
            return
        if not 0 < view_change.view <= self._view + VIEW_WINDOW:
            self._discard(peer, "view change to view %d, out of range" % view_change.view)
            return
        if view_change.sender in state.view_changes.get(view_change.view, {}):
            self._discard(peer, "repeated view change")
            return
        if not signature_valid(self.chain_id, view_change):
            self._discard(peer, "view change with a bad signature")
            return
        if view_change.prepared is not None:
            problem = self._prepared_problem(view_change.prepared)
            if problem is not None:
                self._discard(peer, "view change with a bad prepared certificate: %s" % problem)
                return
            if view_change.block is not None and len(state.attachments) < 2 * state.validators.size:
                state.attachments.setdefault(view_change.block.hash, view_change.block)
        self._record_view_change(view_change)
        self._join_higher_view()
        self._maybe_lead_new_view()

    def _join_higher_view(self) -> None:
        """f+1 validators asking for higher views include an honest one: follow them."""
        state = self._state
        if not self._is_voter():
            return
        higher = sorted(
            (view for view in state.highest_view_change.values() if view > self._view), reverse=True
        )
        faulty = state.validators.max_faulty
        if len(higher) > faulty:
            self._start_view_change(higher[faulty])

    def _prepared_problem(self, certificate: PreparedCertificate) -> str | None:
        validators = self._state.validators
        signers = set()
        for validator, signature in certificate.signatures:
            if validator not in validators:
                return "signer is not a validator"
            if not self._vote_signature_valid(
                validator, PREPARE, self._height, certificate.view, certificate.block, signature
            ):
                return "bad prepare signature"
            signers.add(validator)
        if len(signers) < self._quorum(validators):
            return "%d prepare signatures, %d needed" % (len(signers), self._quorum(validators))
        return None

    def _justification_problem(
        self, view: int, view_changes: tuple[ViewChange, ...]
    ) -> tuple[str | None, str | None]:
        """(why the view changes do not justify a proposal in `view`, block it must re-propose)."""
        validators = self._state.validators
        senders: set[str] = set()
        for view_change in view_changes:
            if view_change.height != self._height or view_change.view != view:
                return "a view change for another height or view", None
            if view_change.sender not in validators or view_change.sender in senders:
                return "a view change from a non-validator or a repeated one", None
            if not signature_valid(self.chain_id, view_change):
                return "a view change with a bad signature", None
            if view_change.prepared is not None:
                problem = self._prepared_problem(view_change.prepared)
                if problem is not None:
                    return problem, None
            senders.add(view_change.sender)
        if len(senders) < self._quorum(validators):
            return "%d view changes, %d needed" % (len(senders), self._quorum(validators)), None
        return None, self._required_reproposal(view_changes)

    def _maybe_lead_new_view(self) -> None:
        """As leader of a new view, propose once a quorum of view changes is in."""
        state = self._state
        view = self._view
        if view == 0 or self.signer is None or not self._is_voter():
            return
        if state.validators.leader(self._height, view) != self.signer.public_key:
            return
        if (PROPOSAL, view) in state.signed:
            return
        received = state.view_changes.get(view, {})
        if len(received) < self._quorum(state.validators):
            return
        justification = tuple(received[sender] for sender in sorted(received))
        required = self._required_reproposal(justification)
        if required is None:
            block = self.app.propose(self._height, self._fresh_time_ms(), self.signer.public_key)
        else:
            found = self._body_for(required)
            if found is None:
                return  # wait for a view change that attaches the body
            block = found
        self._send_proposal(view, block, justification)

    # ------------------------------------------------------------ catch-up

    def _note_ahead(self, peer: str, height: int) -> None:
        """`peer` knows blocks we lack: ask one such peer at a time, in turn, so a
        peer that only claims to be ahead cannot hold our catch-up hostage."""
        if peer == self.public_key:
            return
        self._ahead_peers[peer] = max(height, self._ahead_peers.get(peer, 0))
        last = self._last_sync_request_ms
        if last is not None and self._now_ms - last < self.config.sync_retry_interval_ms:
            return
        peers = sorted(self._ahead_peers)
        target = peers[self._sync_turn % len(peers)]
        self._sync_turn += 1
        self._last_sync_request_ms = self._now_ms
        self._emit(Send(target, encode(SyncRequest(self._height))))

    def _help_behind(self, peer: str, their_height: int) -> None:
        """A peer talking about a height we committed is behind: send it the blocks.

        At most one batch per peer per retry interval, except the batch that follows
        the last one sent (a peer working through the chain), so a peer cannot make us
        send much more than it asks for honestly."""
        served = self._served.get(peer)
        if (
            served is not None
            and their_height != served[0]
            and self._now_ms - served[1] < self.config.sync_retry_interval_ms
        ):
            return
        found = self._sync_response(their_height)
        if found is not None:
            response, next_height = found
            self._served[peer] = (next_height, self._now_ms)
            self._emit(Send(peer, response))

    def _sync_response(self, from_height: int) -> tuple[bytes, int] | None:
        """Encoded committed blocks from `from_height` on, and the height after them."""
        last = self._height - 1
        if from_height < 1 or from_height > last:
            return None
        entries: list[tuple[Block, CommitCertificate]] = []
        size = 0
        for height in range(from_height, min(last, from_height + self.config.sync_batch - 1) + 1):
            found = self.app.committed_block(height)
            if found is None:
                break
            entries.append(found)
            size += len(encode(SyncResponse((found,))))
            if size >= MAX_SYNC_RESPONSE_BYTES:
                break
        if not entries:
            return None
        return encode(SyncResponse(tuple(entries))), from_height + len(entries)

    def _on_sync_request(self, peer: str, request: SyncRequest) -> None:
        if request.from_height >= self._height:
            return  # nothing newer here; the asker will try another peer
        self._help_behind(peer, request.from_height)

    def _on_sync_response(self, peer: str, response: SyncResponse) -> None:
        progressed = False
        for block, certificate in response.entries:
            if block.height < self._height:
                continue
            if block.height > self._height:
                self._discard(peer, "sync response skips heights")
                break
            problem = self._synced_block_problem(block, certificate)
            if problem is not None:
                self._discard(peer, "sync block %d rejected: %s" % (block.height, problem))
                return
            self._finalize(block, certificate)
            progressed = True
        if progressed:
            # There may be more; this peer is a good source.
            self._last_sync_request_ms = self._now_ms
            self._emit(Send(peer, encode(SyncRequest(self._height))))

    def _synced_block_problem(self, block: Block, certificate: CommitCertificate) -> str | None:
        if certificate.height != self._height:
            return "certificate for height %d" % certificate.height
        try:
            certificate.verify(self.chain_id, self._state.validators, block.hash)
        except CertificateError as exc:
            return str(exc)
        return self._block_problem(block, None)
