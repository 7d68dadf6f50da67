"""The auditor's in-memory state tree (contracts.memory_tree.MemoryTree) gives exactly the roots
of apply_changes over a node store, batch after batch, for inserts, updates and deletes
(including deletes that collapse subtrees), and proves its newest root."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.memory_tree import MemoryTree
from contracts.state_tree import (
    EMPTY_ROOT,
    MemoryNodeStore,
    apply_changes,
    prove,
    verify_proof,
)

# Few distinct keys so batches collide, overwrite and delete what earlier ones wrote.
keys = st.sampled_from(
    ["account/%d" % index for index in range(40)] + ["token/t:%d" % index for index in range(40)]
)
values = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.dictionaries(
        st.sampled_from(["owner", "nonce", "roles"]),
        st.integers(min_value=0, max_value=9),
        max_size=3,
    ),
)
batches = st.lists(st.dictionaries(keys, values, max_size=25), min_size=1, max_size=12)


def contracts_roots(batches: list[dict[str, Any]]) -> list[str]:
    store = MemoryNodeStore()
    root = EMPTY_ROOT
    roots = []
    for changes in batches:
        root, nodes, *_ = apply_changes(store, root, changes)
        store.put_nodes(nodes)
        roots.append(root)
    return roots


@settings(max_examples=150, deadline=None)
@given(batches)
def test_roots_match_contracts_state_tree(batches: list[dict[str, Any]]) -> None:
    """Every batch's root equals the validators' tree root for the same batches."""
    tree = MemoryTree()
    assert [tree.apply(changes) for changes in batches] == contracts_roots(batches)


def test_empty_tree_and_deleting_everything() -> None:
    """An empty tree has contracts' empty root, and so does a tree whose keys were all deleted."""
    tree = MemoryTree()
    assert tree.root == EMPTY_ROOT
    tree.apply({"a": 1, "b": 2, "c": {"x": 1}})
    assert tree.apply({"a": None, "b": None, "c": None}) == EMPTY_ROOT


def test_large_batch_matches() -> None:
    """A block-sized batch over a few thousand keys gives the same root."""
    first = {"key/%d" % index: {"value": index} for index in range(3000)}
    second = {"key/%d" % index: (None if index % 3 == 0 else index) for index in range(0, 3000, 7)}
    tree = MemoryTree()
    assert [tree.apply(first), tree.apply(second)] == contracts_roots([first, second])


def test_newest_root_is_provable_from_memory() -> None:
    """The in-memory tree serves as a node store for proofs of its newest root."""
    tree = MemoryTree()
    tree.apply({"key/%d" % index: index for index in range(500)})
    root = tree.apply({"key/%d" % index: None for index in range(0, 500, 2)})
    for name, value in (("key/1", 1), ("key/2", None), ("key/777", None)):
        assert verify_proof(root, name, value, prove(tree, root, name))


def test_random_batches_over_many_keys_match() -> None:
    """Thousands of keys, deep splits and collapses: inserts, updates and deletes of most keys
    in random batches give the validators' roots, batch after batch, down to empty."""
    import random

    rng = random.Random(7)
    present: set[str] = set()
    batches = []
    for _ in range(12):
        batch: dict[str, Any] = {}
        for _ in range(rng.randrange(1, 1500)):
            key = "k/%d" % rng.randrange(4000)
            delete = key in present and rng.random() < 0.5
            batch[key] = None if delete else rng.randrange(10**6)
            (present.discard if delete else present.add)(key)
        batches.append(batch)
    batches.append({key: None for key in present})
    tree = MemoryTree()
    assert [tree.apply(changes) for changes in batches] == contracts_roots(batches)
    assert tree.root == EMPTY_ROOT


def test_a_lone_key_is_the_root_and_provable() -> None:
    """With one key left the root is its leaf, as in the validators' tree."""
    tree = MemoryTree()
    tree.apply({"a": 1, "b": 2})
    root = tree.apply({"b": None})
    assert root == contracts_roots([{"a": 1}])[0]
    assert verify_proof(root, "a", 1, prove(tree, root, "a"))


def test_bad_input_is_refused_and_changes_nothing() -> None:
    """Keys must be str and encoded values bytes or None; a refused batch applies nothing."""
    import pytest

    tree = MemoryTree()
    root = tree.apply({"a": 1})
    with pytest.raises(TypeError):
        tree.apply_encoded({"b": b"\x01", "c": 5})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        tree.apply_encoded({b"b": b"\x01"})  # type: ignore[dict-item]
    assert tree.root == root
