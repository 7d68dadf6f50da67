"""The gift rules of PROTOCOL §4, one table row per code with its passing case and boundary."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from ledger_harness import Ledger, at, days, key

from contracts.codes import Code
from contracts.context import Result
from contracts.helpers import compute_calendar_date
from contracts.queries import account_info, token_info

ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")


class Scene:
    """Alice and Bob are adults; Alice holds moon-rabbit:1, minted a few seconds after genesis."""

    def __init__(
        self,
        collection: dict[str, Any] | None = None,
        params: dict[str, int] | None = None,
        bob_birth_date: str = "2000-01-01",
    ) -> None:
        self.ledger = Ledger(params)
        self.ledger.register(ALICE)
        self.ledger.register(BOB, bob_birth_date)
        self.ledger.register(CAROL)
        self.ledger.create_collection(**(collection or {}))
        self.token = self.ledger.mint(ALICE)
        self.minted_at = self.ledger.time_ms
        self.eligible_at = self.minted_at + days(180)

    def gift(
        self,
        sender: Any = ALICE,
        to: Any = BOB,
        token: str | None = None,
        time_ms: int | None = None,
    ) -> Result:
        body = {"token": token or self.token, "to": to.public_key}
        # What the rejected-gift check compares against: the state just before this gift.
        self.before, self.sender = self.ledger.snapshot(), sender
        return self.ledger.run(
            sender, "gift", body, self.eligible_at if time_ms is None else time_ms
        )

    def sanction(self, who: Any, kind: str, until: int) -> None:
        body = {"account": who.public_key, "kind": kind, "reason": "test", "until": until}
        self.ledger.ok(self.ledger.authority, "sanction", body)

    def revoke(self, who: Any) -> None:
        self.ledger.ok(
            self.ledger.authority, "revoke_account", {"account": who.public_key, "reason": "test"}
        )


# The gift date of a Scene is 180 days after 2024-06-01 in UTC+8: 2024-11-28.
GIFT_DATE = compute_calendar_date(at(2024, 6, 1) + days(180), 480)


def _birth_for_age_14(day_offset: int) -> str:
    """A birth date whose 14th birthday is GIFT_DATE shifted by `day_offset` days."""
    birthday = GIFT_DATE + datetime.timedelta(days=day_offset)
    return birthday.replace(year=birthday.year - 14).isoformat()


def _ok(scene: Scene) -> Result:
    return scene.gift()


def _holding_first_day_collection(scene: Scene) -> Result:
    return scene.gift(time_ms=scene.minted_at + days(200) - 1)


def _frozen_sender_until(offset_ms: int) -> Callable[[Scene], Result]:
    def run(scene: Scene) -> Result:
        scene.sanction(ALICE, "transfer_freeze", scene.eligible_at + offset_ms)
        return scene.gift()

    return run


def _frozen_recipient_until(offset_ms: int) -> Callable[[Scene], Result]:
    def run(scene: Scene) -> Result:
        scene.sanction(BOB, "transfer_freeze", scene.eligible_at + offset_ms)
        return scene.gift()

    return run


def _min_age(years: int) -> Callable[[Scene], Result]:
    def run(scene: Scene) -> Result:
        scene.ledger.set_params(min_age_years=years)
        return scene.gift()

    return run


def _revoked(who: Any) -> Callable[[Scene], Result]:
    def run(scene: Scene) -> Result:
        scene.revoke(who)
        return scene.gift()

    return run


def _purchase_banned_sender(scene: Scene) -> Result:
    scene.sanction(ALICE, "purchase_ban", 0)
    return scene.gift()


def _raised_first_hold(scene: Scene) -> Result:
    scene.ledger.set_params(first_hold_days=190)
    return scene.gift()


# (case, scene options, what happens, expected code, expected eligible_at relative to mint)
GIFT_TABLE: list[tuple[str, dict[str, Any], Callable[[Scene], Result], Code, int | None]] = [
    ("ok", {}, _ok, Code.OK, None),
    ("token_not_found", {}, lambda s: s.gift(token="moon-rabbit:2"), Code.TOKEN_NOT_FOUND, None),
    (
        "token_not_found other collection",
        {},
        lambda s: s.gift(token="sun-crow:1"),
        Code.TOKEN_NOT_FOUND,
        None,
    ),
    ("not_owner", {}, lambda s: s.gift(sender=CAROL), Code.NOT_OWNER, None),
    (
        "not_owner before self_transfer",
        {},
        lambda s: s.gift(sender=BOB, to=BOB),
        Code.NOT_OWNER,
        None,
    ),
    (
        "collection_not_transferable",
        {"collection": {"transferable": False}},
        _ok,
        Code.COLLECTION_NOT_TRANSFERABLE,
        None,
    ),
    ("self_transfer", {}, lambda s: s.gift(to=ALICE), Code.SELF_TRANSFER, None),
    ("sender_not_authenticated", {}, _revoked(ALICE), Code.SENDER_NOT_AUTHENTICATED, None),
    (
        "recipient_not_authenticated unknown",
        {},
        lambda s: s.gift(to=DAVE),
        Code.RECIPIENT_NOT_AUTHENTICATED,
        None,
    ),
    (
        "recipient_not_authenticated revoked",
        {},
        _revoked(BOB),
        Code.RECIPIENT_NOT_AUTHENTICATED,
        None,
    ),
    ("sender age exactly the minimum", {}, _min_age(24), Code.OK, None),
    ("sender_under_age", {}, _min_age(25), Code.SENDER_UNDER_AGE, None),
    (
        "recipient 14th birthday yesterday",
        {"bob_birth_date": _birth_for_age_14(-1)},
        _ok,
        Code.OK,
        None,
    ),
    ("recipient 14th birthday today", {"bob_birth_date": _birth_for_age_14(0)}, _ok, Code.OK, None),
    (
        "recipient_under_age birthday tomorrow",
        {"bob_birth_date": _birth_for_age_14(1)},
        _ok,
        Code.RECIPIENT_UNDER_AGE,
        None,
    ),
    ("sender_frozen", {}, _frozen_sender_until(1), Code.SENDER_FROZEN, None),
    ("sender freeze expires at block time", {}, _frozen_sender_until(0), Code.OK, None),
    (
        "sender_frozen until lifted",
        {},
        lambda s: (s.sanction(ALICE, "transfer_freeze", 0), s.gift())[1],
        Code.SENDER_FROZEN,
        None,
    ),
    ("recipient_frozen", {}, _frozen_recipient_until(1), Code.RECIPIENT_FROZEN, None),
    ("recipient freeze expires at block time", {}, _frozen_recipient_until(0), Code.OK, None),
    ("purchase_ban does not stop gifts", {}, _purchase_banned_sender, Code.OK, None),
    (
        "holding_period last millisecond",
        {},
        lambda s: s.gift(time_ms=s.eligible_at - 1),
        Code.HOLDING_PERIOD,
        days(180),
    ),
    (
        "holding_period collection's own days",
        {"collection": {"first_hold_days": 200}},
        _holding_first_day_collection,
        Code.HOLDING_PERIOD,
        days(200),
    ),
    (
        "collection's own days end",
        {"collection": {"first_hold_days": 200}},
        lambda s: s.gift(time_ms=s.minted_at + days(200)),
        Code.OK,
        None,
    ),
    (
        "raised chain hold applies to held tokens",
        {},
        _raised_first_hold,
        Code.HOLDING_PERIOD,
        days(190),
    ),
    (
        "sender_frozen before holding_period",
        {},
        lambda s: (s.sanction(ALICE, "transfer_freeze", 0), s.gift(time_ms=s.minted_at + 5000))[1],
        Code.SENDER_FROZEN,
        None,
    ),
]


@pytest.mark.parametrize(
    "options,action,expected,eligible_offset",
    [row[1:] for row in GIFT_TABLE],
    ids=[row[0] for row in GIFT_TABLE],
)
def test_gift_rule_table(
    options: dict[str, Any],
    action: Callable[[Scene], Result],
    expected: Code,
    eligible_offset: int | None,
) -> None:
    """Each row gets exactly its code; a rejected gift changes nothing but the sender's nonce."""
    scene = Scene(**options)
    result = action(scene)
    assert result.code == expected.value, result
    if eligible_offset is not None:
        assert result.eligible_at == scene.minted_at + eligible_offset
    else:
        assert result.eligible_at is None
    if expected is Code.OK:
        assert token_info(scene.ledger.view, scene.token)["owner"] == BOB.public_key
    else:
        scene.ledger.assert_only_nonce_changed(scene.before, scene.sender)


def test_gift_effects_and_history() -> None:
    """A gift moves the token, resets held-since, records history; the later hold applies."""
    scene = Scene()
    assert scene.gift().ok
    view = scene.ledger.view
    info = token_info(view, scene.token)
    assert info["owner"] == BOB.public_key and info["acquired_by"] == "gift"
    assert info["held_since"] == scene.eligible_at
    assert info["transferable_at"] == scene.eligible_at + days(730)
    assert [entry["acquired_by"] for entry in info["history"]] == ["mint", "gift"]
    assert [entry["owner"] for entry in info["history"]] == [ALICE.public_key, BOB.public_key]
    assert info["history"][1]["height"] == scene.ledger.height
    assert account_info(view, ALICE.public_key, scene.ledger.time_ms)["token_count"] == 0
    assert account_info(view, BOB.public_key, scene.ledger.time_ms)["token_count"] == 1
    second_hold_ends = scene.eligible_at + days(730)
    early = scene.gift(sender=BOB, to=CAROL, time_ms=second_hold_ends - 1)
    assert early.code == "holding_period" and early.eligible_at == second_hold_ends
    assert scene.gift(sender=BOB, to=CAROL, time_ms=second_hold_ends).ok


def test_collection_later_hold_days() -> None:
    """A collection's own later_hold_days replaces the chain's 730 for gifted tokens."""
    scene = Scene(collection={"later_hold_days": 800})
    assert scene.gift().ok
    early = scene.gift(sender=BOB, to=CAROL, time_ms=scene.eligible_at + days(800) - 1)
    assert early.code == "holding_period" and early.eligible_at == scene.eligible_at + days(800)


def test_daily_gift_limit_by_calendar_day_in_chain_zone() -> None:
    """With a limit of 1, a second gift the same UTC+8 day fails until local midnight."""
    scene = Scene(params={"daily_gift_limit": 1})
    second = scene.ledger.mint(ALICE, serial=2)
    third = scene.ledger.mint(ALICE, serial=3)
    day_start = at(2024, 11, 29)  # midnight in UTC+8
    assert scene.gift(time_ms=day_start).ok
    limited = scene.gift(token=second, time_ms=day_start + days(1) - 1)
    assert limited.code == "daily_gift_limit"
    assert scene.gift(token=second, time_ms=day_start + days(1)).ok
    # Another sender is not affected by Alice's count.
    assert (
        scene.gift(token=third, to=CAROL, time_ms=day_start + days(1) + 1).code
        == "daily_gift_limit"
    )


def test_daily_gift_limit_zero_means_no_limit() -> None:
    """The default limit 0 lets an account send many gifts on one day."""
    scene = Scene()
    tokens = [scene.token] + [scene.ledger.mint(ALICE, serial=serial) for serial in range(2, 5)]
    time_ms = scene.minted_at + days(181)
    for index, token in enumerate(tokens):
        assert scene.gift(token=token, time_ms=time_ms + index).ok


def test_bad_nonce_changes_nothing() -> None:
    """A gift with the wrong nonce, or from an unknown sender, is bad_nonce and writes nothing."""
    scene = Scene()
    before = scene.ledger.snapshot()
    stale = scene.ledger.tx(ALICE, "gift", {"token": scene.token, "to": BOB.public_key}, nonce=5)
    unknown = scene.ledger.tx(DAVE, "gift", {"token": scene.token, "to": BOB.public_key}, nonce=0)
    results = scene.ledger.block([stale, unknown], scene.eligible_at)
    assert [result.code for result in results] == ["bad_nonce", "bad_nonce"]
    assert scene.ledger.snapshot() == before
