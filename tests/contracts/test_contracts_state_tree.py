"""The authenticated state tree: canonical roots, incremental updates, proofs, tampering."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.state_tree import (
    EMPTY_ROOT,
    MemoryNodeStore,
    StateTreeError,
    apply_changes,
    compute_root,
    decode_internal,
    prove,
    verify_proof,
)

KEYS = st.text(alphabet="abcdef/:0123", min_size=1, max_size=6)
VALUES = st.one_of(
    st.integers(0, 5), st.booleans(), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=2)
)
STATES = st.dictionaries(KEYS, VALUES, max_size=40)
CHANGE_BATCHES = st.lists(
    st.dictionaries(KEYS, st.one_of(st.none(), VALUES), max_size=12), max_size=12
)


def build(values: dict[str, Any]) -> tuple[MemoryNodeStore, str]:
    store = MemoryNodeStore()
    root, nodes, *_ = apply_changes(store, EMPTY_ROOT, values)
    store.put_nodes(nodes)
    return store, root


def test_empty_state_has_the_empty_root() -> None:
    """No keys: the root is 32 zero bytes, and deleting everything comes back to it."""
    assert compute_root({}) == EMPTY_ROOT == "0" * 64
    store, root = build({"a": 1, "b": 2})
    root, nodes, *_ = apply_changes(store, root, {"a": None, "b": None, "never-there": None})
    assert root == EMPTY_ROOT and nodes == {}


@settings(max_examples=100, deadline=None)
@given(STATES, st.randoms(use_true_random=False))
def test_root_does_not_depend_on_insertion_order(values: dict[str, Any], rng: Any) -> None:
    """Inserting the same keys one by one in any order gives the root of inserting them at once."""
    items = list(values.items())
    rng.shuffle(items)
    store, root = MemoryNodeStore(), EMPTY_ROOT
    for name, value in items:
        root, nodes, *_ = apply_changes(store, root, {name: value})
        store.put_nodes(nodes)
    assert root == compute_root(values)


@settings(max_examples=100, deadline=None)
@given(CHANGE_BATCHES)
def test_incremental_updates_match_a_fresh_build(batches: list[dict[str, Any]]) -> None:
    """After any sequence of sets and deletes the root equals the root of the resulting state,
    every key proves its value or its absence, and earlier roots stay provable."""
    store, root = MemoryNodeStore(), EMPTY_ROOT
    state: dict[str, Any] = {}
    history: list[tuple[str, dict[str, Any]]] = []
    for changes in batches:
        root, nodes, *_ = apply_changes(store, root, changes)
        store.put_nodes(nodes)
        for name, value in changes.items():
            if value is None:
                state.pop(name, None)
            else:
                state[name] = value
        assert root == compute_root(state)
        history.append((root, dict(state)))
    for old_root, old_state in history[-3:]:
        for name in list(old_state)[:5] + ["absent-key"]:
            assert verify_proof(old_root, name, old_state.get(name), prove(store, old_root, name))


def reachable(store: MemoryNodeStore, root: str) -> set[bytes]:
    """The hashes of every node under `root`."""
    found: set[bytes] = set()
    pending = [] if root == EMPTY_ROOT else [bytes.fromhex(root)]
    while pending:
        node_hash = pending.pop()
        found.add(node_hash)
        data = store.nodes[node_hash]
        if len(data) != 65:
            pending.extend(child for child in decode_internal(data) or [] if any(child))
    return found


@settings(max_examples=150, deadline=None)
@given(CHANGE_BATCHES)
def test_deleting_stale_nodes_keeps_exactly_the_newest_tree(
    batches: list[dict[str, Any]],
) -> None:
    """A store that writes each update's new nodes and deletes its stale ones holds exactly
    the nodes of the newest root, nothing more (the database does not grow with history)
    and nothing less (every key of the newest state still proves). New nodes are only
    those the old tree lacks, so a store may hold them apart until it writes them."""
    store, root = MemoryNodeStore(), EMPTY_ROOT
    state: dict[str, Any] = {}
    for changes in batches:
        update = apply_changes(store, root, changes)
        assert update.stale_nodes <= set(store.nodes)
        assert not set(update.new_nodes) & set(store.nodes)
        for node_hash in update.stale_nodes:
            del store.nodes[node_hash]
        store.put_nodes(update.new_nodes)
        root = update.root
        for name, value in changes.items():
            if value is None:
                state.pop(name, None)
            else:
                state[name] = value
        assert set(store.nodes) == reachable(store, root)
    for name in list(state) + ["absent-key"]:
        assert verify_proof(root, name, state.get(name), prove(store, root, name))


@settings(max_examples=100, deadline=None)
@given(STATES.filter(bool), KEYS, VALUES)
def test_tampered_proofs_fail(values: dict[str, Any], other: str, wrong_value: Any) -> None:
    """A proof verifies only for the right key, value and root; any changed byte breaks it."""
    store, root = build(values)
    name = sorted(values)[0]
    proof = prove(store, root, name)
    assert verify_proof(root, name, values[name], proof)
    if wrong_value != values[name]:
        assert not verify_proof(root, name, wrong_value, proof)
    assert not verify_proof(root, name, None, proof)
    assert not verify_proof("1" * 64, name, values[name], proof)
    if other not in values:
        absent = prove(store, root, other)
        assert verify_proof(root, other, None, absent)
        assert not verify_proof(root, other, wrong_value, absent)
        assert not verify_proof(root, other, values[name], proof)
    for field in ("nodes", "leaf"):
        parts = proof[field] if field == "nodes" else [proof[field]]
        for index, part in enumerate(parts):
            flipped = part[:10] + ("0" if part[10] != "0" else "1") + part[11:]
            if field == "nodes":
                tampered = {
                    **proof,
                    "nodes": proof["nodes"][:index] + [flipped] + proof["nodes"][index + 1 :],
                }
            else:
                tampered = {**proof, "leaf": flipped}
            assert not verify_proof(root, name, values[name], tampered)
    if proof["nodes"]:
        assert not verify_proof(root, name, values[name], {**proof, "nodes": proof["nodes"][1:]})


def test_absence_next_to_a_present_leaf() -> None:
    """A key whose slot holds another key's leaf is proved absent by that leaf, and not present."""
    store, root = build({"only": 1})
    proof = prove(store, root, "missing")
    assert "leaf" in proof and proof["nodes"] == []
    assert verify_proof(root, "missing", None, proof)
    assert not verify_proof(root, "missing", 1, proof)


@pytest.mark.parametrize(
    "proof",
    [
        None,
        [],
        {},
        {"nodes": "x"},
        {"nodes": [1]},
        {"nodes": ["zz"]},
        {"nodes": [], "leaf": 5},
        {"nodes": [], "extra": 1},
        {"nodes": ["00" * 600]},
    ],
)
def test_garbage_proofs_simply_fail(proof: Any) -> None:
    """verify_proof never raises on malformed input: it answers False."""
    store, root = build({"a": 1, "b": 2, "c": 3})
    assert verify_proof(root, "a", 1, proof) is False
    assert verify_proof("not hex", "a", 1, prove(store, root, "a")) is False


def test_update_cost_follows_keys_touched_not_state_size() -> None:
    """Changing one key writes one node per level (about log16 n), whatever the state size."""
    for size in (1_000, 20_000):
        store, root = build({"token/c:%d" % index: index for index in range(size)})
        _, nodes, *_ = apply_changes(store, root, {"token/c:7": 99})
        assert len(nodes) <= 6
        _, nodes, *_ = apply_changes(
            store, root, {"token/c:%d" % index: 0 for index in range(0, size, size // 10)}
        )
        assert len(nodes) <= 10 * 6


def test_a_missing_node_is_an_error() -> None:
    """A store that lacks a node the root refers to is reported, not papered over."""
    _, root = build({"a": 1, "b": 2})
    with pytest.raises(StateTreeError):
        apply_changes(MemoryNodeStore(), root, {"c": 3})
    with pytest.raises(StateTreeError):
        prove(MemoryNodeStore(), root, "a")
