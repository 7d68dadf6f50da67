"""Equivocation evidence: two signatures by one validator for different blocks at one step.

A step is (kind, height, view) with kind proposal, prepare or commit. Honest replicas
sign at most one block per step (their safety journal sees to it), so two valid
signatures for different blocks prove the validator faulty to anyone who knows the
chain id, with no trust in whoever reports it.
"""

from __future__ import annotations

from typing import Any

from consensus.messages import COMMIT, PREPARE, PROPOSAL, vote_payload
from primitives.crypto import is_hex, verify

EVIDENCE_KINDS = (PROPOSAL, PREPARE, COMMIT)


def make_evidence(
    kind: str,
    validator: str,
    height: int,
    view: int,
    first: tuple[str, str],
    second: tuple[str, str],
) -> dict[str, Any]:
    """`first` and `second` are (block hash, signature); the result is order-independent."""
    one, two = sorted([first, second])
    return {
        "type": "equivocation",
        "kind": kind,
        "validator": validator,
        "height": height,
        "view": view,
        "votes": [{"block": one[0], "signature": one[1]}, {"block": two[0], "signature": two[1]}],
    }


def verify_evidence(chain_id: str, evidence: Any) -> bool:
    """True when `evidence` proves that its validator signed two blocks at one step."""
    try:
        if evidence.get("type") != "equivocation" or evidence["kind"] not in EVIDENCE_KINDS:
            return False
        validator, height, view = evidence["validator"], evidence["height"], evidence["view"]
        votes = evidence["votes"]
        if not isinstance(height, int) or not isinstance(view, int) or len(votes) != 2:
            return False
        blocks = [vote["block"] for vote in votes]
        if not all(is_hex(block, 32) for block in blocks) or blocks[0] == blocks[1]:
            return False
        return all(
            verify(validator, vote_payload(chain_id, evidence["kind"], height, view, vote["block"]), vote["signature"])
            for vote in votes
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
