"""Governance actions (PROTOCOL §4): checking them, and applying them once approved.

An action is checked when it is proposed and again when its approvals reach the
threshold, because the state may have moved in between; an action that is
invalid at execution time changes nothing (its transaction gets the code).
"""

from __future__ import annotations

import re
from typing import Any

from contracts.codes import Code
from contracts.context import BlockContext, Result, reject
from contracts.helpers import get_account, get_params, get_role_members, new_account
from contracts.params import params_problem
from contracts.state import (
    PARAMS_HISTORY_KEY,
    PARAMS_KEY,
    ROLES,
    VALIDATORS_KEY,
    Overlay,
    StateView,
    account_key,
    role_key,
)
from contracts.transactions import check_account, text_of

ACTIONS = ("set_params", "grant_role", "revoke_role", "add_validator", "remove_validator")
MAX_VALIDATORS = 100
# A validator-set change executed in block h applies from block h + 2.
VALIDATOR_CHANGE_DELAY = 2

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


def endpoint_problem(value: Any) -> str | None:
    """What is wrong with a "host:port" endpoint, or None."""
    if not isinstance(value, str) or ":" not in value:
        return 'expected "host:port"'
    host, port = value.rsplit(":", 1)
    if _HOST.fullmatch(host) is None:
        return "endpoint host %r is not a host name or address" % host
    if _PORT.fullmatch(port) is None or int(port) > 65535:
        return "endpoint port %r is not in 1..65535" % port
    return None


def validator_problem(value: Any) -> str | None:
    """What is wrong with a validator entry {pubkey, name, endpoint}, or None."""
    if not isinstance(value, dict) or set(value) != {"pubkey", "name", "endpoint"}:
        return "a validator is exactly {pubkey, name, endpoint}"
    problem = check_account(value["pubkey"])
    if problem is not None:
        return "pubkey: %s" % problem
    problem = text_of(1, 64)(value["name"])
    if problem is not None:
        return "name: %s" % problem
    return endpoint_problem(value["endpoint"])


# --- the validator-set schedule ------------------------------------------------------------------


def get_validator_schedule(state: StateView) -> list[dict[str, Any]]:
    """[{from_height, validators}], ascending; each entry holds from its height on."""
    return state.get(VALIDATORS_KEY) or []


def validator_set_at(state: StateView, height: int) -> list[dict[str, Any]]:
    """The validators (dicts {pubkey, name, endpoint}) in force at `height`."""
    in_force: list[dict[str, Any]] = []
    for entry in get_validator_schedule(state):
        if entry["from_height"] <= height:
            in_force = entry["validators"]
    return in_force


def latest_scheduled_validators(state: StateView) -> list[dict[str, Any]]:
    """The set after every change already executed, including those not yet in force."""
    schedule = get_validator_schedule(state)
    return schedule[-1]["validators"] if schedule else []


def schedule_validators(
    state: Overlay, validators: list[dict[str, Any]], ctx: BlockContext
) -> None:
    from_height = ctx.height + VALIDATOR_CHANGE_DELAY
    ordered = sorted(validators, key=lambda validator: validator["pubkey"])
    schedule = [
        entry for entry in get_validator_schedule(state) if entry["from_height"] != from_height
    ]
    schedule.append({"from_height": from_height, "validators": ordered})
    state.put(VALIDATORS_KEY, schedule)


# --- checking actions ----------------------------------------------------------------------------


def _args_problem(args: dict[str, Any], names: set[str]) -> str | None:
    if set(args) != names:
        return "arguments must be exactly %s" % ", ".join(sorted(names))
    return None


def _role_args_problem(args: dict[str, Any]) -> str | None:
    problem = _args_problem(args, {"account", "role"})
    if problem is None:
        problem = check_account(args["account"])
    if problem is None and (not isinstance(args["role"], str) or args["role"] not in ROLES):
        problem = "role must be one of %s" % ", ".join(ROLES)
    return problem


def check_action(state: StateView, action: str, args: dict[str, Any]) -> Result | None:
    """None when the action can be applied to this state now; else invalid_action/invalid_params."""
    if action not in ACTIONS:
        return reject(Code.INVALID_ACTION, "unknown action %r" % action)
    if action == "set_params":
        if not args:
            return reject(Code.INVALID_PARAMS, "set_params needs at least one parameter")
        problem = params_problem(args)
        return None if problem is None else reject(Code.INVALID_PARAMS, problem)
    if action in ("grant_role", "revoke_role"):
        problem = _role_args_problem(args)
        if problem is not None:
            return reject(Code.INVALID_PARAMS, problem)
        record = get_account(state, args["account"])
        holds = record is not None and args["role"] in record["roles"]
        if action == "grant_role" and holds:
            return reject(Code.INVALID_PARAMS, "account already holds role %s" % args["role"])
        if action == "revoke_role" and not holds:
            return reject(Code.INVALID_PARAMS, "account does not hold role %s" % args["role"])
        if action == "revoke_role" and args["role"] == "governor":
            if len(get_role_members(state, "governor")) == 1:
                return reject(Code.INVALID_ACTION, "cannot revoke the last governor")
        return None
    validators = latest_scheduled_validators(state)
    keys = {validator["pubkey"] for validator in validators}
    if action == "add_validator":
        problem = validator_problem(args)
        if problem is not None:
            return reject(Code.INVALID_PARAMS, problem)
        if args["pubkey"] in keys:
            return reject(
                Code.INVALID_PARAMS, "validator %s is already in the set" % args["pubkey"]
            )
        if len(validators) >= MAX_VALIDATORS:
            return reject(Code.INVALID_ACTION, "the set already has %d validators" % MAX_VALIDATORS)
        return None
    problem = _args_problem(args, {"pubkey"}) or check_account(args["pubkey"])
    if problem is not None:
        return reject(Code.INVALID_PARAMS, problem)
    if args["pubkey"] not in keys:
        return reject(Code.INVALID_PARAMS, "validator %s is not in the set" % args["pubkey"])
    if len(validators) == 1:
        return reject(Code.INVALID_ACTION, "cannot remove the last validator")
    return None


# --- applying actions (only after check_action passed) ------------------------------------------


def set_role(state: Overlay, account: str, role: str, holds: bool) -> None:
    record = get_account(state, account) or new_account()
    roles = set(record["roles"])
    members = set(get_role_members(state, role))
    if holds:
        roles.add(role)
        members.add(account)
    else:
        roles.discard(role)
        members.discard(account)
    state.put(account_key(account), {**record, "roles": sorted(roles)})
    state.put(role_key(role), sorted(members))


def apply_action(state: Overlay, action: str, args: dict[str, Any], ctx: BlockContext) -> None:
    if action == "set_params":
        params = {**get_params(state), **args}
        state.put(PARAMS_KEY, params)
        # One history entry per height: later changes in the same block fold into it.
        history = [
            entry for entry in state.get(PARAMS_HISTORY_KEY) or [] if entry["height"] != ctx.height
        ]
        history.append({"height": ctx.height, "params": params})
        state.put(PARAMS_HISTORY_KEY, history)
    elif action == "grant_role":
        set_role(state, args["account"], args["role"], True)
    elif action == "revoke_role":
        set_role(state, args["account"], args["role"], False)
    elif action == "add_validator":
        added = {"pubkey": args["pubkey"], "name": args["name"], "endpoint": args["endpoint"]}
        schedule_validators(state, latest_scheduled_validators(state) + [added], ctx)
    elif action == "remove_validator":
        remaining = [v for v in latest_scheduled_validators(state) if v["pubkey"] != args["pubkey"]]
        schedule_validators(state, remaining, ctx)
    else:
        raise ValueError("apply_action called with unchecked action %r" % action)
