"""Genesis validation and state (PROTOCOL §7, §8) and block sealing (PROTOCOL §5)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ledger_harness import HASH_A, key

from consensus.types import ZERO_HASH as CONSENSUS_ZERO_HASH
from consensus.types import header_hash as consensus_header_hash
from contracts.block import (
    ZERO_HASH,
    BlockError,
    compute_results_root,
    compute_tx_root,
    header_hash,
    seal_block,
)
from contracts.context import Result
from contracts.genesis import (
    GenesisError,
    devnet_authority_key,
    devnet_genesis,
    devnet_validator_key,
    genesis_header,
    genesis_state_root,
    genesis_writes,
    load_genesis,
)
from contracts.params import DEFAULT_PARAMS
from contracts.queries import account_info, params_info, validator_set_at
from contracts.state import DictView
from contracts.state_tree import EMPTY_ROOT, MemoryNodeStore, apply_changes, compute_root
from contracts.transactions import parse_tx, sign_tx
from primitives.crypto import sha256, sha256_hex
from primitives.encoding import canonical_bytes
from primitives.merkle import merkle_root

T0 = 1_717_171_200_000


def test_devnet_follows_the_conventions() -> None:
    """yuxi-devnet, dev true, seeded validator and authority keys, peer ports P+100+i."""
    obj = devnet_genesis(4, T0, base_port=9000)
    assert obj["chain_id"] == "yuxi-devnet" and obj["dev"] is True and obj["genesis_time"] == T0
    assert devnet_validator_key(2).seed == sha256(b"yuxi devnet validator 2")
    assert devnet_authority_key().seed == sha256(b"yuxi devnet authority")
    assert [v["pubkey"] for v in obj["validators"]] == [
        devnet_validator_key(i).public_key for i in range(4)
    ]
    assert [v["endpoint"] for v in obj["validators"]] == [
        "127.0.0.1:%d" % (9100 + i) for i in range(4)
    ]
    assert obj["accounts"] == [
        {
            "account": devnet_authority_key().public_key,
            "roles": ["governor", "kyc_authority", "issuer", "compliance"],
        }
    ]
    assert devnet_genesis(1, T0)["validators"][0]["endpoint"] == "127.0.0.1:8700"


def test_genesis_hash_and_state() -> None:
    """The hash is SHA-256 of the canonical genesis; the state has params, validators, roles."""
    obj = devnet_genesis(4, T0)
    genesis = load_genesis(obj)
    assert genesis.hash == sha256_hex(canonical_bytes(obj))
    writes = genesis_writes(genesis)
    view = DictView(writes)
    assert params_info(view) == {
        "params": DEFAULT_PARAMS,
        "history": [{"height": 0, "params": DEFAULT_PARAMS}],
    }
    assert {v["pubkey"] for v in validator_set_at(view, 1)} == {
        v["pubkey"] for v in obj["validators"]
    }
    authority = account_info(view, devnet_authority_key().public_key, T0)
    assert (
        authority["nonce"] == 0
        and authority["authenticated"] is False
        and authority["birth_date"] is None
    )
    assert genesis_state_root(genesis) == compute_root(writes) != EMPTY_ROOT
    header = genesis_header(genesis)
    assert (
        header["height"] == 0
        and header["time"] == T0
        and header["state_root"] == genesis_state_root(genesis)
    )
    changed = load_genesis(dict(obj, genesis_time=T0 + 1))
    assert changed.hash != genesis.hash and genesis_state_root(changed) != genesis_state_root(
        genesis
    )


def test_params_default_when_absent() -> None:
    """Absent parameters take the PROTOCOL §3 defaults; given ones replace them."""
    obj = devnet_genesis(1, T0)
    del obj["params"]
    assert load_genesis(obj).params == DEFAULT_PARAMS
    obj["params"] = {"min_age_years": 16}
    assert load_genesis(obj).params == {**DEFAULT_PARAMS, "min_age_years": 16}


def _broken(change: Any) -> dict[str, Any]:
    obj = devnet_genesis(2, T0)
    change(obj)
    return obj


BAD_GENESIS = [
    ("unknown field", lambda g: g.update(extra=1)),
    ("missing chain id", lambda g: g.pop("chain_id")),
    ("bad chain id", lambda g: g.update(chain_id="has space")),
    ("negative time", lambda g: g.update(genesis_time=-1)),
    ("float time", lambda g: g.update(genesis_time=1.5)),
    ("dev not bool", lambda g: g.update(dev=1)),
    ("unknown param", lambda g: g["params"].update(fee=1)),
    ("param out of range", lambda g: g["params"].update(max_block_txs=0)),
    ("no validators", lambda g: g.update(validators=[])),
    ("duplicate validator", lambda g: g["validators"].append(dict(g["validators"][0]))),
    ("validator bad endpoint", lambda g: g["validators"][0].update(endpoint="nohost")),
    ("validator extra field", lambda g: g["validators"][0].update(power=1)),
    ("account bad role", lambda g: g["accounts"][0].update(roles=["king"])),
    ("account repeated role", lambda g: g["accounts"][0].update(roles=["issuer", "issuer"])),
    ("duplicate account", lambda g: g["accounts"].append(copy.deepcopy(g["accounts"][0]))),
    ("account bad key", lambda g: g["accounts"][0].update(account="xyz")),
    ("not a map", None),
]


@pytest.mark.parametrize(
    "change", [row[1] for row in BAD_GENESIS], ids=[row[0] for row in BAD_GENESIS]
)
def test_bad_genesis_is_refused(change: Any) -> None:
    """Each defect in a genesis file is a GenesisError with a message."""
    obj: Any = [] if change is None else _broken(change)
    with pytest.raises(GenesisError) as caught:
        load_genesis(obj)
    assert str(caught.value)


def _chain() -> tuple[Any, DictView, MemoryNodeStore, dict[str, Any]]:
    genesis = load_genesis(devnet_genesis(4, T0))
    view = DictView(genesis_writes(genesis))
    store = MemoryNodeStore()
    root, nodes, *_ = apply_changes(store, EMPTY_ROOT, view.values)
    store.put_nodes(nodes)
    return genesis, view, store, genesis_header(genesis)


def test_seal_block_header_and_roots() -> None:
    """A sealed header has exactly the §5 fields, roots as documented, and chains by header hash."""
    genesis, view, store, parent = _chain()
    authority = devnet_authority_key()
    alice = key("alice")
    body = {"account": alice.public_key, "birth_date": "2000-01-01", "kyc_ref": HASH_A}
    txs = [
        parse_tx(
            sign_tx(
                {
                    "chain_id": genesis.chain_id,
                    "type": "register_account",
                    "sender": authority.public_key,
                    "nonce": nonce,
                    "body": body,
                },
                authority,
            )
        )
        for nonce in (0, 1)
    ]
    proposer = devnet_validator_key(0).public_key
    header, outcome, tree = seal_block(
        view, store, parent, txs, genesis.chain_id, 1, T0 + 1, proposer
    )
    assert list(header) == [
        "chain_id",
        "height",
        "parent",
        "time",
        "proposer",
        "tx_root",
        "results_root",
        "state_root",
    ]
    assert header["parent"] == ZERO_HASH == CONSENSUS_ZERO_HASH
    assert (
        header["tx_root"]
        == merkle_root([bytes.fromhex(tx.id) for tx in txs])
        == compute_tx_root(txs)
    )
    assert [result.code for result in outcome.results] == ["ok", "account_exists"]
    assert header["results_root"] == merkle_root(
        [canonical_bytes(r.to_dict()) for r in outcome.results]
    )
    view.apply(outcome.writes)
    store.put_nodes(tree.new_nodes)
    assert header["state_root"] == compute_root(view.values)
    assert header_hash(header) == consensus_header_hash(header)
    second, _, _ = seal_block(view, store, header, [], genesis.chain_id, 2, T0 + 2, proposer)
    assert second["parent"] == header_hash(header)
    assert second["state_root"] == header["state_root"]  # an empty block changes no state
    assert second["tx_root"] == second["results_root"] == merkle_root([])


def test_results_root_covers_eligible_at() -> None:
    """eligible_at is part of a result's bytes, so it is committed by results_root."""
    plain = Result("holding_period", "m")
    timed = Result("holding_period", "m", 5)
    assert timed.to_dict() == {"code": "holding_period", "message": "m", "eligible_at": 5}
    assert "eligible_at" not in plain.to_dict()
    assert compute_results_root([plain]) != compute_results_root([timed])


def test_seal_block_refuses_impossible_blocks() -> None:
    """Wrong height, a time not after the parent's, or too many transactions are BlockErrors."""
    genesis, view, store, parent = _chain()
    with pytest.raises(BlockError):
        seal_block(view, store, parent, [], genesis.chain_id, 2, T0 + 1, "p")
    with pytest.raises(BlockError):
        seal_block(view, store, parent, [], genesis.chain_id, 1, T0, "p")
    small = load_genesis(dict(devnet_genesis(1, T0), params={"max_block_txs": 1}))
    small_view = DictView(genesis_writes(small))
    authority = devnet_authority_key()
    txs = [
        parse_tx(
            sign_tx(
                {
                    "chain_id": small.chain_id,
                    "type": "approve",
                    "sender": authority.public_key,
                    "nonce": nonce,
                    "body": {"proposal": HASH_A},
                },
                authority,
            )
        )
        for nonce in (0, 1)
    ]
    with pytest.raises(BlockError):
        seal_block(small_view, store, genesis_header(small), txs, small.chain_id, 1, T0 + 1, "p")
