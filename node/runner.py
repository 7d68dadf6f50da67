"""`yuxi node run`: the composition root that wires storage, contracts, consensus and IO.

Setup problems (config, key, genesis, data of another chain, a port in use)
stop the node with one clear line before anything runs. SIGTERM and Ctrl-C
stop it cleanly: sockets closed, database closed.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from contracts.genesis import Genesis, GenesisError, genesis_writes, load_genesis
from contracts.queries import validator_set_at
from contracts.state import account_key
from contracts.state_tree import EMPTY_ROOT, apply_changes
from node.application import NodeApplication
from node.clock import NodeClock
from node.config import NodeConfig, load_config
from node.errors import NodeSetupError
from node.gossip import GossipBatcher, GossipError, decode_batch
from node.keys import load_key_file
from node.mempool import Mempool, SignatureCache
from node.metrics import NodeMetrics
from node.peers import KIND_CONSENSUS, KIND_TX, PeerNetwork
from node.rpc import make_rpc_app
from node.rpc_support import RpcError, WriteGate
from node.service import NodeService
from node.storage import MAX_OPEN_FILES, Storage
from node.table_reads import use_pread
from primitives.crypto import SigningKey

log = logging.getLogger("yuxi.node")

CATCH_UP_LAG_MS = 10_000
# glibc's malloc: its parameters M_TRIM_THRESHOLD and M_MMAP_THRESHOLD, held at its initial
# 128 KiB (see tune_allocator), unless the operator set them in the environment.
MALLOPT_TRIM_THRESHOLD, MALLOPT_MMAP_THRESHOLD = -1, -3
MALLOC_THRESHOLD_BYTES = 128 * 1024
MALLOC_ENVIRONMENT = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
GC_THRESHOLDS = (50_000, 20, 10)  # young, middle, old (Python's defaults: 700, 10, 10)
GOSSIP_ADMIT_CHUNK = 50  # gossiped transactions admitted between two turns of the event loop
GOSSIP_FRAMES_QUEUED = 256  # frames of up to 1,000 transactions waiting for admission
PROGRESS_EVERY_S = 2.0


def load_genesis_file(path: Path) -> Genesis:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise NodeSetupError("genesis file %s does not exist" % path) from None
    except OSError as exc:
        raise NodeSetupError("cannot read genesis file %s: %s" % (path, exc.strerror)) from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise NodeSetupError("genesis file %s is not valid JSON: %s" % (path, exc)) from None
    try:
        return load_genesis(obj)
    except GenesisError as exc:
        raise NodeSetupError("genesis file %s is invalid: %s" % (path, exc)) from None


def open_storage(config: NodeConfig, genesis: Genesis) -> Storage:
    """Open the database; write the genesis state on first start; refuse another chain's data."""
    storage = Storage(config.data_dir)
    stored = storage.get_meta("genesis")
    if stored is None:
        writes = genesis_writes(genesis)
        root, nodes, *_ = apply_changes(storage, EMPTY_ROOT, writes)
        storage.write_genesis(genesis.hash, writes, nodes, root)
    elif stored != genesis.hash:
        storage.close()
        raise NodeSetupError(
            "%s holds chain data of genesis %s…, but %s has hash %s…"
            % (config.data_dir, stored[:12], config.genesis_file, genesis.hash[:12])
        )
    return storage


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)-15s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def tune_collector() -> None:
    """Python's cyclic collector scans every young container after 700 allocations, and
    all of them when enough survive: under load a validator's transient objects (decoded
    blocks, requests) were promoted before they died, and each full scan of its caches
    paused it ~40 ms. What is loaded at start is never garbage: it is frozen out of the
    scans."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_allocator() -> bool:
    """Keep glibc's malloc from holding on to freed memory. By default, freeing a block it
    had mapped apart (over 128 KiB) raises the size it maps apart to that block's (up to
    32 MiB) and the free memory it keeps before returning any to twice that: a validator
    frees blocks of megabytes (a tree flush's write batch, a block of mints), so from its
    first flush on up to 64 MiB of freed memory stayed in each allocator arena, counted in
    its RSS (a million tokens: peak 440-458 MB a node, 393-412 held fixed,
    docs/PERFORMANCE.md thirteenth round). Returns whether it changed anything (not on
    another C library, nor when the environment sets these)."""
    if any(name in os.environ for name in MALLOC_ENVIRONMENT):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all(
        mallopt(param, MALLOC_THRESHOLD_BYTES) == 1
        for param in (MALLOPT_TRIM_THRESHOLD, MALLOPT_MMAP_THRESHOLD)
    )


def run_node(home: Path) -> None:
    tune_allocator()
    config = load_config(Path(home))
    genesis = load_genesis_file(config.genesis_file)
    key: SigningKey | None = None
    if config.mode == "validator" or config.key_file.exists():
        key = load_key_file(config.key_file)
    setup_logging()
    log.info("LevelDB reads tables with %s, up to %d open",
             "pread" if use_pread() else "mmap", MAX_OPEN_FILES)
    storage = open_storage(config, genesis)
    tune_collector()
    try:
        asyncio.run(NodeRuntime(config, genesis, key, storage).run())
    except NodeSetupError:
        raise
    except KeyboardInterrupt:
        log.info("interrupted before the node was up")
    except Exception:
        # A broken local invariant (e.g. a certified block our execution disagrees with):
        # stop rather than go on with a state nobody else has.
        log.critical("the node stopped on an internal error", exc_info=True)
        raise SystemExit(2) from None
    finally:
        storage.close()


async def _start_site(runner: web.AppRunner, host: str, port: int, what: str) -> None:
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        raise NodeSetupError(
            "%s %s:%d cannot be opened: %s (is another node running?)"
            % (what, host, port, exc.strerror)
        ) from None


class NodeRuntime:
    def __init__(
        self, config: NodeConfig, genesis: Genesis, key: SigningKey | None, storage: Storage
    ) -> None:
        self.config = config
        self.genesis = genesis
        self.key = key
        self.storage = storage
        offset_ms = storage.get_meta("clock_offset_ms") if genesis.dev else 0
        self.clock = NodeClock(int(offset_ms or 0))
        self.metrics = NodeMetrics()
        self.signatures = SignatureCache(capacity=2 * config.mempool_max_txs)
        self.view = _View(storage)
        self.mempool = Mempool(
            chain_id=genesis.chain_id,
            account_nonce=self._account_nonce,
            signatures=self.signatures,
            max_txs=config.mempool_max_txs,
            max_per_sender=config.mempool_max_per_sender,
            store=storage,
        )
        self.app = NodeApplication(
            genesis=genesis,
            storage=storage,
            mempool=self.mempool,
            signatures=self.signatures,
            metrics=self.metrics,
            names=self.names,
        )
        self.service = NodeService(
            config=config,
            genesis=genesis,
            storage=storage,
            mempool=self.mempool,
            signatures=self.signatures,
            metrics=self.metrics,
            clock=self.clock,
            node_key=key.public_key if key else None,
        )
        self.stop = asyncio.Event()
        self._last_progress_s = 0.0
        self._gossip_frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=GOSSIP_FRAMES_QUEUED)
        self.dropped_gossip_frames = 0

    def _account_nonce(self, account: str) -> int | None:
        record = self.app.committed_value(account_key(account))
        return None if record is None else int(record["nonce"])

    def validators(self) -> list[dict[str, Any]]:
        return validator_set_at(self.view, self.storage.height() + 1)

    def names(self) -> dict[str, str]:
        return {entry["pubkey"]: entry["name"] for entry in self.validators()}

    def endpoints(self) -> dict[str, str]:
        # Validators of the next two heights: a set change applies two blocks after it executes.
        height = self.storage.height()
        entries = validator_set_at(self.view, height + 1) + validator_set_at(self.view, height + 2)
        return {
            e["pubkey"]: self.config.peer_overrides.get(e["pubkey"], e["endpoint"]) for e in entries
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        self.app.on_commit = self._after_commit
        restored = self.mempool.restore(
            is_committed=lambda tx_id: self.storage.tx_location(tx_id) is not None
        )
        if restored:
            log.info("%d pending transactions restored from before the restart", restored)
        rpc_runner = web.AppRunner(
            make_rpc_app(
                self.service, WriteGate(self.config.tokens, self.config.require_token_for_writes)
            ),
            access_log=None,
            handle_signals=False,
        )
        await rpc_runner.setup()
        tasks: list[asyncio.Task[None]] = []
        cleanups = [rpc_runner.cleanup]
        try:
            if self.config.is_follower:
                await self._start_follower(tasks)
            else:
                await self._start_validator(tasks, cleanups)
            await _start_site(rpc_runner, self.config.rpc_host, self.config.rpc_port, "RPC address")
            log.info(
                "%s %s on chain %s (genesis %s…) at height %d; RPC http://%s:%d",
                self.config.mode,
                self.config.moniker,
                self.genesis.chain_id,
                self.genesis.hash[:12],
                self.storage.height(),
                self.config.rpc_host,
                self.config.rpc_port,
            )
            stopper = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                failure = None if task is stopper else task.exception()
                if failure is not None:
                    raise failure
        finally:
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for cleanup in reversed(cleanups):
                await cleanup()
            log.info("stopped at height %d", self.storage.height())

    def _after_commit(self, block: Any, certificate: Any, results: Any) -> None:
        asyncio.get_running_loop().create_task(self.service.announce_commit())
        lag_ms = self.clock.now_ms() - block.time_ms
        now_s = time.monotonic()
        if (
            not self.config.is_follower
            and lag_ms > CATCH_UP_LAG_MS
            and now_s - self._last_progress_s > PROGRESS_EVERY_S
        ):
            self._last_progress_s = now_s
            log.info(
                "catching up: at block %d, %d s behind this node's clock",
                block.height,
                lag_ms // 1000,
            )

    async def _start_follower(self, tasks: list[asyncio.Task[None]]) -> None:
        from node.follower import Follower

        assert self.config.follow is not None  # load_config requires it for a follower
        follower = Follower(app=self.app, follow_url=self.config.follow)
        self.service.syncing = lambda: follower.syncing
        self.service.on_new_tx = follower.forward
        tasks.append(asyncio.create_task(follower.run(self.stop), name="follower"))

    async def _start_validator(self, tasks: list[asyncio.Task[None]], cleanups: list[Any]) -> None:
        from consensus.replica import Replica, ReplicaConfig
        from node.driver import ReplicaDriver

        assert self.key is not None  # run_node loads the key for a validator
        if self.key.public_key not in self.endpoints():
            log.warning(
                "this node's key %s… is not in the validator set; it will only relay",
                self.key.public_key[:12],
            )
        replica = Replica(
            self.app,
            self.key,
            self.storage.journal_records(),
            ReplicaConfig(chain_id=self.genesis.chain_id),
        )
        driver_holder: list[ReplicaDriver] = []
        peers = PeerNetwork(
            key=self.key,
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash,
            endpoints=self.endpoints,
            names=self.names,
            on_message=lambda peer, kind, data: self._on_peer_message(
                driver_holder[0], peer, kind, data
            ),
        )
        driver = ReplicaDriver(
            replica=replica,
            storage=self.storage,
            peers=peers,
            clock=self.clock,
            metrics=self.metrics,
            tick_ms=self.config.tick_ms,
            names=self.names,
            on_commit=peers.refresh,
        )
        driver_holder.append(driver)
        self.service.current_view = lambda: replica.view
        self.service.syncing = lambda: driver.is_behind(self.service.last_block_time_ms())
        self.service.peer_count = lambda: peers.connected_peers
        gossip = GossipBatcher(lambda frame: peers.broadcast(KIND_TX, frame))
        self.service.on_new_tx = gossip.add
        peer_app = web.Application(client_max_size=1024)
        peers.add_routes(peer_app)
        peer_runner = web.AppRunner(peer_app, access_log=None, handle_signals=False)
        await peer_runner.setup()
        cleanups.append(peer_runner.cleanup)
        await _start_site(peer_runner, self.config.peer_host, self.config.peer_port, "peer address")
        await peers.start()
        cleanups.append(peers.stop)
        tasks.append(asyncio.create_task(driver.run(self.stop), name="driver"))
        tasks.append(asyncio.create_task(self._admit_gossip_frames(), name="gossip"))

    def _on_peer_message(self, driver: Any, peer: str, kind: int, data: bytes) -> None:
        if kind == KIND_CONSENSUS:
            driver.deliver(peer, data)
        elif kind == KIND_TX:
            try:
                self._gossip_frames.put_nowait(data)
            except asyncio.QueueFull:
                # Gossip is best effort: a transaction missed here is checked when a
                # proposal carries it.
                self.dropped_gossip_frames += 1

    async def _admit_gossip_frames(self) -> None:
        """Admit gossiped transactions a few at a time, so consensus messages never wait
        behind a frame of a thousand signature checks (most of a node's work under load)."""
        while True:
            data = await self._gossip_frames.get()
            try:
                txs = decode_batch(data)
            except GossipError as exc:
                log.debug("dropped a gossip frame: %s", exc)
                continue
            for index, tx in enumerate(txs):
                if index and index % GOSSIP_ADMIT_CHUNK == 0:
                    await asyncio.sleep(0)
                if tx is None:
                    continue
                try:
                    self.mempool.admit_parsed(tx, is_committed=self._is_committed)
                except RpcError:
                    pass  # stale or invalid here: the submitter already got the node's answer
            self.mempool.save_pending()

    def _is_committed(self, tx_id: str) -> bool:
        return self.storage.tx_location(tx_id) is not None


class _View:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def get(self, key: str) -> Any | None:
        return self._storage.state_get(key)
