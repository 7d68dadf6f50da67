"""The state transition: one process_* function per transaction type (PROTOCOL §4).

Each rule check is one `if` in the contract's order; the first failure decides
the result. A rejected transaction changes nothing but the sender's nonce, and a
mint is all items or none: the processors that write before their last check
(WRITE_AS_THEY_CHECK) write into a scratch overlay kept only when the result is
`ok`; every other one makes all its checks before its first write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from contracts.codes import Code
from contracts.context import BlockContext, BlockOutcome, Result, accept, reject
from contracts.governance import apply_action, check_action
from contracts.helpers import (
    compute_approval_threshold,
    compute_calendar_date,
    compute_calendar_day,
    compute_eligible_at,
    compute_gifts_sent_on_day,
    compute_hold_days,
    get_account,
    get_active_sanction,
    get_collection,
    get_minted_count,
    get_params,
    get_role_members,
    get_token,
    has_role,
    is_authenticated,
    is_of_age,
    new_account,
)
from contracts.state import (
    Overlay,
    StateView,
    account_key,
    collection_key,
    minted_key,
    proposal_key,
    sanction_key,
    token_history_key,
    token_key,
)
from contracts.transactions import SignedTx

__all__ = [
    "BlockContext",
    "BlockOutcome",
    "Result",
    "StateInvariantError",
    "execute_block",
    "execute_tx",
    "check_tx",
    "process_register_account",
    "process_revoke_account",
    "process_create_collection",
    "process_mint",
    "process_gift",
    "process_sanction",
    "process_lift_sanction",
    "process_propose",
    "process_approve",
]


class StateInvariantError(RuntimeError):
    """The state contradicts itself (say, a token without its collection): a local fault that
    must stop the node, never a result to record."""


T = TypeVar("T")


def require(value: T | None, what: str) -> T:
    """`value`, which the state's own invariants guarantee to be present."""
    if value is None:
        raise StateInvariantError("state invariant broken: no %s" % what)
    return value


# Results are immutable, so every plain acceptance can be the same one.
_ACCEPTED = accept()
_OK = Code.OK.value


def _unauthorized(role: str) -> Result:
    return reject(Code.UNAUTHORIZED, "sender does not hold the %s role" % role)


def _with_token_count(account: dict[str, Any], change: int) -> dict[str, Any]:
    return {**account, "token_count": account["token_count"] + change}


# --- accounts ------------------------------------------------------------------------------------


def process_register_account(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    account_id = tx.body["account"]
    if not has_role(state, tx.sender, "kyc_authority"):
        return _unauthorized("kyc_authority")
    existing = get_account(state, account_id)
    # A role account from genesis or a revoked account exists but is not authenticated:
    # registering it authenticates it (keeping its nonce, roles and tokens).
    if is_authenticated(existing):
        return reject(Code.ACCOUNT_EXISTS, "account %s is already authenticated" % account_id)
    record = dict(existing or new_account())
    record.pop("revoke_reason", None)
    record.update(authenticated=True, birth_date=tx.body["birth_date"], kyc_ref=tx.body["kyc_ref"])
    state.put(account_key(account_id), record)
    return _ACCEPTED


def process_revoke_account(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    account_id = tx.body["account"]
    if not has_role(state, tx.sender, "kyc_authority"):
        return _unauthorized("kyc_authority")
    record = get_account(state, account_id)
    if record is None:
        return reject(Code.ACCOUNT_NOT_FOUND, "no account %s" % account_id)
    state.put(
        account_key(account_id),
        {**record, "authenticated": False, "revoke_reason": tx.body["reason"]},
    )
    return _ACCEPTED


# --- collections and tokens ----------------------------------------------------------------------


def process_create_collection(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    body = tx.body
    params = get_params(state)
    if not has_role(state, tx.sender, "issuer"):
        return _unauthorized("issuer")
    if get_collection(state, body["collection"]) is not None:
        return reject(Code.COLLECTION_EXISTS, "collection %s exists" % body["collection"])
    for name in ("first_hold_days", "later_hold_days"):
        # A collection may hold tokens longer than the chain asks, never shorter.
        if name in body and body[name] < params[name]:
            return reject(
                Code.INVALID_POLICY,
                "%s %d is below the chain's %d" % (name, body[name], params[name]),
            )
    state.put(collection_key(body["collection"]), {**body, "issuer": tx.sender, "minted": 0})
    return _ACCEPTED


def _mint_item_problem(
    state: Overlay,
    collection: dict[str, Any],
    item: dict[str, Any],
    ctx: BlockContext,
    params: dict[str, int],
    today: Any,
) -> tuple[Result | None, dict[str, Any] | None]:
    """The first rule a mint item fails, in PROTOCOL §4 order, and the recipient's account;
    earlier items are already written to `state`, so a serial repeated in the same mint reads
    as token_exists. `params` and `today` are the mint's (no item changes them)."""
    token_id = "%s:%d" % (collection["collection"], item["serial"])
    owner = get_account(state, item["owner"])
    if item["serial"] > collection["max_supply"]:
        return reject(
            Code.SERIAL_OUT_OF_RANGE,
            "serial %d is above max_supply %d" % (item["serial"], collection["max_supply"]),
        ), owner
    if get_token(state, token_id) is not None:
        return reject(Code.TOKEN_EXISTS, "token %s exists" % token_id), owner
    if not is_authenticated(owner):
        return reject(
            Code.RECIPIENT_NOT_AUTHENTICATED, "recipient %s is not authenticated" % item["owner"]
        ), owner
    owner = require(owner, "account of recipient %s" % item["owner"])
    if not is_of_age(owner, today, params["min_age_years"]):
        return reject(
            Code.RECIPIENT_UNDER_AGE, "recipient is under %d" % params["min_age_years"]
        ), owner
    if get_active_sanction(state, item["owner"], "purchase_ban", ctx.time_ms) is not None:
        return reject(
            Code.RECIPIENT_PURCHASE_BANNED, "recipient is banned from receiving mints"
        ), owner
    limit = collection.get("per_account_limit")
    if (
        limit is not None
        and get_minted_count(state, collection["collection"], item["owner"]) >= limit
    ):
        return reject(
            Code.PER_ACCOUNT_LIMIT,
            "recipient already received %d tokens of this collection" % limit,
        ), owner
    return None, owner


def process_mint(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    body = tx.body
    if not has_role(state, tx.sender, "issuer"):
        return _unauthorized("issuer")
    collection = get_collection(state, body["collection"])
    if collection is None:
        return reject(Code.COLLECTION_NOT_FOUND, "no collection %s" % body["collection"])
    if collection["issuer"] != tx.sender:
        return reject(
            Code.NOT_COLLECTION_ISSUER, "sender is not the issuer of %s" % body["collection"]
        )
    params = get_params(state)
    today = compute_calendar_date(ctx.time_ms, params["utc_offset_minutes"])
    put = state.put
    for index, item in enumerate(body["items"]):
        problem, account = _mint_item_problem(state, collection, item, ctx, params, today)
        if problem is not None:
            return Result(problem.code, "item %d: %s" % (index, problem.message))
        token_id = "%s:%d" % (body["collection"], item["serial"])
        owner = item["owner"]
        entry = {
            "owner": owner,
            "acquired_by": "mint",
            "at": ctx.time_ms,
            "height": ctx.height,
            "tx": tx.id,
        }
        put(
            token_key(token_id),
            {
                "owner": owner,
                "content_hash": item["content_hash"],
                "acquired_by": "mint",
                "held_since": ctx.time_ms,
                "history_length": 1,
            },
        )
        put(token_history_key(token_id, 0), entry)
        put(
            minted_key(body["collection"], owner),
            get_minted_count(state, body["collection"], owner) + 1,
        )
        # The token, history and minted writes above leave the account as the checks read it.
        put(account_key(owner), _with_token_count(account or new_account(), 1))
    state.put(
        collection_key(body["collection"]),
        {**collection, "minted": collection["minted"] + len(body["items"])},
    )
    return _ACCEPTED


def process_gift(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    token_id, recipient_id = tx.body["token"], tx.body["to"]
    params = get_params(state)
    today = compute_calendar_date(ctx.time_ms, params["utc_offset_minutes"])
    day = compute_calendar_day(ctx.time_ms, params["utc_offset_minutes"])
    token = get_token(state, token_id)
    recipient = get_account(state, recipient_id)
    if token is None:
        return reject(Code.TOKEN_NOT_FOUND, "no token %s" % token_id)
    # A token on record has the id a mint gave it, "<collection>:<serial>".
    collection_id = token_id.partition(":")[0]
    collection = require(get_collection(state, collection_id), "collection of token %s" % token_id)
    sender = require(get_account(state, tx.sender), "account of sender %s" % tx.sender)
    if token["owner"] != tx.sender:
        return reject(Code.NOT_OWNER, "sender does not own %s" % token_id)
    if not collection["transferable"]:
        return reject(
            Code.COLLECTION_NOT_TRANSFERABLE, "collection %s is not transferable" % collection_id
        )
    if recipient_id == tx.sender:
        return reject(Code.SELF_TRANSFER, "sender and recipient are the same account")
    if not is_authenticated(sender):
        return reject(Code.SENDER_NOT_AUTHENTICATED, "sender is not authenticated")
    if not is_authenticated(recipient):
        return reject(
            Code.RECIPIENT_NOT_AUTHENTICATED, "recipient %s is not authenticated" % recipient_id
        )
    recipient = require(recipient, "account of recipient %s" % recipient_id)
    if not is_of_age(sender, today, params["min_age_years"]):
        return reject(Code.SENDER_UNDER_AGE, "sender is under %d" % params["min_age_years"])
    if not is_of_age(recipient, today, params["min_age_years"]):
        return reject(Code.RECIPIENT_UNDER_AGE, "recipient is under %d" % params["min_age_years"])
    if get_active_sanction(state, tx.sender, "transfer_freeze", ctx.time_ms) is not None:
        return reject(Code.SENDER_FROZEN, "sender is under a transfer freeze")
    if get_active_sanction(state, recipient_id, "transfer_freeze", ctx.time_ms) is not None:
        return reject(Code.RECIPIENT_FROZEN, "recipient is under a transfer freeze")
    eligible_at = compute_eligible_at(
        token["held_since"], compute_hold_days(collection, token["acquired_by"], params)
    )
    if ctx.time_ms < eligible_at:
        return reject(Code.HOLDING_PERIOD, "token is held until %d" % eligible_at, eligible_at)
    sent_today = compute_gifts_sent_on_day(sender, day)
    if params["daily_gift_limit"] != 0 and sent_today >= params["daily_gift_limit"]:
        return reject(Code.DAILY_GIFT_LIMIT, "sender already sent %d gifts today" % sent_today)

    index = token["history_length"]
    state.put(
        token_key(token_id),
        {
            **token,
            "owner": recipient_id,
            "acquired_by": "gift",
            "held_since": ctx.time_ms,
            "history_length": index + 1,
        },
    )
    state.put(
        token_history_key(token_id, index),
        {
            "owner": recipient_id,
            "acquired_by": "gift",
            "at": ctx.time_ms,
            "height": ctx.height,
            "tx": tx.id,
        },
    )
    state.put(
        account_key(tx.sender),
        {
            **sender,
            "token_count": sender["token_count"] - 1,
            "gift_day": day,
            "gift_count": sent_today + 1,
        },
    )
    state.put(account_key(recipient_id), _with_token_count(recipient, 1))
    return _ACCEPTED


# --- sanctions -----------------------------------------------------------------------------------


def process_sanction(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    body = tx.body
    if not has_role(state, tx.sender, "compliance"):
        return _unauthorized("compliance")
    if get_account(state, body["account"]) is None:
        return reject(Code.ACCOUNT_NOT_FOUND, "no account %s" % body["account"])
    # Replaces any sanction of that kind on the account.
    state.put(
        sanction_key(body["account"], body["kind"]),
        {
            "kind": body["kind"],
            "reason": body["reason"],
            "until": body["until"],
            "since": ctx.time_ms,
            "tx": tx.id,
        },
    )
    return _ACCEPTED


def process_lift_sanction(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    body = tx.body
    if not has_role(state, tx.sender, "compliance"):
        return _unauthorized("compliance")
    if get_active_sanction(state, body["account"], body["kind"], ctx.time_ms) is None:
        return reject(Code.NO_SUCH_SANCTION, "no active %s on %s" % (body["kind"], body["account"]))
    state.delete(sanction_key(body["account"], body["kind"]))
    return _ACCEPTED


# --- governance ----------------------------------------------------------------------------------


def _record_approval(
    state: Overlay, proposal_id: str, proposal: dict[str, Any], ctx: BlockContext
) -> Result:
    """Store the proposal; run its action once current governors' approvals reach the threshold."""
    governors = set(get_role_members(state, "governor"))
    approvals = len(governors.intersection(proposal["approvals"]))
    threshold = compute_approval_threshold(len(governors))
    if approvals >= threshold:
        problem = check_action(state, proposal["action"], proposal["args"])
        if problem is not None:
            return problem
        apply_action(state, proposal["action"], proposal["args"], ctx)
        proposal = {**proposal, "executed": True, "executed_height": ctx.height}
    state.put(proposal_key(proposal_id), proposal)
    if proposal["executed"]:
        return accept("proposal executed")
    return accept("%d of %d approvals" % (approvals, threshold))


def process_propose(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    action, args = tx.body["action"], tx.body["args"]
    if not has_role(state, tx.sender, "governor"):
        return _unauthorized("governor")
    problem = check_action(state, action, args)
    if problem is not None:
        return problem
    proposal = {
        "action": action,
        "args": args,
        "proposer": tx.sender,
        "approvals": [tx.sender],
        "height": ctx.height,
        "executed": False,
    }
    return _record_approval(state, tx.id, proposal, ctx)


def process_approve(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    proposal_id = tx.body["proposal"]
    if not has_role(state, tx.sender, "governor"):
        return _unauthorized("governor")
    proposal = state.get(proposal_key(proposal_id))
    if proposal is None:
        return reject(Code.PROPOSAL_NOT_FOUND, "no proposal %s" % proposal_id)
    if tx.sender in proposal["approvals"]:
        return reject(Code.ALREADY_APPROVED, "sender already approved this proposal")
    if proposal["executed"]:
        return reject(
            Code.PROPOSAL_EXECUTED,
            "proposal was executed at height %d" % proposal["executed_height"],
        )
    approvals = sorted(set(proposal["approvals"]) | {tx.sender})
    return _record_approval(state, proposal_id, {**proposal, "approvals": approvals}, ctx)


# --- driving a block -----------------------------------------------------------------------------

PROCESSORS: dict[str, Callable[[Overlay, SignedTx, BlockContext], Result]] = {
    "register_account": process_register_account,
    "revoke_account": process_revoke_account,
    "create_collection": process_create_collection,
    "mint": process_mint,
    "gift": process_gift,
    "sanction": process_sanction,
    "lift_sanction": process_lift_sanction,
    "propose": process_propose,
    "approve": process_approve,
}


# The processors that write while they still check (a mint writes item after item, an
# approval runs the proposal's action) work on a scratch overlay, kept only when accepted.
# Every other processor makes all its checks before its first write, so it writes
# straight into the block's state: a gift is most of the chain's work.
WRITE_AS_THEY_CHECK = frozenset(("mint", "propose", "approve"))


def execute_tx(state: Overlay, tx: SignedTx, ctx: BlockContext) -> Result:
    """Execute one transaction into `state`. A sender that does not exist has no nonce to
    match, so it gets bad_nonce too; bad_nonce changes nothing at all."""
    sender = get_account(state, tx.sender)
    if sender is None or sender["nonce"] != tx.nonce:
        expected = "no such account" if sender is None else "account nonce is %d" % sender["nonce"]
        return reject(Code.BAD_NONCE, "nonce %d does not match: %s" % (tx.nonce, expected))
    if tx.type in WRITE_AS_THEY_CHECK:
        scratch = Overlay(state)
        result = PROCESSORS[tx.type](scratch, tx, ctx)
        if result.code == _OK:
            state.merge(scratch.writes)
    else:
        result = PROCESSORS[tx.type](state, tx, ctx)
    # Every included transaction whose nonce matches consumes it, whatever its result.
    sender = require(get_account(state, tx.sender), "account of sender %s" % tx.sender)
    state.put(account_key(tx.sender), {**sender, "nonce": tx.nonce + 1})
    return result


def execute_block(view: StateView, txs: list[SignedTx], ctx: BlockContext) -> BlockOutcome:
    """Execute `txs` in order on a read-only view; return the write set and one result per tx.
    The transactions must have passed check_admission_static (chain and signature)."""
    state = Overlay(view)
    results = [execute_tx(state, tx, ctx) for tx in txs]
    return BlockOutcome(writes=state.writes, results=results)


def check_tx(view: StateView, tx: SignedTx, ctx: BlockContext) -> Result:
    """Dry run: the result `tx` would get if it executed now on `view`; nothing is written."""
    return execute_tx(Overlay(view), tx, ctx)
