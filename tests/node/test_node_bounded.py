"""The node's bounded FIFO cache."""

from __future__ import annotations

from node.bounded import BoundedCache


def test_holds_at_most_its_capacity_dropping_the_oldest_first() -> None:
    cache: BoundedCache[int, str] = BoundedCache(3)
    for key in range(5):
        cache.put(key, str(key))
    assert list(cache.items()) == [(2, "2"), (3, "3"), (4, "4")]


def test_putting_a_held_key_again_replaces_its_value_and_drops_nothing() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    assert dict(cache) == {"a": 3, "b": 2}
    cache.put("c", 4)  # "a" is still the oldest inserted
    assert dict(cache) == {"b": 2, "c": 4}
