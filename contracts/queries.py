"""Read helpers shaped like the RPC answers of PROTOCOL §6 (JSON values; None -> null)."""

from __future__ import annotations

from typing import Any

from contracts.governance import validator_set_at
from contracts.helpers import (
    compute_eligible_at,
    compute_hold_days,
    get_account,
    get_collection,
    get_params,
    get_token,
    is_sanction_active,
)
from contracts.state import (
    PARAMS_HISTORY_KEY,
    StateView,
    proposal_key,
    sanction_key,
    token_history_key,
)
from contracts.transactions import SANCTION_KINDS, split_token_id

__all__ = [
    "account_info",
    "token_info",
    "collection_info",
    "params_info",
    "proposal_info",
    "validator_set_at",
]


def account_info(view: StateView, account: str, time_ms: int) -> dict[str, Any] | None:
    """GET /v1/accounts/{id}; sanctions are those active at `time_ms`. None if unknown."""
    record = get_account(view, account)
    if record is None:
        return None
    sanctions = []
    for kind in SANCTION_KINDS:
        sanction = view.get(sanction_key(account, kind))
        if sanction is not None and is_sanction_active(sanction, time_ms):
            sanctions.append(
                {
                    "kind": kind,
                    "reason": sanction["reason"],
                    "until": sanction["until"],
                    "since": sanction["since"],
                }
            )
    return {
        "account": account,
        "nonce": record["nonce"],
        "authenticated": record["authenticated"],
        "birth_date": record.get("birth_date"),
        "roles": list(record["roles"]),
        "sanctions": sanctions,
        "token_count": record["token_count"],
    }


def token_info(view: StateView, token_id: str) -> dict[str, Any] | None:
    """GET /v1/tokens/{collection}/{serial}. None if unknown."""
    parts = split_token_id(token_id)
    token = get_token(view, token_id) if parts is not None else None
    if token is None or parts is None:
        return None
    collection = get_collection(view, parts[0])
    if collection is None:
        return None
    transferable_at = None
    if collection["transferable"]:
        hold_days = compute_hold_days(collection, token["acquired_by"], get_params(view))
        transferable_at = compute_eligible_at(token["held_since"], hold_days)
    history = [
        view.get(token_history_key(token_id, index)) for index in range(token["history_length"])
    ]
    return {
        "token": token_id,
        "owner": token["owner"],
        "content_hash": token["content_hash"],
        "acquired_by": token["acquired_by"],
        "held_since": token["held_since"],
        "transferable_at": transferable_at,
        "history": [dict(entry) for entry in history if entry is not None],
    }


def collection_info(view: StateView, collection: str) -> dict[str, Any] | None:
    """GET /v1/collections/{id}: the creation fields, `issuer` and `minted`. None if unknown."""
    record = get_collection(view, collection)
    return None if record is None else dict(record)


def params_info(view: StateView) -> dict[str, Any]:
    """GET /v1/params."""
    return {
        "params": dict(get_params(view)),
        "history": [dict(entry) for entry in view.get(PARAMS_HISTORY_KEY) or []],
    }


def proposal_info(view: StateView, proposal_id: str) -> dict[str, Any] | None:
    record = view.get(proposal_key(proposal_id))
    return None if record is None else {"proposal": proposal_id, **record}
