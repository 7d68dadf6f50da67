"""Follower: applies only blocks whose certificate and re-execution check out."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from node_test_helpers import DEVNET, async_wait_until, register, user_key

from consensus.types import CommitCertificate, commit_payload
from contracts.genesis import (
    devnet_authority_key,
    devnet_genesis,
    devnet_validator_key,
    load_genesis,
)
from node.config import load_config, render_config
from node.follower import Follower
from node.rpc import make_rpc_app
from node.rpc_support import WriteGate
from node.runner import NodeRuntime, open_storage

VALIDATOR = devnet_validator_key(0)
GENESIS = devnet_genesis(1, time.time_ns() // 1_000_000 - 1000, 9000)


def _runtime(parent: Path, mode: str) -> NodeRuntime:
    home = parent / mode
    home.mkdir()
    (home / "config.toml").write_text(
        render_config(
            mode=mode,
            moniker=mode,
            rpc_listen="127.0.0.1:1",
            peer_listen="127.0.0.1:2",
            follow="http://127.0.0.1:1",
        )
    )
    genesis = load_genesis(GENESIS)
    config = load_config(home)
    return NodeRuntime(
        config, genesis, VALIDATOR if mode == "validator" else None, open_storage(config, genesis)
    )


def _commit_block(runtime: NodeRuntime) -> None:
    app = runtime.app
    height = app.committed_height() + 1
    block = app.propose(
        height, max(runtime.clock.now_ms(), app.last_header()["time"] + 1), VALIDATOR.public_key
    )
    signature = VALIDATOR.sign(commit_payload(DEVNET, height, 0, block.hash))
    app.commit(
        block, CommitCertificate(height, 0, block.hash, ((VALIDATOR.public_key, signature),))
    )


async def _follow(
    upstream: web.Application, follower: NodeRuntime, until_height: int, timeout_s: float
) -> bool:
    server = TestServer(upstream)
    await server.start_server()
    stop = asyncio.Event()
    task = asyncio.create_task(
        Follower(app=follower.app, follow_url=str(server.make_url("")).rstrip("/")).run(stop)
    )
    try:
        return await async_wait_until(lambda: follower.storage.height() >= until_height, timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await server.close()


def _answer(value: dict[str, Any]) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(value)

    return handler


async def test_follower_replays_the_chain_and_agrees(tmp_path: Path) -> None:
    """A follower fetches each block, checks it, re-executes it and ends with the same hashes and state."""
    source, follower = _runtime(tmp_path, "validator"), _runtime(tmp_path, "follower")
    try:
        authority = devnet_authority_key()
        for nonce in range(3):
            source.service.submit(register(authority, nonce, user_key("f%d" % nonce).public_key))
            _commit_block(source)
        upstream = make_rpc_app(source.service, WriteGate((), False))
        assert await _follow(upstream, follower, 3, 10)
        for height in range(1, 4):
            assert follower.storage.block(height) == source.storage.block(height)
        assert follower.storage.state_root() == source.storage.state_root()
        assert follower.service.account(user_key("f2").public_key) is not None
    finally:
        source.storage.close()
        follower.storage.close()


async def test_follower_refuses_forged_certificates_and_tampered_blocks(tmp_path: Path) -> None:
    """A block signed by a non-validator, altered, or served by a node of another chain is never applied."""
    source, follower = _runtime(tmp_path, "validator"), _runtime(tmp_path, "follower")
    try:
        source.service.submit(register(devnet_authority_key(), 0, user_key("g").public_key))
        _commit_block(source)
        genuine = source.service.block_answer(1, full_txs=True)
        assert genuine is not None
        forged = copy.deepcopy(genuine)
        impostor = devnet_validator_key(9)
        forged["commit"]["signatures"] = [
            {
                "validator": impostor.public_key,
                "signature": impostor.sign(commit_payload(DEVNET, 1, 0, genuine["hash"])),
            }
        ]
        tampered = copy.deepcopy(genuine)
        tampered["txs"][0]["body"]["birth_date"] = "2001-01-01"
        other_chain = {"height": 1, "genesis": "00" * 32}
        for status, bad in (
            ({"height": 1}, forged),
            ({"height": 1}, tampered),
            (other_chain, genuine),
        ):
            upstream = web.Application()
            upstream.router.add_get("/v1/status", _answer(status))
            upstream.router.add_get("/v1/blocks/1", _answer(bad))
            assert not await _follow(upstream, follower, 1, 1.5)
            assert follower.storage.height() == 0
    finally:
        source.storage.close()
        follower.storage.close()
