"""The state tree's nodes between two writes of the tree to LevelDB.

Every block rewrites the top of the tree, and most nodes it writes there are replaced a
block or two later: written at each commit, each such node cost a put and, soon after, a
delete, the bulk of a commit's LevelDB entries (docs/PERFORMANCE.md, ninth round). So the
database holds the tree as of its last flush, and a TreeBuffer the difference between
that tree and the newest one: the nodes made since that the flushed tree lacks (`made`)
and the flushed tree's nodes the newest one no longer holds (`dropped`). A node made and
replaced between two flushes never reaches LevelDB."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from itertools import chain


class TreeBuffer:
    def __init__(self) -> None:
        self.made: dict[bytes, bytes] = {}
        self.dropped: set[bytes] = set()

    def __len__(self) -> int:
        return len(self.made) + len(self.dropped)

    def add(self, new_nodes: Mapping[bytes, bytes], stale_nodes: Iterable[bytes]) -> None:
        """Take in one update of the newest tree (`apply_changes`: its new nodes are ones the
        tree lacked, its stale ones ones the tree held)."""
        made, dropped = self.made, self.dropped
        for node_hash in stale_nodes:
            if made.pop(node_hash, None) is None:
                dropped.add(node_hash)
        for node_hash, node in new_nodes.items():
            if node_hash in dropped:
                dropped.discard(node_hash)  # flushed, dropped, and back: it stays stored
            else:
                made[node_hash] = node

    def stored_with(
        self, new_nodes: Mapping[bytes, bytes], stale_nodes: AbstractSet[bytes]
    ) -> tuple[Iterator[tuple[bytes, bytes]], Iterator[bytes]]:
        """What add(new_nodes, stale_nodes) would leave in `made` and `dropped`, computed
        without changing or copying this buffer: a flush writes them in the block's batch,
        and the buffer must stay as it is until that batch is written (a copy doubled the
        buffer's memory at every flush)."""
        made, dropped = self.made, self.dropped
        to_store = chain(
            ((h, node) for h, node in made.items() if h not in stale_nodes),
            ((h, node) for h, node in new_nodes.items() if h not in dropped),
        )
        to_delete = chain(
            (h for h in dropped if h not in new_nodes),
            (h for h in stale_nodes if h not in made),
        )
        return to_store, to_delete
