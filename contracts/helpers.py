"""Accessors (get_*), predicates (is_*) and pure maths (compute_*) the rules are written with.

None of these change state; only the process_* functions do.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

from contracts.params import DAY_MS, DEFAULT_PARAMS, MINUTE_MS
from contracts.state import (
    PARAMS_KEY,
    StateView,
    account_key,
    collection_key,
    minted_key,
    role_key,
    sanction_key,
    token_key,
)
from contracts.transactions import parse_birth_date

_EPOCH = datetime.date(1970, 1, 1)
_LAST_DAY = (datetime.date.max - _EPOCH).days


def get_params(state: StateView) -> dict[str, int]:
    params = state.get(PARAMS_KEY)
    return DEFAULT_PARAMS if params is None else params


def get_account(state: StateView, account: str) -> dict[str, Any] | None:
    return state.get(account_key(account))


def get_collection(state: StateView, collection: str) -> dict[str, Any] | None:
    return state.get(collection_key(collection))


def get_token(state: StateView, token_id: str) -> dict[str, Any] | None:
    return state.get(token_key(token_id))


def get_role_members(state: StateView, role: str) -> list[str]:
    return state.get(role_key(role)) or []


def get_minted_count(state: StateView, collection: str, account: str) -> int:
    return state.get(minted_key(collection, account)) or 0


def new_account() -> dict[str, Any]:
    """An account nobody has authenticated yet: what a role grant to a new key creates."""
    return {
        "nonce": 0,
        "authenticated": False,
        "roles": [],
        "token_count": 0,
        "gift_day": 0,
        "gift_count": 0,
    }


def is_authenticated(account: dict[str, Any] | None) -> bool:
    return account is not None and account["authenticated"] is True


def has_role(state: StateView, account: str, role: str) -> bool:
    record = get_account(state, account)
    return record is not None and role in record["roles"]


def is_sanction_active(sanction: dict[str, Any] | None, time_ms: int) -> bool:
    """Active while `until` is 0 or the block time is before it (so not at `until` itself)."""
    return sanction is not None and (sanction["until"] == 0 or time_ms < sanction["until"])


def get_active_sanction(
    state: StateView, account: str, kind: str, time_ms: int
) -> dict[str, Any] | None:
    sanction = state.get(sanction_key(account, kind))
    return sanction if is_sanction_active(sanction, time_ms) else None


def compute_calendar_day(time_ms: int, utc_offset_minutes: int) -> int:
    """Days since 1970-01-01 of the block time's calendar date in the chain's zone."""
    return (time_ms + utc_offset_minutes * MINUTE_MS) // DAY_MS


@functools.lru_cache(maxsize=64)
def compute_calendar_date(time_ms: int, utc_offset_minutes: int) -> datetime.date:
    # Block times past year 9999 cannot be dates; they read as the last day, so
    # every node still computes the same answer instead of failing.
    days = min(compute_calendar_day(time_ms, utc_offset_minutes), _LAST_DAY)
    return _EPOCH + datetime.timedelta(days=days)


def compute_age_years(birth_date: datetime.date, on_date: datetime.date) -> int:
    """Whole years from birth_date to on_date. Comparing (month, day) pairs makes a
    29 February birthday come on 1 March in common years, as PROTOCOL §3 says."""
    before_birthday = (on_date.month, on_date.day) < (birth_date.month, birth_date.day)
    return on_date.year - birth_date.year - int(before_birthday)


# Birth dates repeat across transactions (each account's, every time it gifts or receives):
# parsed once each. Dates are immutable, so sharing them changes nothing.
_parse_birth_date_text = functools.lru_cache(maxsize=1 << 16)(parse_birth_date)


def is_of_age(account: dict[str, Any], on_date: datetime.date, min_age_years: int) -> bool:
    text = account.get("birth_date")
    birth_date = _parse_birth_date_text(text) if type(text) is str else parse_birth_date(text)
    # Only authenticated accounts reach this check and they all carry a birth date;
    # an account without one is never old enough to hold collectibles.
    return birth_date is not None and compute_age_years(birth_date, on_date) >= min_age_years


def compute_hold_days(collection: dict[str, Any], acquired_by: str, params: dict[str, int]) -> int:
    """The hold for the token's current owner: the collection's own days where it sets them,
    never below the chain parameter in force (parameter changes are not grandfathered)."""
    name = "first_hold_days" if acquired_by == "mint" else "later_hold_days"
    own_days: int = collection.get(name, 0)
    return max(own_days, params[name])


def compute_eligible_at(held_since_ms: int, hold_days: int) -> int:
    return held_since_ms + hold_days * DAY_MS


def compute_approval_threshold(governor_count: int) -> int:
    """floor(2n/3) + 1 approvals: more than two thirds of the governors."""
    return 2 * governor_count // 3 + 1


def compute_gifts_sent_on_day(account: dict[str, Any], day: int) -> int:
    return account["gift_count"] if account["gift_day"] == day else 0
