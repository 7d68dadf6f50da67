"""Signed transactions: strict schema, signing payload, id and signature (PROTOCOL §1–§2, §4).

Everything here is judged without state: a transaction that fails these checks
is refused at admission (`malformed`, `too_large`, `wrong_chain`,
`bad_signature`) and can never reach the rules.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from primitives.crypto import SigningKey, is_account_id, is_hex, sha256_hex, verify
from primitives.encoding import (
    EncodingError,
    canonical_bytes,
    canonical_form,
    check_value,
    decode_canonical,
    pack_form,
)

MAX_TX_BYTES = 16384
SIGNING_DOMAIN = b"yuxi-tx-v1\n"
MAX_MINT_ITEMS = 1000
MAX_SUPPLY_LIMIT = 10_000_000
MAX_TEXT_CHARS = 256
MAX_NAME_CHARS = 128
# Hold days above a century are surely mistakes; the bound keeps eligible_at far from overflow.
MAX_HOLD_DAYS = 36_500
MAX_ACTION_CHARS = 64

TX_TYPES = (
    "register_account",
    "revoke_account",
    "create_collection",
    "mint",
    "gift",
    "sanction",
    "lift_sanction",
    "propose",
    "approve",
)
SANCTION_KINDS = ("transfer_freeze", "purchase_ban")
TOP_LEVEL_FIELDS = frozenset({"chain_id", "type", "sender", "nonce", "body"})

_COLLECTION_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
_CHAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BIRTH_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SERIAL = re.compile(r"[1-9][0-9]{0,7}")
MAX_INT = 2**63 - 1


class TxError(ValueError):
    """A transaction refused before any rule runs; `code` is the admission error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


def _malformed(message: str) -> TxError:
    return TxError("malformed", message)


# --- field checks: each returns None when the value is fine, else what is wrong -------------

Check = Callable[[Any], "str | None"]


def is_int(value: object) -> bool:
    """An integer that is not a bool (True would otherwise pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_in(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if not is_int(value):
            return "expected an integer"
        if not low <= value <= high:
            return "expected an integer in %d..%d, got %d" % (low, high, value)
        return None

    return check


def text_of(min_chars: int, max_chars: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "expected a string"
        if not min_chars <= len(value) <= max_chars:
            return "expected %d..%d characters, got %d" % (min_chars, max_chars, len(value))
        return None

    return check


def check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def check_account(value: Any) -> str | None:
    return None if is_account_id(value) else "expected an account id (64 lowercase hex characters)"


def check_hash(value: Any) -> str | None:
    return None if is_hex(value, 32) else "expected a hash (64 lowercase hex characters)"


def is_collection_id(value: object) -> bool:
    return isinstance(value, str) and _COLLECTION_ID.fullmatch(value) is not None


def check_collection_id(value: Any) -> str | None:
    if is_collection_id(value):
        return None
    return "expected a collection id: 3..64 of a-z, 0-9 and '-', not starting with '-'"


def split_token_id(value: object) -> tuple[str, int] | None:
    """(collection, serial) of a token id "<collection>:<serial>", or None when malformed."""
    if not isinstance(value, str) or value.count(":") != 1:
        return None
    collection, serial = value.split(":")
    if not is_collection_id(collection) or _SERIAL.fullmatch(serial) is None:
        return None
    number = int(serial)
    if number > MAX_SUPPLY_LIMIT:
        return None
    return collection, number


def check_token_id(value: Any) -> str | None:
    if split_token_id(value) is not None:
        return None
    return 'expected a token id "<collection>:<serial>" with serial 1..%d, no leading zeros' % (
        MAX_SUPPLY_LIMIT
    )


def parse_birth_date(value: object) -> datetime.date | None:
    """The date of a "YYYY-MM-DD" string that names a real calendar day, else None."""
    if not isinstance(value, str) or _BIRTH_DATE.fullmatch(value) is None:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


def check_birth_date(value: Any) -> str | None:
    if parse_birth_date(value) is not None:
        return None
    return 'expected a real calendar date "YYYY-MM-DD"'


def check_kind(value: Any) -> str | None:
    if value in SANCTION_KINDS and isinstance(value, str):
        return None
    return "expected one of %s" % ", ".join(SANCTION_KINDS)


def check_map(value: Any) -> str | None:
    return None if isinstance(value, dict) else "expected a map"


def is_chain_id(value: object) -> bool:
    return isinstance(value, str) and _CHAIN_ID.fullmatch(value) is not None


_ITEM_FIELDS: dict[str, Check] = {
    "serial": int_in(1, MAX_SUPPLY_LIMIT),
    "owner": check_account,
    "content_hash": check_hash,
}


def check_items(value: Any) -> str | None:
    if not isinstance(value, list):
        return "expected a list of items"
    if not 1 <= len(value) <= MAX_MINT_ITEMS:
        return "expected 1..%d items, got %d" % (MAX_MINT_ITEMS, len(value))
    for index, item in enumerate(value):
        problem = check_fields(item, _ITEM_FIELDS, frozenset())
        if problem is not None:
            return "item %d: %s" % (index, problem)
    return None


# Body schemas: field -> check, and which fields may be left out.
BODY_SCHEMAS: dict[str, tuple[dict[str, Check], frozenset[str]]] = {
    "register_account": (
        {"account": check_account, "birth_date": check_birth_date, "kyc_ref": check_hash},
        frozenset(),
    ),
    "revoke_account": (
        {"account": check_account, "reason": text_of(1, MAX_TEXT_CHARS)},
        frozenset(),
    ),
    "create_collection": (
        {
            "collection": check_collection_id,
            "name": text_of(1, MAX_NAME_CHARS),
            "max_supply": int_in(1, MAX_SUPPLY_LIMIT),
            "transferable": check_bool,
            "first_hold_days": int_in(0, MAX_HOLD_DAYS),
            "later_hold_days": int_in(0, MAX_HOLD_DAYS),
            "per_account_limit": int_in(1, MAX_SUPPLY_LIMIT),
            "metadata_uri": text_of(0, MAX_TEXT_CHARS),
        },
        frozenset({"first_hold_days", "later_hold_days", "per_account_limit", "metadata_uri"}),
    ),
    "mint": ({"collection": check_collection_id, "items": check_items}, frozenset()),
    "gift": ({"token": check_token_id, "to": check_account}, frozenset()),
    "sanction": (
        {
            "account": check_account,
            "kind": check_kind,
            "reason": text_of(1, MAX_TEXT_CHARS),
            "until": int_in(0, MAX_INT),
        },
        frozenset(),
    ),
    "lift_sanction": ({"account": check_account, "kind": check_kind}, frozenset()),
    # The action and its arguments are judged by the rules (invalid_action, invalid_params).
    "propose": ({"action": text_of(1, MAX_ACTION_CHARS), "args": check_map}, frozenset()),
    "approve": ({"proposal": check_hash}, frozenset()),
}


def check_fields(value: Any, fields: dict[str, Check], optional: frozenset[str]) -> str | None:
    """What is wrong with a map against a schema (exact field set, each field's check)."""
    if not isinstance(value, dict):
        return "expected a map"
    if not value.keys() <= fields.keys():
        unknown = sorted(set(value) - set(fields))
        return "unknown field %r" % unknown[0]
    for name, check in fields.items():
        if name not in value:
            if name in optional:
                continue
            return "missing field %r" % name
        problem = check(value[name])
        if problem is not None:
            return "%s: %s" % (name, problem)
    return None


# --- the signed transaction -------------------------------------------------------------------


# Not frozen, though never changed once made: a frozen dataclass pays some 1.2 us a
# construction (nine object.__setattr__ calls), and every transaction is built more than
# once on its way through a node or an auditor.
@dataclass(slots=True)
class SignedTx:
    chain_id: str
    type: str
    sender: str
    nonce: int
    body: dict[str, Any]
    signature: str | None
    id: str
    encoded: bytes

    def __hash__(self) -> int:
        # The body is a dict, so hash by the id, which commits to everything but the signature.
        return hash(self.id)

    @property
    def payload(self) -> bytes:
        """The signing payload, cut from the canonical bytes rather than kept: it is needed
        once, for the signature check, and a mint's is 13 KB, held by every mempool."""
        payload = _payload_from_encoded(self.encoded, self.signature is not None)
        return payload if payload is not None else signing_payload(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The signed transaction object of PROTOCOL §2 (without `signature` when unsigned)."""
        value: dict[str, Any] = {
            "chain_id": self.chain_id,
            "type": self.type,
            "sender": self.sender,
            "nonce": self.nonce,
            "body": self.body,
        }
        if self.signature is not None:
            value["signature"] = self.signature
        return value


# A signed transaction's canonical bytes are a map of six entries (a map of five unsigned)
# whose keys sort body, chain_id, nonce, sender, signature, type: the signature's entry,
# its key and then a str of 128 hex digits, is the last but one. From its start on, only
# those digits and the entry of `type` follow, which cannot hold the entry's first bytes.
_SIGNED_MAP, _UNSIGNED_MAP = b"\x86", b"\x85"
_SIGNATURE_ENTRY = b"\xa9signature\xd9\x80"
_SIGNATURE_ENTRY_BYTES = len(_SIGNATURE_ENTRY) + 128


def _payload_from_encoded(encoded: bytes, signed: bool) -> bytes | None:
    """signing_payload of the transaction whose canonical bytes are `encoded`, by cutting out
    the signature's entry; None for bytes not of that shape (the audit leaves them empty)."""
    if not signed:
        return SIGNING_DOMAIN + encoded if encoded else None
    at = encoded.rfind(_SIGNATURE_ENTRY)
    if at < 0 or encoded[:1] != _SIGNED_MAP:
        return None
    return SIGNING_DOMAIN + _UNSIGNED_MAP + encoded[1:at] + encoded[at + _SIGNATURE_ENTRY_BYTES :]


def unsigned_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "signature"}


def signing_payload(obj: dict[str, Any]) -> bytes:
    """b"yuxi-tx-v1\\n" + canonical bytes of the transaction without its signature."""
    return SIGNING_DOMAIN + canonical_bytes(unsigned_part(obj))


def compute_tx_id(obj: dict[str, Any]) -> str:
    """SHA-256 of the signing payload: the signature is not part of the id."""
    return sha256_hex(signing_payload(obj))


def sign_tx(unsigned: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """A copy of the transaction with the sender's signature added."""
    signed = unsigned_part(unsigned)
    signed["signature"] = key.sign(signing_payload(signed))
    return signed


def verify_tx_signature(tx: SignedTx) -> bool:
    return tx.signature is not None and verify(tx.sender, tx.payload, tx.signature)


_SIGNED_FIELDS = TOP_LEVEL_FIELDS | {"signature"}
_check_nonce = int_in(0, MAX_INT)


def parse_tx(obj: Any, *, require_signature: bool = True) -> SignedTx:
    """Strictly check a decoded transaction object; raise TxError naming the first problem."""
    if not isinstance(obj, dict):
        raise _malformed("a transaction is a map")
    try:
        form = canonical_form(obj)
    except EncodingError as exc:
        # check_value walks fields in their given order: its message names the problem
        # that has always been reported first.
        try:
            check_value(obj)
        except EncodingError as first:
            raise _malformed(str(first)) from None
        raise _malformed(str(exc)) from None
    return _parse_form(obj, form, pack_form(form), require_signature)


def _parse_form(
    obj: dict[str, Any], form: Any, encoded: bytes, require_signature: bool
) -> SignedTx:
    """parse_tx once `form` is obj's canonical form and `encoded` its bytes."""
    if len(encoded) > MAX_TX_BYTES:
        raise TxError(
            "too_large",
            "encoded transaction is %d bytes, at most %d" % (len(encoded), MAX_TX_BYTES),
        )
    fields = obj.keys()
    if not fields <= _SIGNED_FIELDS:
        unknown = sorted(set(obj) - _SIGNED_FIELDS)
        raise _malformed("unknown field %r" % unknown[0])
    if not fields >= TOP_LEVEL_FIELDS:
        for name in ("chain_id", "type", "sender", "nonce", "body"):
            if name not in obj:
                raise _malformed("missing field %r" % name)
    if not is_chain_id(obj["chain_id"]):
        raise _malformed("chain_id: expected 1..64 of A-Z, a-z, 0-9, '.', '_' and '-'")
    if obj["type"] not in TX_TYPES or not isinstance(obj["type"], str):
        raise _malformed("type: unknown transaction type %r" % (obj["type"],))
    problem = check_account(obj["sender"])
    if problem is not None:
        raise _malformed("sender: %s" % problem)
    problem = _check_nonce(obj["nonce"])
    if problem is not None:
        raise _malformed("nonce: %s" % problem)
    body_fields, optional = BODY_SCHEMAS[obj["type"]]
    problem = check_fields(obj["body"], body_fields, optional)
    if problem is not None:
        raise _malformed("body: %s" % problem)
    signature = obj.get("signature")
    if signature is None and require_signature:
        raise _malformed("missing field 'signature'")
    if signature is not None and not is_hex(signature, 64):
        raise _malformed("signature: expected 128 lowercase hex characters")
    # Checked above, the bytes have the shape _payload_from_encoded cuts: no second walk.
    payload = _payload_from_encoded(encoded, signature is not None) or signing_payload(obj)
    return SignedTx(
        chain_id=obj["chain_id"],
        type=obj["type"],
        sender=obj["sender"],
        nonce=obj["nonce"],
        body=obj["body"],
        signature=signature,
        id=sha256_hex(payload),
        encoded=encoded,
    )


def decode_tx(data: bytes) -> SignedTx:
    """Strict canonical decode of a signed transaction, then parse_tx."""
    if isinstance(data, (bytes, bytearray)) and len(data) > MAX_TX_BYTES:
        raise TxError(
            "too_large", "encoded transaction is %d bytes, at most %d" % (len(data), MAX_TX_BYTES)
        )
    try:
        obj = decode_canonical(data, max_bytes=MAX_TX_BYTES)
    except EncodingError as exc:
        raise _malformed(str(exc)) from None
    if not isinstance(obj, dict):
        raise _malformed("a transaction is a map")
    # Strictly decoded, obj is its own canonical form (its maps in key order, as in the
    # bytes) and the bytes are its encoding: no second canonical walk.
    return _parse_form(obj, obj, bytes(data), True)


def check_admission_static(tx: SignedTx, chain_id: str) -> None:
    """The admission checks that need no state: the chain, then the signature."""
    if tx.chain_id != chain_id:
        raise TxError(
            "wrong_chain", "transaction is for chain %r, this is %r" % (tx.chain_id, chain_id)
        )
    if not verify_tx_signature(tx):
        raise TxError("bad_signature", "signature does not verify for sender %s" % tx.sender)
