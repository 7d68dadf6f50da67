"""Random transaction sequences: single owners, nonce-only rejections, replayable roots."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_harness import CHAIN_ID, GENESIS_TIME_MS, HASH_A, key

from contracts.context import BlockContext, Result
from contracts.execution import execute_block, execute_tx
from contracts.genesis import devnet_authority_key, devnet_genesis, genesis_writes, load_genesis
from contracts.params import DAY_MS
from contracts.state import (
    ACCOUNT_PREFIX,
    COLLECTION_PREFIX,
    TOKEN_PREFIX,
    DictView,
    Overlay,
    account_key,
)
from contracts.state_tree import (
    EMPTY_ROOT,
    MemoryNodeStore,
    apply_changes,
    compute_root,
    prove,
    verify_proof,
)
from contracts.transactions import SignedTx, parse_tx, sign_tx

AUTHORITY = devnet_authority_key()
PEOPLE = [key("person %d" % index) for index in range(4)]
ACTORS = PEOPLE + [AUTHORITY]
AUTHORITY_INDEX = len(PEOPLE)
BIRTH_DATES = ["2000-01-01", "2012-05-05", "2008-02-29", "2010-06-01"]
COLLECTIONS = ["aaa", "bbb"]
ROLES = ["governor", "kyc_authority", "issuer", "compliance"]

person = st.integers(0, len(PEOPLE) - 1)
# Privileged operations come mostly from the authority, sometimes from anyone.
sender = st.one_of(
    st.just(AUTHORITY_INDEX), st.just(AUTHORITY_INDEX), st.integers(0, AUTHORITY_INDEX)
)
serial = st.integers(1, 4)
token = st.tuples(st.sampled_from(["aaa", "aaa", "bbb"]), st.integers(1, 3))

OPERATIONS = st.one_of(
    st.tuples(st.just("register"), sender, person, st.sampled_from(BIRTH_DATES)),
    st.tuples(st.just("revoke"), sender, person),
    st.tuples(
        st.just("create"),
        sender,
        st.sampled_from(COLLECTIONS),
        st.booleans(),
        st.sampled_from([0, 1, 2]),
        st.sampled_from([0, 180, 200]),
    ),
    st.tuples(
        st.just("mint"),
        sender,
        st.sampled_from(COLLECTIONS),
        st.lists(st.tuples(serial, person), min_size=1, max_size=3),
    ),
    st.tuples(st.just("gift"), st.one_of(st.just(-1), st.just(-1), person), token, person),
    st.tuples(
        st.just("sanction"),
        sender,
        person,
        st.sampled_from(["transfer_freeze", "purchase_ban"]),
        st.sampled_from([0, DAY_MS, 1]),
    ),
    st.tuples(
        st.just("lift"), sender, person, st.sampled_from(["transfer_freeze", "purchase_ban"])
    ),
    st.tuples(
        st.just("set_params"),
        sender,
        st.sampled_from(["min_age_years", "first_hold_days", "daily_gift_limit"]),
        st.sampled_from([0, 1, 2, 14, 18, 180, 200]),
    ),
    st.tuples(st.just("grant"), sender, person, st.sampled_from(ROLES), st.booleans()),
    st.tuples(st.just("approve"), sender, st.integers(0, 5)),
)
NONCE_SLIPS = st.sampled_from([0] * 12 + [1, 2])  # 0: the right nonce; else off by this much
BLOCKS = st.lists(
    st.tuples(
        st.sampled_from([1000, DAY_MS, 181 * DAY_MS, 731 * DAY_MS]),
        st.lists(st.tuples(OPERATIONS, NONCE_SLIPS), max_size=8),
    ),
    min_size=1,
    max_size=8,
)


class Builder:
    """Turns drawn operations into signed transactions against the current state."""

    def __init__(self) -> None:
        self.proposals: list[str] = []

    def build(self, view: Any, operation: tuple[Any, ...], slip: int) -> SignedTx:
        kind = operation[0]
        body: dict[str, Any]
        if kind == "gift":
            collection, number = operation[2]
            token_id = "%s:%d" % (collection, number)
            record = view.get(TOKEN_PREFIX + token_id)
            owner = record["owner"] if record is not None else PEOPLE[0].public_key
            who = (
                next((actor for actor in ACTORS if actor.public_key == owner), PEOPLE[0])
                if operation[1] == -1
                else PEOPLE[operation[1]]
            )
            tx_type, body = "gift", {"token": token_id, "to": PEOPLE[operation[3]].public_key}
        else:
            who = ACTORS[operation[1]]
            tx_type, body = self._body(operation)
        account = view.get(account_key(who.public_key))
        nonce = (account["nonce"] if account is not None else 0) + slip
        tx = parse_tx(
            sign_tx(
                {
                    "chain_id": CHAIN_ID,
                    "type": tx_type,
                    "sender": who.public_key,
                    "nonce": nonce,
                    "body": body,
                },
                who,
            )
        )
        if tx_type == "propose":
            self.proposals.append(tx.id)
        return tx

    def _body(self, operation: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
        kind = operation[0]
        if kind == "register":
            return "register_account", {
                "account": PEOPLE[operation[2]].public_key,
                "birth_date": operation[3],
                "kyc_ref": HASH_A,
            }
        if kind == "revoke":
            return "revoke_account", {"account": PEOPLE[operation[2]].public_key, "reason": "r"}
        if kind == "create":
            body: dict[str, Any] = {
                "collection": operation[2],
                "name": "n",
                "max_supply": 3,
                "transferable": operation[3],
            }
            if operation[4]:
                body["per_account_limit"] = operation[4]
            if operation[5]:
                body["first_hold_days"] = operation[5]
            return "create_collection", body
        if kind == "mint":
            items = [
                {"serial": number, "owner": PEOPLE[owner].public_key, "content_hash": HASH_A}
                for number, owner in operation[3]
            ]
            return "mint", {"collection": operation[2], "items": items}
        if kind == "sanction":
            return "sanction", {
                "account": PEOPLE[operation[2]].public_key,
                "kind": operation[3],
                "reason": "r",
                "until": operation[4],
            }
        if kind == "lift":
            return "lift_sanction", {
                "account": PEOPLE[operation[2]].public_key,
                "kind": operation[3],
            }
        if kind == "set_params":
            return "propose", {"action": "set_params", "args": {operation[2]: operation[3]}}
        if kind == "grant":
            action = "grant_role" if operation[4] else "revoke_role"
            return "propose", {
                "action": action,
                "args": {"account": PEOPLE[operation[2]].public_key, "role": operation[3]},
            }
        proposal = self.proposals[operation[2] % len(self.proposals)] if self.proposals else HASH_A
        return "approve", {"proposal": proposal}


def check_single_owners(values: dict[str, Any]) -> None:
    """Every token has exactly one owner, an existing account whose count includes it."""
    owned: dict[str, int] = {}
    minted: dict[str, int] = {}
    for name, value in values.items():
        if name.startswith(TOKEN_PREFIX):
            owner = value["owner"]
            assert isinstance(owner, str) and account_key(owner) in values
            owned[owner] = owned.get(owner, 0) + 1
            collection = name[len(TOKEN_PREFIX) :].split(":")[0]
            minted[collection] = minted.get(collection, 0) + 1
    for name, value in values.items():
        if name.startswith(ACCOUNT_PREFIX):
            assert value["token_count"] == owned.get(name[len(ACCOUNT_PREFIX) :], 0)
        if name.startswith(COLLECTION_PREFIX):
            assert value["minted"] == minted.get(name[len(COLLECTION_PREFIX) :], 0)


def check_rejection_touches_only_the_nonce(
    view: DictView, tx: SignedTx, result: Result, writes: dict[str, Any]
) -> None:
    if result.code == "bad_nonce":
        assert writes == {}
    elif not result.ok:
        sender_key = account_key(tx.sender)
        assert set(writes) == {sender_key}
        assert writes[sender_key] == {**view.get(sender_key), "nonce": tx.nonce + 1}


@settings(max_examples=200, deadline=None)
@given(BLOCKS)
def test_random_transaction_sequences_keep_the_invariants(
    blocks: list[tuple[int, list[Any]]],
) -> None:
    """Over random blocks: single owners, nonce-only rejections, incremental root = fresh root,
    and replaying the same blocks from genesis gives the same roots."""
    genesis = load_genesis(devnet_genesis(4, GENESIS_TIME_MS))
    view = DictView(genesis_writes(genesis))
    store = MemoryNodeStore()
    root, nodes, *_ = apply_changes(store, EMPTY_ROOT, view.values)
    store.put_nodes(nodes)
    builder = Builder()
    time_ms = GENESIS_TIME_MS
    chain: list[tuple[BlockContext, list[SignedTx]]] = []
    roots = []
    codes: set[str] = set()
    # A prelude so that random gifts and mints often pass: everyone registered, some tokens out.
    prelude = [
        (("register", AUTHORITY_INDEX, index, BIRTH_DATES[index]), 0)
        for index in range(len(PEOPLE))
    ]
    prelude.append((("create", AUTHORITY_INDEX, "aaa", True, 0, 0), 0))
    prelude.append((("mint", AUTHORITY_INDEX, "aaa", [(1, 0), (2, 0), (3, 3)]), 0))
    for height, (step_ms, operations) in enumerate([(1000, prelude)] + blocks, start=1):
        time_ms += step_ms
        ctx = BlockContext(CHAIN_ID, height, time_ms)
        block_writes: dict[str, Any] = {}
        txs = []
        for operation, slip in operations:
            tx = builder.build(view, operation, slip)
            overlay = Overlay(view)
            result = execute_tx(overlay, tx, ctx)
            codes.add(result.code)
            check_rejection_touches_only_the_nonce(view, tx, result, overlay.writes)
            view.apply(overlay.writes)
            block_writes.update(overlay.writes)
            txs.append(tx)
        check_single_owners(view.values)
        root, nodes, *_ = apply_changes(store, root, block_writes)
        store.put_nodes(nodes)
        assert root == compute_root(view.values)
        chain.append((ctx, txs))
        roots.append(root)

    replay = DictView(genesis_writes(genesis))
    replay_root = compute_root(replay.values)
    for (ctx, txs), expected_root in zip(chain, roots, strict=True):
        outcome = execute_block(replay, txs, ctx)
        replay.apply(outcome.writes)
        replay_root, _, *_ = apply_changes(store, replay_root, outcome.writes)
        assert replay_root == expected_root
    assert replay.values == view.values

    for name in list(view.values)[:: max(1, len(view.values) // 5)] + ["token/aaa:9"]:
        proof = prove(store, root, name)
        assert verify_proof(root, name, view.get(name), proof)
