"""Operation vectors (tests/vectors/*.json): replay gives their results, states and roots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from contracts.context import BlockContext
from contracts.execution import execute_block
from contracts.state import DictView
from contracts.state_tree import compute_root
from contracts.transactions import check_admission_static, decode_tx, parse_tx
from primitives.encoding import canonical_bytes

ROOT = Path(__file__).resolve().parents[2]
VECTOR_DIR = ROOT / "tests" / "vectors"
VECTOR_FILES = sorted(VECTOR_DIR.glob("*.json"))


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "make_vectors", ROOT / "scripts" / "make_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_vectors() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in VECTOR_FILES:
        for vector in json.loads(path.read_text())["vectors"]:
            cases.append(("%s: %s" % (path.stem, vector["name"]), vector))
    return cases


def test_vector_files_exist_for_every_group() -> None:
    """The generated files are checked in, one per group, each with vectors."""
    assert {path.name for path in VECTOR_FILES} >= {
        "gift.json",
        "mint.json",
        "accounts.json",
        "collections.json",
        "sanctions.json",
        "governance.json",
    }


@pytest.mark.parametrize(
    "vector", [case[1] for case in _all_vectors()], ids=[case[0] for case in _all_vectors()]
)
def test_replay_vector(vector: dict[str, Any]) -> None:
    """The vector's transaction on its pre-state gives its result, post-state and roots."""
    pre = vector["pre"]
    assert compute_root(pre) == vector["pre_root"]
    context = vector["context"]
    tx = decode_tx(canonical_bytes(vector["tx"]))
    assert tx == parse_tx(vector["tx"])
    check_admission_static(tx, context["chain_id"])
    view = DictView(pre)
    outcome = execute_block(
        view, [tx], BlockContext(context["chain_id"], context["height"], context["time_ms"])
    )
    assert [result.to_dict() for result in outcome.results] == [vector["result"]]
    view.apply(outcome.writes)
    assert view.values == vector["post"]
    assert compute_root(view.values) == vector["post_root"]
    if vector["result"]["code"] == "bad_nonce":
        assert vector["post"] == pre


def test_vector_files_are_current() -> None:
    """scripts/make_vectors.py reproduces the checked-in files byte for byte."""
    script = _load_script()
    for name, content in script.build_vectors().items():
        assert (VECTOR_DIR / name).read_text() == script.render(content), (
            "run python scripts/make_vectors.py"
        )
