"""Whatever bytes a peer sends, the replica answers with effects and never raises."""

from __future__ import annotations

import msgpack
from consensus_cluster import Cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.effects import Broadcast
from consensus.replica import Replica

_cluster = Cluster(4)
_cluster.start()
_cluster.advance(600)
TRAFFIC = [
    effect.data
    for member in _cluster.members.values()
    for effect in member.effects
    if isinstance(effect, Broadcast)
][:60]


def fresh_replica() -> tuple[Replica, int]:
    member = _cluster.member_at(0)
    replica = Replica(member.ledger, member.signer, list(member.journal), member.replica.config)
    replica.start(_cluster.now_ms)
    return replica, _cluster.now_ms


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(TRAFFIC) - 1),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), max_size=4),
    cut=st.integers(min_value=0),
)
def test_corrupted_traffic_never_raises(index: int, flips: list[tuple[int, int]], cut: int) -> None:
    """Bit-flipped and truncated copies of real consensus messages are handled, not raised."""
    data = bytearray(TRAFFIC[index])
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    if cut % 3 == 0:
        data = data[: cut % (len(data) + 1)]
    replica, now = fresh_replica()
    assert isinstance(replica.receive(_cluster.keys[1].public_key, bytes(data), now), list)


canonical_values = st.recursive(
    st.one_of(st.booleans(), st.integers(min_value=0, max_value=2**63 - 1), st.text(max_size=70)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(TRAFFIC) - 1),
    field=st.text(max_size=12),
    value=canonical_values,
)
def test_structurally_altered_messages_never_raise(index: int, field: str, value: object) -> None:
    """Replacing or adding any field of a real message with any canonical value is handled."""
    wire = msgpack.unpackb(TRAFFIC[index], raw=False)
    keys = sorted(wire)
    wire[keys[len(field) % len(keys)] if field == "" or len(field) % 2 else field] = value
    data = msgpack.packb(dict(sorted(wire.items())), use_bin_type=True)
    replica, now = fresh_replica()
    assert isinstance(replica.receive(_cluster.keys[2].public_key, data, now), list)
