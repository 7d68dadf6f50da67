"""Blocks, validator sets and commit certificates (PROTOCOL §5).

Shared by the replica, the node and the auditor. A block is a header (a
canonical map) plus its transactions, which consensus treats as opaque
canonical values: only the application looks inside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from primitives.crypto import is_hex, verify
from primitives.encoding import canonical_bytes
from primitives.headers import HEADER_FIELDS, ZERO_HASH, header_hash  # noqa: F401 (re-exported)

COMMIT_DOMAIN = b"yuxi-commit-v1\n"


class CertificateError(ValueError):
    """A commit certificate that does not prove finality."""


@dataclass(frozen=True)
class Block:
    header: dict[str, Any]
    txs: tuple[Any, ...]  # signed transactions as canonical maps; opaque to consensus
    hash: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hash", header_hash(self.header))

    @property
    def height(self) -> int:
        return int(self.header["height"])

    @property
    def time_ms(self) -> int:
        return int(self.header["time"])

    def to_dict(self) -> dict[str, Any]:
        return {"header": self.header, "txs": list(self.txs)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Block:
        return cls(header=dict(value["header"]), txs=tuple(value["txs"]))


@dataclass(frozen=True)
class ValidatorSet:
    """The validators in force at some height, as sorted public keys."""

    validators: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "validators", tuple(sorted(self.validators)))

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        """More than two thirds: the smallest count q with 3q > 2n."""
        return 2 * self.size // 3 + 1

    @property
    def max_faulty(self) -> int:
        return (self.size - 1) // 3

    def __contains__(self, pubkey: object) -> bool:
        return pubkey in self.validators

    def leader(self, height: int, view: int) -> str:
        return self.validators[(height + view) % self.size]


def commit_payload(chain_id: str, height: int, view: int, block_hash: str) -> bytes:
    return COMMIT_DOMAIN + canonical_bytes(
        {"chain_id": chain_id, "height": height, "view": view, "block": block_hash}
    )


@dataclass(frozen=True)
class CommitCertificate:
    height: int
    view: int
    block: str  # block hash
    signatures: tuple[tuple[str, str], ...]  # (validator pubkey, signature hex), sorted by pubkey

    def to_dict(self) -> dict[str, Any]:
        """The `commit` object of PROTOCOL §6 plus the height and block it certifies."""
        return {
            "height": self.height,
            "view": self.view,
            "block": self.block,
            "signatures": [
                {"validator": validator, "signature": signature}
                for validator, signature in self.signatures
            ],
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> CommitCertificate:
        try:
            return cls(
                height=value["height"],
                view=value["view"],
                block=value["block"],
                signatures=tuple(
                    sorted((item["validator"], item["signature"]) for item in value["signatures"])
                ),
            )
        except (KeyError, TypeError) as exc:
            raise CertificateError("malformed certificate: %s" % exc) from None

    def verify(self, chain_id: str, validators: ValidatorSet, block_hash: str) -> None:
        """Raise CertificateError unless this proves `block_hash` final under `validators`."""
        if self.block != block_hash:
            raise CertificateError("certificate is for block %s, not %s" % (self.block, block_hash))
        if not isinstance(self.view, int) or isinstance(self.view, bool) or self.view < 0:
            raise CertificateError("certificate view is not a non-negative integer")
        payload = commit_payload(chain_id, self.height, self.view, block_hash)
        signers: set[str] = set()
        for validator, signature in self.signatures:
            if validator in signers:
                raise CertificateError("validator %s signed twice" % validator[:16])
            if validator not in validators:
                raise CertificateError("signer %s is not a validator at height %d" % (validator[:16], self.height))
            if not is_hex(signature, 64) or not verify(validator, payload, signature):
                raise CertificateError("bad signature from validator %s" % validator[:16])
            signers.add(validator)
        if len(signers) < validators.quorum:
            raise CertificateError(
                "%d signatures, %d needed of %d validators" % (len(signers), validators.quorum, validators.size)
            )
