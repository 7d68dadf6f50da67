"""Result codes of executed transactions (PROTOCOL §4).

Each code has a stable number, listed in check order within its group; never
renumber or reuse one. The string value is the protocol code that appears in
results, RPC answers and result roots.
"""

from __future__ import annotations

from enum import Enum


class Code(str, Enum):
    number: int

    def __new__(cls, number: int, text: str) -> Code:
        member = str.__new__(cls, text)
        member._value_ = text
        member.number = number
        return member

    OK = (0, "ok")
    # Checked before anything else, for every type.
    BAD_NONCE = (1, "bad_nonce")
    UNAUTHORIZED = (2, "unauthorized")

    # gift, in the order of PROTOCOL §4.
    TOKEN_NOT_FOUND = (10, "token_not_found")
    NOT_OWNER = (11, "not_owner")
    COLLECTION_NOT_TRANSFERABLE = (12, "collection_not_transferable")
    SELF_TRANSFER = (13, "self_transfer")
    SENDER_NOT_AUTHENTICATED = (14, "sender_not_authenticated")
    RECIPIENT_NOT_AUTHENTICATED = (15, "recipient_not_authenticated")
    SENDER_UNDER_AGE = (16, "sender_under_age")
    RECIPIENT_UNDER_AGE = (17, "recipient_under_age")
    SENDER_FROZEN = (18, "sender_frozen")
    RECIPIENT_FROZEN = (19, "recipient_frozen")
    HOLDING_PERIOD = (20, "holding_period")
    DAILY_GIFT_LIMIT = (21, "daily_gift_limit")

    # mint, in the order of PROTOCOL §4 (recipient_not_authenticated and
    # recipient_under_age are shared with gift and keep their numbers).
    COLLECTION_NOT_FOUND = (30, "collection_not_found")
    NOT_COLLECTION_ISSUER = (31, "not_collection_issuer")
    SERIAL_OUT_OF_RANGE = (32, "serial_out_of_range")
    TOKEN_EXISTS = (33, "token_exists")
    RECIPIENT_PURCHASE_BANNED = (34, "recipient_purchase_banned")
    PER_ACCOUNT_LIMIT = (35, "per_account_limit")

    # Accounts, collections and sanctions.
    ACCOUNT_EXISTS = (40, "account_exists")
    ACCOUNT_NOT_FOUND = (41, "account_not_found")
    COLLECTION_EXISTS = (42, "collection_exists")
    INVALID_POLICY = (43, "invalid_policy")
    NO_SUCH_SANCTION = (44, "no_such_sanction")

    # Governance.
    PROPOSAL_NOT_FOUND = (50, "proposal_not_found")
    ALREADY_APPROVED = (51, "already_approved")
    PROPOSAL_EXECUTED = (52, "proposal_executed")
    INVALID_PARAMS = (53, "invalid_params")
    INVALID_ACTION = (54, "invalid_action")


def code_by_number(number: int) -> Code:
    for code in Code:
        if code.number == number:
            return code
    raise KeyError(number)
