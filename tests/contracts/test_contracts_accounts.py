"""Accounts, collections and sanctions (PROTOCOL §4 "Others"): role, then each code."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_harness import HASH_A, Ledger, key

from contracts.codes import Code
from contracts.queries import account_info, collection_info

ALICE, BOB, DAVE = key("alice"), key("bob"), key("dave")


def scene() -> Ledger:
    ledger = Ledger()
    ledger.register(ALICE)
    return ledger


def register(ledger: Ledger, who: Any, sender: Any = None, birth_date: str = "2001-02-03") -> Any:
    body = {"account": who.public_key, "birth_date": birth_date, "kyc_ref": HASH_A}
    return ledger.run(sender or ledger.authority, "register_account", body)


def revoke(ledger: Ledger, who: Any, sender: Any = None) -> Any:
    return ledger.run(
        sender or ledger.authority, "revoke_account", {"account": who.public_key, "reason": "fraud"}
    )


def create(ledger: Ledger, sender: Any = None, **options: Any) -> Any:
    body = {
        "collection": "moon-rabbit",
        "name": "Moon",
        "max_supply": 5,
        "transferable": True,
        **options,
    }
    return ledger.run(sender or ledger.authority, "create_collection", body)


def sanction(
    ledger: Ledger, who: Any, kind: str = "transfer_freeze", until: int = 0, sender: Any = None
) -> Any:
    body = {"account": who.public_key, "kind": kind, "reason": "court order", "until": until}
    return ledger.run(sender or ledger.authority, "sanction", body)


def lift(ledger: Ledger, who: Any, kind: str = "transfer_freeze", sender: Any = None) -> Any:
    return ledger.run(
        sender or ledger.authority, "lift_sanction", {"account": who.public_key, "kind": kind}
    )


def _revoked_then_registered(ledger: Ledger) -> Any:
    assert revoke(ledger, ALICE).ok
    return register(ledger, ALICE)


def _expired_sanction_lift(ledger: Ledger) -> Any:
    # The lift's block comes 1000 ms after the sanction's: a sanction until that moment has expired.
    assert sanction(ledger, ALICE, until=ledger.time_ms + 2000).ok
    return lift(ledger, ALICE)


def _still_active_sanction_lift(ledger: Ledger) -> Any:
    assert sanction(ledger, ALICE, until=ledger.time_ms + 2001).ok
    return lift(ledger, ALICE)


OTHERS_TABLE: list[tuple[str, Any, Code]] = [
    ("register ok", lambda ledger: register(ledger, BOB), Code.OK),
    (
        "register unauthorized",
        lambda ledger: register(ledger, BOB, sender=ALICE),
        Code.UNAUTHORIZED,
    ),
    (
        "register unauthorized before account_exists",
        lambda ledger: register(ledger, ALICE, sender=ALICE),
        Code.UNAUTHORIZED,
    ),
    ("register account_exists", lambda ledger: register(ledger, ALICE), Code.ACCOUNT_EXISTS),
    ("register re-authenticates a revoked account", _revoked_then_registered, Code.OK),
    (
        "register authenticates a role account",
        lambda ledger: register(ledger, ledger.authority),
        Code.OK,
    ),
    ("revoke ok", lambda ledger: revoke(ledger, ALICE), Code.OK),
    ("revoke unauthorized", lambda ledger: revoke(ledger, ALICE, sender=ALICE), Code.UNAUTHORIZED),
    ("revoke account_not_found", lambda ledger: revoke(ledger, DAVE), Code.ACCOUNT_NOT_FOUND),
    ("create ok", lambda ledger: create(ledger), Code.OK),
    ("create unauthorized", lambda ledger: create(ledger, sender=ALICE), Code.UNAUTHORIZED),
    (
        "create collection_exists",
        lambda ledger: (create(ledger), create(ledger))[1],
        Code.COLLECTION_EXISTS,
    ),
    (
        "create hold days equal to the chain's",
        lambda ledger: create(ledger, first_hold_days=180, later_hold_days=730),
        Code.OK,
    ),
    (
        "create invalid_policy first hold",
        lambda ledger: create(ledger, first_hold_days=179),
        Code.INVALID_POLICY,
    ),
    (
        "create invalid_policy later hold",
        lambda ledger: create(ledger, later_hold_days=729),
        Code.INVALID_POLICY,
    ),
    (
        "create collection_exists before invalid_policy",
        lambda ledger: (create(ledger), create(ledger, first_hold_days=1))[1],
        Code.COLLECTION_EXISTS,
    ),
    ("sanction ok", lambda ledger: sanction(ledger, ALICE), Code.OK),
    (
        "sanction unauthorized",
        lambda ledger: sanction(ledger, ALICE, sender=ALICE),
        Code.UNAUTHORIZED,
    ),
    ("sanction account_not_found", lambda ledger: sanction(ledger, DAVE), Code.ACCOUNT_NOT_FOUND),
    ("lift ok", lambda ledger: (sanction(ledger, ALICE), lift(ledger, ALICE))[1], Code.OK),
    (
        "lift unauthorized",
        lambda ledger: (sanction(ledger, ALICE), lift(ledger, ALICE, sender=ALICE))[1],
        Code.UNAUTHORIZED,
    ),
    ("lift no_such_sanction", lambda ledger: lift(ledger, ALICE), Code.NO_SUCH_SANCTION),
    (
        "lift no_such_sanction other kind",
        lambda ledger: (sanction(ledger, ALICE), lift(ledger, ALICE, "purchase_ban"))[1],
        Code.NO_SUCH_SANCTION,
    ),
    ("lift no_such_sanction expired at block time", _expired_sanction_lift, Code.NO_SUCH_SANCTION),
    ("lift a sanction active one more ms", _still_active_sanction_lift, Code.OK),
]


@pytest.mark.parametrize(
    "action,expected", [row[1:] for row in OTHERS_TABLE], ids=[row[0] for row in OTHERS_TABLE]
)
def test_other_rules_table(action: Any, expected: Code) -> None:
    """Each row gets exactly its code, and a rejected one changes nothing but the sender's nonce."""
    ledger = scene()
    original_block = ledger.block
    before: dict[str, Any] = {}
    senders: list[str] = []

    def block_recording(txs: list[Any], time_ms: int | None = None) -> Any:
        before.clear()
        before.update(ledger.snapshot())
        senders[:] = [tx.sender for tx in txs]
        return original_block(txs, time_ms)

    ledger.block = block_recording  # type: ignore[method-assign]
    result = action(ledger)
    assert result.code == expected.value, result
    if expected is not Code.OK:
        sender = ALICE if senders[0] == ALICE.public_key else ledger.authority
        ledger.assert_only_nonce_changed(before, sender)


def test_register_sets_the_account_fields() -> None:
    """A registered account is authenticated with its birth date; revoking keeps nonce and roles."""
    ledger = scene()
    info = account_info(ledger.view, ALICE.public_key, ledger.time_ms)
    assert info == {
        "account": ALICE.public_key,
        "nonce": 0,
        "authenticated": True,
        "birth_date": "2000-01-01",
        "roles": [],
        "sanctions": [],
        "token_count": 0,
    }
    assert revoke(ledger, ALICE).ok
    assert account_info(ledger.view, ALICE.public_key, ledger.time_ms)["authenticated"] is False
    assert register(ledger, ALICE, birth_date="2001-01-01").ok
    assert account_info(ledger.view, ALICE.public_key, ledger.time_ms)["birth_date"] == "2001-01-01"
    authority = account_info(ledger.view, ledger.authority.public_key, ledger.time_ms)
    assert authority["authenticated"] is False and authority["birth_date"] is None
    assert authority["roles"] == ["compliance", "governor", "issuer", "kyc_authority"]


def test_sanctions_replace_and_expire_in_account_info() -> None:
    """A new sanction of a kind replaces the old; account_info lists only active ones."""
    ledger = scene()
    assert sanction(ledger, ALICE, until=0).ok
    assert sanction(ledger, ALICE, until=ledger.time_ms + 5000).ok
    since = ledger.time_ms
    info = account_info(ledger.view, ALICE.public_key, since)
    assert info["sanctions"] == [
        {"kind": "transfer_freeze", "reason": "court order", "until": since + 4000, "since": since}
    ]
    assert account_info(ledger.view, ALICE.public_key, since + 4000)["sanctions"] == []


def test_collection_info_keeps_its_fields() -> None:
    """A collection keeps the creation fields, its issuer and how many were minted."""
    ledger = scene()
    assert create(ledger, metadata_uri="ipfs://x", per_account_limit=3).ok
    assert collection_info(ledger.view, "moon-rabbit") == {
        "collection": "moon-rabbit",
        "name": "Moon",
        "max_supply": 5,
        "transferable": True,
        "metadata_uri": "ipfs://x",
        "per_account_limit": 3,
        "issuer": ledger.authority.public_key,
        "minted": 0,
    }
    assert collection_info(ledger.view, "nothing") is None
