"""Where the auditor reads the chain from: any node's RPC, or a node's home directory.

A source yields, in height order from 1, what the node claims: the header, the
signed transactions, the result codes and the commit certificate. None of it is
trusted; replay.py checks everything against the genesis file.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from node.audit.errors import SourceError
from node.config import load_config
from node.errors import NodeSetupError
from node.storage import Storage

FETCH_BATCH_BLOCKS = 16
FETCH_RETRIES = 3
PREFETCH_BLOCKS = 64
REQUEST_TIMEOUT_S = 30.0
RETRY_PAUSE_S = 0.25


@dataclass(frozen=True)
class SourceBlock:
    """One block as a node presents it (nothing here is checked yet)."""

    header: dict[str, Any]
    txs: list[Any]  # signed transactions as JSON objects
    results: list[str]  # result codes the node claims
    commit: dict[str, Any]  # {"view", "signatures": [{"validator", "signature"}]}
    claimed_hash: str | None = None


class BlockSource(Protocol):
    def genesis(self) -> dict[str, Any]:
        """The genesis JSON object this source serves (compare its hash; see --genesis)."""
        ...

    def height(self) -> int:
        """The source's committed height when the replay starts."""
        ...

    def blocks(self, up_to_height: int) -> Iterator[SourceBlock]:
        """Blocks 1..up_to_height in order; stops early only if the source lacks one."""
        ...

    def close(self) -> None: ...


def block_from_rpc(value: Any) -> SourceBlock:
    """A GET /v1/blocks/{h}?txs=full answer -> SourceBlock (shape checks only)."""
    if not isinstance(value, dict):
        raise SourceError("block answer is not a JSON object")
    header, txs, results, commit = (
        value.get(name) for name in ("header", "txs", "results", "commit")
    )
    if not isinstance(header, dict) or not isinstance(txs, list) or not isinstance(commit, dict):
        raise SourceError("block answer lacks header, txs or commit")
    if not isinstance(results, list):
        raise SourceError("block answer lacks results")
    codes = [
        item["code"] if isinstance(item, dict) and "code" in item else item for item in results
    ]
    claimed = value.get("hash")
    return SourceBlock(header, txs, codes, commit, claimed if isinstance(claimed, str) else None)


class RpcSource:
    """Reads a node over its RPC. An asyncio loop in a thread fetches blocks in
    concurrent batches; they reach the caller strictly in height order."""

    def __init__(self, base_url: str, *, batch_blocks: int = FETCH_BATCH_BLOCKS) -> None:
        self.base_url = base_url.rstrip("/")
        self.batch_blocks = batch_blocks
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- small one-off requests --------------------------------------------------
    def _get_json(self, path: str) -> Any:
        return asyncio.run(self._fetch_one(path))

    async def _fetch_one(self, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await self._get(session, path)

    async def _get(self, session: Any, path: str) -> Any:
        url = self.base_url + path
        last_error = ""
        for attempt in range(FETCH_RETRIES):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE_S * attempt)  # a busy node (503) gets a moment
            try:
                async with session.get(url) as response:
                    text = await response.text()
                    if response.status == 404:
                        return None
                    if response.status != 200:
                        last_error = "HTTP %d from %s: %s" % (response.status, url, text[:200])
                        if response.status < 500:
                            break
                        continue
                    try:
                        return json.loads(text)
                    except ValueError:
                        raise SourceError("%s did not answer JSON" % url) from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last_error = "cannot reach %s: %s" % (url, exc or type(exc).__name__)
        raise SourceError(last_error)

    def genesis(self) -> dict[str, Any]:
        value = self._get_json("/v1/genesis")
        if not isinstance(value, dict):
            raise SourceError(
                "%s does not serve /v1/genesis; pass the chain's genesis file with --genesis"
                % self.base_url
            )
        return value

    def height(self) -> int:
        status = self._get_json("/v1/status")
        if not isinstance(status, dict) or not isinstance(status.get("height"), int):
            raise SourceError("%s/v1/status gives no height" % self.base_url)
        return int(status["height"])

    def fetch_block(self, height: int) -> SourceBlock | None:
        value = self._get_json("/v1/blocks/%d?txs=full" % height)
        return None if value is None else block_from_rpc(value)

    # -- the ordered block stream -----------------------------------------------
    def blocks(self, up_to_height: int) -> Iterator[SourceBlock]:
        out: queue.Queue[Any] = queue.Queue(maxsize=max(PREFETCH_BLOCKS, self.batch_blocks * 2))
        self._stop.clear()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._produce(up_to_height, out)),
            name="audit-fetch",
            daemon=True,
        )
        self._thread.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
            while self._thread.is_alive():
                try:
                    out.get_nowait()
                except queue.Empty:
                    self._thread.join(timeout=0.05)

    def _put(self, out: queue.Queue[Any], item: Any) -> bool:
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    async def _produce(self, up_to_height: int, out: queue.Queue[Any]) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=self.batch_blocks)
        try:
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                height = 1
                while height <= up_to_height and not self._stop.is_set():
                    last = min(up_to_height, height + self.batch_blocks - 1)
                    answers = await asyncio.gather(
                        *(
                            self._get(session, "/v1/blocks/%d?txs=full" % h)
                            for h in range(height, last + 1)
                        )
                    )
                    for answer in answers:
                        if answer is None:
                            # A missing block ends the stream; replay reports the gap.
                            self._put(out, None)
                            return
                        if not self._put(out, block_from_rpc(answer)):
                            return
                    height = last + 1
        except BaseException as exc:  # handed to the consuming thread, which re-raises it
            self._put(out, exc if isinstance(exc, Exception) else SourceError(str(exc)))
            return
        self._put(out, None)

    def close(self) -> None:
        self._stop.set()


class HomeSource:
    """Reads a node's home directory: its genesis file and its LevelDB.

    The home is never written. LevelDB writes on every open (its log and
    manifest), and a running node holds the lock, so the auditor copies the
    database to a temporary directory and reads the copy. With the node stopped
    the copy is exact; with it running, the copy may miss the newest blocks.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        try:
            config = load_config(self.home)
        except NodeSetupError as exc:
            raise SourceError(str(exc)) from None
        self.genesis_file = config.genesis_file
        if not (config.data_dir / "CURRENT").is_file():
            raise SourceError("%s holds no node database (no CURRENT file)" % config.data_dir)
        self._copy = Path(tempfile.mkdtemp(prefix="yuxi-audit-"))
        try:
            shutil.copytree(
                config.data_dir, self._copy / "data", ignore=shutil.ignore_patterns("LOCK")
            )
            self.storage = Storage(self._copy / "data")
        except (OSError, NodeSetupError) as exc:
            shutil.rmtree(self._copy, ignore_errors=True)
            raise SourceError(
                "cannot read the database in %s: %s" % (config.data_dir, exc)
            ) from None

    def genesis(self) -> dict[str, Any]:
        try:
            value = json.loads(self.genesis_file.read_text())
        except (OSError, ValueError) as exc:
            raise SourceError("cannot read %s: %s" % (self.genesis_file, exc)) from None
        if not isinstance(value, dict):
            raise SourceError("%s is not a JSON object" % self.genesis_file)
        return value

    def height(self) -> int:
        return self.storage.height()

    def blocks(self, up_to_height: int) -> Iterator[SourceBlock]:
        for height in range(1, up_to_height + 1):
            block = self.storage.block(height)
            certificate = self.storage.certificate(height)
            results = self.storage.results(height)
            if block is None or certificate is None or results is None:
                return
            commit = certificate.to_dict()
            codes = [item["code"] if isinstance(item, dict) else item for item in results]
            yield SourceBlock(block.header, list(block.txs), codes, commit, None)

    def close(self) -> None:
        self.storage.close()
        shutil.rmtree(self._copy, ignore_errors=True)


class MemorySource:
    """Blocks already in memory (the benchmark, tests of the replay core)."""

    def __init__(self, genesis: dict[str, Any], blocks: list[SourceBlock]) -> None:
        self._genesis = genesis
        self._blocks = blocks

    def genesis(self) -> dict[str, Any]:
        return self._genesis

    def height(self) -> int:
        return len(self._blocks)

    def blocks(self, up_to_height: int) -> Iterator[SourceBlock]:
        return iter(self._blocks[:up_to_height])

    def close(self) -> None:
        return None
