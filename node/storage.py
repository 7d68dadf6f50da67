"""The node's LevelDB (plyvel): blocks, certificates, results, indexes, state and journal.

Everything a committed block changes (block, certificate, results, tx index,
state values, new state-tree nodes, owner and history indexes, meta) goes into
one write batch written with sync=True, so a kill at any instant leaves either
the old height or the new one. State-tree nodes are content-addressed and never
deleted, so proofs at old heights keep working. Journal appends (what this
validator signed) are synced before the replica's messages leave the process.

Key layout (one-letter prefixes; heights big-endian so they sort):
  m<name>                 meta (height, head, state_root, genesis, clock offset)
  b<height>               block {"header", "txs"} (canonical bytes)
  c<height>               certificate dict
  r<height>               results list
  h<hash hex>             height of a block hash
  t<tx id hex>            {"height", "index"}
  s<state key>            flat state value (latest)
  n<node hash>            state-tree node bytes
  j<sequence>             safety-journal record
  o<owner>/<token id>     tokens-by-owner index (empty value)
  x<token id>\0<height><index>  token history entry
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plyvel

from consensus.types import Block, CommitCertificate
from node.errors import NodeSetupError
from primitives.encoding import canonical_bytes, decode_canonical, encode_trusted

MAX_RECORD_BYTES = 512 * 1024 * 1024
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + _U64.pack(height)


def _decode(data: bytes) -> Any:
    # Our own records: trusted, but still decoded strictly to catch disk corruption.
    return decode_canonical(data, max_bytes=MAX_RECORD_BYTES)


@dataclass(frozen=True)
class TokenMove:
    """One entry of a token's history, for the index kept beside the state."""

    token: str
    owner: str
    previous_owner: str | None
    acquired_by: str
    at_ms: int
    height: int
    index: int
    tx: str


class Storage:
    """One plyvel database per node home."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.IOError as exc:
            raise NodeSetupError(
                "cannot open the database in %s (is another node running on this home?): %s" % (path, exc)
            ) from None
        self._journal_next = self._last_journal_sequence() + 1

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()

    # ---- meta -------------------------------------------------------------
    def get_meta(self, name: str) -> Any:
        data = self._db.get(b"m" + name.encode())
        return None if data is None else _decode(data)

    def put_meta(self, name: str, value: Any) -> None:
        self._db.put(b"m" + name.encode(), canonical_bytes(value), sync=True)

    def height(self) -> int:
        value = self.get_meta("height")
        return 0 if value is None else int(value)

    def head_hash(self) -> str | None:
        return self.get_meta("head")

    def state_root(self) -> str | None:
        return self.get_meta("state_root")

    # ---- blocks -----------------------------------------------------------
    def block(self, height: int) -> Block | None:
        data = self._db.get(_height_key(b"b", height))
        return None if data is None else Block.from_dict(_decode(data))

    def certificate(self, height: int) -> CommitCertificate | None:
        data = self._db.get(_height_key(b"c", height))
        return None if data is None else CommitCertificate.from_dict(_decode(data))

    def results(self, height: int) -> list[dict[str, Any]] | None:
        data = self._db.get(_height_key(b"r", height))
        return None if data is None else _decode(data)

    def height_of_hash(self, block_hash: str) -> int | None:
        data = self._db.get(b"h" + block_hash.encode())
        return None if data is None else _decode(data)

    def tx_location(self, tx_id: str) -> tuple[int, int] | None:
        data = self._db.get(b"t" + tx_id.encode())
        if data is None:
            return None
        value = _decode(data)
        return value["height"], value["index"]

    # ---- state ------------------------------------------------------------
    def state_get(self, key: str) -> Any:
        data = self._db.get(b"s" + key.encode())
        return None if data is None else _decode(data)

    def state_items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        raw_prefix = b"s" + prefix.encode()
        for key, value in self._db.iterator(prefix=raw_prefix):
            yield key[1:].decode(), _decode(value)

    def get_node(self, node_hash: bytes) -> bytes | None:
        return self._db.get(b"n" + node_hash)

    def put_nodes(self, nodes: Mapping[bytes, bytes]) -> None:
        """Tree nodes for genesis; block nodes go in with commit()."""
        with self._db.write_batch(sync=True) as batch:
            for node_hash, node in nodes.items():
                batch.put(b"n" + node_hash, node)

    # ---- indexes ----------------------------------------------------------
    def tokens_of(self, owner: str, *, after: str | None, limit: int) -> list[str]:
        prefix = b"o" + owner.encode() + b"/"
        start = prefix + after.encode() + b"\x00" if after is not None else prefix
        tokens: list[str] = []
        for key in self._db.iterator(start=start, prefix=prefix, include_value=False):
            tokens.append(key[len(prefix):].decode())
            if len(tokens) >= limit:
                break
        return tokens

    def token_history(self, token: str, *, limit: int = 10_000) -> list[dict[str, Any]]:
        prefix = b"x" + token.encode() + b"\x00"
        entries = []
        for _, value in self._db.iterator(prefix=prefix):
            entries.append(_decode(value))
            if len(entries) >= limit:
                break
        return entries

    # ---- commit -----------------------------------------------------------
    def commit(
        self,
        block: Block,
        certificate: CommitCertificate,
        results: list[dict[str, Any]],
        writes: Mapping[str, Any],
        new_nodes: Mapping[bytes, bytes],
        tx_ids: list[str],
        token_moves: Iterable[TokenMove] = (),
        extra_meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a final block and all it changes in one synced atomic batch.
        A write whose value is None deletes the key."""
        height = block.height
        with self._db.write_batch(sync=True, transaction=True) as batch:
            batch.put(_height_key(b"b", height), canonical_bytes(block.to_dict()))
            batch.put(_height_key(b"c", height), canonical_bytes(certificate.to_dict()))
            batch.put(_height_key(b"r", height), canonical_bytes(results))
            batch.put(b"h" + block.hash.encode(), canonical_bytes(height))
            for index, tx_id in enumerate(tx_ids):
                batch.put(b"t" + tx_id.encode(), encode_trusted({"height": height, "index": index}))
            for key, value in writes.items():
                if value is None:
                    batch.delete(b"s" + key.encode())
                else:
                    batch.put(b"s" + key.encode(), canonical_bytes(value))
            for node_hash, node in new_nodes.items():
                batch.put(b"n" + node_hash, node)
            for move in token_moves:
                if move.previous_owner is not None:
                    batch.delete(b"o" + move.previous_owner.encode() + b"/" + move.token.encode())
                batch.put(b"o" + move.owner.encode() + b"/" + move.token.encode(), b"")
                batch.put(
                    b"x" + move.token.encode() + b"\x00" + _U64.pack(move.height) + _U32.pack(move.index),
                    canonical_bytes(
                        {
                            "owner": move.owner,
                            "acquired_by": move.acquired_by,
                            "at": move.at_ms,
                            "height": move.height,
                            "tx": move.tx,
                        }
                    ),
                )
            batch.put(b"mheight", canonical_bytes(height))
            batch.put(b"mhead", canonical_bytes(block.hash))
            batch.put(b"mstate_root", canonical_bytes(block.header["state_root"]))
            for name, value in (extra_meta or {}).items():
                batch.put(b"m" + name.encode(), canonical_bytes(value))

    def write_genesis(
        self, genesis_hash: str, writes: Mapping[str, Any], new_nodes: Mapping[bytes, bytes], state_root: str
    ) -> None:
        """The genesis state, in one synced batch; height stays 0."""
        with self._db.write_batch(sync=True, transaction=True) as batch:
            for key, value in writes.items():
                if value is not None:
                    batch.put(b"s" + key.encode(), canonical_bytes(value))
            for node_hash, node in new_nodes.items():
                batch.put(b"n" + node_hash, node)
            batch.put(b"mstate_root", canonical_bytes(state_root))
            batch.put(b"mgenesis_state_root", canonical_bytes(state_root))
            batch.put(b"mheight", canonical_bytes(0))
            batch.put(b"mgenesis", canonical_bytes(genesis_hash))

    # ---- safety journal ---------------------------------------------------
    def _last_journal_sequence(self) -> int:
        for key in self._db.iterator(prefix=b"j", reverse=True, include_value=False):
            return _U64.unpack(key[1:])[0]
        return 0

    def journal_append(self, record: bytes) -> None:
        """Append what the validator is about to send; synced before it returns."""
        self._db.put(b"j" + _U64.pack(self._journal_next), bytes(record), sync=True)
        self._journal_next += 1

    def journal_records(self) -> list[bytes]:
        return [value for _, value in self._db.iterator(prefix=b"j")]

    def journal_prune(self, keep_last: int) -> None:
        """Drop old journal records; the replica says what it still needs."""
        cutoff = self._journal_next - keep_last
        if cutoff <= 1:
            return
        with self._db.write_batch(sync=True) as batch:
            for key in self._db.iterator(prefix=b"j", stop=b"j" + _U64.pack(cutoff), include_value=False):
                batch.delete(key)
