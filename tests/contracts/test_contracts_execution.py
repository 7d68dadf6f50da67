"""Driving execution: dry runs write nothing, nonces advance per tx, corrupt state stops."""

from __future__ import annotations

import pytest
from ledger_harness import CHAIN_ID, Ledger, key

from contracts.context import BlockContext
from contracts.execution import StateInvariantError, check_tx, execute_block
from contracts.state import collection_key

ALICE, BOB = key("alice"), key("bob")


def test_check_tx_is_a_dry_run() -> None:
    """check_tx answers as execution would, and the view is left as it was."""
    ledger = Ledger()
    body = {"account": ALICE.public_key, "birth_date": "2000-01-01", "kyc_ref": "a" * 64}
    tx = ledger.tx(ledger.authority, "register_account", body)
    before = ledger.snapshot()
    context = BlockContext(CHAIN_ID, 1, ledger.time_ms + 1)
    assert check_tx(ledger.view, tx, context).code == "ok"
    assert ledger.snapshot() == before
    assert (
        check_tx(
            ledger.view, ledger.tx(ledger.authority, "register_account", body, nonce=9), context
        ).code
        == "bad_nonce"
    )


def test_nonces_advance_within_a_block() -> None:
    """Consecutive nonces from one sender in one block all execute; a repeat is bad_nonce."""
    ledger = Ledger()
    first = ledger.tx(
        ledger.authority,
        "register_account",
        {"account": ALICE.public_key, "birth_date": "2000-01-01", "kyc_ref": "a" * 64},
    )
    second = ledger.tx(
        ledger.authority,
        "register_account",
        {"account": BOB.public_key, "birth_date": "2000-01-01", "kyc_ref": "a" * 64},
    )
    results = ledger.block([first, second, second])
    assert [result.code for result in results] == ["ok", "ok", "bad_nonce"]
    assert ledger.nonce_of(ledger.authority.public_key) == 2


def test_a_token_without_its_collection_stops_execution() -> None:
    """A state that contradicts itself raises StateInvariantError instead of recording a result."""
    ledger = Ledger()
    ledger.register(ALICE)
    ledger.register(BOB)
    ledger.create_collection()
    token = ledger.mint(ALICE)
    del ledger.view.values[collection_key("moon-rabbit")]
    gift = ledger.tx(ALICE, "gift", {"token": token, "to": BOB.public_key})
    with pytest.raises(StateInvariantError):
        execute_block(ledger.view, [gift], BlockContext(CHAIN_ID, 9, ledger.time_ms + 1))
