"""What the replica asks its driver to do. Effects of one call are carried out in list order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from consensus.types import Block, CommitCertificate


@dataclass(frozen=True)
class Send:
    """Send `data` to the validator (or follower) whose node key is `to`."""

    to: str
    data: bytes


@dataclass(frozen=True)
class Broadcast:
    """Send `data` to every other validator (and followers, if the node links to any)."""

    data: bytes


@dataclass(frozen=True)
class Persist:
    """Make `record` durable before carrying out any later effect of the same list.

    The records form the safety journal: everything this replica signed. On restart
    the node hands all of them back, in order, to Replica(journal=...). Records whose
    `height` is below the next height to decide may be pruned once that block is
    committed; they are never needed again.
    """

    record: dict[str, Any]


@dataclass(frozen=True)
class Committed:
    """`block` is final and app.commit(block, certificate) has already been called."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True)
class ViewChanged:
    """The replica moved to `view` at `height` (it gave up on the lower views)."""

    height: int
    view: int


@dataclass(frozen=True)
class EvidenceFound:
    """A validator signed two different things for one height, view and step.

    `evidence` is a canonical map; consensus.evidence.verify_evidence checks it with
    nothing but the chain id.
    """

    evidence: dict[str, Any]


@dataclass(frozen=True)
class Discarded:
    """An input from `peer` that was triaged away, with the reason (for logs and metrics)."""

    peer: str
    reason: str


Effect = Union[Send, Broadcast, Persist, Committed, ViewChanged, EvidenceFound, Discarded]
