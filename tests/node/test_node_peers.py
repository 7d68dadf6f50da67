"""Peer links: mutual authentication, refusal of strangers, delivery and reconnection."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web
from node_test_helpers import async_wait_until, free_ports

from node.peers import KIND_CONSENSUS, KIND_TX, PeerNetwork
from primitives.crypto import SigningKey, sha256

CHAIN = "yuxi-test"
GENESIS = "ab" * 32


def _key(i: int) -> SigningKey:
    return SigningKey(sha256(b"peer test %d" % i))


class _Node:
    def __init__(
        self,
        key: SigningKey,
        port: int,
        endpoints: dict[str, str],
        genesis: str = GENESIS,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self.key = key
        self.port = port
        self.received: list[tuple[str, int, bytes]] = []
        self.network = PeerNetwork(
            key=key,
            chain_id=CHAIN,
            genesis_hash=genesis,
            endpoints=lambda: endpoints,
            names=dict,
            on_message=lambda peer, kind, data: self.received.append((peer, kind, data)),
            max_frame_bytes=max_frame_bytes,
        )
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        self.network.add_routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        await self.network.start()

    async def stop(self) -> None:
        await self.network.stop()
        if self.runner is not None:
            await self.runner.cleanup()


async def test_validators_authenticate_and_exchange_messages() -> None:
    """Two validators link up both ways and deliver frames tagged with the sender's key."""
    keys = [_key(0), _key(1)]
    ports = free_ports(2)
    endpoints = {k.public_key: "127.0.0.1:%d" % p for k, p in zip(keys, ports)}
    nodes = [_Node(k, p, endpoints) for k, p in zip(keys, ports)]
    try:
        for node in nodes:
            await node.start()
        assert await async_wait_until(lambda: all(n.network.connected_peers == 1 for n in nodes), 5)
        nodes[0].network.send(keys[1].public_key, KIND_CONSENSUS, b"vote")
        nodes[1].network.broadcast(KIND_TX, b"tx")
        assert await async_wait_until(lambda: nodes[1].received and nodes[0].received, 5)
        assert nodes[1].received == [(keys[0].public_key, KIND_CONSENSUS, b"vote")]
        assert nodes[0].received == [(keys[1].public_key, KIND_TX, b"tx")]
    finally:
        for node in nodes:
            await node.stop()


async def test_unknown_key_and_other_chain_are_refused() -> None:
    """A key outside the validator set, or a node of another genesis, never gets a message through."""
    keys = [_key(0), _key(1), _key(2)]
    ports = free_ports(3)
    validators = {
        keys[0].public_key: "127.0.0.1:%d" % ports[0],
        keys[1].public_key: "127.0.0.1:%d" % ports[1],
    }
    honest = _Node(keys[0], ports[0], validators)
    stranger_view = dict(validators)
    stranger_view[keys[2].public_key] = "127.0.0.1:%d" % ports[2]
    stranger = _Node(keys[2], ports[2], stranger_view)
    other_chain = _Node(keys[1], ports[1], validators, genesis="cd" * 32)
    try:
        for node in (honest, stranger, other_chain):
            await node.start()
        for node in (stranger, other_chain):
            node.network.send(keys[0].public_key, KIND_CONSENSUS, b"forged")
        await asyncio.sleep(1.0)
        assert honest.received == []
        assert honest.network.connected_peers == 0
    finally:
        for node in (honest, stranger, other_chain):
            await node.stop()


async def test_link_comes_back_after_a_peer_restarts() -> None:
    """Dialling backs off and reconnects when a peer goes away and returns."""
    keys = [_key(0), _key(1)]
    ports = free_ports(2)
    endpoints = {k.public_key: "127.0.0.1:%d" % p for k, p in zip(keys, ports)}
    first = _Node(keys[0], ports[0], endpoints)
    second = _Node(keys[1], ports[1], endpoints)
    try:
        await first.start()
        await second.start()
        assert await async_wait_until(lambda: first.network.connected_peers == 1, 5)
        await second.stop()
        assert await async_wait_until(lambda: first.network.connected_peers == 0, 5)
        second = _Node(keys[1], ports[1], endpoints)
        await second.start()
        assert await async_wait_until(lambda: first.network.connected_peers == 1, 10)
        first.network.send(keys[1].public_key, KIND_CONSENSUS, b"again")
        assert await async_wait_until(lambda: bool(second.received), 5)
    finally:
        await first.stop()
        await second.stop()


async def test_oversized_frames_drop_the_link_and_small_ones_still_pass() -> None:
    """A frame above the size limit is never delivered; the link recovers for frames within it."""
    keys = [_key(0), _key(1)]
    ports = free_ports(2)
    endpoints = {k.public_key: "127.0.0.1:%d" % p for k, p in zip(keys, ports)}
    sender = _Node(keys[0], ports[0], endpoints)
    receiver = _Node(keys[1], ports[1], endpoints, max_frame_bytes=1024)
    try:
        await sender.start()
        await receiver.start()
        assert await async_wait_until(lambda: sender.network.connected_peers == 1, 5)
        sender.network.send(keys[1].public_key, KIND_CONSENSUS, b"x" * 4096)
        await asyncio.sleep(0.5)
        assert receiver.received == []
        assert await async_wait_until(lambda: sender.network.connected_peers == 1, 10)
        sender.network.send(keys[1].public_key, KIND_CONSENSUS, b"small")
        assert await async_wait_until(lambda: bool(receiver.received), 5)
        assert receiver.received == [(keys[0].public_key, KIND_CONSENSUS, b"small")]
    finally:
        await sender.stop()
        await receiver.stop()


async def test_a_listeners_answer_cannot_be_replayed_as_a_dialers_proof() -> None:
    """Someone without a key cannot relay A's handshake answer to pass as A on a link to B."""
    keys = [_key(0), _key(1)]
    ports = free_ports(2)
    endpoints = {k.public_key: "127.0.0.1:%d" % p for k, p in zip(keys, ports)}
    victim_a = _Node(keys[0], ports[0], endpoints)
    victim_b = _Node(keys[1], ports[1], endpoints)
    try:
        for node in (victim_a, victim_b):
            await node.start()
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect("ws://127.0.0.1:%d/peer" % ports[1]) as to_b:
                # Claim to be A towards B; B answers with its nonce for A to sign.
                await to_b.send_str(
                    json.dumps(
                        {
                            "type": "hello",
                            "chain_id": CHAIN,
                            "genesis": GENESIS,
                            "pubkey": keys[0].public_key,
                            "nonce": "11" * 32,
                        }
                    )
                )
                b_hello = json.loads((await to_b.receive()).data)
                async with session.ws_connect("ws://127.0.0.1:%d/peer" % ports[0]) as to_a:
                    # Claim to be B towards A, handing A the nonce B wants signed.
                    await to_a.send_str(
                        json.dumps(
                            {
                                "type": "hello",
                                "chain_id": CHAIN,
                                "genesis": GENESIS,
                                "pubkey": keys[1].public_key,
                                "nonce": b_hello["nonce"],
                            }
                        )
                    )
                    a_hello = json.loads((await to_a.receive()).data)
                await to_b.send_str(
                    json.dumps({"type": "proof", "signature": a_hello["signature"]})
                )
                answer = await to_b.receive()
                assert (
                    answer.type != aiohttp.WSMsgType.TEXT
                    or json.loads(answer.data).get("type") != "ready"
                )
                await to_b.send_bytes(bytes([KIND_CONSENSUS]) + b"forged")
        await asyncio.sleep(0.3)
        assert all(message[2] != b"forged" for message in victim_b.received)
    finally:
        await victim_a.stop()
        await victim_b.stop()
