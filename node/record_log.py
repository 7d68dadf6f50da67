"""An append-only file of records, for what a node keeps only briefly.

LevelDB suits what lives long; a record written and dropped within seconds still costs it
a memtable insert, a place in a level-0 table and a compaction before its delete wins
(docs/PERFORMANCE.md, tenth round). The pending transactions (node/pending_log.py) and the
safety journal (node/storage.py) are such records: appended here, and dropped by
rewriting the file with only what is still needed, now and then.

Each record is its payload's length (4 bytes, big-endian), the payload's CRC-32 (4 bytes)
and the payload. Opening reads every whole record and cuts the file after the last one: a
write cut short by a kill (never acknowledged) or a damaged tail is dropped, with a
warning. A rewrite goes to a temporary file, synced, then renamed over the old one, so a
crash leaves either whole.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

log = logging.getLogger("yuxi.storage")

_HEADER = struct.Struct(">II")


def _framed(payloads: list[bytes]) -> bytes:
    return b"".join(
        _HEADER.pack(len(payload), zlib.crc32(payload)) + payload for payload in payloads
    )


class RecordLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._opened_with: list[tuple[int, bytes]] = []
        existed = self.path.exists()
        self.size = self._load()
        self._file = open(self.path, "ab")  # noqa: SIM115 (open for the node's life)
        if not existed:
            self._sync_directory()  # the new file's name, on disk before any synced record

    def close(self) -> None:
        self._file.close()

    def take_opened(self) -> list[tuple[int, bytes]]:
        """(offset, payload) of each record found on opening, handed over once."""
        records, self._opened_with = self._opened_with, []
        return records

    def append(self, payloads: list[bytes], *, sync: bool) -> list[int]:
        """Append records in one write; return each payload's offset. With `sync` they are
        on disk when this returns, else with the operating system (they survive a kill)."""
        offsets = self._offsets(payloads, self.size)
        data = _framed(payloads)
        self._file.write(data)
        self._file.flush()
        if sync:
            os.fdatasync(self._file.fileno())
        self.size += len(data)
        return offsets

    def read(self) -> bytes:
        """The whole file (payloads are found at the offsets append() returned)."""
        self._file.flush()
        return self.path.read_bytes()

    def rewrite(self, payloads: list[bytes]) -> list[int]:
        """Replace the file by one holding only `payloads`; return their offsets."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as file:
            file.write(_framed(payloads))
            file.flush()
            os.fsync(file.fileno())
        self._file.close()
        os.replace(temporary, self.path)
        self._sync_directory()  # the rename itself, on disk
        self._file = open(self.path, "ab")  # noqa: SIM115
        self.size = os.path.getsize(self.path)
        return self._offsets(payloads, 0)

    def _sync_directory(self) -> None:
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @staticmethod
    def _offsets(payloads: list[bytes], start: int) -> list[int]:
        offsets = []
        for payload in payloads:
            offsets.append(start + _HEADER.size)
            start += _HEADER.size + len(payload)
        return offsets

    def _load(self) -> int:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            payload = data[start : start + length]
            if len(payload) < length or zlib.crc32(payload) != crc:
                break
            self._opened_with.append((start, payload))
            offset = start + length
        if offset < len(data):
            log.warning(
                "%s: %d bytes after the last whole record dropped (a write cut short)",
                self.path,
                len(data) - offset,
            )
            with open(self.path, "r+b") as file:
                file.truncate(offset)
        return offset
