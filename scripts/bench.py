#!/usr/bin/env python3
"""Throughput and latency of a local four-validator chain under a gift load.

Starts a fresh `yuxi testnet` of real processes, prepares authenticated users
and minted tokens (advancing the development clock past the first holding
period), then drives an open-loop load of signed gifts, with a share of mints,
dry-run checks and reads, from a separate load process spread over all four
nodes. Reports committed transactions per second over the sustained part of
the run, submit-to-commit latency, view changes, CPU and peak RSS per node,
and this machine's Ed25519 verification rate with the signature bound it sets.

    python scripts/bench.py                      # full run: max rate, half rate, 10^4 vs 10^6 tokens
    python scripts/bench.py --duration 20 --rate 800 --only max --json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.transactions import sign_tx  # noqa: E402
from primitives.crypto import SigningKey, sha256_hex, verify  # noqa: E402

DAY_MS = 86_400_000
CHAIN_ID = "yuxi-devnet"
ITEMS_PER_MINT = 80  # keeps a mint under the 16 KiB transaction limit
BATCH = 1000  # most transactions in one POST


def seed_key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(label.encode()).digest())


AUTHORITY = seed_key("yuxi devnet authority")


def user_key(index: int) -> SigningKey:
    return seed_key("bench user %d" % index)


def signed(key: SigningKey, tx_type: str, nonce: int, body: dict) -> dict:
    unsigned = {"chain_id": CHAIN_ID, "type": tx_type, "sender": key.public_key, "nonce": nonce, "body": body}
    return sign_tx(unsigned, key)


# ---------------------------------------------------------------- machine


def measure_verify_rate(seconds: float = 1.0) -> int:
    """Ed25519 verifications per second on one core of this machine."""
    key = SigningKey.generate()
    message = b"yuxi-tx-v1\n" + os.urandom(200)
    signature = key.sign(message)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            verify(key.public_key, message, signature)
        count += 200
    return int(count / (time.perf_counter() - started))


@dataclass
class ProcessSample:
    cpu_seconds: float
    main_thread_cpu_seconds: float  # the rest is LevelDB's background thread (compaction)
    peak_rss_mb: float  # VmHWM: includes LevelDB's table files where it maps them
    anon_rss_mb: float  # RssAnon now: the process's own memory, without file pages


def cpu_times(stat_path: str) -> tuple[float, float]:
    """(user s, system s) from a /proc/PID/stat or /proc/PID/task/TID/stat file."""
    with open(stat_path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks_per_s, int(fields[12]) / ticks_per_s


def _cpu_seconds(stat_path: str) -> float:
    return sum(cpu_times(stat_path))


def sample_process(pid: int) -> ProcessSample:
    cpu = _cpu_seconds("/proc/%d/stat" % pid)
    main_thread_cpu = _cpu_seconds("/proc/%d/task/%d/stat" % (pid, pid))
    memory_kb = {"VmHWM:": 0, "RssAnon:": 0}
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            name, _, rest = line.partition("\t")
            if name in memory_kb:
                memory_kb[name] = int(rest.split()[0])
    return ProcessSample(cpu, main_thread_cpu, memory_kb["VmHWM:"] / 1024, memory_kb["RssAnon:"] / 1024)


def reset_peak_rss(pid: int) -> bool:
    """Start the process's VmHWM again from its current RSS (Linux 4.0+), so the peak of the
    load is told apart from the preparation's; False where the kernel refuses."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


async def settle_compaction(pids: list[int], limit_s: float = 300.0) -> None:
    """Wait until no node's LevelDB compacts (its background thread idle for 2 s).

    The preparation writes the whole state at once (for a million tokens, some 500 MB in
    a few minutes) and LevelDB goes on compacting it long after; a state that grew over
    months carries no such debt, so the load starts once it is paid, for every state."""
    started = time.monotonic()

    def background() -> dict[int, float]:
        samples = {pid: sample_process(pid) for pid in pids}
        return {pid: sample.cpu_seconds - sample.main_thread_cpu_seconds for pid, sample in samples.items()}

    last = background()
    while time.monotonic() - started < limit_s:
        await asyncio.sleep(2.0)
        now = background()
        if all(now[pid] - last[pid] < 0.1 for pid in pids):
            break
        last = now
    print("  compaction settled after %.0f s" % (time.monotonic() - started), file=sys.stderr)


def child_pids(pid: int) -> list[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return sorted(int(item) for item in handle.read().split())
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------- chain


class Testnet:
    """A `yuxi testnet` of real processes in a temporary directory."""

    def __init__(self, base_port: int, validators: int = 4, keep: bool = False) -> None:
        self.keep = keep
        self.base_port = base_port
        self.validators = validators
        self.directory = Path(tempfile.mkdtemp(prefix="yuxi-bench-"))
        self.urls = ["http://127.0.0.1:%d" % (base_port + i) for i in range(validators)]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Testnet:
        self.log = open(self.directory / "testnet.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "testnet", "--validators", str(self.validators),
             "--dir", str(self.directory / "chain"), "--base-port", str(self.base_port)],
            stdout=self.log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return self

    def node_pids(self) -> list[int]:
        return child_pids(self.process.pid) if self.process else []

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in self.node_pids():
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait()
        self.log.close()
        if self.keep:
            print("  chain kept in %s (node logs: chain/node-*/node.log)" % self.directory, file=sys.stderr)
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


async def wait_ready(session: aiohttp.ClientSession, urls: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            heights = []
            for url in urls:
                async with session.get(url + "/v1/status") as response:
                    heights.append((await response.json())["height"])
            if min(heights) >= 1:
                return
        except (aiohttp.ClientError, KeyError, ValueError):
            pass
        await asyncio.sleep(0.3)
    raise RuntimeError("the testnet did not come up within %d s" % timeout_s)


PREPARE_BATCH = 200  # mints are up to 16 KiB each; a node takes 4 MiB bodies by default


async def submit(session: aiohttp.ClientSession, url: str, txs: list[dict]) -> None:
    """Submit and insist: a busy node is retried, any refused transaction stops the run."""
    for start in range(0, len(txs), PREPARE_BATCH):
        chunk = txs[start : start + PREPARE_BATCH]
        for _attempt in range(200):
            async with session.post(url + "/v1/transactions", json={"transactions": chunk}) as response:
                answers = await response.json()
                if response.status != 503:
                    break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError("the node stayed busy for 40 s")
        refused = [answer for answer in answers if "error" in answer] if isinstance(answers, list) else [answers]
        if refused:
            raise RuntimeError("preparation refused: %s" % refused[0])


async def wait_nonce(session: aiohttp.ClientSession, url: str, account: str, nonce: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with session.get("%s/v1/accounts/%s" % (url, account)) as response:
            if response.status == 200 and (await response.json())["nonce"] >= nonce:
                return
        await asyncio.sleep(0.3)
    raise RuntimeError("account %s… did not reach nonce %d in %d s" % (account[:12], nonce, timeout_s))


@dataclass
class Population:
    users: list[SigningKey]
    tokens_per_user: int
    authority_nonce: int = 0


async def prepare(session: aiohttp.ClientSession, urls: list[str], users: int, tokens: int) -> Population:
    """Register users, create a collection, mint `tokens` tokens, skip the first holding period."""
    keys = [user_key(index) for index in range(users)]
    nonce = 0
    txs = []
    for key in keys:
        body = {"account": key.public_key, "birth_date": "1990-05-17", "kyc_ref": sha256_hex(key.public_key.encode())}
        txs.append(signed(AUTHORITY, "register_account", nonce, body))
        nonce += 1
    txs.append(signed(AUTHORITY, "create_collection", nonce, {
        "collection": "bench", "name": "Benchmark", "max_supply": 10_000_000, "transferable": True}))
    nonce += 1
    # a second collection for the mints that run during the load
    txs.append(signed(AUTHORITY, "create_collection", nonce, {
        "collection": "bench-live", "name": "Live drops", "max_supply": 10_000_000, "transferable": True}))
    nonce += 1
    per_user = -(-tokens // users)
    serial = 1
    items: list[dict] = []
    for round_index in range(per_user):
        for user in keys:
            items.append({"serial": serial, "owner": user.public_key, "content_hash": sha256_hex(b"%d" % serial)})
            serial += 1
            if len(items) == ITEMS_PER_MINT:
                txs.append(signed(AUTHORITY, "mint", nonce, {"collection": "bench", "items": items}))
                nonce, items = nonce + 1, []
    if items:
        txs.append(signed(AUTHORITY, "mint", nonce, {"collection": "bench", "items": items}))
        nonce += 1
    print("  preparing: %d users, %d tokens in %d transactions" % (users, serial - 1, len(txs)), file=sys.stderr)
    # one sender may run at most 1024 nonces ahead of its committed nonce: go in waves
    for start in range(0, len(txs), BATCH):
        await submit(session, urls[0], txs[start : start + BATCH])
        await wait_nonce(session, urls[0], AUTHORITY.public_key, min(nonce, start + BATCH), timeout_s=600)
    for url in urls:  # every node's clock past the first holding period, so tokens can be gifted
        async with session.post(url + "/v1/dev/clock", json={"offset_ms": 181 * DAY_MS}) as response:
            response.raise_for_status()
    await asyncio.sleep(3)
    return Population(keys, per_user, nonce)


DRAIN_S = 60  # how long commits are followed after the load ends
MINT_EVERY = 100  # one live drop of MINT_ITEMS tokens per this many gifts
MINT_ITEMS = 10


def gift_plan(population: Population, count: int) -> list[tuple[int, dict]]:
    """`count` prepared tokens gifted once each, as (node index, tx), round-robin over senders
    so each sender's nonces go out in order, each sender always through the same node; with
    a live mint by the authority (through node 0) every MINT_EVERY gifts."""
    users = population.users
    plan: list[tuple[int, dict]] = []
    live_serial = 1
    for round_index in range(population.tokens_per_user):
        for index, user in enumerate(users):
            if len(plan) >= count:
                return plan
            serial = round_index * len(users) + index + 1
            body = {"token": "bench:%d" % serial, "to": users[(index + 1) % len(users)].public_key}
            plan.append((index % 4, signed(user, "gift", round_index, body)))
            if len(plan) % MINT_EVERY == 0:
                items = []
                for _ in range(MINT_ITEMS):
                    owner = users[live_serial % len(users)].public_key
                    items.append({"serial": live_serial, "owner": owner,
                                  "content_hash": sha256_hex(b"live %d" % live_serial)})
                    live_serial += 1
                mint = {"collection": "bench-live", "items": items}
                plan.append((0, signed(AUTHORITY, "mint", population.authority_nonce, mint)))
                population.authority_nonce += 1
    return plan


# ---------------------------------------------------------------- load process


def load_process(urls: list[str], plan: list[tuple[int, dict]], extras: list[dict], rate: int,
                 duration_s: float, results: multiprocessing.Queue) -> None:
    """Open-loop load: every 50 ms send what the schedule says is due, whatever the answers."""
    asyncio.run(_load(urls, plan, extras, rate, duration_s, results))


async def _load(urls, plan, extras, rate, duration_s, results) -> None:
    tick_s = 0.05
    submitted: dict[str, float] = {}
    refused = 0
    reads = checks = side_failures = 0
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as session:
        started = time.monotonic()
        sent = 0
        pending: set[asyncio.Task] = set()

        async def post(node: int, txs: list[dict]) -> None:
            nonlocal refused
            at = time.time()
            try:
                async with session.post(urls[node] + "/v1/transactions", json={"transactions": txs}) as response:
                    answers = await response.json()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                refused += len(txs)  # an overloaded node that dropped the request
                return
            if response.status != 202:
                refused += len(txs)
                return
            for answer in answers:
                if "id" in answer:
                    submitted[answer["id"]] = at
                else:
                    refused += 1

        side_number = 0

        async def side_requests(count: int) -> None:
            nonlocal reads, checks, side_failures, side_number
            for _ in range(count):
                # numbered across ticks, so reads and checks alternate even at one a tick
                number, side_number = side_number, side_number + 1
                node = number // 2 % len(urls)  # every node gets both reads and checks
                try:
                    if number % 2 and extras:
                        async with session.post(urls[node] + "/v1/transactions/check",
                                                json=extras[number % len(extras)]) as r:
                            await r.read()
                        checks += 1
                    else:
                        token = number % max(1, len(extras)) + 1
                        async with session.get(urls[node] + "/v1/tokens/bench/%d" % token) as r:
                            await r.read()
                        reads += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    side_failures += 1

        while sent < len(plan) and time.monotonic() - started < duration_s:
            due = min(len(plan), int((time.monotonic() - started) * rate) + int(rate * tick_s))
            by_node: dict[int, list[dict]] = {}
            for node, tx in plan[sent:due]:
                by_node.setdefault(node, []).append(tx)
            sent = due
            for node, txs in by_node.items():
                for start in range(0, len(txs), BATCH):
                    task = asyncio.create_task(post(node, txs[start : start + BATCH]))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            side = asyncio.create_task(side_requests(max(1, rate // 100)))
            pending.add(side)
            side.add_done_callback(pending.discard)
            await asyncio.sleep(tick_s)
        if pending:
            await asyncio.wait(pending, timeout=30)
    results.put({"submitted": submitted, "refused": refused, "reads": reads, "checks": checks,
                 "side_failures": side_failures, "offered": sent, "cpu_s": time.process_time()})


# ---------------------------------------------------------------- one run


@dataclass
class RunReport:
    label: str
    rate: int
    tokens: int
    committed_tps: float = 0.0
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0
    latency_max_ms: float = 0.0
    view_changes: int = 0
    offered: int = 0
    refused: int = 0
    reads: int = 0
    checks: int = 0
    side_failures: int = 0
    accepted: int = 0
    never_committed: int = 0
    backlog_at_end: int = 0  # accepted before the window's end, committed after it (or never)
    load_cpu_s: float = 0.0  # the load process, from its start to the end of the load
    bench_cpu_s: float = 0.0  # this process, following commits over the events socket
    nodes: list[dict] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def view_changes_total(session: aiohttp.ClientSession, urls: list[str]) -> int:
    total = 0
    for url in urls:
        async with session.get(url + "/metrics") as response:
            for line in (await response.text()).splitlines():
                if line.startswith("yuxi_view_changes_total"):
                    total = max(total, int(float(line.split()[-1])))
    return total


async def run_once(label: str, base_port: int, rate: int, duration_s: float, tokens: int, users: int,
                   warmup_s: float, keep: bool = False) -> RunReport:
    report = RunReport(label, rate, tokens)
    with Testnet(base_port, keep=keep) as net:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            await wait_ready(session, net.urls)
            population = await prepare(session, net.urls, users, tokens)
            await settle_compaction(net.node_pids())
            plan = gift_plan(population, int(rate * duration_s * 1.1))
            extras = [tx for _, tx in plan[-200:]]
            async with session.get(net.urls[0] + "/v1/status") as response:
                start_height = (await response.json())["height"] + 1
            view_changes_before = await view_changes_total(session, net.urls)
            before = {pid: sample_process(pid) for pid in net.node_pids()}
            peak_reset = {pid: reset_peak_rss(pid) for pid in before}
            commits: dict[str, float] = {}
            queue: multiprocessing.Queue = multiprocessing.Queue()
            loader = multiprocessing.Process(
                target=load_process, args=(net.urls, plan, extras, rate, duration_s, queue))
            ws = await session.ws_connect(net.urls[0] + "/v1/events?from_height=%d" % start_height)
            wall_start, cpu_start = time.time(), time.process_time()
            loader.start()
            # Follow commits until every accepted transaction committed, or DRAIN_S after the load.
            drain_deadline = time.monotonic() + duration_s + 60 + DRAIN_S
            outcome = None
            while time.monotonic() < drain_deadline:
                if outcome is None and not queue.empty():
                    outcome = queue.get()
                    drain_deadline = min(drain_deadline, time.monotonic() + DRAIN_S)
                if outcome is not None and all(tx in commits for tx in outcome["submitted"]):
                    break
                try:
                    message = await ws.receive_json(timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                at = time.time()
                for tx in message["txs"]:
                    commits[tx["id"]] = at
            await ws.close()
            report.bench_cpu_s = round(time.process_time() - cpu_start, 1)
            if outcome is None:
                outcome = queue.get(timeout=60)
            loader.join(timeout=30)
            report.view_changes = await view_changes_total(session, net.urls) - view_changes_before
        for pid in net.node_pids():
            sample, start = sample_process(pid), before.get(pid) or ProcessSample(0, 0, 0, 0)
            report.nodes.append({"pid": pid, "cpu_s": round(sample.cpu_seconds - start.cpu_seconds, 1),
                                 "main_thread_cpu_s": round(
                                     sample.main_thread_cpu_seconds - start.main_thread_cpu_seconds, 1),
                                 "peak_rss_mb": round(max(sample.peak_rss_mb, start.peak_rss_mb), 1),
                                 # the peak while preparing (mint blocks) and the load's own
                                 "peak_rss_prepared_mb": round(start.peak_rss_mb, 1),
                                 "peak_rss_load_mb": round(sample.peak_rss_mb, 1)
                                 if peak_reset.get(pid) else None,
                                 "anon_rss_mb": round(sample.anon_rss_mb, 1)})
    submitted = outcome["submitted"]
    window_start, window_end = wall_start + warmup_s, wall_start + duration_s
    in_window = [at for at in commits.values() if window_start <= at < window_end]
    report.committed_tps = round(len(in_window) / max(0.001, window_end - window_start), 1)
    latencies = [(commits[tx] - at) * 1000 for tx, at in submitted.items()
                 if tx in commits and window_start <= at < window_end]
    report.latency_p50_ms = round(percentile(latencies, 0.50), 1)
    report.latency_p99_ms = round(percentile(latencies, 0.99), 1)
    report.latency_max_ms = round(max(latencies, default=0.0), 1)
    report.offered, report.refused = outcome["offered"], outcome["refused"]
    report.reads, report.checks = outcome["reads"], outcome["checks"]
    report.side_failures = outcome["side_failures"]
    report.load_cpu_s = round(outcome["cpu_s"], 1)
    report.accepted = len(submitted)
    report.never_committed = sum(1 for tx in submitted if tx not in commits)
    # A chain that keeps up ends the window with about a latency's worth of transactions in
    # flight; one that falls behind with a backlog that grows with the run.
    report.backlog_at_end = sum(1 for tx, at in submitted.items()
                                if at < window_end and commits.get(tx, math.inf) >= window_end)
    return report


# ---------------------------------------------------------------- main


def print_table(summary: dict) -> None:
    print("Ed25519 verifications per core: %(verify_per_core_per_s)d/s; cores %(cores)d; "
          "signature bound %(signature_bound_tps)d tx/s (every validator checks every signature)" % summary)
    header = "%-18s %7s %9s %9s %9s %9s %6s %8s %8s %8s"
    print(header % ("run", "rate", "tps", "p50 ms", "p99 ms", "max ms", "vc", "refused", "lost",
                    "backlog"))
    for run in summary["runs"]:
        print(header % (run["label"], run["rate"], run["committed_tps"], run["latency_p50_ms"],
                        run["latency_p99_ms"], run["latency_max_ms"], run["view_changes"], run["refused"],
                        run["never_committed"], run["backlog_at_end"]))
        for node in run["nodes"]:
            print("    node pid %(pid)d: cpu %(cpu_s)s s (main thread %(main_thread_cpu_s)s s, the rest the"
                  " tree writer and LevelDB compaction), peak RSS %(peak_rss_mb)s MB (during the load"
                  " %(load)s, before it %(peak_rss_prepared_mb)s MB; anonymous at the"
                  " end: %(anon_rss_mb)s MB)"
                  % dict(node, load="unknown" if node["peak_rss_load_mb"] is None
                         else "%s MB" % node["peak_rss_load_mb"]))
        print("    load process: cpu %(load_cpu_s)s s; this process, following commits: cpu %(bench_cpu_s)s s"
              % run)
    print("share of the signature bound at the maximum rate: %.1f%%" % (100 * summary["share_of_bound"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run")
    parser.add_argument("--rate", type=int, default=2500, help="offered gifts per second (open loop)")
    parser.add_argument("--tokens", type=int, default=0, help="tokens prepared (default: enough for the run)")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the figures")
    parser.add_argument("--base-port", type=int, default=9600)
    parser.add_argument("--only", choices=["max", "half", "scale"], action="append",
                        help="run only these parts (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", action="store_true",
                        help="keep each chain's directory (node logs: view changes, block sizes)")
    args = parser.parse_args()
    parts = set(args.only or ["max", "half", "scale"])

    cores = os.cpu_count() or 1
    verify_rate = measure_verify_rate()
    bound = verify_rate * cores // 4
    tokens = args.tokens or int(args.rate * args.duration * 1.1)
    runs: list[RunReport] = []
    max_run = None
    if "max" in parts:
        max_run = asyncio.run(run_once("max rate", args.base_port, args.rate, args.duration, tokens,
                                       args.users, args.warmup, args.keep))
        runs.append(max_run)
    if "half" in parts:
        half_rate = max(1, int((max_run.committed_tps if max_run else args.rate) // 2))
        runs.append(asyncio.run(run_once("half rate", args.base_port, half_rate, args.duration,
                                         int(half_rate * args.duration * 1.1), args.users, args.warmup, args.keep)))
    if "scale" in parts:
        scale_rate = max(1, int((max_run.committed_tps if max_run else args.rate) * 0.8))
        scale_tokens = max(int(scale_rate * args.duration * 1.1), 10_000)
        runs.append(asyncio.run(run_once("10^4 tokens", args.base_port, scale_rate, args.duration,
                                         scale_tokens, args.users, args.warmup, args.keep)))
        runs.append(asyncio.run(run_once("10^6 tokens", args.base_port, scale_rate, args.duration,
                                         max(scale_tokens, 1_000_000), args.users, args.warmup, args.keep)))
    headline = max_run or runs[0]
    summary = {
        "committed_tps": headline.committed_tps,
        "latency_p50_ms": headline.latency_p50_ms,
        "latency_p99_ms": headline.latency_p99_ms,
        "latency_max_ms": headline.latency_max_ms,
        "view_changes": headline.view_changes,
        "verify_per_core_per_s": verify_rate,
        "cores": cores,
        "signature_bound_tps": bound,
        "share_of_bound": round(headline.committed_tps / bound, 4) if bound else 0.0,
        "runs": [run.__dict__ for run in runs],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print_table(summary)


if __name__ == "__main__":
    main()
