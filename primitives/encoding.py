"""Canonical MessagePack (PROTOCOL §1): the only byte form that is ever hashed or signed.

Canonical values are maps with string keys (sorted by their UTF-8 bytes), arrays,
strings, integers 0 <= n < 2**63 and booleans. Nothing else: no floats, no nil,
no bin. Decoding is strict: the input must be exactly the canonical encoding of
what it decodes to, so decode followed by encode gives back the input bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack
import ormsgpack

from primitives._native import is_canonical

MAX_INT = 2**63 - 1
MAX_DEPTH = 32


class EncodingError(ValueError):
    """Input that is not a canonical value, or not canonically encoded."""


def check_value(value: Any, depth: int = 0) -> None:
    """Raise EncodingError unless `value` is made only of canonical types."""
    if depth > MAX_DEPTH:
        raise EncodingError("nesting deeper than %d levels" % MAX_DEPTH)
    if isinstance(value, bool) or isinstance(value, str):
        return
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT:
            raise EncodingError("integer %d out of range 0..2^63-1" % value)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError("map key %r is not a string" % (key,))
            check_value(item, depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(item, depth + 1)
        return
    if value is None:
        raise EncodingError("nil is not allowed")
    if isinstance(value, float):
        raise EncodingError("floats are not allowed")
    if isinstance(value, (bytes, bytearray)):
        raise EncodingError("binary values must be hex strings")
    raise EncodingError("type %s is not allowed" % type(value).__name__)


def _sorted(value: Any) -> Any:
    # Code-point order of str equals the byte order of their UTF-8 encodings, so
    # plain sorted() gives "sorted by UTF-8 bytes" without encoding every key.
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(item) for item in value]
    return value


def _canonical(value: Any, depth: int) -> Any:
    """check_value and _sorted in one pass (the hot path of every hash and signature).
    Exact types are tested first, scalars inline; subclasses fall through to
    check_value's rules."""
    if depth > MAX_DEPTH:
        raise EncodingError("nesting deeper than %d levels" % MAX_DEPTH)
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str and not isinstance(key, str):
                raise EncodingError("map key %r is not a string" % (key,))
        if depth >= MAX_DEPTH:
            return {key: _canonical(value[key], depth + 1) for key in sorted(value)}
        result = {}
        for key in sorted(value):
            item = value[key]
            item_kind = type(item)
            if item_kind is str or item_kind is bool or (item_kind is int and 0 <= item <= MAX_INT):
                result[key] = item
            else:
                result[key] = _canonical(item, depth + 1)
        return result
    if kind is str or kind is bool:
        return value
    if kind is int:
        if 0 <= value <= MAX_INT:
            return value
        raise EncodingError("integer %d out of range 0..2^63-1" % value)
    if kind is list or kind is tuple:
        return [_canonical(item, depth + 1) for item in value]
    check_value(value, depth)
    return _sorted(value)


_packer = msgpack.Packer(use_bin_type=True)


def canonical_bytes(value: Any) -> bytes:
    """The canonical encoding of a value (maps sorted recursively, shortest forms)."""
    return _packer.pack(_canonical(value, 0))


def canonical_form(value: Any) -> Any:
    """`value` checked and with every map's keys in canonical order (raises EncodingError like
    canonical_bytes): pack_form of it, or of any part of it, is that part's canonical bytes."""
    return _canonical(value, 0)


def pack_form(form: Any) -> bytes:
    """The bytes of a value from canonical_form (or a part of one), without walking it again."""
    return _packer.pack(form)


def encode_trusted(value: Any) -> bytes:
    """canonical_bytes for values known to be canonical (built by this code from canonical
    parts, such as the state values execution writes): no type check, and the whole
    encoding, key sorting included, in compiled code (ormsgpack sorts str keys by their
    UTF-8 bytes and writes the shortest forms, as canonical_bytes does). A value that is not
    canonical gets no error here, so never pass one that came from outside."""
    return ormsgpack.packb(value, option=ormsgpack.OPT_SORT_KEYS)


def decode_canonical(data: bytes, *, max_bytes: int) -> Any:
    """Decode canonical bytes strictly; raise EncodingError naming what is wrong."""
    if not isinstance(data, (bytes, bytearray)):
        raise EncodingError("input is not bytes")
    if len(data) == 0:
        raise EncodingError("empty input")
    if len(data) > max_bytes:
        raise EncodingError("input of %d bytes exceeds the limit of %d" % (len(data), max_bytes))
    try:
        value = msgpack.unpackb(bytes(data), raw=False, use_list=True, strict_map_key=False)
    except msgpack.ExtraData:
        raise EncodingError("trailing bytes after the value") from None
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise EncodingError("not valid MessagePack: %s" % exc) from None
    if is_canonical(data):
        return value
    # Not canonical: encoding it again in Python names what is wrong.
    if _packer.pack(_canonical(value, 0)) != bytes(data):
        raise EncodingError(
            "not canonical MessagePack (longer forms than needed, unsorted or duplicate map keys)"
        )
    return value
