"""Governance (PROTOCOL §4): proposals, the floor(2n/3)+1 threshold, actions and their codes."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_harness import Ledger, key

from contracts.codes import Code
from contracts.helpers import compute_approval_threshold
from contracts.queries import account_info, params_info, proposal_info, validator_set_at

G1, G2, G3, ALICE, NEWCOMER = (
    key("gov 1"),
    key("gov 2"),
    key("gov 3"),
    key("alice"),
    key("newcomer"),
)
NEW_VALIDATOR = key("validator new")


def propose(ledger: Ledger, sender: Any, action: str, args: dict[str, Any]) -> tuple[Any, str]:
    tx = ledger.tx(sender, "propose", {"action": action, "args": args})
    return ledger.block([tx])[0], tx.id


def approve(ledger: Ledger, sender: Any, proposal_id: str) -> Any:
    return ledger.run(sender, "approve", {"proposal": proposal_id})


def four_governors() -> Ledger:
    """The authority plus G1..G3: n = 4, threshold 3."""
    ledger = Ledger()
    ledger.grant(G1, "governor")  # n = 1: executes at once
    result, grant_g2 = propose(
        ledger, ledger.authority, "grant_role", {"account": G2.public_key, "role": "governor"}
    )
    assert result.ok and result.message == "1 of 2 approvals"
    assert approve(ledger, G1, grant_g2).message == "proposal executed"
    result, grant_g3 = propose(
        ledger, ledger.authority, "grant_role", {"account": G3.public_key, "role": "governor"}
    )
    assert approve(ledger, G1, grant_g3).message == "2 of 3 approvals"
    assert approve(ledger, G2, grant_g3).message == "proposal executed"
    return ledger


@pytest.mark.parametrize(
    "governors,threshold", [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (9, 7), (10, 7)]
)
def test_threshold_is_more_than_two_thirds(governors: int, threshold: int) -> None:
    """floor(2n/3)+1 is the smallest count above two thirds of n."""
    assert compute_approval_threshold(governors) == threshold
    assert 3 * threshold > 2 * governors >= 3 * (threshold - 1)


def test_proposal_executes_when_approvals_reach_the_threshold() -> None:
    """With 4 governors the third approval executes the action; later approvals are refused."""
    ledger = four_governors()
    result, proposal_id = propose(ledger, G1, "set_params", {"daily_gift_limit": 3})
    assert result.ok and params_info(ledger.view)["params"]["daily_gift_limit"] == 0
    assert approve(ledger, G2, proposal_id).ok
    assert params_info(ledger.view)["params"]["daily_gift_limit"] == 0
    assert approve(ledger, G3, proposal_id).message == "proposal executed"
    executed_at = ledger.height
    assert params_info(ledger.view)["params"]["daily_gift_limit"] == 3
    assert params_info(ledger.view)["history"][-1] == {
        "height": executed_at,
        "params": params_info(ledger.view)["params"],
    }
    assert proposal_info(ledger.view, proposal_id)["executed_height"] == executed_at
    # already_approved is checked before proposal_executed.
    assert approve(ledger, G1, proposal_id).code == "already_approved"
    assert approve(ledger, ledger.authority, proposal_id).code == "proposal_executed"


def test_approval_codes_in_order() -> None:
    """unauthorized, then proposal_not_found, then already_approved."""
    ledger = four_governors()
    ledger.register(ALICE)
    _, proposal_id = propose(ledger, G1, "set_params", {"min_age_years": 16})
    assert approve(ledger, ALICE, proposal_id).code == "unauthorized"
    assert approve(ledger, ALICE, "ab" * 32).code == "unauthorized"
    assert approve(ledger, G2, "ab" * 32).code == "proposal_not_found"
    assert approve(ledger, G1, proposal_id).code == "already_approved"
    assert propose(ledger, ALICE, "set_params", {"min_age_years": 16})[0].code == "unauthorized"


INVALID_PROPOSALS: list[tuple[str, str, dict[str, Any], Code]] = [
    ("unknown action", "mint_currency", {}, Code.INVALID_ACTION),
    ("set_params empty", "set_params", {}, Code.INVALID_PARAMS),
    ("set_params unknown", "set_params", {"fee": 1}, Code.INVALID_PARAMS),
    ("set_params bool", "set_params", {"min_age_years": True}, Code.INVALID_PARAMS),
    ("set_params out of range", "set_params", {"max_block_txs": 0}, Code.INVALID_PARAMS),
    ("set_params string", "set_params", {"daily_gift_limit": "1"}, Code.INVALID_PARAMS),
    (
        "grant unknown role",
        "grant_role",
        {"account": "ab" * 32, "role": "king"},
        Code.INVALID_PARAMS,
    ),
    (
        "grant extra argument",
        "grant_role",
        {"account": "ab" * 32, "role": "issuer", "x": 1},
        Code.INVALID_PARAMS,
    ),
    (
        "grant bad account",
        "grant_role",
        {"account": "AB" * 32, "role": "issuer"},
        Code.INVALID_PARAMS,
    ),
    (
        "grant a held role",
        "grant_role",
        {"account": "@authority", "role": "issuer"},
        Code.INVALID_PARAMS,
    ),
    (
        "revoke a role not held",
        "revoke_role",
        {"account": "ab" * 32, "role": "issuer"},
        Code.INVALID_PARAMS,
    ),
    (
        "revoke the last governor",
        "revoke_role",
        {"account": "@authority", "role": "governor"},
        Code.INVALID_ACTION,
    ),
    (
        "add validator bad endpoint",
        "add_validator",
        {"pubkey": "ab" * 32, "name": "v", "endpoint": "host"},
        Code.INVALID_PARAMS,
    ),
    (
        "add validator bad port",
        "add_validator",
        {"pubkey": "ab" * 32, "name": "v", "endpoint": "host:70000"},
        Code.INVALID_PARAMS,
    ),
    (
        "add validator missing name",
        "add_validator",
        {"pubkey": "ab" * 32, "endpoint": "h:1"},
        Code.INVALID_PARAMS,
    ),
    (
        "add an existing validator",
        "add_validator",
        {"pubkey": "@validator", "name": "v", "endpoint": "h:1"},
        Code.INVALID_PARAMS,
    ),
    ("remove an unknown validator", "remove_validator", {"pubkey": "ab" * 32}, Code.INVALID_PARAMS),
]


@pytest.mark.parametrize(
    "action,args,expected",
    [row[1:] for row in INVALID_PROPOSALS],
    ids=[row[0] for row in INVALID_PROPOSALS],
)
def test_invalid_proposals_are_refused(action: str, args: dict[str, Any], expected: Code) -> None:
    """An invalid action or arguments gets its code and no proposal is stored."""
    ledger = Ledger()
    some_validator = validator_set_at(ledger.view, 1)[0]["pubkey"]
    args = {
        name: ledger.authority.public_key
        if value == "@authority"
        else some_validator
        if value == "@validator"
        else value
        for name, value in args.items()
    }
    before = ledger.snapshot()
    result, proposal_id = propose(ledger, ledger.authority, action, args)
    assert result.code == expected.value, result
    ledger.assert_only_nonce_changed(before, ledger.authority)
    assert proposal_info(ledger.view, proposal_id) is None


def test_removing_the_last_validator_is_invalid() -> None:
    """The set can shrink to one validator, never to none."""
    ledger = Ledger()
    pubkeys = [validator["pubkey"] for validator in validator_set_at(ledger.view, 1)]
    for pubkey in pubkeys[:-1]:
        assert propose(ledger, ledger.authority, "remove_validator", {"pubkey": pubkey})[0].ok
    assert (
        propose(ledger, ledger.authority, "remove_validator", {"pubkey": pubkeys[-1]})[0].code
        == "invalid_action"
    )


def test_action_invalid_at_execution_changes_nothing_but_the_nonce() -> None:
    """Of two proposals granting one role, the second gets invalid_params and stays pending."""
    ledger = Ledger()
    ledger.grant(G1, "governor")  # n = 2, threshold 2
    _, first = propose(
        ledger, ledger.authority, "grant_role", {"account": ALICE.public_key, "role": "issuer"}
    )
    _, second = propose(
        ledger, ledger.authority, "grant_role", {"account": ALICE.public_key, "role": "issuer"}
    )
    assert approve(ledger, G1, first).message == "proposal executed"
    before = ledger.snapshot()
    result = approve(ledger, G1, second)
    assert result.code == "invalid_params"
    ledger.assert_only_nonce_changed(before, G1)
    assert proposal_info(ledger.view, second)["approvals"] == [ledger.authority.public_key]


def test_only_current_governors_approvals_count() -> None:
    """An approval by an account that lost the governor role no longer counts."""
    ledger = four_governors()
    _, pending = propose(ledger, G1, "set_params", {"min_age_years": 18})
    # Revoke G1's governor role (needs 3 of 4).
    _, revoke_g1 = propose(
        ledger, ledger.authority, "revoke_role", {"account": G1.public_key, "role": "governor"}
    )
    assert approve(ledger, G2, revoke_g1).ok
    assert approve(ledger, G3, revoke_g1).message == "proposal executed"
    # n = 3, threshold 3: G1's approval is void, so G2 and the authority make only 2.
    assert approve(ledger, G2, pending).message == "1 of 3 approvals"
    assert approve(ledger, ledger.authority, pending).message == "2 of 3 approvals"
    assert approve(ledger, G3, pending).message == "proposal executed"
    assert params_info(ledger.view)["params"]["min_age_years"] == 18


def test_grant_role_creates_an_organisation_account() -> None:
    """A role granted to an unknown key creates it (nonce 0, unauthenticated); the role works."""
    ledger = Ledger()
    ledger.grant(NEWCOMER, "issuer")
    info = account_info(ledger.view, NEWCOMER.public_key, ledger.time_ms)
    assert (
        info is not None
        and info["nonce"] == 0
        and info["authenticated"] is False
        and info["roles"] == ["issuer"]
    )
    ledger.create_collection("newcomer-set", issuer=NEWCOMER)
    result, _ = propose(
        ledger, ledger.authority, "revoke_role", {"account": NEWCOMER.public_key, "role": "issuer"}
    )
    assert result.ok
    body = {"collection": "another-set", "name": "x", "max_supply": 1, "transferable": True}
    assert ledger.run(NEWCOMER, "create_collection", body).code == "unauthorized"


def test_validator_changes_apply_two_blocks_later() -> None:
    """A validator added or removed in block h counts from h+2; changes in a block combine."""
    ledger = Ledger()
    genesis_set = validator_set_at(ledger.view, 1)
    removed = genesis_set[0]["pubkey"]
    add = ledger.tx(
        ledger.authority,
        "propose",
        {
            "action": "add_validator",
            "args": {
                "pubkey": NEW_VALIDATOR.public_key,
                "name": "new",
                "endpoint": "10.0.0.9:8700",
            },
        },
    )
    remove = ledger.tx(
        ledger.authority, "propose", {"action": "remove_validator", "args": {"pubkey": removed}}
    )
    assert all(result.ok for result in ledger.block([add, remove]))
    height = ledger.height
    assert validator_set_at(ledger.view, height) == genesis_set
    assert validator_set_at(ledger.view, height + 1) == genesis_set
    later = {validator["pubkey"] for validator in validator_set_at(ledger.view, height + 2)}
    assert later == {validator["pubkey"] for validator in genesis_set} - {removed} | {
        NEW_VALIDATOR.public_key
    }
    assert validator_set_at(ledger.view, height + 100) == validator_set_at(ledger.view, height + 2)
    assert validator_set_at(ledger.view, 0) == genesis_set


def test_parameter_change_applies_to_the_next_transaction() -> None:
    """Parameters are read per transaction: a change applies to the rest of its block."""
    ledger = Ledger()
    ledger.register(ALICE, "2008-01-01")  # 16 at genesis
    ledger.create_collection()
    raise_age = ledger.tx(
        ledger.authority, "propose", {"action": "set_params", "args": {"min_age_years": 18}}
    )
    mint = ledger.tx(
        ledger.authority,
        "mint",
        {
            "collection": "moon-rabbit",
            "items": [{"serial": 1, "owner": ALICE.public_key, "content_hash": "a" * 64}],
        },
    )
    results = ledger.block([raise_age, mint])
    assert [result.code for result in results] == ["ok", "recipient_under_age"]
    history = params_info(ledger.view)["history"]
    assert [entry["height"] for entry in history] == [0, ledger.height]
    assert (
        history[0]["params"]["min_age_years"] == 14 and history[1]["params"]["min_age_years"] == 18
    )
