"""The rooms' walls (DESIGN.md): consensus/ and contracts/ do no IO and never import node/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CORE = {"asyncio", "aiohttp", "plyvel", "time", "random", "socket", "os", "node", "simulation"}
LEAF_ALLOWED = {"primitives"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            names.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            names.add(item.module.split(".")[0])
    return names


@pytest.mark.parametrize("room", ["consensus", "contracts"])
def test_core_rooms_do_no_io(room: str) -> None:
    """No module of a pure room imports an IO library, a clock, randomness or node/."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN_IN_CORE)
        for path in (ROOT / room).rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_consensus_and_contracts_stay_apart() -> None:
    """The state transition knows nothing of consensus, so either can change alone."""
    for path in (ROOT / "contracts").rglob("*.py"):
        assert "consensus" not in imported_modules(path), path


def test_primitives_are_leaves() -> None:
    """Shared primitives import no room of the project."""
    rooms = {"node", "consensus", "contracts", "simulation"}
    for path in (ROOT / "primitives").rglob("*.py"):
        assert not imported_modules(path) & rooms, path
