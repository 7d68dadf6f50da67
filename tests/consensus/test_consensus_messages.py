"""The consensus wire format: exact round trips and strict, typed rejection of anything else."""

from __future__ import annotations

import msgpack
import pytest
from consensus_cluster import CHAIN_ID, GENESIS_TIME_MS, key

from consensus import messages
from consensus.messages import MessageError, PreparedCertificate
from consensus.types import CommitCertificate, commit_payload
from primitives.crypto import verify
from simulation.ledger import SimulatedLedger


def sample_block():  # type: ignore[no-untyped-def]
    ledger = SimulatedLedger(CHAIN_ID, [key(i).public_key for i in range(4)], GENESIS_TIME_MS)
    return ledger.build_block(1, GENESIS_TIME_MS + 1, key(0).public_key, ["ab" * 4, "cd" * 4])


def sample_messages() -> list[messages.Message]:
    block = sample_block()
    prepares = tuple(
        sorted((key(i).public_key, messages.make_vote(CHAIN_ID, key(i), "prepare", 1, 0, block.hash).signature) for i in range(3))
    )
    prepared = PreparedCertificate(0, block.hash, prepares)
    view_change = messages.make_view_change(CHAIN_ID, key(1), 1, 1, prepared, block)
    bare = messages.make_view_change(CHAIN_ID, key(2), 1, 1, None, None)
    certificate = CommitCertificate(1, 0, block.hash, prepares)
    return [
        messages.make_vote(CHAIN_ID, key(0), "prepare", 1, 0, block.hash),
        messages.make_vote(CHAIN_ID, key(0), "commit", 1, 0, block.hash),
        view_change,
        bare,
        messages.make_proposal(CHAIN_ID, key(1), 1, 1, block, (messages.ViewChange(**{**view_change.__dict__, "block": None}), bare)),
        messages.SyncRequest(5),
        messages.SyncResponse(((block, certificate),)),
    ]


@pytest.mark.parametrize("index", range(7))
def test_every_message_kind_round_trips_exactly(index: int) -> None:
    """decode(encode(m)) == m and re-encoding gives the same bytes."""
    message = sample_messages()[index]
    data = messages.encode(message)
    again = messages.decode(data)
    assert again == message and messages.encode(again) == data


def test_commit_vote_signature_is_the_certificate_signature() -> None:
    """A commit vote signs exactly the PROTOCOL §5 payload."""
    block = sample_block()
    vote = messages.make_vote(CHAIN_ID, key(0), "commit", 1, 2, block.hash)
    assert verify(key(0).public_key, commit_payload(CHAIN_ID, 1, 2, block.hash), vote.signature)
    assert messages.signature_valid(CHAIN_ID, vote)
    assert not messages.signature_valid("other-chain", vote)


def mutate(index: int, change) -> bytes:  # type: ignore[no-untyped-def]
    wire = messages.to_wire(sample_messages()[index])
    change(wire)
    return msgpack.packb(wire, use_bin_type=True)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 10,
        msgpack.packb({"kind": "prepare"}),
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"kind": "nonsense"}),
        mutate(0, lambda w: w.update(extra=1)),
        mutate(0, lambda w: w.update(view=-1)),
        mutate(0, lambda w: w.update(block="AB" * 32)),
        mutate(0, lambda w: w.update(signature="00")),
        mutate(0, lambda w: w.update(height=True)),
        mutate(2, lambda w: w["prepared"]["signatures"].reverse()),
        mutate(2, lambda w: w["prepared"].update(view=5)),
        mutate(2, lambda w: w["attachment"]["header"].update(height=2)),
        mutate(4, lambda w: w["justification"][0].update(attachment=w["block"])),
        mutate(4, lambda w: w["block"]["header"].pop("state_root")),
        mutate(4, lambda w: w["block"].update(txs=["00"] * (messages.MAX_BLOCK_TXS + 1))),
        mutate(5, lambda w: w.update(from_height="1")),
        mutate(6, lambda w: w["entries"][0]["certificate"].pop("view")),
        msgpack.packb({"view": 0, "kind": "prepare"}),
    ],
)
def test_malformed_messages_raise_only_message_error(data: bytes) -> None:
    """Every malformed input raises MessageError, never another exception."""
    with pytest.raises(MessageError):
        messages.decode(data)


def test_non_canonical_encoding_is_refused() -> None:
    """The same content with unsorted keys is not accepted: one message, one byte string."""
    wire = messages.to_wire(sample_messages()[0])
    unsorted = msgpack.packb(dict(sorted(wire.items(), reverse=True)), use_bin_type=True)
    assert unsorted != messages.encode(sample_messages()[0])
    with pytest.raises(MessageError):
        messages.decode(unsorted)
