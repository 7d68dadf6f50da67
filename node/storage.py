"""The node's store: LevelDB (plyvel) for blocks, certificates, results, indexes and state.

Everything a committed block changes (block, certificate, results, tx index,
state values, the owner index, meta) goes into one write batch written with
sync=True, so a kill at any instant leaves either the old height or the new one.
The state tree is written every TREE_FLUSH_BLOCKS blocks, by a thread, in a synced
batch of its own after that block's: the database holds the tree as of the last flush
(no older node), the keys each block changed since, and memory the rest
(node/tree_buffer.py); opening the database rebuilds the newest tree from those keys'
values. Beside LevelDB's files, two record logs (node/record_log.py) hold what lives
only seconds: the safety journal (what this validator signed, synced before the
replica's messages leave the process) and the pending transactions (node/pending_log.py).
The frequent point reads (state values, tree nodes, the transaction index) seek an
iterator rather than call `Get`, which would start compactions (Storage._read).

Key layout (one-letter prefixes; heights big-endian so they sort):
  m<name>                 meta (height, head, state_root, tree_root/tree_height of the
                          stored tree, genesis, clock offset)
  b<height>               block {"header", "txs"} (canonical bytes)
  c<height>               certificate dict
  r<height>               results list
  h<hash hex>             height of a block hash
  t<tx id hex>            {"height", "index"} of the inclusion that consumed its nonce (one
                          included again gets bad_nonce and leaves the entry as it was)
  s<state key>            flat state value (latest)
  n<node hash>            state-tree node bytes (the tree as of tree_height)
  k<height>               the state keys a block changed, while the stored tree is older
  j<height><sequence>     a safety-journal record (databases before journal.log only:
                          moved into it on open)
  p<tx id hex>            a pending transaction (databases before the pending log only:
                          moved into it on open, see node/pending_log.py)
  o<owner>/<token id>     tokens-by-owner index (empty value)

Token history lives in the state itself (contracts keep it), so it is not indexed here.
"""

from __future__ import annotations

import random
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import plyvel

from consensus.types import Block, CommitCertificate
from contracts.codes import Code
from contracts.state import token_id_of_key
from contracts.state_tree import LEAF_BYTES, TreeUpdate, apply_changes
from contracts.transactions import compute_tx_id
from node.bounded import BoundedCache
from node.errors import NodeSetupError
from node.pending_log import FILE_NAME as PENDING_FILE
from node.pending_log import PendingLog
from node.record_log import RecordLog
from node.table_reads import use_pread
from node.tree_buffer import TreeBuffer
from primitives.encoding import canonical_bytes, encode_trusted

RECENT_BLOCKS_CACHED = 16
# A hashed trie is wide at the top and narrow at the bottom: with a million keys the top
# five levels (70k nodes of ~16 children) lie on every key's path, the 290k narrow nodes
# below on one or two keys' each, read at random and rarely again. One FIFO over both
# held under a third of the wide nodes, so each changed key cost ~3 LevelDB reads (each
# may re-open a table, see MAX_OPEN_FILES); kept apart, the wide ones all stay cached.
WIDE_NODE_BYTES = 3 + 32 * 8  # an internal node with at least 8 children
WIDE_NODES_CACHED = 80_000
NARROW_NODES_CACHED = 20_000
# Tree nodes are read at random hashes: a bloom filter spares a read per table level that
# cannot hold the key, and the block cache keeps the hot tables' blocks in memory.
BLOOM_FILTER_BITS = 10
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
# Most of what is written is tree nodes: hashes, which do not compress. With LevelDB's
# default Snappy, compaction spent a third of a loaded validator's CPU compressing them
# for nothing (perf, docs/PERFORMANCE.md).
COMPRESSION = None
# Each memtable flush makes a level-0 table covering every key, and the iterator reads
# (_read) touch a page of each one: up to four stay open (mapped, without pread), and the
# memtable and the one being flushed are memory too. With a million tokens (tables
# mapped) the peak RSS was 481-519 MB at 32 MB, 425-447 at 16 and 377-404 at 8, for about
# the same throughput (twentieth round).
WRITE_BUFFER_BYTES = 8 * 1024 * 1024
# Tables read with pread (node/table_reads.py) cost no RSS while open, so all of a large
# state's stay open (at 80, re-opening them took a fifth of the main thread with a
# million tokens; twenty-first round). Mapped, each page a read touched counts in RSS
# (600 MB of a 900 MB peak with a million tokens at 1,000), so then 80 (LevelDB keeps 10
# for other files and clips to at least 74): ~70 tables of 2 MB mapped, re-opened (index
# and filter) when read again.
MAX_OPEN_FILES = 1000 if use_pread() else 80
# The tree is flushed every 16 blocks (half its nodes are replaced within them, so never
# written; ninth round), or sooner when the nodes held in memory grow past 50,000 (blocks
# of large mints; a gift load at 1,400/s reaches it after 10-15 blocks). A restart
# rebuilds at most that much. A flush's batch is built, then copied into the memtable:
# at 100,000 nodes the peak RSS while minting a million tokens was 403-414 MB, at 50,000
# 381-394 (thirteenth round).
TREE_FLUSH_BLOCKS = 16
TREE_FLUSH_NODES = 50_000
JOURNAL_FILE = "journal.log"  # beside LevelDB's files, which it leaves alone
JOURNAL_REWRITE_BYTES = 4 * 1024 * 1024
_U64 = struct.Struct(">Q")


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + _U64.pack(height)


def _decode(data: bytes) -> Any:
    # Everything in this database was written by canonical_bytes in this module, and
    # LevelDB checksums its blocks, so plain MessagePack decoding is enough here (the
    # strict decoder re-encodes to prove canonical form: a third of a block's run time).
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=False)


class Storage:
    """One plyvel database per node home."""

    def __init__(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(
                str(path),
                create_if_missing=True,
                bloom_filter_bits=BLOOM_FILTER_BITS,
                lru_cache_size=BLOCK_CACHE_BYTES,
                compression=COMPRESSION,
                write_buffer_size=WRITE_BUFFER_BYTES,
                max_open_files=MAX_OPEN_FILES,
            )
        except plyvel.IOError as exc:
            raise NodeSetupError(
                "cannot open the database in %s (is another node running on this home?): %s"
                % (path, exc)
            ) from None
        # Point reads go through one iterator, renewed whenever the database was written
        # since it was opened (by this thread or the flush thread): see _read.
        self._generation = 0
        self._reader: tuple[int, Any] | None = None  # (generation, a plyvel RawIterator)
        self._open_journal(path)
        # Recent blocks spare decoding a large block for each status poll of one of its
        # transactions, and the next proposal's read of its parent's header.
        # All of these are final or content-addressed: a cached entry is never stale.
        self._recent_blocks: BoundedCache[int, Block] = BoundedCache(RECENT_BLOCKS_CACHED)
        self._recent_results: BoundedCache[int, list] = BoundedCache(RECENT_BLOCKS_CACHED)
        self._recent_tx_ids: BoundedCache[int, list[str]] = BoundedCache(RECENT_BLOCKS_CACHED)
        self._wide_nodes: BoundedCache[bytes, bytes] = BoundedCache(WIDE_NODES_CACHED)
        self._narrow_nodes: BoundedCache[bytes, bytes] = BoundedCache(NARROW_NODES_CACHED)
        self._tree = TreeBuffer()
        self._tree_height = 0
        # Validators flushing at the same heights stalled together; a random first
        # interval spreads their flushes over the TREE_FLUSH_BLOCKS heights.
        self._flush_interval = random.randint(1, TREE_FLUSH_BLOCKS)
        self._flushing: TreeBuffer | None = None  # being written by the flush thread
        self._flush_thread: threading.Thread | None = None
        self._flush_error: BaseException | None = None
        self._open_tree()
        self._pending = PendingLog(path / PENDING_FILE)
        self._move_pending_to_log()

    def close(self) -> None:
        if self._db.closed:
            return
        try:
            self.wait_for_tree_write()  # if it failed, the stored tree is older: keep the keys
            if len(self._tree):
                self._write_tree(self._tree, self.state_root(), self._tree_height, self.height())
        finally:
            self._reader = None
            self._db.close()
            self._pending.close()
            self._journal.close()

    # ---- reads and writes --------------------------------------------------
    def _read(self, key: bytes) -> bytes | None:
        """The value at `key`, read by seeking an iterator rather than by `Get`.

        LevelDB charges a table for each `Get` that had to look into a second one, and
        compacts a table charged file_size / 16 KB times. A validator's reads (its tokens,
        tree nodes, the transaction index on admission) fall at random keys of the deeper
        levels, below level-0 tables that cover every key: each new table was compacted
        down within a second of its flush, so compaction wrote 5x what was flushed and
        took ~40% of a node's CPU with a million tokens. Iterator reads are sampled about
        once per MB read (docs/PERFORMANCE.md, nineteenth and twentieth rounds). Called
        on the node's main thread only (the flush thread writes, never reads)."""
        generation = self._generation
        reader = self._reader
        if reader is None or reader[0] != generation:
            # The generation is read before the iterator opens: a write finishing in
            # between bumps it again, so this iterator is never kept past that write.
            reader = self._reader = (generation, self._db.raw_iterator())
        iterator = reader[1]
        iterator.seek(key)
        if not iterator.valid():
            return None
        found, value = iterator.item()
        return value if found == key else None

    @contextmanager
    def _batch(self, transaction: bool = False) -> Iterator[Any]:
        """A synced write batch, the only way this module writes the database: the
        iterator _read keeps is renewed after it."""
        with self._db.write_batch(sync=True, transaction=transaction) as batch:
            yield batch
        self._generation += 1

    # ---- meta -------------------------------------------------------------
    def get_meta(self, name: str) -> Any:
        data = self._db.get(b"m" + name.encode())
        return None if data is None else _decode(data)

    def put_meta(self, name: str, value: Any) -> None:
        with self._batch() as batch:
            batch.put(b"m" + name.encode(), canonical_bytes(value))

    def height(self) -> int:
        value = self.get_meta("height")
        return 0 if value is None else int(value)

    def head_hash(self) -> str | None:
        return self.get_meta("head")

    def head_time_ms(self) -> int | None:
        """Time of the last committed block (kept apart so reading it never decodes a block)."""
        return self.get_meta("head_time")

    def state_root(self) -> str | None:
        return self.get_meta("state_root")

    # ---- blocks -----------------------------------------------------------
    def block(self, height: int) -> Block | None:
        cached = self._recent_blocks.get(height)
        if cached is not None:
            return cached
        data = self._db.get(_height_key(b"b", height))
        if data is None:
            return None
        block = Block.from_dict(_decode(data))
        self._recent_blocks.put(height, block)
        return block

    def certificate(self, height: int) -> CommitCertificate | None:
        data = self._db.get(_height_key(b"c", height))
        return None if data is None else CommitCertificate.from_dict(_decode(data))

    def results(self, height: int) -> list[dict[str, Any]] | None:
        cached = self._recent_results.get(height)
        if cached is not None:
            return cached
        data = self._db.get(_height_key(b"r", height))
        if data is None:
            return None
        results: list[dict[str, Any]] = _decode(data)
        self._recent_results.put(height, results)
        return results

    def tx_ids(self, height: int) -> list[str] | None:
        """The ids of a stored block's transactions, in its order: the events socket and
        the block RPC list them, and hashing 500 bodies again was 3% of a loaded node."""
        cached = self._recent_tx_ids.get(height)
        if cached is not None:
            return cached
        block = self.block(height)
        if block is None:
            return None
        tx_ids = [compute_tx_id(tx) for tx in block.txs]
        self._recent_tx_ids.put(height, tx_ids)
        return tx_ids

    def height_of_hash(self, block_hash: str) -> int | None:
        data = self._db.get(b"h" + block_hash.encode())
        return None if data is None else _decode(data)

    def tx_location(self, tx_id: str) -> tuple[int, int] | None:
        data = self._read(b"t" + tx_id.encode())
        if data is None:
            return None
        value = _decode(data)
        return value["height"], value["index"]

    # ---- state ------------------------------------------------------------
    def state_get(self, key: str) -> Any:
        data = self._read(b"s" + key.encode())
        return None if data is None else _decode(data)

    def state_items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        raw_prefix = b"s" + prefix.encode()
        for key, value in self._db.iterator(prefix=raw_prefix):
            yield key[1:].decode(), _decode(value)

    def get_node(self, node_hash: bytes) -> bytes | None:
        # Nodes are content-addressed and never change, so caching them is always right;
        # the upper levels of the tree are read by every block.
        node = self._tree.made.get(node_hash)
        if node is None and (flushing := self._flushing) is not None:
            node = flushing.made.get(node_hash)
        if node is None:
            node = self._wide_nodes.get(node_hash) or self._narrow_nodes.get(node_hash)
        if node is None:
            node = self._read(b"n" + node_hash)
            if node is not None:
                self._cache_node(node_hash, node)
        return node

    def node_maps(self) -> tuple[dict[bytes, bytes], ...]:
        """Where get_node looks before the database, in its order, for the compiled walk
        (contracts.state_tree.CachingNodeStore)."""
        flushing = self._flushing
        made = (self._tree.made,) if flushing is None else (self._tree.made, flushing.made)
        return (*made, self._wide_nodes, self._narrow_nodes)

    def _cache_node(self, node_hash: bytes, node: bytes) -> None:
        cache = self._wide_nodes if len(node) >= WIDE_NODE_BYTES else self._narrow_nodes
        cache.put(node_hash, node)

    def _remember_nodes(self, nodes: Mapping[bytes, bytes]) -> None:
        """Cache the internal nodes of a tree being flushed: the next blocks walk down
        through them, and reading them back from LevelDB at random hashes made each write
        cost 40x more with a million keys than with a few thousand. Until the flush they
        are read from the buffer, and half of the nodes a block makes are replaced before
        it (caching each block's was 3% of a loaded validator). Leaves are left out: a
        block rarely reads one it did not just write."""
        wide, narrow = self._wide_nodes, self._narrow_nodes
        for node_hash, node in nodes.items():
            size = len(node)
            if size >= WIDE_NODE_BYTES:
                wide.put(node_hash, node)
            elif size != LEAF_BYTES:
                narrow.put(node_hash, node)

    # ---- indexes ----------------------------------------------------------
    def tokens_of(self, owner: str, *, after: str | None, limit: int) -> list[str]:
        prefix = b"o" + owner.encode() + b"/"
        start = prefix + after.encode() + b"\x00" if after is not None else prefix
        tokens: list[str] = []
        for key in self._db.iterator(start=start, stop=prefix + b"\xff", include_value=False):
            tokens.append(key[len(prefix) :].decode())
            if len(tokens) >= limit:
                break
        return tokens

    # ---- commit -----------------------------------------------------------
    def commit(
        self,
        block: Block,
        certificate: CommitCertificate,
        results: list[dict[str, Any]],
        writes: Mapping[str, Any],
        tree: TreeUpdate,
        tx_ids: list[str],
        extra_meta: Mapping[str, Any] | None = None,
        previous: Callable[[str], Any] | None = None,
    ) -> None:
        """Write a final block and all it changes in one synced atomic batch.
        `results` and `tx_ids` are the block's transactions' own, in its order.
        A write whose value is None deletes the key. `tree` is the update from the
        committed root to this block's: its nodes join those held since the last flush,
        and every TREE_FLUSH_BLOCKS blocks they are written and the stale ones deleted
        (_start_tree_write), so the database never holds an older tree than the flushed
        one (proofs are served at the newest block; every execution starts from it).
        `previous` reads a key's committed value (the owner index needs each written
        token's old owner); a caller with the values cached passes its reader, else they
        come from the database."""
        self._raise_flush_error()
        height = block.height
        with self._batch(transaction=True) as batch:
            # Block, certificate and results are canonical by construction (checked on
            # the way in, or built here): the compiled encoder writes the same bytes.
            batch.put(_height_key(b"b", height), encode_trusted(block.to_dict()))
            batch.put(_height_key(b"c", height), encode_trusted(certificate.to_dict()))
            batch.put(_height_key(b"r", height), encode_trusted(results))
            batch.put(b"h" + block.hash.encode(), canonical_bytes(height))
            for index, (tx_id, result) in enumerate(zip(tx_ids, results, strict=True)):
                index_key = b"t" + tx_id.encode()
                if result["code"] == Code.BAD_NONCE:
                    # A transaction included again (a faulty proposer may) gets bad_nonce
                    # and changes nothing: its id keeps pointing at the inclusion that did.
                    if self._read(index_key) is not None:
                        continue
                batch.put(index_key, encode_trusted({"height": height, "index": index}))
            encoded = tree.encoded_values
            for key, value in writes.items():
                if value is None:
                    batch.delete(b"s" + key.encode())
                else:
                    data = encoded.get(key)
                    batch.put(b"s" + key.encode(), canonical_bytes(value) if data is None else data)
            batch.put(_height_key(b"k", height), encode_trusted(list(writes)))
            for token, old_owner, new_owner in self._owner_changes(
                writes, previous or self.state_get
            ):
                if old_owner is not None:
                    batch.delete(b"o" + old_owner.encode() + b"/" + token.encode())
                if new_owner is not None:
                    batch.put(b"o" + new_owner.encode() + b"/" + token.encode(), b"")
            batch.put(b"mheight", canonical_bytes(height))
            batch.put(b"mhead", canonical_bytes(block.hash))
            batch.put(b"mhead_time", canonical_bytes(block.time_ms))
            batch.put(b"mstate_root", canonical_bytes(block.header["state_root"]))
            for name, value in (extra_meta or {}).items():
                batch.put(b"m" + name.encode(), canonical_bytes(value))
        # Nodes are cached when their tree is flushed, so ones made since are in no cache.
        for node_hash in self._tree.add(tree.new_nodes, tree.stale_nodes):
            self._wide_nodes.pop(node_hash, None)
            self._narrow_nodes.pop(node_hash, None)
        # The next proposal reads this block's header: spare decoding the whole block.
        self._recent_blocks.put(height, block)
        self._recent_results.put(height, results)
        self._recent_tx_ids.put(height, tx_ids)
        due = (
            height - self._tree_height >= self._flush_interval
            or len(self._tree) >= TREE_FLUSH_NODES
        )
        if due and self._flushing is None:
            self._start_tree_write(tree.root, height)

    # ---- the stored tree ------------------------------------------------------
    def _start_tree_write(self, root: str | None, height: int) -> None:
        """Hand the buffered nodes to a thread that writes the tree of `height` (LevelDB
        releases the GIL while it writes): a flush is tens of thousands of entries and up to
        200 ms of CPU, which on the commit path stalled every validator at the same height. Later
        blocks buffer anew meanwhile; reads find the nodes being written in `_flushing`."""
        buffer, since = self._tree, self._tree_height
        self._flushing = buffer
        self._remember_nodes(buffer.made)
        self._tree, self._tree_height = TreeBuffer(), height
        self._flush_interval = TREE_FLUSH_BLOCKS

        def write() -> None:
            try:
                self._write_tree(buffer, root, since, height)
            except Exception as exc:  # raised on the main thread by the next commit
                self._flush_error = exc  # (the nodes stay readable in `_flushing`)
            else:
                self._flushing = None

        # Not a daemon: exiting waits for the write rather than closing LevelDB under it.
        self._flush_thread = threading.Thread(target=write, name="tree-flush")
        self._flush_thread.start()

    def wait_for_tree_write(self) -> None:
        """Return once no tree write is in progress (raising what it failed with)."""
        if self._flush_thread is not None:
            self._flush_thread.join()
            self._flush_thread = None
        self._raise_flush_error()

    def _raise_flush_error(self) -> None:
        # Kept: the stored tree is older than the buffer assumes until the database is
        # reopened (which rebuilds from the changed keys), so nothing may be written.
        if self._flush_error is not None:
            raise self._flush_error

    def _write_tree(self, buffer: TreeBuffer, root: str | None, since: int, height: int) -> None:
        """Store the tree of `height`: the stored one (of `since`) changed by `buffer`, and
        drop the changed keys kept for rebuilding it, in one synced batch. The keys of the
        blocks after `height` stay: they rebuild the newer tree over this one."""
        with self._batch(transaction=True) as batch:
            for node_hash, node in buffer.made.items():
                batch.put(b"n" + node_hash, node)
            for node_hash in buffer.dropped:
                batch.delete(b"n" + node_hash)
            for changed in range(since + 1, height + 1):
                batch.delete(_height_key(b"k", changed))
            batch.put(b"mtree_root", canonical_bytes(root))
            batch.put(b"mtree_height", canonical_bytes(height))

    def _open_tree(self) -> None:
        """Rebuild in memory the newest tree from the stored one and the values of the keys
        changed since (after a kill: a clean close flushes)."""
        height, state_root = self.height(), self.state_root()
        tree_height = self.get_meta("tree_height")
        if state_root is None:
            return  # no genesis yet
        if tree_height is None:
            # Written before the tree was buffered: every block's nodes are stored.
            with self._batch() as batch:
                batch.put(b"mtree_root", canonical_bytes(state_root))
                batch.put(b"mtree_height", canonical_bytes(height))
            self._tree_height = height
            return
        self._tree_height = tree_height
        if tree_height == height:
            return
        keys: set[str] = set()
        for _, data in self._db.iterator(
            start=_height_key(b"k", tree_height + 1), stop=_height_key(b"k", height + 1)
        ):
            keys.update(_decode(data))
        changes = {key: self.state_get(key) for key in keys}
        update = apply_changes(self, self.get_meta("tree_root"), changes)
        if update.root != state_root:
            raise NodeSetupError(
                "the database's state tree (stored at height %d) and the state of height %d "
                "do not agree: rebuilt root %s, expected %s"
                % (tree_height, height, update.root, state_root)
            )
        self._tree.add(update.new_nodes, update.stale_nodes)

    def _owner_changes(
        self, writes: Mapping[str, Any], read: Callable[[str], Any]
    ) -> list[tuple[str, str | None, str | None]]:
        """(token, previous owner, new owner) for each token record the writes touch."""
        changes = []
        for key, value in writes.items():
            token = token_id_of_key(key)
            if token is None:
                continue
            previous = read(key)
            old_owner = previous.get("owner") if isinstance(previous, dict) else None
            new_owner = value.get("owner") if isinstance(value, dict) else None
            if old_owner != new_owner:
                changes.append((token, old_owner, new_owner))
        return changes

    def write_genesis(
        self,
        genesis_hash: str,
        writes: Mapping[str, Any],
        new_nodes: Mapping[bytes, bytes],
        state_root: str,
    ) -> None:
        """The genesis state, in one synced batch; height stays 0."""
        with self._batch(transaction=True) as batch:
            for key, value in writes.items():
                if value is not None:
                    batch.put(b"s" + key.encode(), canonical_bytes(value))
            for node_hash, node in new_nodes.items():
                batch.put(b"n" + node_hash, node)
            batch.put(b"mstate_root", canonical_bytes(state_root))
            batch.put(b"mtree_root", canonical_bytes(state_root))
            batch.put(b"mtree_height", canonical_bytes(0))
            batch.put(b"mgenesis_state_root", canonical_bytes(state_root))
            batch.put(b"mheight", canonical_bytes(0))
            batch.put(b"mgenesis", canonical_bytes(genesis_hash))
        self._tree, self._tree_height = TreeBuffer(), 0

    # ---- pending transactions -------------------------------------------
    # Kept in their own append-only file (node/pending_log.py), not in LevelDB.
    def pending_put_many(self, txs: Mapping[str, bytes]) -> None:
        self._pending.pending_put_many(txs)

    def pending_delete(self, tx_ids: list[str]) -> None:
        self._pending.pending_delete(tx_ids)

    def pending_all(self) -> list[bytes]:
        return self._pending.pending_all()

    def _move_pending_to_log(self) -> None:
        """Pending transactions of a database written before the log (p<id> entries) go
        into it, and only then out of LevelDB: a crash in between keeps them twice (the
        mempool admits a transaction once), never loses them."""
        legacy = {key[1:].decode(): value for key, value in self._db.iterator(prefix=b"p")}
        if legacy:
            self._pending.pending_put_many(legacy)
            with self._batch() as batch:
                for tx_id in legacy:
                    batch.delete(b"p" + tx_id.encode())

    # ---- safety journal ---------------------------------------------------
    # In its own record log (node/record_log.py), not in LevelDB: each height's records,
    # a prepared block's whole body among them, are dropped once the height is decided.
    def journal_append(self, record: dict[str, Any]) -> None:
        """Append what the validator is about to send; synced before it returns."""
        self.journal_append_many([record])

    def journal_append_many(self, records: list[dict[str, Any]]) -> None:
        """Append records in order, in one synced write (one fsync however many). The
        records are the replica's own and only ever read back here, so they are encoded by
        the compiled encoder, not walked and checked (a prepared certificate carries a
        whole block: that walk was 3% of a loaded validator)."""
        encoded = [encode_trusted(record) for record in records]
        self._journal.append(encoded, sync=True)
        self._journal_kept.extend(
            (int(record.get("height", 0)), data)
            for record, data in zip(records, encoded, strict=True)
        )

    def journal_records(self) -> list[dict[str, Any]]:
        """The records of heights not yet decided, in the order they were written."""
        return [_decode(data) for _, data in self._journal_kept]

    def journal_prune_below(self, height: int) -> None:
        """Drop records of heights already decided; consensus never needs them again. The
        file is rewritten without them once it has grown to JOURNAL_REWRITE_BYTES (until
        then opening it drops them again)."""
        self._journal_kept = [entry for entry in self._journal_kept if entry[0] >= height]
        if self._journal.size >= JOURNAL_REWRITE_BYTES:
            self._journal.rewrite([data for _, data in self._journal_kept])

    def _open_journal(self, path: Path) -> None:
        self._journal = RecordLog(path / JOURNAL_FILE)
        self._journal_kept: list[tuple[int, bytes]] = [
            (int(_decode(data).get("height", 0)), data) for _, data in self._journal.take_opened()
        ]
        # A database written before the journal had its own file kept it under
        # j<height><sequence>: appended to the file first, then deleted from LevelDB.
        legacy = sorted(
            (_U64.unpack(key[9:17])[0], key, value) for key, value in self._db.iterator(prefix=b"j")
        )
        if legacy:
            self.journal_append_many([_decode(value) for _, _, value in legacy])
            with self._batch() as batch:
                for _, key, _ in legacy:
                    batch.delete(key)
        # The file keeps decided heights until its next rewrite; consensus needs none.
        self.journal_prune_below(self.height() + 1)
