"""The RPC of PROTOCOL §6: an aiohttp app factory with thin handlers.

Handlers decode the request strictly, call the node service, and encode the
answer; every failure is {"error": {"code", "message"}} with a fitting status.
The service (node.service.NodeService) holds the domain: mempool, storage,
contracts queries and the commit notifications the events socket follows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from node.metrics import CONTENT_TYPE_LATEST
from node.rpc_support import RpcError, WriteGate, error_response, parse_strict_json, query_int
from node.service import NodeService

log = logging.getLogger("yuxi.rpc")

SERVICE_KEY = web.AppKey("service", NodeService)
GATE_KEY = web.AppKey("gate", WriteGate)
SUBSCRIBERS_KEY = web.AppKey("event_subscribers", list)  # [count]; a list so handlers can change it
MAX_EVENT_SUBSCRIBERS = 1000
MAX_BATCH = 1000
ADMIT_CHUNK = 50  # transactions admitted between two turns of the event loop
MAX_PAGE = 1000
DEFAULT_PAGE = 100
EVENTS_CATCH_UP_CHUNK = 64
_HEX64 = re.compile(r"[0-9a-f]{64}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_and_latency(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    started_s = time.perf_counter()
    try:
        if service.config.close_reads and request.method == "GET" and route != "/metrics":
            request.app[GATE_KEY].admit(request, cost=0)
            if "Authorization" not in request.headers:
                raise RpcError(401, "unauthorized", "reads on this node need a bearer token")
        return await handler(request)
    except RpcError as error:
        service.metrics.rpc_errors.labels(error.code).inc()
        return error_response(error)
    except web.HTTPRequestEntityTooLarge:
        service.metrics.rpc_errors.labels("too_large").inc()
        return error_response(RpcError(413, "too_large", "request body exceeds the node's limit"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        service.metrics.rpc_errors.labels(code).inc()
        return error_response(RpcError(exc.status, code, exc.reason))
    except Exception:
        log.exception("RPC %s %s failed", request.method, request.path)
        return error_response(RpcError(500, "internal", "internal error; the node keeps running"))
    finally:
        service.metrics.rpc_latency.labels(route).observe(time.perf_counter() - started_s)


async def _read_json(request: web.Request) -> Any:
    limit = request.app[SERVICE_KEY].config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RpcError(
            413,
            "too_large",
            "request body of %d bytes exceeds %d" % (request.content_length, limit),
        )
    body = await request.read()
    return parse_strict_json(body)


def _hex64(value: str, what: str) -> str:
    if _HEX64.fullmatch(value) is None:
        raise RpcError(400, "bad_request", "%s must be 64 lowercase hex characters" % what)
    return value


# ---- transactions -----------------------------------------------------------


async def submit_transactions(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    body = await _read_json(request)
    if isinstance(body, dict) and set(body) == {"transactions"}:
        items = body["transactions"]
        if not isinstance(items, list) or not items:
            raise RpcError(400, "malformed", "transactions must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise RpcError(400, "too_large", "a batch holds at most %d transactions" % MAX_BATCH)
        request.app[GATE_KEY].admit(request, cost=len(items))
        answers: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if index and index % ADMIT_CHUNK == 0:
                # A signature check is ~0.1-0.3 ms: a full batch would hold the event loop
                # for a large share of a second, and consensus messages wait behind it.
                await asyncio.sleep(0)
            try:
                answers.append(service.submit(item))
            except RpcError as error:
                answers.append(error.to_dict())
        answer: Any = answers
    else:
        request.app[GATE_KEY].admit(request)
        answer = service.submit(body)
    service.mempool.save_pending()  # on disk before the client hears "pending"
    return web.json_response(answer, status=202)


async def check_transaction(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    body = await _read_json(request)
    return web.json_response({"result": service.check(body)})


def _found(answer: Any, missing: str) -> web.Response:
    """The answer as JSON, or 404 `not_found` with the given message when there is none."""
    if answer is None:
        raise RpcError(404, "not_found", missing)
    return web.json_response(answer)


async def get_transaction(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    tx_id = _hex64(request.match_info["id"], "transaction id")
    return _found(service.transaction(tx_id), "no transaction %s" % tx_id)


# ---- state ------------------------------------------------------------------


async def get_account(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    account = _hex64(request.match_info["id"], "account id")
    return _found(service.account(account), "no account %s" % account)


async def get_account_tokens(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    account = _hex64(request.match_info["id"], "account id")
    limit = query_int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query.get("cursor") or None
    if cursor is not None and (len(cursor) > 100 or ":" not in cursor):
        raise RpcError(400, "bad_request", "cursor must be a token id from a previous page's next")
    return web.json_response(service.tokens_of(account, limit, cursor))


async def get_token(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    token = "%s:%s" % (request.match_info["collection"], request.match_info["serial"])
    return _found(service.token(token), "no token %s" % token)


async def get_collection(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    collection = request.match_info["id"]
    return _found(service.collection(collection), "no collection %s" % collection)


async def get_params(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].params())


# ---- blocks, status, events ------------------------------------------------


async def get_block(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    which = request.match_info["height"]
    full = request.query.get("txs") == "full"
    if which == "latest":
        height = service.storage.height()
        if height == 0:
            raise RpcError(404, "not_found", "no block committed yet")
    elif which.isdigit() and len(which) <= 19:
        height = int(which)
    else:
        raise RpcError(400, "bad_request", "height must be a positive integer or 'latest'")
    return _found(service.block_answer(height, full_txs=full), "no block at height %d" % height)


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SERVICE_KEY].status())


async def get_metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    service.refresh_gauges()
    return web.Response(
        body=service.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Committed blocks in height order, no gaps: stored blocks first, then live ones."""
    service = request.app[SERVICE_KEY]
    committed = service.storage.height()
    next_height = query_int(request, "from_height", committed + 1, 1, 2**62)
    subscribers = request.app[SUBSCRIBERS_KEY]
    if subscribers[0] >= MAX_EVENT_SUBSCRIBERS:
        raise RpcError(503, "busy", "too many event subscribers on this node; try another")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    subscribers[0] += 1
    closed = asyncio.Event()

    async def watch_close() -> None:
        async for message in ws:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        closed.set()

    watcher = asyncio.create_task(watch_close())
    try:
        while not ws.closed and not closed.is_set():
            sent = 0
            while next_height <= service.storage.height() and sent < EVENTS_CATCH_UP_CHUNK:
                await ws.send_str(service.event_text(next_height))
                next_height += 1
                sent += 1
            if sent == EVENTS_CATCH_UP_CHUNK:
                await asyncio.sleep(0)  # let others run while a far-behind reader catches up
                continue
            await service.wait_for_commit(next_height, closed)
    finally:
        subscribers[0] -= 1
        watcher.cancel()
        await ws.close()
    return ws


async def set_dev_clock(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    if not service.is_dev:
        raise RpcError(404, "not_found", "the development clock exists only on a development chain")
    request.app[GATE_KEY].admit(request)
    body = await _read_json(request)
    if not isinstance(body, dict) or set(body) != {"offset_ms"}:
        raise RpcError(400, "malformed", 'expected {"offset_ms": n}')
    offset_ms = body["offset_ms"]
    if isinstance(offset_ms, bool) or not isinstance(offset_ms, int) or not 0 <= offset_ms < 2**53:
        raise RpcError(
            400, "malformed", "offset_ms must be an integer 0..2^53-1 (the clock never goes back)"
        )
    return web.json_response(service.set_clock_offset(offset_ms))


def make_rpc_app(service: NodeService, gate: WriteGate) -> web.Application:
    app = web.Application(
        middlewares=[_errors_and_latency], client_max_size=service.config.max_body_bytes
    )
    app[SERVICE_KEY] = service
    app[GATE_KEY] = gate
    app[SUBSCRIBERS_KEY] = [0]
    app.router.add_post("/v1/transactions", submit_transactions)
    app.router.add_post("/v1/transactions/check", check_transaction)
    app.router.add_get("/v1/transactions/{id}", get_transaction)
    app.router.add_get("/v1/accounts/{id}", get_account)
    app.router.add_get("/v1/accounts/{id}/tokens", get_account_tokens)
    app.router.add_get("/v1/tokens/{collection}/{serial}", get_token)
    app.router.add_get("/v1/collections/{id}", get_collection)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/params", get_params)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_post("/v1/dev/clock", set_dev_clock)
    from node.audit.proofs import register_audit_routes  # auditor routes: state proofs, /v1/genesis

    register_audit_routes(app, service)
    return app
