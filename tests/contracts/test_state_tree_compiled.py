"""The compiled tree walk (contracts/_state_tree.c) against the Python reference (_Updater):
the same root, new nodes (in the same order), stale nodes and store reads, batch after
batch, over a store that keeps the newest tree only; the same errors for missing, corrupt
and misplaced nodes; errors of the store itself pass through; bad arguments are refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import _state_tree
from contracts.state_tree import (
    EMPTY_HASH,
    EMPTY_ROOT,
    MemoryNodeStore,
    StateTreeError,
    TreeUpdate,
    _Updater,
    apply_changes,
    encode_leaf,
    key_hash,
    reference_apply_changes,
    value_hash,
)

# Few keys, so batches overwrite and delete what earlier ones wrote, and delete absent keys.
KEYS = st.sampled_from([f"k{index}" for index in range(60)])
VALUES = st.one_of(st.none(), st.integers(0, 3), st.text(alphabet="ab", max_size=2))
BATCH = st.dictionaries(KEYS, VALUES, max_size=30)
BATCHES = st.lists(st.one_of(BATCH, st.dictionaries(KEYS, VALUES, max_size=1)), max_size=10)


class RecordingStore(MemoryNodeStore):
    """A node store that logs each read, so both walks can be held to the same reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[bytes] = []

    def get_node(self, node_hash: bytes) -> bytes | None:
        self.reads.append(node_hash)
        return self.nodes.get(node_hash)


def commit(store: MemoryNodeStore, update: TreeUpdate) -> None:
    """What node/storage.py does with an update: delete the stale nodes, write the new ones."""
    for node_hash in update.stale_nodes:
        del store.nodes[node_hash]
    store.put_nodes(update.new_nodes)


def assert_same(compiled: TreeUpdate, reference: TreeUpdate) -> None:
    assert compiled.root == reference.root
    assert list(compiled.new_nodes.items()) == list(reference.new_nodes.items())
    assert compiled.stale_nodes == reference.stale_nodes
    assert compiled.encoded_values == reference.encoded_values


def run_both(batches: list[dict[str, Any]]) -> list[str]:
    """Apply the batches with both walks, each over its own pruned store, comparing each
    step; the roots."""
    compiled_store, reference_store = RecordingStore(), RecordingStore()
    root = EMPTY_ROOT
    roots = []
    for changes in batches:
        compiled = apply_changes(compiled_store, root, changes)
        reference = reference_apply_changes(reference_store, root, changes)
        assert_same(compiled, reference)
        assert compiled_store.reads == reference_store.reads
        commit(compiled_store, compiled)
        commit(reference_store, reference)
        root = compiled.root
        roots.append(root)
    assert compiled_store.nodes == reference_store.nodes
    return roots


@settings(max_examples=200, deadline=None)
@given(BATCHES)
def test_batches_match_the_reference(batches: list[dict[str, Any]]) -> None:
    """Random batches of sets, overwrites and deletes (present and absent keys, single-key
    batches among them) give the reference's root, new nodes, stale nodes and reads."""
    run_both(batches)


@settings(max_examples=100, deadline=None)
@given(BATCHES, st.booleans())
def test_current_values_spare_the_leaf_reads(batches: list[dict[str, Any]], stale: bool) -> None:
    """Given the changed keys' current values, the update is the same and the store is
    never asked for their leaves; values that are not current (`stale`: a wrong value for
    each key) change nothing but the reads."""
    plain_store, hinted_store = RecordingStore(), RecordingStore()
    state: dict[str, Any] = {}
    root = EMPTY_ROOT
    for changes in batches:
        leaves = {
            hashlib.sha256(encode_leaf(key_hash(key), value_hash(state[key]))).digest()
            for key in changes
            if key in state
        }
        plain = apply_changes(plain_store, root, changes)
        current = (lambda key: "not it") if stale else state.get
        hinted = apply_changes(hinted_store, root, changes, current)
        assert_same(hinted, plain)
        if stale:
            assert hinted_store.reads == plain_store.reads
        else:
            assert not leaves & set(hinted_store.reads)
            assert set(hinted_store.reads) <= set(plain_store.reads)
        plain_store.reads.clear()
        hinted_store.reads.clear()
        commit(plain_store, plain)
        commit(hinted_store, hinted)
        state.update(changes)
        state = {key: value for key, value in state.items() if value is not None}
        root = plain.root


class CachingStore(RecordingStore):
    """A store that hands the walk two dicts holding some of its nodes (a CachingNodeStore,
    as node.storage.Storage with its caches); get_node answers for all of them."""

    def __init__(self, share: int) -> None:
        super().__init__()
        self.share = share  # of 8: the nodes (by their hash's first byte) in the maps

    def node_maps(self) -> tuple[dict[bytes, bytes], ...]:
        cached = [h for h in self.nodes if h[0] % 8 < self.share]
        return (
            {h: self.nodes[h] for h in cached if h[0] % 2},
            {h: self.nodes[h] for h in cached if not h[0] % 2},
        )


@settings(max_examples=100, deadline=None)
@given(BATCHES, st.integers(0, 8))
def test_nodes_from_the_maps_change_nothing_but_the_reads(
    batches: list[dict[str, Any]], share: int
) -> None:
    """A walk that reads some nodes from the store's maps gives the same update, and asks
    get_node only for the nodes the maps lack, in the reference's order."""
    caching, plain = CachingStore(share), RecordingStore()
    root = EMPTY_ROOT
    for changes in batches:
        maps = caching.node_maps()
        update = apply_changes(caching, root, changes)
        assert_same(update, apply_changes(plain, root, changes))
        assert caching.reads == [h for h in plain.reads if not any(h in m for m in maps)]
        caching.reads.clear()
        plain.reads.clear()
        commit(caching, update)
        commit(plain, update)
        root = update.root


def test_a_corrupt_node_in_a_map_is_refused_like_a_stored_one() -> None:
    store = MemoryNodeStore()
    first = apply_changes(store, EMPTY_ROOT, {"a": 1, "b": 2})
    store.put_nodes(first.new_nodes)
    root = bytes.fromhex(first.root)
    with pytest.raises(StateTreeError, match="corrupt tree node " + first.root):
        _state_tree.update(
            store.get_node, root, [(key_hash("c"), None)], StateTreeError, ({root: b"\x01"},)
        )
    with pytest.raises(TypeError, match="a tree node must be bytes"):
        _state_tree.update(
            store.get_node, root, [(key_hash("c"), None)], StateTreeError, ({root: "text"},)
        )
    with pytest.raises(TypeError, match="maps must be a tuple of dicts"):
        _state_tree.update(store.get_node, root, [], StateTreeError, ([],))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.randoms(use_true_random=False))
def test_collapsing_to_one_leaf_and_to_empty(size: int, rng: Any) -> None:
    """Deleting all keys but one collapses the tree onto that key's leaf; deleting it, or all
    keys at once, leaves the empty tree; either in one batch or key by key."""
    keys = [f"c{index}" for index in range(size)]
    survivor = rng.choice(keys)
    others = [key for key in keys if key != survivor]
    rng.shuffle(others)
    fill = {key: index for index, key in enumerate(keys)}
    lone = hashlib.sha256(encode_leaf(key_hash(survivor), value_hash(fill[survivor]))).hexdigest()
    roots = run_both([fill, dict.fromkeys(others), {survivor: None}, fill, dict.fromkeys(keys)])
    assert roots[1:3] == [lone, EMPTY_ROOT] and roots[4] == EMPTY_ROOT
    roots = run_both([fill] + [{key: None} for key in others] + [{survivor: None}])
    assert roots[-2:] == [lone, EMPTY_ROOT]


def test_many_keys_match_the_reference() -> None:
    """Large batches over some thousands of keys (deep enough for long shared hash
    prefixes to occur), then mixed ones: the same as the reference."""
    first = {f"key/{index}": {"value": index} for index in range(4000)}
    second = {f"key/{index}": (None if index % 3 else index) for index in range(0, 6000, 7)}
    third = {f"key/{index}": None for index in range(0, 4000, 2)}
    run_both([first, second, third, {"key/1": None}, {"key/3": 3}, {}])


# Paths chosen directly (not sha256 of keys): they share long prefixes and part in the
# last nibbles, which sha256 paths almost never do, so the walks go down deep chains of
# one-child nodes and collapse them again.
BASE = hashlib.sha256(b"base").digest()


def make_path(changes: list[tuple[int, int]]) -> bytes:
    """BASE with the nibble at each position changed to the given one."""
    nibbles = [BASE[position >> 1] >> (0 if position % 2 else 4) & 15 for position in range(64)]
    for position, value in changes:
        nibbles[position] = value
    return bytes(nibbles[index] << 4 | nibbles[index + 1] for index in range(0, 64, 2))


DEEP_PATHS = st.builds(
    make_path,
    st.lists(
        st.tuples(st.sampled_from([0, 1, 2, 17, 40, 61, 62, 63]), st.integers(0, 3)), max_size=3
    ),
)
VALUE_HASHES = st.one_of(
    st.none(), st.sampled_from([hashlib.sha256(b"%d" % index).digest() for index in range(3)])
)
DEEP_BATCHES = st.lists(st.dictionaries(DEEP_PATHS, VALUE_HASHES, max_size=12), max_size=8)


def reference_update(
    store: MemoryNodeStore, root: bytes, updates: dict[bytes, bytes | None]
) -> tuple[bytes, dict[bytes, bytes], set[bytes]]:
    """The reference walk on raw paths: what the compiled update() returns."""
    updater = _Updater(store)
    entries = sorted((path.hex(), path, value) for path, value in updates.items())
    new_root = updater.update(b"" if root == EMPTY_HASH else root, 0, entries)
    return (new_root or EMPTY_HASH, *updater.result())


@settings(max_examples=100, deadline=None)
@given(DEEP_BATCHES)
def test_paths_with_long_shared_prefixes_match_the_reference(
    batches: list[dict[bytes, bytes | None]],
) -> None:
    """Batches of paths that part only deep down (as far as the last nibble) give the
    reference's root, new nodes, stale nodes and reads."""
    compiled_store, reference_store = RecordingStore(), RecordingStore()
    root = EMPTY_HASH
    for updates in batches:
        # Any order in: the compiled walk sorts.
        compiled = _state_tree.update(
            compiled_store.get_node, root, list(updates.items())[::-1], StateTreeError
        )
        reference = reference_update(reference_store, root, updates)
        assert compiled[0] == reference[0]
        assert list(compiled[1].items()) == list(reference[1].items())
        assert compiled[2] == reference[2]
        assert compiled_store.reads == reference_store.reads
        for store in (compiled_store, reference_store):
            commit(store, TreeUpdate(compiled[0].hex(), compiled[1], compiled[2]))
        root = compiled[0]


Apply = Callable[[MemoryNodeStore, str, dict[str, Any]], TreeUpdate]


def outcome(
    apply: Apply, store: MemoryNodeStore, root: str, changes: dict[str, Any]
) -> tuple[Any, ...]:
    """A walk's result, or the class and message of what it raised."""
    try:
        update = apply(store, root, changes)
    except Exception as error:  # noqa: BLE001 - any error must be the reference's
        return ("raised", type(error), str(error))
    return ("returned", update.root, list(update.new_nodes.items()), update.stale_nodes)


def tampered(data: bytes, kind: str, other: bytes) -> bytes | None:
    """A stored node's bytes spoiled one way (None: gone from the store)."""
    if kind == "missing":
        return None
    if kind == "truncated":
        return data[:-1]
    if kind == "longer":
        return data + bytes(32)
    if kind == "tag":
        return bytes((data[0] ^ 1,)) + data[1:]
    if kind == "zero bitmap":
        return data[:1] + bytes(2) + data[3:]
    if kind == "bitmap":
        return data[:1] + bytes((data[1] ^ 0x80, data[2])) + data[3:]
    if kind == "zero child":
        return data[:3] + bytes(32) + data[35:]
    if kind == "empty":
        return b""
    return other  # another stored node's (well-formed) bytes, maybe an ancestor's: a cycle


TAMPERING = st.sampled_from(
    [
        "missing",
        "truncated",
        "longer",
        "tag",
        "zero bitmap",
        "bitmap",
        "zero child",
        "empty",
        "other",
    ]
)


@settings(max_examples=250, deadline=None)
@given(
    BATCH.filter(lambda state: any(value is not None for value in state.values())),
    st.booleans(),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    TAMPERING,
    BATCHES,
)
def test_missing_corrupt_and_misplaced_nodes_fail_like_the_reference(
    state: dict[str, Any],
    internal: bool,
    victim: int,
    donor: int,
    kind: str,
    batches: list[dict[str, Any]],
) -> None:
    """With one stored node missing, spoiled or replaced by another node's bytes, every
    batch returns what the reference returns or raises what it raises (the same class and
    message: StateTreeError("missing tree node <hex>" / "corrupt tree node <hex>"), or the
    IndexError of a walk sent round a cycle past the 64th nibble)."""
    store = MemoryNodeStore()
    first = reference_apply_changes(store, EMPTY_ROOT, state)
    store.put_nodes(first.new_nodes)
    hashes = sorted(store.nodes)
    # Most nodes are leaves: spoil an internal one half the time.
    targets = [node for node in hashes if len(store.nodes[node]) != 65] if internal else []
    target = (targets or hashes)[victim % len(targets or hashes)]
    spoiled = tampered(store.nodes[target], kind, store.nodes[hashes[donor % len(hashes)]])
    if spoiled is None:
        del store.nodes[target]
    else:
        store.nodes[target] = spoiled
    root = first.root
    for changes in batches:
        compiled = outcome(apply_changes, store, root, changes)
        assert compiled == outcome(reference_apply_changes, store, root, changes)
        if compiled[0] == "raised":
            break
        root = compiled[1]


def two_leaf_tree() -> tuple[MemoryNodeStore, str, str, str]:
    """A tree of two keys whose paths part at the first nibble: the root and two leaves."""
    keys = [f"a{index}" for index in range(40)]
    first = keys[0]
    second = next(
        key
        for key in keys
        if hashlib.sha256(key.encode()).digest()[0] >> 4
        != hashlib.sha256(first.encode()).digest()[0] >> 4
    )
    store = MemoryNodeStore()
    update = apply_changes(store, EMPTY_ROOT, {first: 1, second: 2})
    store.put_nodes(update.new_nodes)
    assert len(store.nodes) == 3
    return store, update.root, first, second


def leaf_hash(store: MemoryNodeStore, key: str) -> bytes:
    path = hashlib.sha256(key.encode()).digest()
    return next(h for h, data in store.nodes.items() if len(data) == 65 and data[1:33] == path)


def test_missing_and_corrupt_nodes_raise_state_tree_errors() -> None:
    """A missing or corrupt root (each way a node can be malformed), and a missing or corrupt
    sibling read only to see whether a one-child node collapses onto it, all raise the
    reference's StateTreeError."""
    store, root, first, second = two_leaf_tree()
    data, sibling = store.nodes[bytes.fromhex(root)], leaf_hash(store, second).hex()
    corrupt_roots = [
        data[:-1],  # length not 3 + 32 per child
        data + bytes(32),
        bytes((2,)) + data[1:],  # tag
        data[:1] + bytes(2) + data[3:],  # no child in the bitmap
        data[:1] + b"\xff\xff" + data[3:],  # more children in the bitmap than present
        data[:35] + bytes(32),  # an empty child hash
        b"",
        b"\x01" + bytes(64),  # 65 bytes, but tagged internal
    ]
    cases = [({first: 5}, {root: None}, "missing tree node " + root)]
    cases += [({first: 5}, {root: bad}, "corrupt tree node " + root) for bad in corrupt_roots]
    cases += [
        ({first: None}, {sibling: None}, "missing tree node " + sibling),
        ({first: None}, {sibling: b"\x00"}, "corrupt tree node " + sibling),
        ({first: None}, {sibling: data[:-1]}, "corrupt tree node " + sibling),
    ]
    for changes, spoil, message in cases:
        spoilt = MemoryNodeStore()
        spoilt.put_nodes(store.nodes)
        for node_hex, node in spoil.items():
            if node is None:
                del spoilt.nodes[bytes.fromhex(node_hex)]
            else:
                spoilt.nodes[bytes.fromhex(node_hex)] = node
        for apply in (apply_changes, reference_apply_changes):
            assert outcome(apply, spoilt, root, changes) == ("raised", StateTreeError, message)


def test_nodes_under_wrong_hashes_end_past_the_path() -> None:
    """A store whose node lists itself as its children (under a hash that is not its own)
    sends both walks round until the path runs out, and a misplaced leaf can make them
    look for where two paths part past the last nibble: the same IndexError from both,
    never a read past the 64th nibble."""
    store = MemoryNodeStore()
    loop = hashlib.sha256(b"loop").digest()
    store.nodes[loop] = b"\x01\xff\xff" + loop * 16
    # And a leaf one level down that shares the rest of its path with the key set beside it.
    path = hashlib.sha256(b"a").digest()
    misplaced = bytes((0,)) + bytes((path[0] ^ 0x10,)) + path[1:] + bytes(32)
    store.nodes[hashlib.sha256(misplaced).digest()] = misplaced
    top = b"\x01" + (1 << (path[0] >> 4)).to_bytes(2, "big") + hashlib.sha256(misplaced).digest()
    store.nodes[hashlib.sha256(top).digest()] = top
    cases = [(loop, {"a": 1}), (loop, {"a": None}), (loop, {"a": 1, "b": None, "c": 3})]
    cases.append((hashlib.sha256(top).digest(), {"a": 1}))
    for root, changes in cases:
        for apply in (apply_changes, reference_apply_changes):
            assert outcome(apply, store, root.hex(), changes) == (
                "raised",
                IndexError,
                "string index out of range",
            )


class Unreachable(Exception):
    """The store's own failure (a closed database, say)."""


def test_errors_of_the_store_pass_through() -> None:
    """Whatever get_node raises reaches the caller as it was raised, even a ValueError or a
    StateTreeError of its own; a get_node returning neither bytes nor None is a TypeError."""
    store, root, first, _ = two_leaf_tree()
    for error in (Unreachable("down"), ValueError("no"), StateTreeError("own"), KeyError(1)):

        def failing(node_hash: bytes, error: Exception = error) -> bytes | None:
            raise error

        store.get_node = failing  # type: ignore[method-assign]
        with pytest.raises(type(error)) as caught:
            apply_changes(store, root, {first: 2})
        assert caught.value is error
    store.get_node = lambda node_hash: bytearray(65)  # type: ignore[method-assign]
    with pytest.raises(TypeError):
        apply_changes(store, root, {first: 2})


def test_bad_arguments_are_refused() -> None:
    """Wrong types raise TypeError, wrong lengths and repeated paths ValueError."""
    get_node = MemoryNodeStore().get_node
    path, value = bytes(range(32)), bytes(32)
    type_errors: list[tuple[Any, ...]] = [
        (42, EMPTY_HASH, [], StateTreeError),
        (get_node, EMPTY_ROOT, [], StateTreeError),
        (get_node, bytearray(32), [], StateTreeError),
        (get_node, EMPTY_HASH, (), StateTreeError),
        (get_node, EMPTY_HASH, [[path, value]], StateTreeError),
        (get_node, EMPTY_HASH, [(path, value, value)], StateTreeError),
        (get_node, EMPTY_HASH, [(path.hex(), value)], StateTreeError),
        (get_node, EMPTY_HASH, [(path, 1)], StateTreeError),
        (get_node, EMPTY_HASH, [(path, bytearray(value))], StateTreeError),
        (get_node, EMPTY_HASH, [], 42),
        (get_node, EMPTY_HASH, []),
    ]
    for arguments in type_errors:
        with pytest.raises(TypeError):
            _state_tree.update(*arguments)
    value_errors: list[tuple[Any, ...]] = [
        (get_node, bytes(31), [], StateTreeError),
        (get_node, EMPTY_HASH, [(path[:31], value)], StateTreeError),
        (get_node, EMPTY_HASH, [(path, value + b"!")], StateTreeError),
        (get_node, EMPTY_HASH, [(path, value), (path, None)], StateTreeError),
    ]
    for arguments in value_errors:
        with pytest.raises(ValueError):
            _state_tree.update(*arguments)


# Values as execution writes them: maps, lists, strings (some not ASCII), integers.
STATE_VALUES = st.recursive(
    st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=6), st.booleans()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
STATE_KEYS = st.text(min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(STATE_KEYS, st.one_of(st.none(), STATE_VALUES), max_size=20),
    st.dictionaries(STATE_KEYS, STATE_VALUES, max_size=20),
)
def test_hash_changes_is_hashed_and_current_leaves_in_one_pass(
    changes: dict[str, Any], now: dict[str, Any]
) -> None:
    """The compiled pass gives what the Python pair gives: the same updates in the same
    order, the same encoded values, the same current leaves (none without `current`)."""
    from contracts.state_tree import _current_leaves, _hashed
    from primitives.encoding import encode_trusted

    updates, encoded = _hashed(changes)
    leaves = _current_leaves(changes, updates, now.get)
    assert _state_tree.hash_changes(changes, now.get, encode_trusted) == (updates, encoded, leaves)
    assert _state_tree.hash_changes(changes, None, encode_trusted) == (updates, encoded, {})


def test_hash_changes_refuses_bad_arguments_and_passes_errors_through() -> None:
    from primitives.encoding import encode_trusted

    for arguments in [
        ([("k", 1)], None, encode_trusted),  # not a dict
        ({1: 1}, None, encode_trusted),  # a key that is not a string
        ({"k": 1}, 42, encode_trusted),  # current not callable
        ({"k": 1}, None, 42),  # encode not callable
        ({"k": 1}, None, lambda value: "not bytes"),
        ({"k": 1}, lambda key: 2, lambda value: "not bytes"),
    ]:
        with pytest.raises(TypeError):
            _state_tree.hash_changes(*arguments)

    def failing(key: str) -> Any:
        raise KeyError(key)

    with pytest.raises(KeyError):
        _state_tree.hash_changes({"k": 1}, failing, encode_trusted)
    with pytest.raises(UnicodeEncodeError):
        _state_tree.hash_changes({"\ud800": 1}, None, encode_trusted)
