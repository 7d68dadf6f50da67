"""Replay throughput on a chain of >= 200,000 transactions, built in-process.

The chain is real: devnet keys, users registered by the devnet authority, tokens
minted and gifted under the holding rules, every block executed by contracts and
certified by the devnet validators' signatures (no running node needed). The
replay then checks it exactly as `yuxi audit replay` does: every transaction
signature (in a process pool on every core), every certificate, every root.

    python scripts/bench_replay.py                  # 25,000 users x 7 gift rounds: ~202,000 txs
    python scripts/bench_replay.py --users 2000     # a quick run
    python scripts/bench_replay.py --cache /tmp/chain.msgpack   # build once, replay many times
    python scripts/bench_replay.py --cache /tmp/chain.msgpack --phases   # + CPU cost per phase

Prints the machine's own single-core Ed25519 verification rate, measured in the
same run, next to the replay throughput, and the load average (other processes
on the machine take cores from the replay). --phases also runs each stage alone
on one core and prints its CPU cost per transaction, and the throughput two idle
cores could reach at best (total CPU per transaction / 2).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.transactions import sign_tx
from node.audit.devchain import DAY_MS, DevChain, user_key
from node.audit.replay import replay_chain
from node.audit.report import ChainReport
from node.audit.signatures import SignatureChecker, measure_verify_rate
from node.audit.sources import SourceBlock

COLLECTION = "bench-rabbits"
MINT_ITEMS_PER_TX = 80  # an encoded transaction is at most 16 KiB
BLOCK_TXS = 2000


def _sign_batch(args: tuple[list[int], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Sign unsigned transactions in a worker; keys are rebuilt from their user index
    (-1 = the devnet authority)."""
    from contracts.genesis import devnet_authority_key

    indexes, unsigned = args
    keys: dict[int, Any] = {}
    signed = []
    for index, tx in zip(indexes, unsigned, strict=True):
        if index not in keys:
            keys[index] = devnet_authority_key() if index < 0 else user_key(index)
        signed.append(sign_tx(tx, keys[index]))
    return signed


def _sign_all(
    pool: ProcessPoolExecutor, items: list[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    chunk = 2000
    jobs = [
        (
            [index for index, _ in items[start : start + chunk]],
            [tx for _, tx in items[start : start + chunk]],
        )
        for start in range(0, len(items), chunk)
    ]
    signed: list[dict[str, Any]] = []
    for part in pool.map(_sign_batch, jobs):
        signed.extend(part)
    return signed


def build_chain(users: int, rounds: int) -> DevChain:
    chain = DevChain()
    chain_id = chain.chain_id
    authority = chain.authority.public_key
    public_keys = [user_key(index).public_key for index in range(users)]
    nonces = {authority: 0}

    def unsigned(sender: str, tx_type: str, body: dict[str, Any]) -> dict[str, Any]:
        nonce = nonces.get(sender, 0)
        nonces[sender] = nonce + 1
        return {
            "chain_id": chain_id,
            "type": tx_type,
            "sender": sender,
            "nonce": nonce,
            "body": body,
        }

    started = time.perf_counter()
    setup: list[tuple[int, dict[str, Any]]] = []
    for index, key in enumerate(public_keys):
        setup.append(
            (
                -1,
                unsigned(
                    authority,
                    "register_account",
                    {
                        "account": key,
                        "birth_date": "19%02d-%02d-%02d"
                        % (60 + index % 40, 1 + index % 12, 1 + index % 28),
                        "kyc_ref": "%064x" % index,
                    },
                ),
            )
        )
    setup.append(
        (
            -1,
            unsigned(
                authority,
                "create_collection",
                {
                    "collection": COLLECTION,
                    "name": "Benchmark Rabbits",
                    "max_supply": users * rounds,
                    "transferable": True,
                },
            ),
        )
    )
    serials = [(owner, round_number) for round_number in range(rounds) for owner in range(users)]
    for start in range(0, len(serials), MINT_ITEMS_PER_TX):
        items = [
            {
                "serial": start + offset + 1,
                "owner": public_keys[owner],
                "content_hash": "%064x" % (start + offset),
            }
            for offset, (owner, _) in enumerate(serials[start : start + MINT_ITEMS_PER_TX])
        ]
        setup.append((-1, unsigned(authority, "mint", {"collection": COLLECTION, "items": items})))
    gifts: list[tuple[int, dict[str, Any]]] = []
    for round_number in range(rounds):
        for owner in range(users):
            serial = round_number * users + owner + 1
            gifts.append(
                (
                    owner,
                    unsigned(
                        public_keys[owner],
                        "gift",
                        {
                            "token": "%s:%d" % (COLLECTION, serial),
                            "to": public_keys[(owner + 1 + round_number) % users],
                        },
                    ),
                )
            )
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        setup_signed = _sign_all(pool, setup)
        gifts_signed = _sign_all(pool, gifts)
    print(
        "signed %d transactions in %.1f s"
        % (len(setup_signed) + len(gifts_signed), time.perf_counter() - started)
    )
    started = time.perf_counter()
    for start in range(0, len(setup_signed), BLOCK_TXS):
        chain.add_block(setup_signed[start : start + BLOCK_TXS])
    # Minted tokens may be gifted after first_hold_days (180).
    chain.add_block([], time_ms=chain.time_ms + 181 * DAY_MS)
    for start in range(0, len(gifts_signed), BLOCK_TXS):
        chain.add_block(gifts_signed[start : start + BLOCK_TXS])
    print(
        "executed and certified %d blocks in %.1f s" % (chain.height, time.perf_counter() - started)
    )
    return chain


def save(chain: DevChain, path: Path) -> None:
    blocks = [[block.header, block.txs, block.results, block.commit] for block in chain.blocks]
    path.write_bytes(
        msgpack.packb({"genesis": chain.genesis_obj, "blocks": blocks}, use_bin_type=True)
    )


def load(path: Path) -> tuple[dict[str, Any], list[SourceBlock]]:
    value = msgpack.unpackb(path.read_bytes(), raw=False)
    return value["genesis"], [SourceBlock(*item) for item in value["blocks"]]


def measure_phases(genesis_obj: dict[str, Any], blocks: list[SourceBlock]) -> None:
    """CPU time per transaction of each replay stage, one core, no overlap."""
    from contracts.block import compute_results_root, compute_tx_root
    from contracts.execution import BlockContext, execute_block
    from contracts.genesis import genesis_writes, load_genesis
    from contracts.memory_tree import MemoryTree
    from contracts.state import DictView
    from node.audit.signatures import check_chunk, signed_tx_from
    from node.audit.state_roots import encode_writes

    genesis = load_genesis(genesis_obj)
    view = DictView()
    tree = MemoryTree()
    writes = genesis_writes(genesis)
    view.apply(writes)
    tree.apply(writes)
    spent = dict.fromkeys(
        ("parse and verify", "execute", "tx and results roots", "state tree"), 0.0
    )
    for block in blocks:
        started = time.process_time()
        checked, _ = check_chunk(genesis.chain_id, 0, block.txs)
        txs = [signed_tx_from(obj, tx_id) for obj, tx_id in zip(block.txs, checked, strict=True)]
        spent["parse and verify"] += time.process_time() - started
        started = time.process_time()
        context = BlockContext(genesis.chain_id, block.header["height"], block.header["time"])
        outcome = execute_block(view, txs, context)
        view.apply(outcome.writes)
        spent["execute"] += time.process_time() - started
        started = time.process_time()
        compute_tx_root(txs)
        compute_results_root(outcome.results)
        spent["tx and results roots"] += time.process_time() - started
        started = time.process_time()
        tree.apply_encoded(encode_writes(outcome.writes))
        spent["state tree"] += time.process_time() - started
        gc.freeze()  # as replay does: the long-lived state stays out of full collections
    gc.unfreeze()
    total_txs = max(1, sum(len(block.txs) for block in blocks))
    total_us = 0.0
    for name, seconds in spent.items():
        print("  %-22s %6.1f us/tx" % (name, seconds / total_txs * 1e6))
        total_us += seconds / total_txs * 1e6
    print(
        "  %-22s %6.1f us/tx -> at best %d tx/s on 2 idle cores (before inter-process costs)"
        % ("total CPU", total_us, 2e6 / total_us)
    )


class CpuSampler:
    """CPU seconds used by this process (with its state-tree thread) and every process it
    started (the signature pool comes from a fork server), read from /proc twice a second. Other
    sessions' load takes cores from the replay, so wall time alone says little: the CPU
    the replay used says what two idle cores would give."""

    def __init__(self) -> None:
        self.root = os.getpid()
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.seen: dict[int, tuple[str, float]] = {}
        self.baseline = self._sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, pids: list[int]) -> dict[int, tuple[int, str, float]]:
        stats: dict[int, tuple[int, str, float]] = {}
        for pid in pids:
            try:
                text = Path("/proc/%d/stat" % pid).read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / self.ticks
            stats[pid] = (int(fields[1]), name, cpu_s)
        return stats

    def _descendants(self) -> dict[int, tuple[str, float]]:
        stats = self._read([int(entry) for entry in os.listdir("/proc") if entry.isdigit()])
        ours = {self.root}
        grew = True
        while grew:
            grew = False
            for pid, (parent, _, _) in stats.items():
                if parent in ours and pid not in ours:
                    ours.add(pid)
                    grew = True
        return {pid: (stats[pid][1], stats[pid][2]) for pid in ours if pid in stats}

    def _sample(self) -> dict[int, tuple[str, float]]:
        current = self._descendants()
        self.seen.update(current)
        return current

    def _run(self) -> None:
        # Known processes are read twice a second (a process that ends loses at most half a
        # second); the whole of /proc is scanned for new ones every five seconds.
        rounds = 0
        while not self._stop.wait(0.5):
            rounds += 1
            if rounds % 10 == 0:
                self._sample()
            else:
                known = self._read(list(self.seen))
                self.seen.update({pid: (name, cpu_s) for pid, (_, name, cpu_s) in known.items()})

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def used_s(self) -> dict[int, float]:
        """CPU seconds each process used since the sampler started (pid -> seconds)."""
        return {
            pid: cpu_s - self.baseline.get(pid, ("", 0.0))[1]
            for pid, (_, cpu_s) in self.seen.items()
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=25_000)
    parser.add_argument(
        "--rounds", type=int, default=7, help="gift rounds (one gift per user each)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="signature processes (default: cores)"
    )
    parser.add_argument(
        "--cache", type=Path, help="save the built chain here, or load it if present"
    )
    parser.add_argument(
        "--phases", action="store_true", help="also measure each stage's CPU cost alone"
    )
    args = parser.parse_args()

    if args.cache is not None and args.cache.exists():
        genesis_obj, blocks = load(args.cache)
        print("loaded %d blocks from %s" % (len(blocks), args.cache))
    else:
        chain = build_chain(args.users, args.rounds)
        genesis_obj, blocks = chain.genesis_obj, chain.blocks
        if args.cache is not None:
            save(chain, args.cache)
    total_txs = sum(len(block.txs) for block in blocks)

    print("load average before the replay: %.2f %.2f %.2f" % os.getloadavg())
    rate = measure_verify_rate(duration_s=1.0)
    print(
        "this machine: %d Ed25519 verifications/s on one core (%s); %d cores"
        % (rate.signatures_per_second_per_core, rate.library, os.cpu_count() or 1)
    )
    report = ChainReport()
    with CpuSampler() as sampler, SignatureChecker(args.workers) as checker:
        result = replay_chain(
            genesis_obj, blocks, checker=checker, expected_height=len(blocks), observers=[report]
        )
    per_second = result.txs / result.elapsed_s
    print(
        "replayed %d blocks, %d transactions in %.2f s: %d tx/s with every signature,"
        " certificate and root checked (%d signature workers)"
        % (result.blocks, total_txs, result.elapsed_s, per_second, checker.workers)
    )
    used = sampler.used_s()
    cpu_s = sum(used.values())
    print(
        "CPU used by the replay's processes: %.1f s (%.0f us/tx; main %.1f s, others %s):"
        " %d tx/s per two cores' worth of CPU"
        % (
            cpu_s,
            cpu_s / total_txs * 1e6,
            used.get(sampler.root, 0.0),
            ", ".join(
                "%.1f" % seconds
                for pid, seconds in sorted(used.items(), key=lambda item: -item[1])
                if pid != sampler.root and seconds >= 0.05
            ),
            2 * total_txs / cpu_s,
        )
    )
    print("load average after the replay: %.2f %.2f %.2f" % os.getloadavg())
    print("final state root %s" % result.state_root)
    print(
        "results: %s"
        % {
            code: sum(c[code] for c in report.by_type.values() if code in c)
            for code in sorted({k for c in report.by_type.values() for k in c})
        }
    )
    if args.phases:
        print("CPU cost of each stage, alone on one core:")
        measure_phases(genesis_obj, blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
