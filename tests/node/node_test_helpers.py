"""Shared helpers for node tests: free loopback ports and bounded waiting."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free right now (kept open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


async def async_wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return predicate()


# ---- transactions on the development chain ------------------------------------------------

import hashlib  # noqa: E402

from contracts.transactions import sign_tx  # noqa: E402
from primitives.crypto import SigningKey  # noqa: E402

DEVNET = "yuxi-devnet"


def user_key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"node test user " + label.encode()).digest())


def signed(key: SigningKey, tx_type: str, nonce: int, body: dict, chain_id: str = DEVNET) -> dict:
    return sign_tx({"chain_id": chain_id, "type": tx_type, "sender": key.public_key, "nonce": nonce, "body": body}, key)


def register(authority: SigningKey, nonce: int, account: str, birth_date: str = "1990-05-17") -> dict:
    return signed(authority, "register_account", nonce, {"account": account, "birth_date": birth_date, "kyc_ref": "ab" * 32})
