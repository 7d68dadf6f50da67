"""The block header facts both the ledger and consensus need (PROTOCOL §5).

Kept in a leaf module so the state transition and the replica share one
definition without either importing the other.
"""

from __future__ import annotations

from typing import Any

from primitives.crypto import sha256_hex
from primitives.encoding import canonical_bytes

ZERO_HASH = "0" * 64  # block 1's parent: the genesis header is synthetic, not a block
HEADER_FIELDS = (
    "chain_id",
    "height",
    "parent",
    "time",
    "proposer",
    "tx_root",
    "results_root",
    "state_root",
)


def header_hash(header: dict[str, Any]) -> str:
    """The block hash: SHA-256 of the header's canonical bytes."""
    return sha256_hex(canonical_bytes(header))
