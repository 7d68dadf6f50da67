"""The state as a key-value map, read through views, written as write sets.

Keys are strings (see docs/STATE.md for the layout); values are canonical
values (maps, lists, strings, integers, booleans). A write set maps keys to
new values, with None meaning "delete". Values read from a view are shared,
never mutated in place: every change builds a new value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

ROLES = ("governor", "kyc_authority", "issuer", "compliance")

# Key prefixes, one per kind of record. A token id contains ':' so '/' separates parts.
ACCOUNT_PREFIX = "account/"
ROLE_PREFIX = "role/"
COLLECTION_PREFIX = "collection/"
TOKEN_PREFIX = "token/"
TOKEN_HISTORY_PREFIX = "token_history/"
MINTED_PREFIX = "minted/"
SANCTION_PREFIX = "sanction/"
PROPOSAL_PREFIX = "proposal/"
PARAMS_KEY = "params"
PARAMS_HISTORY_KEY = "params_history"
VALIDATORS_KEY = "validators"
CHAIN_KEY = "chain"


def account_key(account: str) -> str:
    return ACCOUNT_PREFIX + account


def role_key(role: str) -> str:
    """The sorted list of accounts holding `role`."""
    return ROLE_PREFIX + role


def collection_key(collection: str) -> str:
    return COLLECTION_PREFIX + collection


def token_key(token_id: str) -> str:
    return TOKEN_PREFIX + token_id


def token_history_key(token_id: str, index: int) -> str:
    return "%s%s/%d" % (TOKEN_HISTORY_PREFIX, token_id, index)


def minted_key(collection: str, account: str) -> str:
    """How many tokens of `collection` were ever minted to `account`."""
    return "%s%s/%s" % (MINTED_PREFIX, collection, account)


def sanction_key(account: str, kind: str) -> str:
    return "%s%s/%s" % (SANCTION_PREFIX, account, kind)


def proposal_key(proposal_id: str) -> str:
    return PROPOSAL_PREFIX + proposal_id


def token_id_of_key(key: str) -> str | None:
    """The token id when `key` is a token record's key (for indexes kept by the node)."""
    return key[len(TOKEN_PREFIX) :] if key.startswith(TOKEN_PREFIX) else None


def apply_writes(values: dict[str, Any], writes: Mapping[str, Any | None]) -> None:
    """Apply a write set to a whole state held in a dict."""
    values.update(writes)  # deletes are rare: set them all, then remove the Nones
    for key in [key for key, value in writes.items() if value is None]:
        del values[key]


class StateView(Protocol):
    def get(self, key: str) -> Any | None:
        """The value at `key`, or None when absent."""
        ...


class DictView:
    """A state held in a dict: for tests, the simulator and genesis."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})

    def get(self, key: str) -> Any | None:
        return self.values.get(key)

    def apply(self, writes: Mapping[str, Any | None]) -> None:
        apply_writes(self.values, writes)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(sorted(self.values.items()))


# Tells "not written here" from a write of None (a delete) in one dict lookup.
_UNWRITTEN = object()


class Overlay:
    """Pending writes over a read-only view; reads see the writes first."""

    def __init__(self, base: StateView) -> None:
        self.base = base
        self.writes: dict[str, Any | None] = {}
        # Over a dict, read it directly: rules read a dozen keys a transaction, most of them
        # missing from the writes, and a method call per miss is a third of execution.
        self._base_get = base.values.get if type(base) is DictView else base.get

    def get(self, key: str) -> Any | None:
        value = self.writes.get(key, _UNWRITTEN)
        if value is _UNWRITTEN:
            return self._base_get(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.writes[key] = value

    def delete(self, key: str) -> None:
        self.writes[key] = None

    def merge(self, writes: Mapping[str, Any | None]) -> None:
        self.writes.update(writes)
