"""Canonical encoding, hashing and signatures behave exactly as PROTOCOL §1 says."""

from __future__ import annotations

import hashlib
import re

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from primitives.crypto import SigningKey, is_hex, sha256_hex, verify
from primitives._native import is_canonical
from primitives.encoding import (
    MAX_DEPTH,
    EncodingError,
    canonical_bytes,
    decode_canonical,
    encode_trusted,
)
from primitives.merkle import merkle_root, reference_root

canonical_values = st.recursive(
    st.booleans() | st.integers(0, 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(canonical_values)
def test_decode_then_encode_gives_back_the_bytes(value: object) -> None:
    """Any canonical value round-trips byte for byte."""
    data = canonical_bytes(value)
    assert canonical_bytes(decode_canonical(data, max_bytes=1 << 20)) == data


@given(canonical_values)
def test_trusted_encoder_writes_the_canonical_bytes(value: object) -> None:
    """The compiled encoder for known-canonical values gives canonical_bytes' bytes."""
    assert encode_trusted(value) == canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    [
        0,
        127,
        128,
        255,
        256,
        65535,
        65536,
        2**32 - 1,
        2**32,
        2**63 - 1,
        "",
        "a" * 31,
        "a" * 32,
        "a" * 255,
        "a" * 256,
        "a" * 65536,
        list(range(16)),
        list(range(65536)),
        {str(index): index for index in range(16)},
        {"\U0001f600": 1, "\uffff": 2, "é": 3, "z": 4},
    ],
)
def test_trusted_encoder_uses_the_shortest_forms(value: object) -> None:
    """At every length boundary of ints, strings, arrays and maps, and for keys whose
    UTF-8 order differs from UTF-16's."""
    assert encode_trusted(value) == canonical_bytes(value)


def test_map_keys_are_sorted_by_utf8_bytes() -> None:
    """Keys sort by their UTF-8 bytes, recursively, as the protocol's Python recipe does."""
    value = {"b": 1, "a": {"é": 1, "z": 2}, "A": True}
    expected = msgpack.packb({"A": True, "a": {"z": 2, "é": 1}, "b": 1}, use_bin_type=True)
    assert canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "data, reason",
    [
        (msgpack.packb({"b": 1, "a": 2}), "not canonical"),
        (b"\xcc\x01", "not canonical"),  # 1 as uint8 instead of a fixint
        (b"\xd9\x01a", "not canonical"),  # "a" as str8 instead of fixstr
        (b"\x82\xa1a\x01\xa1a\x02", "not canonical"),  # duplicate key
        (msgpack.packb(1.5), "floats"),
        (msgpack.packb(None), "nil"),
        (msgpack.packb(b"x", use_bin_type=True), "binary"),
        (msgpack.packb(-1), "out of range"),
        (msgpack.packb({1: 2}), "not a string"),
        (b"\x01\x02", "trailing"),
        (b"\x92\x01", "not valid"),
        (b"", "empty"),
        (b"\x01" * 10, "exceeds"),
    ],
)
def test_strict_decoding_rejects_with_a_reason(data: bytes, reason: str) -> None:
    """Every non-canonical input is refused with a message naming what is wrong."""
    with pytest.raises(EncodingError, match=reason):
        decode_canonical(data, max_bytes=9)


# Any MessagePack value, canonical or not: nil, floats, bin, negative integers, maps with
# keys in insertion order (often unsorted), packed in every form msgpack chooses.
any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=20)
    ),
    max_leaves=40,
)


def python_says_canonical(data: bytes) -> bool:
    """The slow path's verdict (re-encoding the decoded value), which the compiled check
    may only ever agree with when it says yes."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
        return canonical_bytes(value) == data
    except (ValueError, TypeError, msgpack.UnpackException):
        return False


@given(canonical_values)
def test_compiled_check_accepts_every_canonical_encoding(value: object) -> None:
    assert is_canonical(canonical_bytes(value))


@given(any_values, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_compiled_check_accepts_only_what_reencodes_to_the_same_bytes(
    value: object, flips: list[tuple[int, int]]
) -> None:
    """On any packing of any value, with a few bytes changed: the compiled check says yes
    exactly when the Python re-encoding gives back the bytes (for input that decodes)."""
    data = bytearray(msgpack.packb(value, use_bin_type=True))
    for position, byte in flips:
        if data:
            data[position % len(data)] = byte
    try:
        msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return  # decode_canonical refuses it before asking the compiled check
    assert is_canonical(bytes(data)) == python_says_canonical(bytes(data))


def test_compiled_check_refuses_nesting_beyond_the_limit() -> None:
    nested: object = 1
    for _ in range(MAX_DEPTH):
        nested = [nested]
    assert is_canonical(canonical_bytes(nested))
    assert not is_canonical(msgpack.packb([nested]))
    with pytest.raises(EncodingError, match="nesting"):
        decode_canonical(msgpack.packb([nested]), max_bytes=1 << 10)


@given(
    st.one_of(
        st.text(alphabet="0123456789abcdefABCDEFgx \n\u00e9\u4e2d", max_size=10),
        st.binary(max_size=6).map(bytes.hex),
        st.binary(max_size=6),
        st.integers(),
        st.none(),
    ),
    st.integers(-2, 6),
)
def test_compiled_hex_check_agrees_with_its_definition(value: object, length_bytes: int) -> None:
    """is_hex is compiled: it answers as the regular expression that defines it would."""
    expected = (
        isinstance(value, str)
        and len(value) == 2 * length_bytes
        and re.fullmatch("[0-9a-f]*", value) is not None
    )
    assert is_hex(value, length_bytes) is expected


def test_signatures_verify_only_for_the_signed_message_and_key() -> None:
    """A signature checks against its key and message, and nothing else."""
    key = SigningKey(hashlib.sha256(b"seed").digest())
    other = SigningKey.generate()
    signature = key.sign(b"message")
    assert is_hex(signature, 64) and is_hex(key.public_key, 32)
    assert verify(key.public_key, b"message", signature)
    assert not verify(key.public_key, b"messagE", signature)
    assert not verify(other.public_key, b"message", signature)
    assert not verify(key.public_key, b"message", "zz" * 64)
    assert not verify("00" * 31, b"message", signature)


def test_verification_accepts_exactly_what_openssl_accepts() -> None:
    """libsodium answers first, but a signature it refuses and OpenSSL accepts still
    verifies: under the small-order identity key, (R = identity, s = 0) satisfies the
    equation for any message; libsodium refuses the key, OpenSSL does not."""
    identity = "01" + "00" * 31
    signature = identity + "00" * 32
    assert verify(identity, b"any message", signature)
    assert not verify(identity, b"any message", identity + "01" + "00" * 31)


def test_merkle_root_commits_to_order_and_content() -> None:
    """The root changes with any leaf or order change; the empty root is sha256('')."""
    assert merkle_root([]) == sha256_hex(b"")
    leaves = [b"a", b"b", b"c"]
    assert merkle_root(leaves) != merkle_root([b"b", b"a", b"c"])
    assert merkle_root(leaves) != merkle_root([b"a", b"b", b"d"])
    assert merkle_root(leaves) != merkle_root([b"a", b"b"])
    assert merkle_root(leaves) == merkle_root(list(leaves))


@given(st.lists(st.binary(max_size=80), max_size=70))
def test_compiled_merkle_root_is_the_reference_tree(leaves: list[bytes]) -> None:
    """The compiled root equals the Python reference for any list (odd levels included)."""
    assert merkle_root(leaves) == reference_root(leaves)


def test_merkle_root_refuses_what_is_not_a_list_of_bytes() -> None:
    for bad in ([b"a", "b"], (b"a",), [b"a", None]):
        with pytest.raises(TypeError):
            merkle_root(bad)  # type: ignore[arg-type]
