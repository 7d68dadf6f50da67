"""Genesis (PROTOCOL §7): validate the genesis file, build the initial state, and the
development chain of PROTOCOL §8."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.block import ZERO_HASH
from contracts.governance import MAX_VALIDATORS, validator_problem
from contracts.helpers import new_account
from contracts.params import DEFAULT_PARAMS, params_problem
from contracts.state import (
    CHAIN_KEY,
    PARAMS_HISTORY_KEY,
    PARAMS_KEY,
    ROLES,
    VALIDATORS_KEY,
    account_key,
    role_key,
)
from contracts.state_tree import compute_root
from contracts.transactions import check_account, is_chain_id, is_int
from primitives.crypto import SigningKey, sha256, sha256_hex
from primitives.encoding import EncodingError, canonical_bytes, check_value
from primitives.merkle import merkle_root

DEVNET_CHAIN_ID = "yuxi-devnet"
DEVNET_BASE_PORT = 8600
MAX_GENESIS_ACCOUNTS = 10_000
GENESIS_FIELDS = frozenset({"chain_id", "genesis_time", "dev", "params", "validators", "accounts"})
REQUIRED_FIELDS = ("chain_id", "genesis_time", "validators", "accounts")


class GenesisError(ValueError):
    """A genesis file that cannot start a chain."""


@dataclass
class Genesis:
    chain_id: str
    genesis_time: int
    dev: bool
    params: dict[str, int]
    validators: list[dict[str, str]]
    accounts: list[dict[str, Any]]
    hash: str


def load_genesis(obj: Any) -> Genesis:
    """Validate a decoded genesis object; raise GenesisError naming the first problem."""
    if not isinstance(obj, dict):
        raise GenesisError("genesis is a map")
    try:
        check_value(obj)
    except EncodingError as exc:
        raise GenesisError("genesis is not a canonical value: %s" % exc) from None
    unknown = sorted(set(obj) - GENESIS_FIELDS)
    if unknown:
        raise GenesisError("unknown field %r" % unknown[0])
    for name in REQUIRED_FIELDS:
        if name not in obj:
            raise GenesisError("missing field %r" % name)
    if not is_chain_id(obj["chain_id"]):
        raise GenesisError("chain_id: expected 1..64 of A-Z, a-z, 0-9, '.', '_' and '-'")
    if not is_int(obj["genesis_time"]):
        raise GenesisError("genesis_time: expected milliseconds since the Unix epoch")
    dev = obj.get("dev", False)
    if not isinstance(dev, bool):
        raise GenesisError("dev: expected true or false")
    given_params = obj.get("params", {})
    problem = params_problem(given_params)
    if problem is not None:
        raise GenesisError("params: %s" % problem)
    validators = obj["validators"]
    if not isinstance(validators, list) or not 1 <= len(validators) <= MAX_VALIDATORS:
        raise GenesisError("validators: expected a list of 1..%d validators" % MAX_VALIDATORS)
    for index, validator in enumerate(validators):
        problem = validator_problem(validator)
        if problem is not None:
            raise GenesisError("validators[%d]: %s" % (index, problem))
    if len({validator["pubkey"] for validator in validators}) != len(validators):
        raise GenesisError("validators: a pubkey appears twice")
    accounts = obj["accounts"]
    if not isinstance(accounts, list) or len(accounts) > MAX_GENESIS_ACCOUNTS:
        raise GenesisError(
            "accounts: expected a list of at most %d accounts" % MAX_GENESIS_ACCOUNTS
        )
    for index, entry in enumerate(accounts):
        problem = _account_entry_problem(entry)
        if problem is not None:
            raise GenesisError("accounts[%d]: %s" % (index, problem))
    if len({entry["account"] for entry in accounts}) != len(accounts):
        raise GenesisError("accounts: an account appears twice")
    return Genesis(
        chain_id=obj["chain_id"],
        genesis_time=obj["genesis_time"],
        dev=dev,
        params={**DEFAULT_PARAMS, **given_params},
        validators=[dict(validator) for validator in validators],
        accounts=[
            {"account": entry["account"], "roles": sorted(entry["roles"])} for entry in accounts
        ],
        hash=sha256_hex(canonical_bytes(obj)),
    )


def _account_entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict) or set(entry) != {"account", "roles"}:
        return "an account entry is exactly {account, roles}"
    problem = check_account(entry["account"])
    if problem is not None:
        return "account: %s" % problem
    roles = entry["roles"]
    if not isinstance(roles, list) or len(set(roles)) != len(roles) or not set(roles) <= set(ROLES):
        return "roles: expected distinct roles among %s" % ", ".join(ROLES)
    return None


def genesis_writes(genesis: Genesis) -> dict[str, Any]:
    """The state at height 0."""
    writes: dict[str, Any] = {
        CHAIN_KEY: {
            "chain_id": genesis.chain_id,
            "genesis_time": genesis.genesis_time,
            "genesis_hash": genesis.hash,
        },
        PARAMS_KEY: dict(genesis.params),
        PARAMS_HISTORY_KEY: [{"height": 0, "params": dict(genesis.params)}],
        VALIDATORS_KEY: [
            {
                "from_height": 0,
                "validators": sorted(genesis.validators, key=lambda validator: validator["pubkey"]),
            }
        ],
    }
    members: dict[str, list[str]] = {role: [] for role in ROLES}
    for entry in genesis.accounts:
        # Role accounts are organisations: they exist, with no birth date, unauthenticated.
        writes[account_key(entry["account"])] = {**new_account(), "roles": entry["roles"]}
        for role in entry["roles"]:
            members[role].append(entry["account"])
    for role, accounts in members.items():
        if accounts:
            writes[role_key(role)] = sorted(accounts)
    return writes


def genesis_state_root(genesis: Genesis) -> str:
    return compute_root(genesis_writes(genesis))


def genesis_header(genesis: Genesis) -> dict[str, Any]:
    """The synthetic height-0 header that block 1 follows (it is never hashed as a parent)."""
    return {
        "chain_id": genesis.chain_id,
        "height": 0,
        "parent": ZERO_HASH,
        "time": genesis.genesis_time,
        "proposer": "",
        "tx_root": merkle_root([]),
        "results_root": merkle_root([]),
        "state_root": genesis_state_root(genesis),
    }


def devnet_validator_key(index: int) -> SigningKey:
    return SigningKey(sha256(b"yuxi devnet validator " + str(index).encode()))


def devnet_authority_key() -> SigningKey:
    return SigningKey(sha256(b"yuxi devnet authority"))


def devnet_genesis(
    validators: int = 4, genesis_time_ms: int = 0, base_port: int = DEVNET_BASE_PORT
) -> dict[str, Any]:
    """The development chain's genesis object (PROTOCOL §8 conventions)."""
    if not 1 <= validators <= MAX_VALIDATORS:
        raise GenesisError("a devnet has 1..%d validators" % MAX_VALIDATORS)
    return {
        "chain_id": DEVNET_CHAIN_ID,
        "genesis_time": genesis_time_ms,
        "dev": True,
        "params": dict(DEFAULT_PARAMS),
        "validators": [
            {
                "pubkey": devnet_validator_key(index).public_key,
                "name": "validator-%d" % index,
                "endpoint": "127.0.0.1:%d" % (base_port + 100 + index),
            }
            for index in range(validators)
        ],
        "accounts": [{"account": devnet_authority_key().public_key, "roles": list(ROLES)}],
    }
