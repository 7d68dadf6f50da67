"""What the rules get from the block (context) and give back (results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from contracts.codes import Code


@dataclass(frozen=True)
class BlockContext:
    """The only source of time and height for the rules: the proposer's block time."""

    chain_id: str
    height: int
    time_ms: int


_OK = Code.OK.value  # an Enum member's value is a property lookup: ~0.1 µs each time


class Result(NamedTuple):  # one per transaction: a tuple costs half a frozen dataclass
    code: str
    message: str
    eligible_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.eligible_at is not None:
            value["eligible_at"] = self.eligible_at
        return value

    @property
    def ok(self) -> bool:
        return self.code == _OK


@dataclass
class BlockOutcome:
    writes: dict[str, Any | None] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)


def accept(message: str = "") -> Result:
    return Result(_OK, message)


def reject(code: Code, message: str, eligible_at: int | None = None) -> Result:
    return Result(code.value, message, eligible_at)
