"""Fixtures for the auditor's tests: an honest in-process chain, node homes holding it,
and a server on 127.0.0.1 that serves a (possibly tampered) copy of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import BlockAnswers, ServedChain, rpc_answers, write_home

from node.audit.devchain import DevChain, build_demo_chain


@pytest.fixture(scope="session")
def demo_chain() -> DevChain:
    return build_demo_chain()


@pytest.fixture()
def answers(demo_chain: DevChain) -> BlockAnswers:
    return rpc_answers(demo_chain)


@pytest.fixture()
def serve(demo_chain: DevChain) -> Iterator[Callable[..., ServedChain]]:
    """serve(answers, height=None) -> a started ServedChain, stopped after the test."""
    started: list[ServedChain] = []

    def start(
        answers: BlockAnswers,
        height: int | None = None,
        genesis: dict[str, Any] | None = None,
        delay_s: Callable[[int], float] | None = None,
    ) -> ServedChain:
        server = ServedChain(genesis or demo_chain.genesis_obj, answers, height, delay_s)
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def early_home(tmp_path_factory: pytest.TempPathFactory, demo_chain: DevChain) -> Path:
    """The demo chain up to block 6, before governance changed the validator set."""
    return write_home(tmp_path_factory.mktemp("home") / "early", demo_chain, up_to_height=6)


@pytest.fixture(scope="session")
def node_home(tmp_path_factory: pytest.TempPathFactory, demo_chain: DevChain) -> Path:
    return write_home(tmp_path_factory.mktemp("home") / "node-0", demo_chain)
