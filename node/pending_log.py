"""Admitted, uncommitted transactions, kept in an append-only file so a restart loses none.

They were LevelDB entries (a put on admission, a delete at commit): two of a gift's ~18
entries and a quarter of the bytes LevelDB wrote, flushed and compacted, for records that
live a few seconds (docs/PERFORMANCE.md, tenth round). Here a batch of admissions is one
appended write, and a removal appends the ids it removes; when the file has grown to
several times what is still pending it is rewritten with only that. Appends are not
synced: a killed process loses nothing (the operating system has the write) and a machine
crash at most transactions that clients were told are merely pending.

Record: kind (b"+" admitted, b"-" removed), payload length (4 bytes, big-endian), CRC-32
of the payload (4 bytes), payload: the 32-byte id, then for b"+" the transaction's
canonical bytes. Reading stops at the first incomplete or damaged record (a write cut
short by a kill) and the file is cut there.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("yuxi.mempool")

# In the database's directory: LevelDB leaves alone the files it did not name.
FILE_NAME = "pending.log"
ADMITTED, REMOVED = b"+", b"-"
_HEADER = struct.Struct(">cII")
ID_BYTES = 32
# Rewrite once the file is this many times the pending records' bytes, and at least this large.
REWRITE_FACTOR = 4
REWRITE_MIN_BYTES = 8 * 1024 * 1024


def _record(kind: bytes, payload: bytes) -> bytes:
    return _HEADER.pack(kind, len(payload), zlib.crc32(payload)) + payload


class PendingLog:
    """The mempool's PendingStore (node/mempool.py) in one file."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        # id -> (offset of the transaction's bytes in the file, their length)
        self._live: dict[str, tuple[int, int]] = {}
        self._live_bytes = 0
        self._size = self._load()
        self._file = open(self._path, "ab")  # noqa: SIM115 (kept open for the node's life)

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return len(self._live)

    # ---- the PendingStore protocol ----------------------------------------------
    def pending_put_many(self, txs: Mapping[str, bytes]) -> None:
        chunks = []
        offset = self._size
        for tx_id, encoded in txs.items():
            record = _record(ADMITTED, bytes.fromhex(tx_id) + encoded)
            if tx_id in self._live:
                self._live_bytes -= self._live[tx_id][1]
            self._live[tx_id] = (offset + len(record) - len(encoded), len(encoded))
            self._live_bytes += len(encoded)
            chunks.append(record)
            offset += len(record)
        self._append(b"".join(chunks))

    def pending_delete(self, tx_ids: list[str]) -> None:
        chunks = []
        for tx_id in tx_ids:
            entry = self._live.pop(tx_id, None)
            if entry is not None:
                self._live_bytes -= entry[1]
                chunks.append(_record(REMOVED, bytes.fromhex(tx_id)))
        if chunks:
            self._append(b"".join(chunks))
        if self._size >= max(REWRITE_MIN_BYTES, REWRITE_FACTOR * self._live_bytes):
            self._rewrite()

    def pending_all(self) -> list[bytes]:
        self._file.flush()
        with open(self._path, "rb") as file:
            data = file.read()
        return [data[offset : offset + length] for offset, length in self._live.values()]

    # ---- the file ---------------------------------------------------------------
    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _load(self) -> int:
        """Read the records into _live; cut a damaged tail; return the file's length."""
        try:
            data = self._path.read_bytes()
        except FileNotFoundError:
            return 0
        offset = 0
        while offset + _HEADER.size <= len(data):
            kind, length, crc = _HEADER.unpack_from(data, offset)
            start, end = offset + _HEADER.size, offset + _HEADER.size + length
            payload = data[start:end]
            if (
                kind not in (ADMITTED, REMOVED)
                or length < ID_BYTES
                or end > len(data)
                or zlib.crc32(payload) != crc
            ):
                break
            tx_id = payload[:ID_BYTES].hex()
            if tx_id in self._live:
                self._live_bytes -= self._live.pop(tx_id)[1]
            if kind == ADMITTED:
                self._live[tx_id] = (start + ID_BYTES, length - ID_BYTES)
                self._live_bytes += length - ID_BYTES
            offset = end
        if offset < len(data):
            log.warning(
                "%s: %d bytes after the last whole record dropped (a write cut short)",
                self._path,
                len(data) - offset,
            )
            with open(self._path, "r+b") as file:
                file.truncate(offset)
        return offset

    def _rewrite(self) -> None:
        """Replace the file by one holding only the pending records (synced, then renamed
        over the old one, so a crash leaves one or the other whole)."""
        records = [
            _record(ADMITTED, bytes.fromhex(tx_id) + encoded)
            for tx_id, encoded in zip(self._live, self.pending_all(), strict=True)
        ]
        temporary = self._path.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(b"".join(records))
            file.flush()
            os.fsync(file.fileno())
        self._file.close()
        os.replace(temporary, self._path)
        self._live, self._live_bytes = {}, 0
        self._size = self._load()
        self._file = open(self._path, "ab")  # noqa: SIM115
