"""A small in-memory chain for rule tests: genesis, signed transactions, blocks."""

from __future__ import annotations

import datetime
from typing import Any

from contracts.context import BlockContext, Result
from contracts.execution import execute_block
from contracts.genesis import devnet_authority_key, devnet_genesis, genesis_writes, load_genesis
from contracts.helpers import get_account
from contracts.params import DAY_MS
from contracts.state import DictView, account_key
from contracts.transactions import SignedTx, parse_tx, sign_tx
from primitives.crypto import SigningKey, sha256

CHAIN_ID = "yuxi-devnet"
ZONE = datetime.timezone(datetime.timedelta(hours=8))


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Milliseconds of a wall-clock moment in the chain's default zone (UTC+8)."""
    moment = datetime.datetime(year, month, day, hour, minute, tzinfo=ZONE)
    return int(moment.timestamp()) * 1000


# Genesis at midnight, 1 June 2024, China Standard Time.
GENESIS_TIME_MS = at(2024, 6, 1)
HASH_A = "a" * 64


def key(name: str) -> SigningKey:
    return SigningKey(sha256(b"yuxi test account " + name.encode()))


def days(count: int) -> int:
    return count * DAY_MS


class Ledger:
    """A chain whose authority (all four roles) is the devnet authority."""

    def __init__(
        self, params: dict[str, int] | None = None, genesis_time_ms: int = GENESIS_TIME_MS
    ) -> None:
        genesis_object = devnet_genesis(4, genesis_time_ms)
        genesis_object["params"].update(params or {})
        self.genesis = load_genesis(genesis_object)
        self.view = DictView(genesis_writes(self.genesis))
        self.height = 0
        self.time_ms = genesis_time_ms
        self.authority = devnet_authority_key()
        self._pending_nonces: dict[str, int] = {}

    def nonce_of(self, account: str) -> int:
        record = get_account(self.view, account)
        return 0 if record is None else record["nonce"]

    def tx(
        self, sender: SigningKey, tx_type: str, body: dict[str, Any], nonce: int | None = None
    ) -> SignedTx:
        """A signed transaction; nonces count on from the state and earlier unsent ones."""
        if nonce is None:
            nonce = self._pending_nonces.get(sender.public_key, self.nonce_of(sender.public_key))
            self._pending_nonces[sender.public_key] = nonce + 1
        unsigned = {
            "chain_id": CHAIN_ID,
            "type": tx_type,
            "sender": sender.public_key,
            "nonce": nonce,
            "body": body,
        }
        return parse_tx(sign_tx(unsigned, sender))

    def block(self, txs: list[SignedTx], time_ms: int | None = None) -> list[Result]:
        """Execute one block at `time_ms` (default: one second after the last) and apply it."""
        self.time_ms = self.time_ms + 1000 if time_ms is None else time_ms
        self.height += 1
        outcome = execute_block(self.view, txs, BlockContext(CHAIN_ID, self.height, self.time_ms))
        self.view.apply(outcome.writes)
        self._pending_nonces.clear()
        return outcome.results

    def run(
        self, sender: SigningKey, tx_type: str, body: dict[str, Any], time_ms: int | None = None
    ) -> Result:
        return self.block([self.tx(sender, tx_type, body)], time_ms)[0]

    def ok(
        self, sender: SigningKey, tx_type: str, body: dict[str, Any], time_ms: int | None = None
    ) -> None:
        result = self.run(sender, tx_type, body, time_ms)
        if not result.ok:
            raise AssertionError("%s failed: %s %s" % (tx_type, result.code, result.message))

    def snapshot(self) -> dict[str, Any]:
        return dict(self.view.values)

    def assert_only_nonce_changed(self, before: dict[str, Any], sender: SigningKey) -> None:
        """After a rejected transaction: the state equals `before` but for the sender's nonce."""
        after = self.snapshot()
        sender_key = account_key(sender.public_key)
        assert set(after) == set(before)
        assert {k: v for k, v in after.items() if k != sender_key} == {
            k: v for k, v in before.items() if k != sender_key
        }
        assert after[sender_key] == {**before[sender_key], "nonce": before[sender_key]["nonce"] + 1}

    # Common steps, all sent by the authority unless told otherwise.

    def register(
        self, who: SigningKey, birth_date: str = "2000-01-01", time_ms: int | None = None
    ) -> None:
        self.ok(
            self.authority,
            "register_account",
            {"account": who.public_key, "birth_date": birth_date, "kyc_ref": HASH_A},
            time_ms,
        )

    def create_collection(
        self, collection: str = "moon-rabbit", issuer: SigningKey | None = None, **options: Any
    ) -> None:
        body = {
            "collection": collection,
            "name": "Moon Rabbit",
            "max_supply": 100,
            "transferable": True,
            **options,
        }
        self.ok(issuer or self.authority, "create_collection", body)

    def mint(
        self,
        owner: SigningKey,
        serial: int = 1,
        collection: str = "moon-rabbit",
        time_ms: int | None = None,
    ) -> str:
        items = [{"serial": serial, "owner": owner.public_key, "content_hash": HASH_A}]
        self.ok(self.authority, "mint", {"collection": collection, "items": items}, time_ms)
        return "%s:%d" % (collection, serial)

    def set_params(self, **params: int) -> None:
        # The devnet authority is the only governor, so its proposal executes at once.
        self.ok(self.authority, "propose", {"action": "set_params", "args": params})

    def grant(self, who: SigningKey, role: str) -> None:
        self.ok(
            self.authority,
            "propose",
            {"action": "grant_role", "args": {"account": who.public_key, "role": role}},
        )
