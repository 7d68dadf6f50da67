"""Admitted, uncommitted transactions, kept in a record log so a restart loses none.

They were LevelDB entries (a put on admission, a delete at commit): two of a gift's ~18
entries and a seventh of the bytes LevelDB wrote and compacted, for records that live a
few seconds (docs/PERFORMANCE.md, tenth round). Here a batch of admissions is one
appended write and a removal appends the ids it removes; when the file has grown to
several times what is still pending it is rewritten with only that. Appends are not
synced: a killed process loses nothing (the operating system has the write) and a machine
crash at most transactions that clients were told are merely pending.

A record's payload: b"+", the 32-byte id and the transaction's canonical bytes (admitted),
or b"-" and the id (removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from node.record_log import RecordLog

# In the database's directory: LevelDB leaves alone the files it did not name.
FILE_NAME = "pending.log"
ADMITTED, REMOVED = b"+", b"-"
_PREFIX_BYTES = 1 + 32
# Rewrite once the file is this many times the pending transactions' bytes, and this large.
REWRITE_FACTOR = 4
REWRITE_MIN_BYTES = 8 * 1024 * 1024


class PendingLog:
    """The mempool's PendingStore (node/mempool.py) in one file."""

    def __init__(self, path: Path) -> None:
        self._log = RecordLog(path)
        # id -> (offset of the transaction's bytes in the file, their length)
        self._live: dict[str, tuple[int, int]] = {}
        self._live_bytes = 0
        for offset, payload in self._log.take_opened():
            tx_id = payload[1:_PREFIX_BYTES].hex()
            self._forget(tx_id)
            if payload[:1] == ADMITTED:
                self._remember(tx_id, offset + _PREFIX_BYTES, len(payload) - _PREFIX_BYTES)

    def close(self) -> None:
        self._log.close()

    def __len__(self) -> int:
        return len(self._live)

    # ---- the PendingStore protocol ----------------------------------------------
    def pending_put_many(self, txs: Mapping[str, bytes]) -> None:
        offsets = self._log.append(
            [ADMITTED + bytes.fromhex(tx_id) + encoded for tx_id, encoded in txs.items()],
            sync=False,
        )
        for offset, (tx_id, encoded) in zip(offsets, txs.items(), strict=True):
            self._forget(tx_id)
            self._remember(tx_id, offset + _PREFIX_BYTES, len(encoded))

    def pending_delete(self, tx_ids: list[str]) -> None:
        removed = [REMOVED + bytes.fromhex(tx_id) for tx_id in tx_ids if self._forget(tx_id)]
        if removed:
            self._log.append(removed, sync=False)
        if self._log.size >= max(REWRITE_MIN_BYTES, REWRITE_FACTOR * self._live_bytes):
            self._rewrite()

    def pending_all(self) -> list[bytes]:
        data = self._log.read()
        return [data[offset : offset + length] for offset, length in self._live.values()]

    # ---- bookkeeping ------------------------------------------------------------
    def _remember(self, tx_id: str, offset: int, length: int) -> None:
        self._live[tx_id] = (offset, length)
        self._live_bytes += length

    def _forget(self, tx_id: str) -> bool:
        entry = self._live.pop(tx_id, None)
        if entry is None:
            return False
        self._live_bytes -= entry[1]
        return True

    def _rewrite(self) -> None:
        live = dict(zip(self._live, self.pending_all(), strict=True))
        offsets = self._log.rewrite(
            [ADMITTED + bytes.fromhex(tx_id) + encoded for tx_id, encoded in live.items()]
        )
        self._live, self._live_bytes = {}, 0
        for offset, (tx_id, encoded) in zip(offsets, live.items(), strict=True):
            self._remember(tx_id, offset + _PREFIX_BYTES, len(encoded))
