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
        pop = made.pop
        # Comprehensions and set operations, not a loop with branches: ~3,000 nodes a block.
        stored_stale = [node_hash for node_hash in stale_nodes if pop(node_hash, None) is None]
        dropped.update(stored_stale)
        back = dropped.intersection(new_nodes)  # flushed, dropped, and back: it stays stored
        if back:
            dropped -= back
            made.update((h, node) for h, node in new_nodes.items() if h not in back)
        else:
            made.update(new_nodes)
        return stored_stale
