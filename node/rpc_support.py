"""RPC plumbing: the error shape, strict JSON, bearer tokens and rate limits."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from node.config import PlatformToken


class RpcError(Exception):
    """An answer of the shape {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def error_response(error: RpcError) -> web.Response:
    return web.json_response(error.to_dict(), status=error.status)


class _StrictJsonError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _StrictJsonError("duplicate key %r" % key)
        value[key] = item
    return value


def _no_float(text: str) -> Any:
    raise _StrictJsonError("numbers must be integers, got %s" % text[:32])


def _no_constant(text: str) -> Any:
    raise _StrictJsonError("%s is not allowed" % text)


def parse_strict_json(body: bytes) -> Any:
    """JSON with no duplicate keys, no floats, no NaN/Infinity; RpcError 400 otherwise."""
    if not body:
        raise RpcError(400, "malformed", "empty request body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RpcError(400, "malformed", "request body is not UTF-8") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except _StrictJsonError as exc:
        raise RpcError(400, "malformed", str(exc)) from None
    except ValueError as exc:
        raise RpcError(400, "malformed", "invalid JSON: %s" % exc) from None
    except RecursionError:
        raise RpcError(400, "malformed", "JSON nested too deeply") from None


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class WriteGate:
    """Bearer tokens per platform for writes, each with a token-bucket rate limit."""

    def __init__(self, tokens: tuple[PlatformToken, ...], require_token: bool) -> None:
        self._by_secret = {entry.token: entry for entry in tokens}
        self._require = require_token
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, request: web.Request, cost: int = 1) -> str | None:
        """The platform name, or None for an anonymous write; raises 401/403/429."""
        header = request.headers.get("Authorization")
        if header is None:
            if self._require:
                raise RpcError(
                    401, "unauthorized", "writes need an Authorization: Bearer <token> header"
                )
            return None
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret:
            raise RpcError(401, "unauthorized", "expected Authorization: Bearer <token>")
        entry = self._by_secret.get(secret.strip())
        if entry is None:
            raise RpcError(403, "forbidden", "unknown bearer token")
        now_s = time.monotonic()
        bucket = self._buckets.setdefault(entry.token, _Bucket(float(entry.burst), now_s))
        bucket.tokens = min(
            float(entry.burst), bucket.tokens + (now_s - bucket.updated_s) * entry.rate_per_second
        )
        bucket.updated_s = now_s
        if bucket.tokens < cost:
            raise RpcError(
                429,
                "rate_limited",
                "platform %s is over %d writes per second"
                % (entry.platform, entry.rate_per_second),
            )
        bucket.tokens -= cost
        return entry.platform


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 19:
        raise RpcError(400, "bad_request", "%s must be a non-negative integer" % name)
    value = int(text)
    if not low <= value <= high:
        raise RpcError(400, "bad_request", "%s must be in %d..%d" % (name, low, high))
    return value
