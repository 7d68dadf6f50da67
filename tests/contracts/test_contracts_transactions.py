"""Strict transaction decoding, schemas, ids and signatures (PROTOCOL §1–§2, §4)."""

from __future__ import annotations

import copy
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_harness import CHAIN_ID, HASH_A, key

from contracts.transactions import (
    MAX_TX_BYTES,
    TxError,
    check_admission_static,
    check_items,
    compute_tx_id,
    decode_tx,
    parse_tx,
    sign_tx,
    signing_payload,
    verify_tx_signature,
)
from primitives.crypto import sha256_hex
from primitives.encoding import canonical_bytes

ALICE = key("alice")
BOB = key("bob")

VALID_BODIES: dict[str, dict[str, Any]] = {
    "register_account": {"account": BOB.public_key, "birth_date": "2008-02-29", "kyc_ref": HASH_A},
    "revoke_account": {"account": BOB.public_key, "reason": "r"},
    "create_collection": {
        "collection": "moon-rabbit",
        "name": "Moon",
        "max_supply": 10_000_000,
        "transferable": False,
        "first_hold_days": 200,
        "later_hold_days": 800,
        "per_account_limit": 1,
        "metadata_uri": "",
    },
    "mint": {
        "collection": "abc",
        "items": [{"serial": 1, "owner": BOB.public_key, "content_hash": HASH_A}],
    },
    "gift": {"token": "moon-rabbit:42", "to": BOB.public_key},
    "sanction": {
        "account": BOB.public_key,
        "kind": "purchase_ban",
        "reason": "x" * 256,
        "until": 0,
    },
    "lift_sanction": {"account": BOB.public_key, "kind": "transfer_freeze"},
    "propose": {"action": "anything", "args": {"nested": {"x": [1, True]}}},
    "approve": {"proposal": HASH_A},
}


def unsigned(
    tx_type: str = "gift", body: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    value = {
        "chain_id": CHAIN_ID,
        "type": tx_type,
        "sender": ALICE.public_key,
        "nonce": 7,
        "body": copy.deepcopy(VALID_BODIES[tx_type]) if body is None else body,
    }
    value.update(fields)
    return value


def signed(
    tx_type: str = "gift", body: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return sign_tx(unsigned(tx_type, body, **fields), ALICE)


@pytest.mark.parametrize("tx_type", sorted(VALID_BODIES))
def test_every_type_parses_and_round_trips(tx_type: str) -> None:
    """A valid transaction of each type parses, and decoding its bytes gives back the same bytes."""
    tx = parse_tx(signed(tx_type))
    assert tx.type == tx_type
    assert canonical_bytes(tx.to_dict()) == tx.encoded
    again = decode_tx(tx.encoded)
    assert again == tx
    assert canonical_bytes(again.to_dict()) == tx.encoded


def test_id_and_signature_follow_the_protocol() -> None:
    """The id is SHA-256 of b"yuxi-tx-v1\\n" + canonical bytes without the signature."""
    obj = signed()
    tx = parse_tx(obj)
    expected_payload = b"yuxi-tx-v1\n" + canonical_bytes(unsigned())
    assert tx.payload == expected_payload == signing_payload(obj)
    assert tx.id == sha256_hex(expected_payload) == compute_tx_id(obj) == compute_tx_id(unsigned())
    assert verify_tx_signature(tx)
    check_admission_static(tx, CHAIN_ID)


# The UTF-8 of "©signatureـ" holds the bytes that start the signature's entry in a
# transaction's encoding, from which SignedTx.payload cuts that entry out.
LOOKALIKE = "\u00a9signature\u0640"


@pytest.mark.parametrize("tx_type", sorted(VALID_BODIES))
def test_the_payload_cut_from_the_bytes_is_the_signing_payload(tx_type: str) -> None:
    obj = signed(tx_type)
    for tx in (parse_tx(obj), decode_tx(parse_tx(obj).encoded)):
        assert tx.payload == signing_payload(obj)
    unsigned_tx = parse_tx(unsigned(tx_type), require_signature=False)
    assert unsigned_tx.payload == signing_payload(unsigned(tx_type))


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.just(LOOKALIKE), st.text(max_size=200)))
def test_no_string_in_the_body_moves_the_cut(text: str) -> None:
    obj = signed("propose", {"action": "a", "args": {text: [text, LOOKALIKE + text]}})
    tx = parse_tx(obj)
    assert tx.payload == signing_payload(obj)
    assert verify_tx_signature(tx)
    assert tx.id == compute_tx_id(obj)


def test_a_transaction_rebuilt_without_its_bytes_has_its_payload() -> None:
    """The audit rebuilds transactions without their encoding: the payload is then packed."""
    tx = parse_tx(signed("mint"))
    rebuilt = copy.copy(tx)
    rebuilt.encoded = b""
    assert rebuilt.payload == tx.payload
    assert verify_tx_signature(rebuilt)


def test_admission_refuses_wrong_chain_then_bad_signature() -> None:
    """wrong_chain is judged before the signature; a signature by another key is bad_signature."""
    tx = parse_tx(signed())
    with pytest.raises(TxError) as caught:
        check_admission_static(tx, "other-chain")
    assert caught.value.code == "wrong_chain"
    forged = sign_tx(unsigned(), BOB)
    with pytest.raises(TxError) as caught:
        check_admission_static(parse_tx(forged), CHAIN_ID)
    assert caught.value.code == "bad_signature"
    tampered = dict(signed(), nonce=8)
    with pytest.raises(TxError) as caught:
        check_admission_static(parse_tx(tampered), CHAIN_ID)
    assert caught.value.code == "bad_signature"


def test_signature_optional_only_when_asked() -> None:
    """A transaction to /check may come unsigned; elsewhere a missing signature is malformed."""
    assert parse_tx(unsigned(), require_signature=False).signature is None
    with pytest.raises(TxError) as caught:
        parse_tx(unsigned())
    assert caught.value.code == "malformed"


def _with(path: tuple[str | int, ...], value: Any, drop: bool = False) -> dict[str, Any]:
    obj: Any = unsigned(path[1] if path[0] == "@type" else "gift")
    if path[0] == "@type":
        path = path[2:]
    target = obj
    for step in path[:-1]:
        target = target[step]
    if drop:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    try:
        return sign_tx(obj, ALICE)
    except ValueError:
        # Values that cannot even be encoded cannot be signed: any well-formed signature will do.
        return dict(obj, signature="00" * 64)


MALFORMED_CASES = [
    ("unknown top-level field", ("extra",), 1),
    ("unknown body field", ("body", "price"), 1),
    ("missing body field", ("body", "to"), None),
    ("nonce is a bool", ("nonce",), True),
    ("nonce is a string", ("nonce",), "7"),
    ("nonce too big", ("nonce",), 2**63),
    ("negative nonce", ("nonce",), -1),
    ("float nonce", ("nonce",), 7.0),
    ("nil field", ("body", "to"), None),
    ("bytes field", ("body", "to"), b"\x01" * 32),
    ("uppercase hex sender", ("sender",), ALICE.public_key.upper()),
    ("short sender", ("sender",), ALICE.public_key[:-2]),
    ("unknown type", ("type",), "burn"),
    ("empty chain id", ("chain_id",), ""),
    ("body not a map", ("body",), []),
    ("token without serial", ("body", "token"), "moon-rabbit"),
    ("token serial zero", ("body", "token"), "moon-rabbit:0"),
    ("token serial leading zero", ("body", "token"), "moon-rabbit:042"),
    ("token serial above ten million", ("body", "token"), "moon-rabbit:10000001"),
    ("token bad collection", ("body", "token"), "Moon:1"),
    ("token two colons", ("body", "token"), "moon-rabbit:1:2"),
    ("collection id too short", ("@type", "mint", "body", "collection"), "ab"),
    ("collection id leading dash", ("@type", "mint", "body", "collection"), "-abc"),
    ("collection id too long", ("@type", "mint", "body", "collection"), "a" * 65),
    ("no mint items", ("@type", "mint", "body", "items"), []),
    (
        "mint item extra field",
        ("@type", "mint", "body", "items"),
        [{"serial": 1, "owner": BOB.public_key, "content_hash": HASH_A, "x": 1}],
    ),
    (
        "mint serial zero",
        ("@type", "mint", "body", "items"),
        [{"serial": 0, "owner": BOB.public_key, "content_hash": HASH_A}],
    ),
    (
        "mint serial bool",
        ("@type", "mint", "body", "items"),
        [{"serial": True, "owner": BOB.public_key, "content_hash": HASH_A}],
    ),
    ("birth date not a date", ("@type", "register_account", "body", "birth_date"), "2007-02-29"),
    ("birth date wrong format", ("@type", "register_account", "body", "birth_date"), "2000-1-01"),
    (
        "birth date with time",
        ("@type", "register_account", "body", "birth_date"),
        "2000-01-01T00:00",
    ),
    ("kyc_ref short", ("@type", "register_account", "body", "kyc_ref"), "ab"),
    ("empty reason", ("@type", "revoke_account", "body", "reason"), ""),
    ("reason too long", ("@type", "revoke_account", "body", "reason"), "x" * 257),
    ("unknown sanction kind", ("@type", "sanction", "body", "kind"), "ban"),
    ("until as string", ("@type", "sanction", "body", "until"), "0"),
    ("max_supply zero", ("@type", "create_collection", "body", "max_supply"), 0),
    ("max_supply too big", ("@type", "create_collection", "body", "max_supply"), 10_000_001),
    ("transferable as int", ("@type", "create_collection", "body", "transferable"), 1),
    ("name too long", ("@type", "create_collection", "body", "name"), "n" * 129),
    ("per_account_limit zero", ("@type", "create_collection", "body", "per_account_limit"), 0),
    ("metadata_uri too long", ("@type", "create_collection", "body", "metadata_uri"), "u" * 257),
    ("propose args not a map", ("@type", "propose", "body", "args"), []),
    ("propose empty action", ("@type", "propose", "body", "action"), ""),
    ("approve short proposal", ("@type", "approve", "body", "proposal"), "ab"),
]


@pytest.mark.parametrize(
    "name,path,value", MALFORMED_CASES, ids=[case[0] for case in MALFORMED_CASES]
)
def test_malformed_transactions_are_refused(name: str, path: tuple[Any, ...], value: Any) -> None:
    """Each schema violation is `malformed`, with a message naming the problem."""
    obj = _with(path, value, drop=name.startswith("missing"))
    with pytest.raises(TxError) as caught:
        parse_tx(obj)
    assert caught.value.code == "malformed", caught.value
    assert caught.value.message


def test_mint_item_count_is_bounded() -> None:
    """A mint carries 1..1000 items (in practice the 16 KiB limit is reached first)."""
    item = {"serial": 1, "owner": BOB.public_key, "content_hash": HASH_A}
    assert check_items([item] * 1000) is None
    assert check_items([item] * 1001) is not None
    assert check_items([]) is not None


def test_missing_top_level_fields_are_malformed() -> None:
    """Each of the five required top-level fields must be present."""
    for name in ("chain_id", "type", "sender", "nonce", "body"):
        obj = signed()
        del obj[name]
        with pytest.raises(TxError) as caught:
            parse_tx(obj)
        assert caught.value.code == "malformed" and name in caught.value.message


def test_bad_signature_format_is_malformed() -> None:
    """A signature that is not 128 lowercase hex characters is malformed, not bad_signature."""
    with pytest.raises(TxError) as caught:
        parse_tx(dict(signed(), signature="AB" * 64))
    assert caught.value.code == "malformed"


def test_size_limit_boundary() -> None:
    """An encoded transaction of exactly 16 KiB passes; one byte more is too_large."""
    base = signed("propose", {"action": "a", "args": {"pad": ""}})
    overhead = len(canonical_bytes(base)) - len(canonical_bytes(""))
    # A str of n>=256 characters takes 3 (str16) header bytes; pick n to hit the limit exactly.
    pad_chars = MAX_TX_BYTES - overhead - 3
    at_limit = dict(base, body={"action": "a", "args": {"pad": "x" * pad_chars}})
    assert len(canonical_bytes(at_limit)) == MAX_TX_BYTES
    assert parse_tx(at_limit).encoded == canonical_bytes(at_limit)
    over = dict(base, body={"action": "a", "args": {"pad": "x" * (pad_chars + 1)}})
    with pytest.raises(TxError) as caught:
        parse_tx(over)
    assert caught.value.code == "too_large"
    with pytest.raises(TxError) as caught:
        decode_tx(canonical_bytes(over))
    assert caught.value.code == "too_large"


def _raw(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def test_non_canonical_bytes_are_malformed() -> None:
    """Longer int/str forms, unsorted or duplicate keys, nil, floats, bin, extra bytes: refused."""
    obj = signed()
    good = canonical_bytes(obj)
    assert decode_tx(good).encoded == good
    nonce_index = good.index(b"\xa5nonce") + len(b"\xa5nonce")
    assert good[nonce_index] == 7
    longer_int = good[:nonce_index] + b"\xcc\x07" + good[nonce_index + 1 :]
    type_index = good.index(b"\xa4type") + len(b"\xa4type")
    longer_str = good[:type_index] + b"\xd9\x04gift" + good[type_index + 5 :]
    assert good[type_index : type_index + 5] == b"\xa4gift"
    unsorted = _raw(dict(reversed(list(obj.items()))))
    # A duplicate "chain_id" key: msgpack keeps the last, so re-encoding cannot match.
    items = sorted(obj.items())
    duplicate = bytes([0x80 | (len(items) + 1)]) + b"".join(
        _raw(k) + _raw(v) for k, v in items[:1] + items
    )
    cases = {
        "longer int form": longer_int,
        "longer str form": longer_str,
        "unsorted keys": unsorted,
        "duplicate key": duplicate,
        "nil": _raw(dict(obj, nonce=None)),
        "float": _raw(dict(obj, nonce=7.0)),
        "bin": _raw(dict(obj, signature=bytes(64))),
        "trailing bytes": good + b"\x00",
        "truncated": good[:-1],
        "not a map": _raw([1, 2]),
        "empty": b"",
    }
    for name, data in cases.items():
        with pytest.raises(TxError) as caught:
            decode_tx(data)
        assert caught.value.code == "malformed", name


def test_parse_tx_refuses_json_values_that_are_not_canonical() -> None:
    """Objects from JSON with floats, nulls, negative numbers or non-map input are malformed."""
    for bad in (None, [], "tx", dict(signed(), nonce=1.5), dict(signed(), body=None)):
        with pytest.raises(TxError) as caught:
            parse_tx(bad)
        assert caught.value.code == "malformed"
