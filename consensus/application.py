"""The boundary between the replica and the ledger, in the spirit of ABCI.

The replica never looks inside a transaction. It asks the application to build
a block for a height, to check a block a leader proposed (by executing it
without committing), to commit a finalised block with its certificate, and for
the validator set in force at a height. All calls are synchronous and
deterministic given the committed chain, so the same replica runs inside the
node and inside the simulator.
"""

from __future__ import annotations

from typing import Protocol

from consensus.types import Block, CommitCertificate, ValidatorSet


class Application(Protocol):
    chain_id: str

    def committed_height(self) -> int:
        """Height of the last committed block (0 before the first one)."""
        ...

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        """A committed block and its certificate, for peers catching up; None if absent.
        Height 0 (genesis) has no block."""
        ...

    def last_header(self) -> dict:
        """Header of the last committed block; for height 0 a synthetic genesis header
        with height 0, the genesis time and the genesis state root."""
        ...

    def validator_set(self, height: int) -> ValidatorSet:
        """Validators in force at `height` (known up to committed_height() + 2)."""
        ...

    def propose(self, height: int, time_ms: int, proposer: str) -> Block:
        """Build and execute a block on top of the last committed one."""
        ...

    def check_proposal(self, block: Block) -> str | None:
        """Validate a proposed block on top of the last committed one: parent, height,
        every transaction (chain, signature, decoding), and roots equal to what local
        execution gives. None when valid, else a reason. Consensus checks the time
        rules (strictly after the parent, within the drift of the local clock)."""
        ...

    def has_pending(self) -> bool:
        """Whether transactions wait to be proposed (the leader proposes at once
        instead of waiting for the empty-block interval)."""
        ...

    def max_clock_drift_ms(self) -> int:
        """The chain parameter in force for the next block."""
        ...

    def commit(self, block: Block, certificate: CommitCertificate) -> None:
        """Make the block final: apply it (atomically and durably, in the node)."""
        ...
