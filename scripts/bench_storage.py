#!/usr/bin/env python3
"""Cost of committing blocks to a node's LevelDB, at a small and a large state.

The scale part of bench.py showed a node's cost per gift growing with the state, and
most of the growth in LevelDB's background (compaction) thread, which Python profilers
never see. This measures that storage alone, in one process, in a few minutes: for each
size it fills a fresh `node.storage.Storage` with that many state keys, waits for
compaction to settle, then commits blocks shaped like gift blocks (per gift: three
existing keys changed, one new key) and reports CPU per gift, split into the main
thread (tree update and the commit's write batch) and LevelDB's background thread,
counting the compaction still owed when the last block is written, and the megabytes
LevelDB wrote per block: flushed from the memtable to level 0, and rewritten by
compaction into the levels below.

It reads every changed key's value from LevelDB (a node has most of them cached), so
its main thread grows more with the state than a node's does. A storage change that
does not move its figures will not move a node's; one that does must still be
confirmed with `bench.py --only scale` (docs/PERFORMANCE.md, seventh round: reading
tables with pread instead of mmap cut this benchmark's cost by a third and raised a
node's CPU per gift by 30-45%).

    python scripts/bench_storage.py                    # 22,000 and 2,200,000 keys
    python scripts/bench_storage.py --sizes 22000 --blocks 50
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.types import Block, CommitCertificate
from contracts.state_tree import EMPTY_ROOT, apply_changes
from node.storage import Storage

FILL_CHUNK = 100_000
# 10^4 and 10^6 tokens hold about 2.2 keys a token (the token, its history, accounts).
DEFAULT_SIZES = [22_000, 2_200_000]


def _value(serial: int, version: int) -> dict[str, Any]:
    return {"owner": "%064x" % (serial * 7919 % 1000), "held_since": version, "n": serial}


def _key(serial: int) -> str:
    return "token/bench:%d" % serial


def _block(height: int, state_root: str) -> tuple[Block, CommitCertificate]:
    header = {
        "chain_id": "bench",
        "height": height,
        "parent": "0" * 64,
        "time": height,
        "proposer": "0" * 64,
        "tx_root": "0" * 64,
        "results_root": "0" * 64,
        "state_root": state_root,
    }
    block = Block(header=header, txs=())
    return block, CommitCertificate(height, 0, block.hash, ())


def _background_cpu_s() -> float:
    """CPU of this process's threads other than the main one (LevelDB's compaction)."""
    return time.process_time() - time.thread_time()


def _settle(limit_s: float = 600.0) -> float:
    """Wait until the background thread has been idle for 2 s; its CPU meanwhile."""
    started = last = _background_cpu_s()
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = _background_cpu_s()
        if now - last < 0.05:
            break
        last = now
    return _background_cpu_s() - started


def _written_mb(storage: Storage) -> list[float]:
    """Megabytes LevelDB has written into each level since the database was opened."""
    stats = storage._db.get_property(b"leveldb.stats").decode()
    rows = [line.split() for line in stats.splitlines()]
    return [float(row[5]) for row in rows if len(row) == 6 and row[0].isdigit()]


def _commit(storage: Storage, height: int, root: str, changes: dict[str, Any]) -> str:
    tree = apply_changes(storage, root, changes, storage.state_get)
    block, certificate = _block(height, tree.root)
    storage.commit(block, certificate, [], changes, tree, [])
    return tree.root


def bench_size(size: int, blocks: int, gifts: int, directory: Path) -> dict[str, float]:
    storage = Storage(directory / ("db-%d" % size))
    root, height = EMPTY_ROOT, 0
    started = time.monotonic()
    for start in range(0, size, FILL_CHUNK):
        height += 1
        chunk = {_key(s): _value(s, 0) for s in range(start, min(size, start + FILL_CHUNK))}
        root = _commit(storage, height, root, chunk)
    fill_s = time.monotonic() - started
    _settle()

    rng = random.Random(size)
    next_serial = size
    main_start, background_start = time.thread_time(), _background_cpu_s()
    written_start = _written_mb(storage)
    wall_start = time.monotonic()
    for _ in range(blocks):
        height += 1
        changes: dict[str, Any] = {}
        for serial in rng.sample(range(next_serial), 3 * gifts):
            changes[_key(serial)] = _value(serial, height)
        for serial in range(next_serial, next_serial + gifts):
            changes[_key(serial)] = _value(serial, height)
        next_serial += gifts
        root = _commit(storage, height, root, changes)
    wall_s = time.monotonic() - wall_start
    main_s = time.thread_time() - main_start
    background_s = _background_cpu_s() - background_start + _settle()
    written = [
        now - before
        for now, before in zip(_written_mb(storage), written_start + [0.0] * 7, strict=False)
    ]
    storage.close()
    database_mb = sum(f.stat().st_size for f in (directory / ("db-%d" % size)).iterdir()) / 1e6
    total_gifts = blocks * gifts
    return {
        "keys": size,
        "fill_s": fill_s,
        "main_us": main_s / total_gifts * 1e6,
        "background_us": background_s / total_gifts * 1e6,
        "total_us": (main_s + background_s) / total_gifts * 1e6,
        "wall_s": wall_s,
        "flushed_mb": written[0] / blocks,
        "compacted_mb": sum(written[1:]) / blocks,
        "db_mb": database_mb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--blocks", type=int, default=200, help="blocks measured per size")
    parser.add_argument("--gifts", type=int, default=500, help="gifts per block")
    parser.add_argument(
        "--dir", type=Path, help="where the databases go (default: a temporary one)"
    )
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="yuxi-bench-storage-", dir=arguments.dir))
    columns = [
        "keys",
        "fill_s",
        "main_us",
        "background_us",
        "total_us",
        "wall_s",
        "flushed_mb",
        "compacted_mb",
        "db_mb",
    ]
    print(" ".join("%13s" % column for column in columns), flush=True)
    rows = []
    try:
        for size in arguments.sizes:
            row = bench_size(size, arguments.blocks, arguments.gifts, directory)
            rows.append(row)
            print(" ".join("%13.1f" % row[column] for column in columns), flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if len(rows) > 1:
        print(
            "\nCPU per gift, largest state against smallest: %.2fx (main %.2fx, background %.2fx)"
            % (
                rows[-1]["total_us"] / rows[0]["total_us"],
                rows[-1]["main_us"] / rows[0]["main_us"],
                rows[-1]["background_us"] / max(rows[0]["background_us"], 1e-9),
            )
        )
    print(
        "main_us and background_us are CPU per gift (4 keys written) on the main thread and"
        "\non LevelDB's background thread, compaction owed at the end included; flushed_mb and"
        "\ncompacted_mb are what LevelDB wrote per block into level 0 and into the levels below."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
