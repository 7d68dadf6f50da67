"""Transaction gossip frames: batches round-trip, junk is refused or skipped item by item."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from node_test_helpers import register, user_key

from contracts.genesis import devnet_authority_key
from contracts.transactions import parse_tx
from node.gossip import MAX_GOSSIP_TXS, GossipBatcher, GossipError, decode_batch, encode_batch

AUTHORITY = devnet_authority_key()


def test_batches_round_trip_and_bad_items_are_skipped() -> None:
    """A frame gives back its transactions in order; an undecodable item becomes None, not an error."""
    txs = [
        parse_tx(register(AUTHORITY, nonce, user_key("g%d" % nonce).public_key))
        for nonce in range(3)
    ]
    frame = encode_batch([txs[0].encoded, b"\x01junk", txs[2].encoded])
    decoded = decode_batch(frame)
    assert [tx.id if tx else None for tx in decoded] == [txs[0].id, None, txs[2].id]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",
        msgpack.packb({"a": 1}),
        msgpack.packb([b"x"] * (MAX_GOSSIP_TXS + 1)),
        msgpack.packb(["text"]),
    ],
)
def test_malformed_frames_are_refused(frame: bytes) -> None:
    """Truncated, non-array, oversized or string-carrying frames raise GossipError."""
    with pytest.raises(GossipError):
        decode_batch(frame)


async def test_batcher_sends_one_frame_per_loop_turn() -> None:
    """Transactions admitted in one turn of the event loop leave together in one frame."""
    frames: list[bytes] = []
    batcher = GossipBatcher(frames.append)
    txs = [
        parse_tx(register(AUTHORITY, nonce, user_key("b%d" % nonce).public_key))
        for nonce in range(5)
    ]
    for tx in txs:
        batcher.add(tx)
    assert frames == []
    await asyncio.sleep(0)
    assert len(frames) == 1 and [tx.id for tx in decode_batch(frames[0]) if tx] == [
        tx.id for tx in txs
    ]
