"""The mint rules of PROTOCOL §4: codes in order, the first failing item, all items or none."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_harness import HASH_A, Ledger, at, key

from contracts.codes import Code
from contracts.queries import account_info, collection_info, token_info

ALICE, BOB, CAROL, DAVE, ISSUER2 = (
    key("alice"),
    key("bob"),
    key("carol"),
    key("dave"),
    key("issuer two"),
)


def item(serial: int, owner: Any = ALICE) -> dict[str, Any]:
    return {"serial": serial, "owner": owner.public_key, "content_hash": HASH_A}


class MintScene:
    """Alice and Bob are adults; the authority issued moon-rabbit (max 10, 2 per account);
    a second issuer owns sun-crow."""

    def __init__(
        self, genesis_time_ms: int | None = None, params: dict[str, int] | None = None
    ) -> None:
        self.ledger = Ledger(params) if genesis_time_ms is None else Ledger(params, genesis_time_ms)
        self.ledger.register(ALICE)
        self.ledger.register(BOB)
        self.ledger.create_collection(max_supply=10, per_account_limit=2)
        self.ledger.grant(ISSUER2, "issuer")
        self.ledger.create_collection("sun-crow", issuer=ISSUER2)

    def mint(
        self,
        items: list[dict[str, Any]],
        collection: str = "moon-rabbit",
        sender: Any = None,
        time_ms: int | None = None,
    ) -> Any:
        sender = sender or self.ledger.authority
        self.before, self.sender = self.ledger.snapshot(), sender
        return self.ledger.run(sender, "mint", {"collection": collection, "items": items}, time_ms)


def _banned(until_offset_ms: int) -> Any:
    def run(scene: MintScene) -> Any:
        scene.ledger.ok(
            scene.ledger.authority,
            "sanction",
            {
                "account": ALICE.public_key,
                "kind": "purchase_ban",
                "reason": "r",
                "until": scene.ledger.time_ms + 2000 + until_offset_ms,
            },
        )
        # The sanction block comes 1000 ms after the last one, the mint block 1000 ms later.
        return scene.mint([item(1)])

    return run


def _frozen(scene: MintScene) -> Any:
    scene.ledger.ok(
        scene.ledger.authority,
        "sanction",
        {"account": ALICE.public_key, "kind": "transfer_freeze", "reason": "r", "until": 0},
    )
    return scene.mint([item(1)])


def _second_mint(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> Any:
    def run(scene: MintScene) -> Any:
        assert scene.mint(first).ok
        return scene.mint(second)

    return run


MINT_TABLE: list[tuple[str, Any, Code, str]] = [
    ("ok", lambda s: s.mint([item(1), item(2, BOB)]), Code.OK, ""),
    ("unauthorized", lambda s: s.mint([item(1)], sender=ALICE), Code.UNAUTHORIZED, ""),
    (
        "collection_not_found",
        lambda s: s.mint([item(1)], collection="no-such"),
        Code.COLLECTION_NOT_FOUND,
        "",
    ),
    (
        "not_collection_issuer",
        lambda s: s.mint([item(1)], collection="sun-crow"),
        Code.NOT_COLLECTION_ISSUER,
        "",
    ),
    ("serial at max_supply", lambda s: s.mint([item(10)]), Code.OK, ""),
    (
        "serial_out_of_range",
        lambda s: s.mint([item(1), item(11)]),
        Code.SERIAL_OUT_OF_RANGE,
        "item 1",
    ),
    (
        "token_exists",
        _second_mint([item(1)], [item(2, BOB), item(1, BOB)]),
        Code.TOKEN_EXISTS,
        "item 1",
    ),
    (
        "token_exists repeated in one mint",
        lambda s: s.mint([item(3, BOB), item(3, BOB)]),
        Code.TOKEN_EXISTS,
        "item 1",
    ),
    (
        "recipient_not_authenticated",
        lambda s: s.mint([item(1), item(2, DAVE)]),
        Code.RECIPIENT_NOT_AUTHENTICATED,
        "item 1",
    ),
    ("recipient_purchase_banned", _banned(1), Code.RECIPIENT_PURCHASE_BANNED, "item 0"),
    ("purchase ban expires at block time", _banned(0), Code.OK, ""),
    ("transfer_freeze does not stop mints", _frozen, Code.OK, ""),
    (
        "per_account_limit reached",
        lambda s: s.mint([item(1), item(2), item(3)]),
        Code.PER_ACCOUNT_LIMIT,
        "item 2",
    ),
    (
        "per_account_limit over two mints",
        _second_mint([item(1)], [item(2), item(3)]),
        Code.PER_ACCOUNT_LIMIT,
        "item 1",
    ),
    ("per_account_limit exactly", _second_mint([item(1)], [item(2), item(3, BOB)]), Code.OK, ""),
    (
        "serial checked before token_exists",
        _second_mint([item(1)], [item(11)]),
        Code.SERIAL_OUT_OF_RANGE,
        "item 0",
    ),
]


@pytest.mark.parametrize(
    "action,expected,message_part",
    [row[1:] for row in MINT_TABLE],
    ids=[row[0] for row in MINT_TABLE],
)
def test_mint_rule_table(action: Any, expected: Code, message_part: str) -> None:
    """Each row gets its code naming the first failing item; a failed mint moves only the nonce."""
    scene = MintScene()
    result = action(scene)
    assert result.code == expected.value, result
    assert message_part in result.message
    if expected is not Code.OK:
        scene.ledger.assert_only_nonce_changed(scene.before, scene.sender)


def test_mint_effects() -> None:
    """Minted tokens start held by their owner, acquired by mint, at the block time."""
    scene = MintScene()
    assert scene.mint([item(1), item(2, BOB), item(3)]).ok
    view, now = scene.ledger.view, scene.ledger.time_ms
    token = token_info(view, "moon-rabbit:1")
    assert (
        token["owner"] == ALICE.public_key
        and token["acquired_by"] == "mint"
        and token["held_since"] == now
    )
    assert token["content_hash"] == HASH_A
    assert token["history"] == [
        {
            "owner": ALICE.public_key,
            "acquired_by": "mint",
            "at": now,
            "height": scene.ledger.height,
            "tx": token["history"][0]["tx"],
        }
    ]
    assert collection_info(view, "moon-rabbit")["minted"] == 3
    assert collection_info(view, "moon-rabbit")["issuer"] == scene.ledger.authority.public_key
    assert account_info(view, ALICE.public_key, now)["token_count"] == 2
    assert account_info(view, BOB.public_key, now)["token_count"] == 1


# Age boundaries for a mint recipient, in the chain's zone (UTC+8), min age 14 unless set.
AGE_TABLE = [
    ("day before 14th birthday", "2010-06-15", at(2024, 6, 14), None, Code.RECIPIENT_UNDER_AGE),
    (
        "last millisecond before local midnight",
        "2010-06-15",
        at(2024, 6, 15) - 1,
        None,
        Code.RECIPIENT_UNDER_AGE,
    ),
    ("14th birthday at local midnight", "2010-06-15", at(2024, 6, 15), None, Code.OK),
    ("day after 14th birthday", "2010-06-15", at(2024, 6, 16), None, Code.OK),
    (
        "29 Feb birthday, 28 Feb of a common year",
        "2008-02-29",
        at(2022, 2, 28),
        None,
        Code.RECIPIENT_UNDER_AGE,
    ),
    (
        "29 Feb birthday, last ms of 28 Feb",
        "2008-02-29",
        at(2022, 3, 1) - 1,
        None,
        Code.RECIPIENT_UNDER_AGE,
    ),
    (
        "29 Feb birthday reached on 1 March of a common year",
        "2008-02-29",
        at(2022, 3, 1),
        None,
        Code.OK,
    ),
    (
        "29 Feb birthday, 28 Feb of a leap year",
        "2008-02-29",
        at(2024, 2, 28),
        16,
        Code.RECIPIENT_UNDER_AGE,
    ),
    (
        "29 Feb birthday reached on 29 Feb of a leap year",
        "2008-02-29",
        at(2024, 2, 29),
        16,
        Code.OK,
    ),
    ("28 Feb birthday in a leap year", "2010-02-28", at(2024, 2, 28), None, Code.OK),
    (
        "1 March birthday in a leap year",
        "2010-03-01",
        at(2024, 2, 29),
        None,
        Code.RECIPIENT_UNDER_AGE,
    ),
]


@pytest.mark.parametrize(
    "birth_date,mint_time_ms,min_age,expected",
    [row[1:] for row in AGE_TABLE],
    ids=[row[0] for row in AGE_TABLE],
)
def test_mint_recipient_age_boundaries(
    birth_date: str, mint_time_ms: int, min_age: int | None, expected: Code
) -> None:
    """Whole years to the block's UTC+8 date; 29 Feb birthdays come on 1 March in common years."""
    params = {} if min_age is None else {"min_age_years": min_age}
    ledger = Ledger(params, genesis_time_ms=mint_time_ms - 100_000)
    young = key("young")
    ledger.register(young, birth_date)
    ledger.create_collection()
    result = ledger.run(
        ledger.authority,
        "mint",
        {"collection": "moon-rabbit", "items": [item(1, young)]},
        mint_time_ms,
    )
    assert result.code == expected.value, result


def test_utc_offset_parameter_moves_the_calendar_date() -> None:
    """With utc_offset_minutes 0, 16:00 UTC on the day before is still the day before."""
    mint_time_ms = at(2024, 6, 15)  # 2024-06-14 16:00 UTC
    for offset, expected in ((480, Code.OK), (0, Code.RECIPIENT_UNDER_AGE)):
        ledger = Ledger({"utc_offset_minutes": offset}, genesis_time_ms=mint_time_ms - 100_000)
        young = key("young")
        ledger.register(young, "2010-06-15")
        ledger.create_collection()
        result = ledger.run(
            ledger.authority,
            "mint",
            {"collection": "moon-rabbit", "items": [item(1, young)]},
            mint_time_ms,
        )
        assert result.code == expected.value
