"""The state tree's nodes between two writes of the tree to LevelDB.

Every block rewrites the top of the tree, and most nodes it writes there are replaced a
block or two later: written at each commit, each such node cost a put and, soon after, a
delete, the bulk of a commit's LevelDB entries (docs/PERFORMANCE.md, ninth round). So the
database holds the tree as of its last flush, and a TreeBuffer the difference between
that tree and the newest one: the nodes made since that the flushed tree lacks (`made`)
and the flushed tree's nodes the newest one no longer holds (`dropped`). A node made and
replaced between two flushes never reaches LevelDB."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class TreeBuffer:
    def __init__(self) -> None:
        self.made: dict[bytes, bytes] = {}
        self.dropped: set[bytes] = set()

    def __len__(self) -> int:
        return len(self.made) + len(self.dropped)

    def add(self, new_nodes: Mapping[bytes, bytes], stale_nodes: Iterable[bytes]) -> list[bytes]:
        """Take in one update of the newest tree (`apply_changes`: its new nodes are ones the
        tree lacked, its stale ones ones the tree held). Returns the stale nodes that were
        stored (or are being stored), not made since: only those can be in a node cache."""
        made, dropped = self.made, self.dropped
        stored_stale = []
        for node_hash in stale_nodes:
            if made.pop(node_hash, None) is None:
                dropped.add(node_hash)
                stored_stale.append(node_hash)
        for node_hash, node in new_nodes.items():
            if node_hash in dropped:
                dropped.discard(node_hash)  # flushed, dropped, and back: it stays stored
            else:
                made[node_hash] = node
        return stored_stale
