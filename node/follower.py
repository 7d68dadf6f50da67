"""Non-voting follower: follows a node over RPC, verifies every certificate, re-executes every block.

It trusts nothing it reads: each block must carry a certificate of more than
two thirds of that height's validators (as this node's own state says they
are), extend the last block it has, and give the same roots when executed
here. Transactions submitted to a follower are forwarded to the node it follows.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from consensus.types import Block, CertificateError, CommitCertificate
from contracts.transactions import SignedTx
from node.application import NodeApplication

log = logging.getLogger("yuxi.follower")

POLL_IDLE_S = 0.2
RETRY_S = 1.0
PROGRESS_EVERY_S = 5.0
REQUEST_TIMEOUT_S = 10.0


class FollowError(Exception):
    """What the followed node served does not check out."""


class Follower:
    def __init__(self, *, app: NodeApplication, follow_url: str) -> None:
        self._app = app
        self._url = follow_url
        self.remote_height = 0
        self.syncing = True
        self._session: aiohttp.ClientSession | None = None
        self._forward_queue: asyncio.Queue[SignedTx] = asyncio.Queue(maxsize=10_000)

    def forward(self, tx: SignedTx) -> None:
        try:
            self._forward_queue.put_nowait(tx)
        except asyncio.QueueFull:
            log.warning("forward queue full; transaction %s… stays pending here only", tx.id[:12])

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            forwarder = asyncio.create_task(self._forward_forever())
            try:
                await self._follow_forever(stop)
            finally:
                forwarder.cancel()

    async def _follow_forever(self, stop: asyncio.Event) -> None:
        last_progress_s = 0.0
        while not stop.is_set():
            try:
                self.remote_height = await self._remote_height()
                local = self._app.committed_height()
                if local >= self.remote_height:
                    self.syncing = False
                    await _sleep_or_stop(stop, POLL_IDLE_S)
                    continue
                self.syncing = self.remote_height - local > 1
                for height in range(local + 1, min(self.remote_height, local + 256) + 1):
                    if stop.is_set():
                        return
                    await self._apply(height)
                    if time.monotonic() - last_progress_s > PROGRESS_EVERY_S and self.syncing:
                        last_progress_s = time.monotonic()
                        log.info("catching up: block %d of %d", height, self.remote_height)
            except FollowError as exc:
                log.error("followed node served a bad block: %s; retrying", exc)
                await _sleep_or_stop(stop, RETRY_S)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                log.warning("cannot reach %s (%s); retrying", self._url, exc.__class__.__name__)
                await _sleep_or_stop(stop, RETRY_S)

    async def _get_json(self, path: str) -> dict:
        assert self._session is not None  # set by run() before any request
        async with self._session.get(self._url + path) as response:
            if response.status != 200:
                raise FollowError("%s answered HTTP %d" % (path, response.status))
            value = await response.json()
            if not isinstance(value, dict):
                raise FollowError("%s did not answer an object" % path)
            return value

    async def _remote_height(self) -> int:
        status = await self._get_json("/v1/status")
        if (
            status.get("chain_id", self._app.chain_id) != self._app.chain_id
            or status.get("genesis", self._app.genesis_hash) != self._app.genesis_hash
        ):
            # Yuxi nodes also report their genesis hash; other servers may not, and then
            # the certificates and roots of every block still tell.
            raise FollowError(
                "%s is on another chain (chain id or genesis hash differs)" % self._url
            )
        height = status.get("height")
        if isinstance(height, bool) or not isinstance(height, int):
            raise FollowError("status has no height")
        return height

    async def _apply(self, height: int) -> None:
        answer = await self._get_json("/v1/blocks/%d?txs=full" % height)
        try:
            block = Block(header=dict(answer["header"]), txs=tuple(answer["txs"]))
            commit = answer["commit"]
            certificate = CommitCertificate.from_dict(
                {
                    "height": height,
                    "view": commit["view"],
                    "block": block.hash,
                    "signatures": commit["signatures"],
                }
            )
        except (KeyError, TypeError, ValueError, CertificateError) as exc:
            raise FollowError("block %d is malformed: %s" % (height, exc)) from None
        if answer.get("hash") != block.hash:
            raise FollowError("block %d: served hash does not match its header" % height)
        try:
            certificate.verify(self._app.chain_id, self._app.validator_set(height), block.hash)
        except CertificateError as exc:
            raise FollowError("block %d: %s" % (height, exc)) from None
        reason = self._app.check_proposal(block)
        if reason is not None:
            raise FollowError("block %d: %s" % (height, reason))
        self._app.commit(block, certificate)

    async def _forward_forever(self) -> None:
        while True:
            tx = await self._forward_queue.get()
            try:
                assert self._session is not None  # set by run() before this task starts
                async with self._session.post(
                    self._url + "/v1/transactions", json=tx.to_dict()
                ) as response:
                    if response.status >= 400:
                        log.warning(
                            "followed node refused forwarded tx %s…: HTTP %d",
                            tx.id[:12],
                            response.status,
                        )
            except (TimeoutError, aiohttp.ClientError, OSError):
                log.warning("could not forward tx %s… to %s", tx.id[:12], self._url)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
