"""TreeBuffer.add against the plain loop it replaced (kept here as the reference): the same
nodes made and dropped, and the same stored stale nodes reported, for updates that replace
nodes made since the flush, drop flushed ones and bring dropped ones back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.tree_buffer import TreeBuffer

# Few hashes, so updates keep meeting nodes that earlier ones made or dropped.
HASHES = st.sampled_from([bytes([index]) * 32 for index in range(12)])
UPDATE = st.tuples(
    st.dictionaries(HASHES, st.binary(min_size=1, max_size=3), max_size=6),
    st.sets(HASHES, max_size=6),
)


def reference_add(
    made: dict[bytes, bytes], dropped: set[bytes], new: dict[bytes, bytes], stale: set[bytes]
) -> list[bytes]:
    stored_stale = []
    for node_hash in stale:
        if made.pop(node_hash, None) is None:
            dropped.add(node_hash)
            stored_stale.append(node_hash)
    for node_hash, node in new.items():
        if node_hash in dropped:
            dropped.discard(node_hash)
        else:
            made[node_hash] = node
    return stored_stale


@settings(max_examples=300, deadline=None)
@given(st.lists(UPDATE, max_size=12))
def test_add_matches_the_reference_loop(
    updates: list[tuple[dict[bytes, bytes], set[bytes]]],
) -> None:
    buffer = TreeBuffer()
    made: dict[bytes, bytes] = {}
    dropped: set[bytes] = set()
    for new, stale in updates:
        new = {h: node for h, node in new.items() if h not in stale}  # as apply_changes gives
        assert sorted(buffer.add(new, stale)) == sorted(reference_add(made, dropped, new, stale))
        assert buffer.made == made and buffer.dropped == dropped
        assert len(buffer) == len(made) + len(dropped)
