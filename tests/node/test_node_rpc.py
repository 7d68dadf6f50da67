"""RPC of PROTOCOL §6 against one in-process validator whose blocks the test commits itself."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from node_test_helpers import DEVNET, register, signed, user_key

from consensus.types import CommitCertificate, commit_payload
from contracts.genesis import (
    devnet_authority_key,
    devnet_genesis,
    devnet_validator_key,
    load_genesis,
)
from node.config import load_config, render_config
from node.mempool import parse_id
from node.rpc import make_rpc_app
from node.rpc_support import WriteGate
from node.runner import NodeRuntime, open_storage

AUTHORITY = devnet_authority_key()
VALIDATOR = devnet_validator_key(0)
DAY_MS = 86_400_000


@dataclass
class Node:
    client: TestClient
    runtime: NodeRuntime

    def commit_block(self) -> int:
        """Propose and commit the next block with every ready transaction (a one-validator chain)."""
        app = self.runtime.app
        height = app.committed_height() + 1
        time_ms = max(self.runtime.clock.now_ms(), app.last_header()["time"] + 1)
        block = app.propose(height, time_ms, VALIDATOR.public_key)
        signature = VALIDATOR.sign(commit_payload(DEVNET, height, 0, block.hash))
        app.commit(
            block, CommitCertificate(height, 0, block.hash, ((VALIDATOR.public_key, signature),))
        )
        return height

    async def post(self, path: str, value: object) -> tuple[int, dict]:
        response = await self.client.post(path, json=value)
        return response.status, await response.json()

    async def get(self, path: str) -> tuple[int, dict]:
        response = await self.client.get(path)
        return response.status, await response.json()


async def _start_node(
    extra_config: str = "", dev: bool = True, max_txs: int = 1000
) -> tuple[TestClient, NodeRuntime]:
    home = Path(tempfile.mkdtemp(prefix="yuxi-rpc-test-"))
    config_text = render_config(
        mode="validator", moniker="n0", rpc_listen="127.0.0.1:1", peer_listen="127.0.0.1:2"
    )
    config_text = config_text.replace("max_txs = 50000", "max_txs = %d" % max_txs) + extra_config
    (home / "config.toml").write_text(config_text)
    genesis_obj = devnet_genesis(1, time.time_ns() // 1_000_000 - 1000, 9000)
    genesis_obj["dev"] = dev
    genesis = load_genesis(genesis_obj)
    config = load_config(home)
    runtime = NodeRuntime(config, genesis, VALIDATOR, open_storage(config, genesis))
    app = make_rpc_app(runtime.service, WriteGate(config.tokens, config.require_token_for_writes))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, runtime


async def _stop(client: TestClient, runtime: NodeRuntime) -> None:
    await client.close()
    runtime.storage.close()
    shutil.rmtree(runtime.config.home)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    client, runtime = await _start_node()
    try:
        yield Node(client, runtime)
    finally:
        await _stop(client, runtime)


async def _with_users(node: Node, *labels: str) -> list:
    keys = [user_key(label) for label in labels]
    for index, key in enumerate(keys):
        status, _ = await node.post("/v1/transactions", register(AUTHORITY, index, key.public_key))
        assert status == 202
    node.commit_block()
    return keys


async def _collection_with_tokens(
    node: Node, owner: str, count: int, nonce: int, collection: str = "moon-rabbit"
) -> None:
    body = {
        "collection": collection,
        "name": "Moon Rabbit",
        "max_supply": 1000,
        "transferable": True,
    }
    assert (
        await node.post("/v1/transactions", signed(AUTHORITY, "create_collection", nonce, body))
    )[0] == 202
    items = [
        {"serial": serial, "owner": owner, "content_hash": "cd" * 32}
        for serial in range(1, count + 1)
    ]
    mint = signed(AUTHORITY, "mint", nonce + 1, {"collection": collection, "items": items})
    assert (await node.post("/v1/transactions", mint))[0] == 202
    node.commit_block()


async def test_submit_is_idempotent_and_the_transaction_is_tracked_to_commit(node: Node) -> None:
    """A submission answers 202 pending, a resubmission the same id, and the tx shows up committed with its result."""
    tx = register(AUTHORITY, 0, user_key("alice").public_key)
    status, first = await node.post("/v1/transactions", tx)
    assert status == 202 and first["status"] == "pending"
    assert await node.post("/v1/transactions", tx) == (202, first)
    status, pending = await node.get("/v1/transactions/" + first["id"])
    assert status == 200 and pending["status"] == "pending" and pending["tx"] == tx
    height = node.commit_block()
    status, committed = await node.get("/v1/transactions/" + first["id"])
    assert committed["status"] == "committed"
    assert (committed["height"], committed["index"], committed["result"]["code"]) == (
        height,
        0,
        "ok",
    )
    assert await node.post("/v1/transactions", tx) == (202, first)


@pytest.mark.parametrize(
    "case, code",
    [
        ("unknown_field", "malformed"),
        ("bad_body", "malformed"),
        ("too_large", "too_large"),
        ("wrong_chain", "wrong_chain"),
        ("bad_signature", "bad_signature"),
        ("unknown_sender", "unknown_sender"),
        ("stale_nonce", "stale_nonce"),
        ("nonce_gap", "nonce_gap"),
    ],
)
async def test_every_admission_error_has_its_code(node: Node, case: str, code: str) -> None:
    """Each admission check of PROTOCOL §2 refuses with HTTP 400 and its exact code."""
    node_user = user_key("bob")
    await node.post("/v1/transactions", register(AUTHORITY, 0, node_user.public_key))
    node.commit_block()
    good = register(AUTHORITY, 1, user_key("carol").public_key)
    if case == "unknown_field":
        tx = dict(good, extra=1)
    elif case == "bad_body":
        tx = signed(AUTHORITY, "gift", 1, {"token": "no-serial", "to": node_user.public_key})
    elif case == "too_large":
        tx = signed(
            AUTHORITY, "propose", 1, {"action": "set_params", "args": {"pad": "x" * 17_000}}
        )
    elif case == "wrong_chain":
        tx = signed(AUTHORITY, "register_account", 1, good["body"], chain_id="other-chain")
    elif case == "bad_signature":
        tx = dict(good, signature="00" * 64)
    elif case == "unknown_sender":
        tx = signed(
            user_key("nobody"), "gift", 0, {"token": "moon-rabbit:1", "to": node_user.public_key}
        )
    elif case == "stale_nonce":
        tx = register(AUTHORITY, 0, user_key("carol").public_key)
    else:
        tx = register(AUTHORITY, 1 + 1025, user_key("carol").public_key)
    status, answer = await node.post("/v1/transactions", tx)
    assert (status, answer["error"]["code"]) == (400, code), answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


async def test_mempool_full_answers_503() -> None:
    """Past the mempool bound a submission gets 503 mempool_full and earlier ones stay pending;
    the signature cache is sized by that bound."""
    client, runtime = await _start_node(max_txs=2)
    node = Node(client, runtime)
    try:
        assert runtime.signatures.capacity == 4
        ids = []
        for nonce in range(2):
            status, answer = await node.post(
                "/v1/transactions", register(AUTHORITY, nonce, user_key("u%d" % nonce).public_key)
            )
            assert status == 202
            ids.append(answer["id"])
        status, answer = await node.post(
            "/v1/transactions", register(AUTHORITY, 2, user_key("u2").public_key)
        )
        assert (status, answer["error"]["code"]) == (503, "mempool_full")
        for tx_id in ids:
            assert (await node.get("/v1/transactions/" + tx_id))[1]["status"] == "pending"
    finally:
        await _stop(client, runtime)


@pytest.mark.parametrize(
    "body, code",
    [
        (b"", "malformed"),
        (b'{"chain_id": "yuxi-devnet", "type": "gi', "malformed"),
        (b'{"a": 1, "a": 2}', "malformed"),
        (b'{"nonce": 1.5}', "malformed"),
        (b'{"nonce": NaN}', "malformed"),
        (b"[1, 2, 3]", "malformed"),
        (b'"just a string"', "malformed"),
        (b'{"chain_id": null}', "malformed"),
        (b"\xff\xfe", "malformed"),
        (
            b'{"chain_id": "yuxi-devnet", "type": "gift", "sender": 5, "nonce": "x", "body": []}',
            "malformed",
        ),
        (b'{"transactions": []}', "malformed"),
        (b'{"transactions": "x"}', "malformed"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_loses_nothing(
    node: Node, body: bytes, code: str
) -> None:
    """Empty, truncated, duplicate-key, float, null and wrong-typed bodies get 400; accepted txs survive."""
    status, accepted = await node.post(
        "/v1/transactions", register(AUTHORITY, 0, user_key("dave").public_key)
    )
    assert status == 202
    response = await node.client.post(
        "/v1/transactions", data=body, headers={"Content-Type": "application/json"}
    )
    answer = await response.json()
    assert response.status == 400 and answer["error"]["code"] == code
    assert (await node.get("/v1/transactions/" + accepted["id"]))[1]["status"] == "pending"
    assert (await node.get("/v1/status"))[0] == 200


async def test_oversized_body_is_refused(node: Node) -> None:
    """A request body above the node's limit is refused with 413 and the node keeps answering."""
    response = await node.client.post("/v1/transactions", data=b"[" + b"1," * 3_000_000 + b"1]")
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    assert (await node.get("/v1/status"))[0] == 200


async def test_batch_answers_in_order_with_errors_in_place(node: Node) -> None:
    """A batch gets one answer per transaction, in order, errors where they belong; over 1000 is refused."""
    good = [register(AUTHORITY, nonce, user_key("b%d" % nonce).public_key) for nonce in range(3)]
    batch = [good[0], dict(good[1], signature="00" * 64), good[1], {"nope": 1}, good[2]]
    status, answer = await node.post("/v1/transactions", {"transactions": batch})
    assert status == 202
    results = answer
    assert [item.get("status") or item["error"]["code"] for item in results] == [
        "pending",
        "bad_signature",
        "pending",
        "malformed",
        "pending",
    ]
    node.commit_block()
    assert (await node.get("/v1/accounts/" + AUTHORITY.public_key))[1]["nonce"] == 3
    status, answer = await node.post("/v1/transactions", {"transactions": [good[0]] * 1001})
    assert (status, answer["error"]["code"]) == (400, "too_large")


async def test_nonce_gap_is_held_back_until_filled(node: Node) -> None:
    """A transaction above the next nonce waits in the mempool and is included once the gap is filled."""
    later = register(AUTHORITY, 1, user_key("later").public_key)
    status, later_answer = await node.post("/v1/transactions", later)
    assert status == 202
    node.commit_block()
    assert (await node.get("/v1/transactions/" + later_answer["id"]))[1]["status"] == "pending"
    assert "yuxi_mempool_size 1.0" in await (await node.client.get("/metrics")).text()
    await node.post("/v1/transactions", register(AUTHORITY, 0, user_key("first").public_key))
    node.commit_block()
    assert (await node.get("/v1/transactions/" + later_answer["id"]))[1]["status"] == "committed"
    assert "yuxi_mempool_size 0.0" in await (await node.client.get("/metrics")).text()


async def test_check_reports_holding_period_with_eligible_at(node: Node) -> None:
    """The dry run answers as executed now: a fresh mint cannot be gifted and says when it can."""
    alice, bob = await _with_users(node, "alice", "bob")
    await _collection_with_tokens(node, alice.public_key, 1, nonce=2)
    token = (await node.get("/v1/tokens/moon-rabbit/1"))[1]
    gift = {
        "chain_id": DEVNET,
        "type": "gift",
        "sender": alice.public_key,
        "nonce": 0,
        "body": {"token": "moon-rabbit:1", "to": bob.public_key},
    }
    status, answer = await node.post("/v1/transactions/check", gift)
    assert status == 200
    assert answer["result"]["code"] == "holding_period"
    assert answer["result"]["eligible_at"] == token["held_since"] + 180 * DAY_MS
    status, answer = await node.post(
        "/v1/transactions/check", signed(alice, "gift", 0, gift["body"]) | {"signature": "00" * 64}
    )
    assert (status, answer["error"]["code"]) == (400, "bad_signature")


async def test_reads_of_accounts_tokens_and_collections(node: Node) -> None:
    """Account, token, collection reads have the §6 shapes, and token lists page with a cursor."""
    (alice,) = await _with_users(node, "alice")
    await _collection_with_tokens(node, alice.public_key, 5, nonce=1)
    status, account = await node.get("/v1/accounts/" + alice.public_key)
    assert status == 200
    assert set(account) == {
        "account",
        "nonce",
        "authenticated",
        "birth_date",
        "roles",
        "sanctions",
        "token_count",
    }
    assert account["token_count"] == 5 and account["authenticated"] is True
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        status, page = await node.get(
            "/v1/accounts/%s/tokens?limit=2&cursor=%s" % (alice.public_key, cursor)
        )
        assert status == 200 and len(page["tokens"]) <= 2
        seen += page["tokens"]
        if page["next"] is None:
            break
        cursor = page["next"]
    assert sorted(seen) == sorted("moon-rabbit:%d" % serial for serial in range(1, 6))
    status, token = await node.get("/v1/tokens/moon-rabbit/3")
    assert status == 200 and token["owner"] == alice.public_key and token["acquired_by"] == "mint"
    assert token["history"][0]["owner"] == alice.public_key
    status, collection = await node.get("/v1/collections/moon-rabbit")
    assert (
        status == 200 and collection["issuer"] == AUTHORITY.public_key and collection["minted"] == 5
    )
    for path in (
        "/v1/accounts/" + "0" * 64,
        "/v1/tokens/moon-rabbit/99",
        "/v1/collections/nothing-here",
        "/v1/transactions/" + "0" * 64,
        "/v1/blocks/99",
        "/v1/no/such/route",
    ):
        status, answer = await node.get(path)
        assert status == 404 and answer["error"]["code"] == "not_found", path
    for path in (
        "/v1/accounts/XYZ",
        "/v1/transactions/abc",
        "/v1/blocks/abc",
        "/v1/accounts/%s/tokens?limit=0" % alice.public_key,
        "/v1/accounts/%s/tokens?limit=x" % alice.public_key,
    ):
        status, answer = await node.get(path)
        assert status == 400 and answer["error"]["code"] == "bad_request", path


async def test_blocks_status_params_and_metrics(node: Node) -> None:
    """Blocks carry header, hash, tx ids or full txs, result codes and the commit; status, params, metrics answer."""
    assert (await node.get("/v1/blocks/latest"))[0] == 404
    tx = register(AUTHORITY, 0, user_key("erin").public_key)
    tx_id = (await node.post("/v1/transactions", tx))[1]["id"]
    node.commit_block()
    status, block = await node.get("/v1/blocks/1")
    assert status == 200 and block["txs"] == [tx_id] and block["results"] == ["ok"]
    assert (
        block["commit"]["view"] == 0
        and block["commit"]["signatures"][0]["validator"] == VALIDATOR.public_key
    )
    assert (await node.get("/v1/blocks/latest"))[1] == block
    assert (await node.get("/v1/blocks/1?txs=full"))[1]["txs"] == [tx]
    status, answer = await node.get("/v1/status")
    assert (
        answer["chain_id"] == DEVNET and answer["height"] == 1 and answer["hash"] == block["hash"]
    )
    assert (
        answer["node"] == VALIDATOR.public_key and answer["syncing"] is False and "view" in answer
    )
    status, params = await node.get("/v1/params")
    assert params["params"]["first_hold_days"] == 180 and params["history"][0]["height"] == 0
    response = await node.client.get("/metrics")
    text = await response.text()
    for name in (
        "yuxi_height 1.0",
        "yuxi_view",
        "yuxi_commits_total 1.0",
        "yuxi_view_changes_total",
        "yuxi_mempool_size",
        "yuxi_peer_count",
        "yuxi_rpc_latency_seconds",
    ):
        assert name in text, name


async def test_events_resume_from_a_height_with_no_gaps(node: Node) -> None:
    """The events socket replays stored blocks from from_height, then follows new commits live;
    every subscriber reads the same message, naming each transaction by the id it was given."""
    ids = []
    for nonce in range(3):
        _, answer = await node.post(
            "/v1/transactions", register(AUTHORITY, nonce, user_key("ev%d" % nonce).public_key)
        )
        ids.append(answer["id"])
        node.commit_block()
    async with (
        node.client.ws_connect("/v1/events?from_height=2") as ws,
        node.client.ws_connect("/v1/events?from_height=3") as other,
    ):
        first = await ws.receive_json(timeout=5)
        second = await ws.receive_json(timeout=5)
        assert (first["type"], first["height"], second["height"]) == ("block", 2, 3)
        assert first["txs"] == [
            {"id": ids[1], "type": "register_account", "sender": AUTHORITY.public_key, "code": "ok"}
        ]
        assert await other.receive_json(timeout=5) == second
        await node.post("/v1/transactions", register(AUTHORITY, 3, user_key("ev3").public_key))
        node.commit_block()
        await node.runtime.service.announce_commit()
        live = await ws.receive_json(timeout=5)
        assert live["height"] == 4 and live["hash"] == (await node.get("/v1/blocks/4"))[1]["hash"]
        assert await other.receive_json(timeout=5) == live


async def test_dev_clock_moves_this_nodes_clock(node: Node) -> None:
    """On a development chain /v1/dev/clock sets the clock offset; bad bodies are refused."""
    before = node.runtime.clock.now_ms()
    status, answer = await node.post("/v1/dev/clock", {"offset_ms": 200 * DAY_MS})
    assert status == 200 and answer["offset_ms"] == 200 * DAY_MS
    assert node.runtime.clock.now_ms() >= before + 200 * DAY_MS
    for bad in ({"offset_ms": 1.5}, {"offset_ms": "1"}, {}, {"offset_ms": 1, "x": 2}):
        status, answer = await node.post("/v1/dev/clock", bad)
        assert status == 400, bad


async def test_dev_clock_is_absent_on_a_production_chain() -> None:
    """Without "dev": true in genesis the clock endpoint is 404."""
    client, runtime = await _start_node(dev=False)
    try:
        response = await client.post("/v1/dev/clock", json={"offset_ms": 1})
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    finally:
        await _stop(client, runtime)


async def test_bearer_tokens_and_rate_limits_for_writes() -> None:
    """With platform tokens configured, writes need a known token and are rate-limited per token."""
    extra = '\n[[rpc.tokens]]\nplatform = "acme"\ntoken = "acme-secret-token-123"\nrate_per_second = 1\nburst = 2\n'
    client, runtime = await _start_node_with_tokens(extra)
    try:
        tx = register(AUTHORITY, 0, user_key("tok").public_key)
        response = await client.post("/v1/transactions", json=tx)
        assert response.status == 401
        response = await client.post(
            "/v1/transactions", json=tx, headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}
        )
        assert response.status == 403
        headers = {"Authorization": "Bearer acme-secret-token-123"}
        statuses = [
            (await client.post("/v1/transactions", json=tx, headers=headers)).status
            for _ in range(3)
        ]
        assert statuses == [202, 202, 429]
        assert (await client.get("/v1/status")).status == 200  # reads stay open
    finally:
        await _stop(client, runtime)


async def _start_node_with_tokens(
    tokens_toml: str, close_reads: bool = False
) -> tuple[TestClient, NodeRuntime]:
    home = Path(tempfile.mkdtemp(prefix="yuxi-rpc-test-"))
    text = render_config(
        mode="validator", moniker="n0", rpc_listen="127.0.0.1:1", peer_listen="127.0.0.1:2"
    )
    if close_reads:
        text = text.replace('listen = "127.0.0.1:1"', 'listen = "127.0.0.1:1"\nclose_reads = true')
    text = text.replace("[peers]", tokens_toml.strip() + "\n\n[peers]")
    (home / "config.toml").write_text(text)
    genesis = load_genesis(devnet_genesis(1, time.time_ns() // 1_000_000 - 1000, 9000))
    config = load_config(home)
    runtime = NodeRuntime(config, genesis, VALIDATOR, open_storage(config, genesis))
    client = TestClient(
        TestServer(
            make_rpc_app(runtime.service, WriteGate(config.tokens, config.require_token_for_writes))
        )
    )
    await client.start_server()
    return client, runtime


def test_strict_json_rejects_what_json_loads_accepts() -> None:
    """Duplicate keys, floats and NaN parse with json.loads but are refused by the RPC parser."""
    from node.rpc_support import RpcError, parse_strict_json

    assert json.loads('{"a": 1, "a": 2}') == {"a": 2}
    for text in (b'{"a": 1, "a": 2}', b'{"a": 1.0}', b'{"a": Infinity}'):
        with pytest.raises(RpcError):
            parse_strict_json(text)


async def test_closed_reads_need_a_token_but_metrics_stay_open() -> None:
    """With close_reads, GETs without a known bearer token are refused; /metrics still answers."""
    tokens = '[[rpc.tokens]]\nplatform = "acme"\ntoken = "acme-secret-token-123"\n'
    client, runtime = await _start_node_with_tokens(tokens, close_reads=True)
    try:
        assert (await client.get("/v1/status")).status == 401
        bad = {"Authorization": "Bearer not-the-token-at-all"}
        assert (await client.get("/v1/status", headers=bad)).status == 403
        good = {"Authorization": "Bearer acme-secret-token-123"}
        assert (await client.get("/v1/status", headers=good)).status == 200
        assert (await client.get("/metrics")).status == 200
    finally:
        await _stop(client, runtime)


async def test_accepted_transactions_are_stored_before_the_answer(node: Node) -> None:
    """The 202 comes after the accepted transactions are written (one batch per request), so
    a node killed right after answering restores them."""
    _, one = await node.post("/v1/transactions", register(AUTHORITY, 0, user_key("st0").public_key))
    batch = [register(AUTHORITY, nonce, user_key("st%d" % nonce).public_key) for nonce in (1, 2)]
    _, many = await node.post("/v1/transactions", {"transactions": batch})
    stored = {parse_id(encoded) for encoded in node.runtime.storage.pending_all()}
    assert stored == {one["id"], many[0]["id"], many[1]["id"]}
