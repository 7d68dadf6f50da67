"""Result codes keep their strings and stable numbers; read helpers answer as the RPC needs."""

from __future__ import annotations

from ledger_harness import Ledger, key

from contracts.codes import Code, code_by_number
from contracts.queries import token_info

# Frozen: a change here breaks stored results and other implementations. Append, never renumber.
STABLE_CODES = {
    "ok": 0, "bad_nonce": 1, "unauthorized": 2,
    "token_not_found": 10, "not_owner": 11, "collection_not_transferable": 12, "self_transfer": 13,
    "sender_not_authenticated": 14, "recipient_not_authenticated": 15, "sender_under_age": 16,
    "recipient_under_age": 17, "sender_frozen": 18, "recipient_frozen": 19, "holding_period": 20,
    "daily_gift_limit": 21,
    "collection_not_found": 30, "not_collection_issuer": 31, "serial_out_of_range": 32,
    "token_exists": 33, "recipient_purchase_banned": 34, "per_account_limit": 35,
    "account_exists": 40, "account_not_found": 41, "collection_exists": 42, "invalid_policy": 43,
    "no_such_sanction": 44,
    "proposal_not_found": 50, "already_approved": 51, "proposal_executed": 52,
    "invalid_params": 53, "invalid_action": 54,
}  # fmt: skip


def test_codes_are_stable() -> None:
    """Every protocol code exists with its frozen number, and numbers are unique."""
    assert {code.value: code.number for code in Code} == STABLE_CODES
    for text, number in STABLE_CODES.items():
        assert code_by_number(number) is Code(text)


def test_gift_codes_are_numbered_in_check_order() -> None:
    """Within the gift group, numbers follow PROTOCOL §4's check order."""
    gift_order = [
        "token_not_found", "not_owner", "collection_not_transferable", "self_transfer",
        "sender_not_authenticated", "recipient_not_authenticated", "sender_under_age",
        "recipient_under_age", "sender_frozen", "recipient_frozen", "holding_period",
        "daily_gift_limit",
    ]  # fmt: skip
    numbers = [Code(text).number for text in gift_order]
    assert numbers == sorted(numbers)


def test_token_info_of_a_non_transferable_token() -> None:
    """transferable_at is null when the collection is not transferable; unknown tokens are None."""
    ledger = Ledger()
    alice = key("alice")
    ledger.register(alice)
    ledger.create_collection(transferable=False)
    token = ledger.mint(alice)
    assert token_info(ledger.view, token)["transferable_at"] is None
    assert token_info(ledger.view, "moon-rabbit:2") is None
    assert token_info(ledger.view, "not a token") is None
