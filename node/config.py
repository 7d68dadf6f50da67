"""The node's config.toml: where its key, genesis and data live and what it listens on.

A home directory holds config.toml, the key file, genesis.json and data/. Paths in
the config are relative to the home. Every problem is reported as one line naming
the file and the field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.errors import NodeSetupError

CONFIG_NAME = "config.toml"
MODES = ("validator", "follower")


@dataclass(frozen=True)
class PlatformToken:
    """A bearer token a platform presents for writes, with its own rate limit."""

    platform: str
    token: str
    rate_per_second: int
    burst: int


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    mode: str
    moniker: str
    key_file: Path
    genesis_file: Path
    data_dir: Path
    rpc_host: str
    rpc_port: int
    peer_host: str
    peer_port: int
    follow: str | None
    tokens: tuple[PlatformToken, ...] = ()
    require_token_for_writes: bool = False
    close_reads: bool = False
    max_body_bytes: int = 4 * 1024 * 1024
    mempool_max_txs: int = 50_000
    mempool_max_per_sender: int = 1_100
    tick_ms: int = 50
    peer_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def is_follower(self) -> bool:
        return self.mode == "follower"


def split_address(value: Any, where: str) -> tuple[str, int]:
    """'host:port' -> (host, port), or a NodeSetupError naming the field."""
    if not isinstance(value, str) or ":" not in value:
        raise NodeSetupError('%s must be "host:port", got %r' % (where, value))
    host, _, port_text = value.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NodeSetupError('%s must be "host:port" with a port 1-65535, got %r' % (where, value))
    return host, int(port_text)


def _get(table: dict[str, Any], name: str, kind: type, default: Any, where: str) -> Any:
    value = table.get(name, default)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise NodeSetupError("%s.%s must be an integer" % (where, name))
    if kind is not int and not isinstance(value, kind):
        raise NodeSetupError("%s.%s must be a %s" % (where, name, kind.__name__))
    return value


def _bounded(
    table: dict[str, Any], name: str, default: int, low: int, high: int, where: str
) -> int:
    value = _get(table, name, int, default, where)
    if not low <= value <= high:
        raise NodeSetupError("%s.%s must be in %d..%d, got %d" % (where, name, low, high, value))
    return int(value)


def load_config(home: Path) -> NodeConfig:
    home = Path(home)
    path = home / CONFIG_NAME
    if not home.is_dir():
        raise NodeSetupError("node home %s does not exist" % home)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise NodeSetupError("config file %s does not exist" % path) from None
    except tomllib.TOMLDecodeError as exc:
        raise NodeSetupError("config file %s is not valid TOML: %s" % (path, exc)) from None
    where = str(path)
    mode = _get(raw, "mode", str, "validator", where)
    if mode not in MODES:
        raise NodeSetupError("%s: mode must be one of %s, got %r" % (where, ", ".join(MODES), mode))
    rpc = _get(raw, "rpc", dict, {}, where)
    peers = _get(raw, "peers", dict, {}, where)
    mempool = _get(raw, "mempool", dict, {}, where)
    rpc_host, rpc_port = split_address(
        _get(rpc, "listen", str, "127.0.0.1:8600", where + " rpc"), where + ": rpc.listen"
    )
    peer_host, peer_port = split_address(
        _get(peers, "listen", str, "127.0.0.1:8700", where + " peers"), where + ": peers.listen"
    )
    follow = raw.get("follow")
    if mode == "follower" and (
        not isinstance(follow, str) or not follow.startswith(("http://", "https://"))
    ):
        raise NodeSetupError(
            '%s: a follower needs follow = "http://host:port" (a node\'s RPC)' % where
        )
    tokens = []
    for index, entry in enumerate(_get(rpc, "tokens", list, [], where + " rpc")):
        entry_where = "%s rpc.tokens[%d]" % (where, index)
        if not isinstance(entry, dict):
            raise NodeSetupError("%s must be a table" % entry_where)
        token = _get(entry, "token", str, "", entry_where)
        if len(token) < 16:
            raise NodeSetupError("%s.token must be at least 16 characters" % entry_where)
        rate = _get(entry, "rate_per_second", int, 100, entry_where)
        tokens.append(
            PlatformToken(
                platform=_get(entry, "platform", str, "platform-%d" % index, entry_where),
                token=token,
                rate_per_second=max(1, rate),
                burst=max(1, _get(entry, "burst", int, 2 * rate, entry_where)),
            )
        )
    overrides = _get(peers, "endpoints", dict, {}, where + " peers")
    for key, value in overrides.items():
        split_address(value, "%s: peers.endpoints.%s" % (where, key))
    return NodeConfig(
        home=home,
        mode=mode,
        moniker=_get(raw, "moniker", str, home.name, where),
        key_file=home / _get(raw, "key_file", str, "node_key.json", where),
        genesis_file=home / _get(raw, "genesis_file", str, "genesis.json", where),
        data_dir=home / _get(raw, "data_dir", str, "data", where),
        rpc_host=rpc_host,
        rpc_port=rpc_port,
        peer_host=peer_host,
        peer_port=peer_port,
        follow=follow.rstrip("/") if isinstance(follow, str) else None,
        tokens=tuple(tokens),
        require_token_for_writes=_get(
            rpc, "require_token_for_writes", bool, bool(tokens), where + " rpc"
        ),
        close_reads=_get(rpc, "close_reads", bool, False, where + " rpc"),
        max_body_bytes=_bounded(
            rpc, "max_body_bytes", 4 * 1024 * 1024, 1024, 256 * 1024 * 1024, where + " rpc"
        ),
        mempool_max_txs=_bounded(mempool, "max_txs", 50_000, 1, 10_000_000, where + " mempool"),
        mempool_max_per_sender=_bounded(
            mempool, "max_per_sender", 1_100, 1, 1_000_000, where + " mempool"
        ),
        tick_ms=_bounded(raw, "tick_ms", 50, 5, 1000, where),
        peer_overrides=dict(overrides),
    )


def render_config(
    *,
    mode: str,
    moniker: str,
    rpc_listen: str,
    peer_listen: str,
    follow: str | None = None,
) -> str:
    """A commented config.toml for a new home."""
    lines = [
        "# Yuxi node configuration. Paths are relative to this directory.",
        'mode = "%s"            # "validator" or "follower" (non-voting, follows a node over RPC)'
        % mode,
        'moniker = "%s"' % moniker,
        'key_file = "node_key.json"',
        'genesis_file = "genesis.json"',
        'data_dir = "data"',
    ]
    if follow:
        lines.append('follow = "%s"' % follow)
    lines += [
        "",
        "[rpc]",
        'listen = "%s"' % rpc_listen,
        "# Bearer tokens per platform for writes, each with its own rate limit:",
        "# [[rpc.tokens]]",
        '# platform = "acme"',
        '# token = "a-long-random-secret-string"',
        "# rate_per_second = 50",
        "",
        "[peers]",
        'listen = "%s"' % peer_listen,
        "# Override where a validator is reached (default: its genesis endpoint):",
        '# endpoints = { "<pubkey>" = "10.0.0.2:8700" }',
        "",
        "[mempool]",
        "max_txs = 50000",
        "max_per_sender = 1100",
        "",
    ]
    return "\n".join(lines)
