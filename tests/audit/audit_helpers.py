"""Helpers for the auditor's tests: what an honest node answers, an HTTP server that
serves a (possibly tampered) copy of it, and a node home holding a chain."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from consensus.types import Block, CommitCertificate, header_hash
from node.audit.devchain import DevChain

BlockAnswers = list[dict[str, Any] | None]


def rpc_answers(chain: DevChain) -> BlockAnswers:
    """What an honest node answers to GET /v1/blocks/{h}?txs=full, for h = 1..height."""
    return [
        {
            "header": copy.deepcopy(block.header),
            "hash": header_hash(block.header),
            "txs": copy.deepcopy(block.txs),
            "results": list(block.results),
            "commit": copy.deepcopy(block.commit),
        }
        for block in chain.blocks
    ]


class AppServer:
    """An aiohttp app served on 127.0.0.1 from its own thread and loop, so that
    synchronous replay code can call it; `make_app` runs inside that loop."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self._make_app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = "http://127.0.0.1:%d" % port
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> AppServer:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class ServedChain(AppServer):
    """A lying (or honest) node: serves blocks, status and genesis from a list that a
    test may have tampered with. None in the list is a block the node does not have."""

    def __init__(
        self,
        genesis: dict[str, Any],
        answers: BlockAnswers,
        height: int | None = None,
        delay_s: Callable[[int], float] | None = None,
    ) -> None:
        super().__init__(self._app)
        self.delay_s = delay_s
        self.genesis = genesis
        self.answers = answers
        self.height = len(answers) if height is None else height
        self.requests = 0

    async def _block(self, request: web.Request) -> web.Response:
        self.requests += 1
        height = int(request.match_info["height"])
        if self.delay_s is not None:
            await asyncio.sleep(self.delay_s(height))
        if not 1 <= height <= len(self.answers) or self.answers[height - 1] is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": "no block"}}, status=404
            )
        return web.json_response(self.answers[height - 1])

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"chain_id": self.genesis["chain_id"], "height": self.height})

    async def _genesis(self, request: web.Request) -> web.Response:
        return web.json_response(self.genesis)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/blocks/{height}", self._block)
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/genesis", self._genesis)
        return app

    def __enter__(self) -> ServedChain:
        super().__enter__()
        return self


def write_home(home: Path, chain: DevChain, up_to_height: int | None = None) -> Path:
    """A node home (config, genesis, LevelDB) holding `chain` (up to a height), committed
    through the node's own Application exactly as a follower would commit it."""
    from node.config import load_config, render_config
    from node.runner import NodeRuntime, load_genesis_file, open_storage

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        render_config(
            mode="validator",
            moniker="audit-test",
            rpc_listen="127.0.0.1:1",
            peer_listen="127.0.0.1:2",
        )
    )
    (home / "genesis.json").write_text(json.dumps(chain.genesis_obj))
    config = load_config(home)
    genesis = load_genesis_file(config.genesis_file)
    storage = open_storage(config, genesis)
    try:
        runtime = NodeRuntime(config, genesis, None, storage)
        for block in chain.blocks[:up_to_height]:
            committed = Block(header=block.header, txs=tuple(block.txs))
            certificate = CommitCertificate.from_dict(
                {**block.commit, "height": block.header["height"], "block": committed.hash}
            )
            runtime.app.commit(committed, certificate)
    finally:
        storage.close()
    return home
