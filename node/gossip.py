"""Transaction gossip between validators, in batches.

Transactions a node admits during one turn of the event loop (a batch
submission, say) leave in one frame per peer instead of one frame each. A
frame is a MessagePack array of canonical transaction encodings; a receiver
decodes each strictly and admits it like any other, so a peer can at worst
waste a bounded amount of our time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgpack

from contracts.transactions import MAX_TX_BYTES, SignedTx, TxError, decode_tx

MAX_GOSSIP_TXS = 1000


class GossipError(ValueError):
    pass


def encode_batch(encoded_txs: list[bytes]) -> bytes:
    return msgpack.packb(encoded_txs, use_bin_type=True)


def decode_batch(data: bytes) -> list[SignedTx | None]:
    """The transactions of a gossip frame; None for one that does not decode."""
    try:
        items = msgpack.unpackb(
            data,
            raw=False,
            max_array_len=MAX_GOSSIP_TXS,
            max_bin_len=MAX_TX_BYTES,
            max_str_len=0,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise GossipError("bad gossip frame: %s" % exc) from None
    if not isinstance(items, list):
        raise GossipError("a gossip frame is an array")
    decoded: list[SignedTx | None] = []
    for item in items:
        try:
            decoded.append(decode_tx(item) if isinstance(item, bytes) else None)
        except TxError:
            decoded.append(None)
    return decoded


class GossipBatcher:
    """Collects newly admitted transactions and sends them at the end of the loop turn."""

    def __init__(self, send: Callable[[bytes], None]) -> None:
        self._send = send
        self._pending: list[bytes] = []
        self._scheduled = False

    def add(self, tx: SignedTx) -> None:
        self._pending.append(tx.encoded)
        if len(self._pending) >= MAX_GOSSIP_TXS:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._pending:
            batch, self._pending = self._pending, []
            self._send(encode_batch(batch))
