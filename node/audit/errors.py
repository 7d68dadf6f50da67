"""The one error an auditor cares about: where the chain stops being what the rules give."""

from __future__ import annotations


class AuditError(Exception):
    """The first point where a chain fails a check: height, transaction and what differs."""

    def __init__(
        self,
        height: int,
        what: str,
        *,
        tx_index: int | None = None,
        tx_id: str | None = None,
        check: str = "block",
    ) -> None:
        self.height = height
        self.what = what
        self.tx_index = tx_index
        self.tx_id = tx_id
        self.check = check
        super().__init__(self.describe())

    def describe(self) -> str:
        where = "height %d" % self.height
        if self.tx_index is not None:
            where += ", tx %d" % self.tx_index
            if self.tx_id:
                where += " (%s)" % self.tx_id
        return "%s: %s: %s" % (where, self.check, self.what)

    def to_dict(self) -> dict[str, object]:
        return {
            "height": self.height,
            "tx_index": self.tx_index,
            "tx_id": self.tx_id,
            "check": self.check,
            "what": self.what,
            "message": self.describe(),
        }


class SourceError(Exception):
    """The chain could not be read (network, missing files, broken storage)."""
