"""SHA-256 and Ed25519, with keys, hashes and signatures as lowercase hex (PROTOCOL §1)."""

from __future__ import annotations

import functools
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

# is_hex(value, length_bytes): whether value is a str of exactly length_bytes bytes in
# lowercase hex. Compiled: every transaction's keys, signature and accounts are checked.
from primitives._native import is_hex as is_hex


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_account_id(value: object) -> bool:
    return is_hex(value, 32)


class SigningKey:
    """An Ed25519 private key, made from its 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.public_key: str = (
            self._key.public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            .hex()
        )

    @classmethod
    def generate(cls) -> SigningKey:
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(raw)

    def sign(self, message: bytes) -> str:
        return self._key.sign(message).hex()


@functools.lru_cache(maxsize=65536)
def _public_key(public_key: str) -> Ed25519PublicKey:
    # Senders sign many transactions: parse each key once, not once per signature.
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))


def verify(public_key: str, message: bytes, signature: str) -> bool:
    """Check an Ed25519 signature; malformed keys or signatures simply fail.

    OpenSSL's verdict is the rule (the chain has always used it). libsodium answers first
    because it is twice as fast here and accepts only what OpenSSL accepts: the same
    cofactorless equation, plus refusals of non-canonical and small-order points. So a
    signature it accepts is good, and one it refuses is asked of OpenSSL before it is
    called bad (under a small-order key OpenSSL accepts what libsodium refuses)."""
    if not is_hex(public_key, 32) or not is_hex(signature, 64):
        return False
    signature_bytes = bytes.fromhex(signature)
    try:
        crypto_sign_open(signature_bytes + message, bytes.fromhex(public_key))
        return True
    except BadSignatureError:
        pass
    try:
        _public_key(public_key).verify(signature_bytes, message)
    except (InvalidSignature, ValueError):
        return False
    return True
