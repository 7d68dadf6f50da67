"""Validator links over aiohttp WebSockets, authenticated both ways.

Every validator listens on its peer port and dials every other validator. The
dialled link carries what we send to that peer; links others dial to us carry
what they send. Before a single consensus byte is taken, both sides prove they
hold a validator key of this chain by signing the other side's fresh nonce,
bound to the chain id and the genesis hash; a key outside the validator set is
refused. After the handshake each binary frame is one message: a one-byte kind
and its payload. Queues per peer are bounded (the oldest message is dropped:
consensus retransmits what matters), frames are size-limited, and dialling
backs off exponentially up to a ceiling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from primitives.crypto import SigningKey, is_account_id, is_hex, verify
from primitives.encoding import canonical_bytes

log = logging.getLogger("yuxi.peers")

PEER_DOMAIN = b"yuxi-peer-v1\n"
PEER_PATH = "/peer"
DIALER = "dialer"
LISTENER = "listener"
KIND_CONSENSUS = 1
KIND_TX = 2
MAX_FRAME_BYTES = 96 * 1024 * 1024  # a full block of max-size transactions fits
MAX_HANDSHAKE_BYTES = 4096
HANDSHAKE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
QUEUE_LIMIT = 4096
STALE_FRAME_S = 3.0
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0

MessageHandler = Callable[[str, int, bytes], None]


def handshake_payload(
    chain_id: str, genesis_hash: str, nonce: str, signer: str, peer: str, role: str
) -> bytes:
    """What a side signs to prove its key: the other side's nonce, both keys, the chain,
    and which side of the link it is. The role keeps a listener's answer from being
    replayed as a dialer's proof (someone dialling A as B would otherwise get from A
    exactly the signature B expects from a dialler claiming to be A)."""
    return PEER_DOMAIN + canonical_bytes(
        {
            "chain_id": chain_id,
            "genesis": genesis_hash,
            "nonce": nonce,
            "signer": signer,
            "peer": peer,
            "role": role,
        }
    )


class HandshakeError(Exception):
    pass


@dataclass
class _OutboundLink:
    pubkey: str
    endpoint: str
    queue: deque[tuple[float, bytes]] = field(default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    connected: bool = False
    dropped: int = 0
    task: asyncio.Task[None] | None = None


class PeerNetwork:
    def __init__(
        self,
        *,
        key: SigningKey,
        chain_id: str,
        genesis_hash: str,
        endpoints: Callable[[], dict[str, str]],
        names: Callable[[], dict[str, str]],
        on_message: MessageHandler,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._key = key
        self._chain_id = chain_id
        self._genesis_hash = genesis_hash
        self._endpoints = endpoints  # current validators -> "host:port"
        self._names = names
        self._on_message = on_message
        self._outbound: dict[str, _OutboundLink] = {}
        self._inbound: dict[str, web.WebSocketResponse] = {}
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        # The validator set as of the last refresh(); read per message, so kept in memory.
        self._allowed: frozenset[str] = frozenset(endpoints())

    # ---- public ----------------------------------------------------------
    @property
    def connected_peers(self) -> int:
        return sum(1 for link in self._outbound.values() if link.connected)

    def peer_status(self) -> list[dict[str, object]]:
        return [
            {"validator": link.pubkey, "endpoint": link.endpoint, "connected": link.connected}
            for link in self._outbound.values()
        ]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(PEER_PATH, self._accept)

    async def start(self) -> None:
        # No total timeout (links live for days); a dial to an unreachable host gives up quickly.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
        )
        self.refresh()

    def refresh(self) -> None:
        """Dial validators newly in the set; stop dialling removed ones."""
        current = self._endpoints()
        self._allowed = frozenset(current)
        wanted = {k: v for k, v in current.items() if k != self._key.public_key}
        for pubkey, endpoint in wanted.items():
            link = self._outbound.get(pubkey)
            if link is None or link.endpoint != endpoint:
                if link is not None and link.task is not None:
                    link.task.cancel()
                link = _OutboundLink(pubkey=pubkey, endpoint=endpoint)
                self._outbound[pubkey] = link
                link.task = asyncio.create_task(self._dial_forever(link), name="dial-" + pubkey[:8])
        for pubkey in list(self._outbound):
            if pubkey not in wanted:
                link = self._outbound.pop(pubkey)
                if link.task is not None:
                    link.task.cancel()

    def send(self, pubkey: str, kind: int, payload: bytes) -> None:
        link = self._outbound.get(pubkey)
        if link is None:
            return
        if len(link.queue) == link.queue.maxlen:
            link.dropped += 1
        link.queue.append((time.monotonic(), bytes([kind]) + payload))
        link.wakeup.set()

    def broadcast(self, kind: int, payload: bytes) -> None:
        for pubkey in list(self._outbound):
            self.send(pubkey, kind, payload)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [link.task for link in self._outbound.values() if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ws in list(self._inbound.values()):
            await ws.close()
        if self._session is not None:
            await self._session.close()

    # ---- naming ----------------------------------------------------------
    def _label(self, pubkey: str) -> str:
        name = self._names().get(pubkey)
        return "%s (%s…)" % (name, pubkey[:8]) if name else pubkey[:8] + "…"

    # ---- dialling --------------------------------------------------------
    async def _dial_forever(self, link: _OutboundLink) -> None:
        backoff_s = BACKOFF_FIRST_S
        while not self._stopping:
            try:
                assert self._session is not None  # set in start(), before any dial task exists
                async with self._session.ws_connect(
                    "ws://%s%s" % (link.endpoint, PEER_PATH),
                    max_msg_size=self._max_frame_bytes,
                    heartbeat=5.0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                ) as ws:
                    await asyncio.wait_for(
                        self._dialer_handshake(ws, link.pubkey), HANDSHAKE_TIMEOUT_S
                    )
                    link.connected = True
                    backoff_s = BACKOFF_FIRST_S
                    log.info("peer %s connected", self._label(link.pubkey))
                    await self._pump(ws, link)
            except asyncio.CancelledError:
                raise
            except HandshakeError as exc:
                log.warning("peer %s refused: %s", self._label(link.pubkey), exc)
            except (TimeoutError, aiohttp.ClientError, OSError, ConnectionError):
                pass
            finally:
                if link.connected:
                    link.connected = False
                    if not self._stopping:
                        log.info("peer %s disconnected", self._label(link.pubkey))
            await asyncio.sleep(backoff_s)
            backoff_s = min(BACKOFF_MAX_S, backoff_s * 2)

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse, link: _OutboundLink) -> None:
        """Send queued frames until the link drops; read to notice closes."""
        reader = asyncio.create_task(self._drain_reads(ws))
        try:
            while not ws.closed and not reader.done():
                while link.queue:
                    queued_s, frame = link.queue[0]
                    # Frames that waited out a disconnection are stale: consensus resends what
                    # still matters, and old votes would only make the peer think we are behind.
                    if time.monotonic() - queued_s <= STALE_FRAME_S:
                        await ws.send_bytes(frame)
                    link.queue.popleft()
                link.wakeup.clear()
                if link.queue:
                    continue
                waiter = asyncio.create_task(link.wakeup.wait())
                await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            reader.cancel()

    async def _drain_reads(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                return

    async def _dialer_handshake(self, ws: aiohttp.ClientWebSocketResponse, expected: str) -> None:
        nonce = secrets.token_hex(32)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "chain_id": self._chain_id,
                    "genesis": self._genesis_hash,
                    "pubkey": self._key.public_key,
                    "nonce": nonce,
                }
            )
        )
        reply = await _receive_json(ws)
        if reply.get("type") == "refused":
            raise HandshakeError(str(reply.get("reason"))[:200])
        their_key = reply.get("pubkey")
        if reply.get("type") != "hello" or their_key != expected:
            raise HandshakeError(
                "answered by key %r, not the expected validator" % str(their_key)[:16]
            )
        payload = handshake_payload(
            self._chain_id, self._genesis_hash, nonce, expected, self._key.public_key, LISTENER
        )
        if not verify(expected, payload, str(reply.get("signature"))):
            raise HandshakeError("bad handshake signature")
        their_nonce = reply.get("nonce")
        if not is_hex(their_nonce, 32):
            raise HandshakeError("bad nonce")
        proof = self._key.sign(
            handshake_payload(
                self._chain_id,
                self._genesis_hash,
                str(their_nonce),
                self._key.public_key,
                expected,
                DIALER,
            )
        )
        await ws.send_str(json.dumps({"type": "proof", "signature": proof}))
        done = await _receive_json(ws)
        if done.get("type") != "ready":
            raise HandshakeError(str(done.get("reason", "no ready"))[:200])

    # ---- accepting -------------------------------------------------------
    async def _accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self._max_frame_bytes, heartbeat=5.0)
        await ws.prepare(request)
        try:
            pubkey = await asyncio.wait_for(self._listener_handshake(ws), HANDSHAKE_TIMEOUT_S)
        except (TimeoutError, HandshakeError, ValueError) as exc:
            reason = str(exc) or "handshake timed out"
            log.warning("refused a peer connection from %s: %s", request.remote, reason)
            if not ws.closed:
                await ws.send_str(json.dumps({"type": "refused", "reason": reason}))
                await ws.close()
            return ws
        previous = self._inbound.get(pubkey)
        self._inbound[pubkey] = ws
        if previous is not None:
            await previous.close()
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.BINARY or not message.data:
                    break  # after the handshake only binary frames are allowed
                if pubkey not in self._allowed:
                    break  # removed from the validator set
                self._on_message(pubkey, message.data[0], message.data[1:])
        finally:
            if self._inbound.get(pubkey) is ws:
                del self._inbound[pubkey]
        return ws

    async def _listener_handshake(self, ws: web.WebSocketResponse) -> str:
        hello = await _receive_json(ws)
        if hello.get("type") != "hello":
            raise HandshakeError("expected hello")
        if hello.get("chain_id") != self._chain_id or hello.get("genesis") != self._genesis_hash:
            raise HandshakeError("different chain (chain id or genesis hash differs)")
        their_key = hello.get("pubkey")
        if not is_account_id(their_key) or their_key not in self._allowed:
            raise HandshakeError("key %s is not a validator of this chain" % str(their_key)[:16])
        their_nonce = hello.get("nonce")
        if not is_hex(their_nonce, 32):
            raise HandshakeError("bad nonce")
        nonce = secrets.token_hex(32)
        signature = self._key.sign(
            handshake_payload(
                self._chain_id,
                self._genesis_hash,
                str(their_nonce),
                self._key.public_key,
                str(their_key),
                LISTENER,
            )
        )
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "pubkey": self._key.public_key,
                    "nonce": nonce,
                    "signature": signature,
                }
            )
        )
        proof = await _receive_json(ws)
        payload = handshake_payload(
            self._chain_id, self._genesis_hash, nonce, their_key, self._key.public_key, DIALER
        )
        if proof.get("type") != "proof" or not verify(
            their_key, payload, str(proof.get("signature"))
        ):
            raise HandshakeError("bad handshake signature")
        await ws.send_str(json.dumps({"type": "ready"}))
        return their_key


async def _receive_json(
    ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> dict[str, object]:
    message = await ws.receive()
    if message.type != aiohttp.WSMsgType.TEXT or len(message.data) > MAX_HANDSHAKE_BYTES:
        raise HandshakeError("handshake message expected, got %s" % message.type.name)
    try:
        value = json.loads(message.data)
    except ValueError:
        raise HandshakeError("handshake message is not JSON") from None
    if not isinstance(value, dict):
        raise HandshakeError("handshake message is not an object")
    return value
