"""Shared helpers for node tests: free loopback ports and bounded waiting."""

from __future__ import annotations

import asyncio
import hashlib
import json as _json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from consensus.types import Block, CommitCertificate, commit_payload
from contracts.genesis import devnet_validator_key
from contracts.transactions import sign_tx
from primitives.crypto import SigningKey


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


async def async_wait_until(
    predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return predicate()


# ---- transactions on the development chain ------------------------------------------------


DEVNET = "yuxi-devnet"


def user_key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"node test user " + label.encode()).digest())


def signed(key: SigningKey, tx_type: str, nonce: int, body: dict, chain_id: str = DEVNET) -> dict:
    return sign_tx(
        {
            "chain_id": chain_id,
            "type": tx_type,
            "sender": key.public_key,
            "nonce": nonce,
            "body": body,
        },
        key,
    )


def register(
    authority: SigningKey, nonce: int, account: str, birth_date: str = "1990-05-17"
) -> dict:
    return signed(
        authority,
        "register_account",
        nonce,
        {"account": account, "birth_date": birth_date, "kyc_ref": "ab" * 32},
    )


# ---- real node processes on loopback ------------------------------------------------------


REPO = Path(__file__).resolve().parents[2]


def free_base_port(count: int) -> int:
    """A base port P with P+i and P+100+i free for i < count (rpc and peer ports of a testnet)."""
    for _ in range(200):
        # Below the Linux ephemeral range (32768+), so outgoing connections never take them.
        base = random.randrange(20_000, 32_000, 10)
        ports = [base + i for i in range(count)] + [base + 100 + i for i in range(count)]
        try:
            held = []
            for port in ports:
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise RuntimeError("no free port range found")


def yuxi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", *args]


def start_node_process(home: Path) -> subprocess.Popen[bytes]:
    with open(Path(home) / "node.log", "ab") as log:
        return subprocess.Popen(
            yuxi_command("node", "run", "--home", str(home)),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not stop in time; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def http_json(url: str, body: object | None = None, timeout_s: float = 5.0) -> tuple[int, object]:
    data = None if body is None else _json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, _json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json.loads(error.read() or b"null")


def rpc_height(url: str) -> int:
    try:
        status, answer = http_json(url + "/v1/status", timeout_s=2.0)
    except (OSError, ValueError):
        return -1
    return answer["height"] if status == 200 and isinstance(answer, dict) else -1


def block_hash(url: str, height: int) -> str | None:
    status, answer = http_json("%s/v1/blocks/%d" % (url, height))
    return answer["hash"] if status == 200 and isinstance(answer, dict) else None


def block_with_certificate(height: int, state_root: str) -> tuple[Block, CommitCertificate]:
    """A final block with no transactions and a one-signature certificate, for storage."""
    key = devnet_validator_key(0)
    header = {
        "chain_id": "yuxi-devnet",
        "height": height,
        "parent": "0" * 64,
        "time": 1000 + height,
        "proposer": key.public_key,
        "tx_root": "1" * 64,
        "results_root": "2" * 64,
        "state_root": state_root,
    }
    block = Block(header=header, txs=())
    signature = key.sign(commit_payload("yuxi-devnet", height, 0, block.hash))
    return block, CommitCertificate(height, 0, block.hash, ((key.public_key, signature),))
