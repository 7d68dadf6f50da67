"""Deliberately broken replicas, each missing one rule, for showing the simulator has teeth.

Never use these outside tests and scripts/simulate.py --variant.
"""

from __future__ import annotations

from typing import Iterable

from consensus.messages import ViewChange
from consensus.replica import Replica
from consensus.types import ValidatorSet


class NoPreparedCertificateRule(Replica):
    """A new view may propose any block, ignoring prepared certificates."""

    def _required_reproposal(self, view_changes: Iterable[ViewChange]) -> str | None:
        return None


class QuorumOfTwoF(Replica):
    """Counts 2f signatures as a quorum instead of 2f+1."""

    def _quorum(self, validators: ValidatorSet) -> int:
        return max(1, 2 * validators.max_faulty)


class UncheckedVoteSignatures(Replica):
    """Accepts prepare and commit votes without checking their signatures."""

    def _vote_signature_valid(
        self, validator: str, kind: str, height: int, view: int, block: str, signature: str
    ) -> bool:
        return True


VARIANTS: dict[str, type[Replica]] = {
    "no_prepared_certificate_rule": NoPreparedCertificateRule,
    "quorum_2f": QuorumOfTwoF,
    "unchecked_vote_signatures": UncheckedVoteSignatures,
}
