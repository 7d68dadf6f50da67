#!/usr/bin/env python3
"""Where a loaded validator's CPU goes: its threads, and (with py-spy) its Python.

Runs `scripts/bench.py --only max` at the given rate and, once the load has run for
--warmup seconds, measures for --seconds: the CPU of every thread of every node (from
/proc: the main thread, the others together and the busiest of them, which are
LevelDB's background compaction and the tree-flush threads), and with --py-spy a
`py-spy record --gil` of the first node, aggregated into the functions that held the
interpreter longest, on their own and with what they call; with --perf a `perf record -g`
of the second node (native code, the kernel and LevelDB's thread, which py-spy never
sees), as the share of each thread and dso and the main thread's heaviest symbols with
what they call. The bench's own summary line comes last. CPU per committed transaction
is the figure to compare between two trees: run them alternately, the host's speed
drifts (docs/PERFORMANCE.md).

    python scripts/profile_node.py --rate 1600
    python scripts/profile_node.py --rate 1600 --py-spy --top 30   # py-spy needs ptrace rights
    python scripts/profile_node.py --py-spy --stacks node1.folded   # for a flame graph
    python scripts/profile_node.py --rate 700 --tokens 1000000 --perf   # Debian's linux-perf

py-spy is `pip install py-spy` (or `pip install -e '.[profile]'`); it attaches to a
running process, which needs root or kernel.yama.ptrace_scope = 0.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench import child_pids, cpu_times  # noqa: E402

READY_LINE = "compaction settled"  # bench.py's last line before the load starts
TRUNK_SHARE = 0.95


def process_times(pid: int) -> dict[int | str, tuple[float, float]]:
    """(user s, system s) of the process (under "all": threads that ended count there, as
    each tree flush's does) and of each of its live threads."""
    times: dict[int | str, tuple[float, float]] = {"all": cpu_times("/proc/%d/stat" % pid)}
    for task in Path("/proc/%d/task" % pid).iterdir():
        try:
            times[int(task.name)] = cpu_times(str(task / "stat"))
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return times


def node_pids(bench_pid: int) -> list[int]:
    """The validators: the children of the `yuxi testnet` process the bench started."""
    for child in child_pids(bench_pid):
        if b"testnet" in Path("/proc/%d/cmdline" % child).read_bytes():
            return child_pids(child)
    return []


def thread_report(pid: int, before: dict, after: dict, seconds: float) -> str:
    def spent(key: int | str) -> tuple[float, float]:
        start = before.get(key, (0.0, 0.0))
        return after[key][0] - start[0], after[key][1] - start[1]

    main_user, main_system = spent(pid)
    rest = sum(spent("all")) - main_user - main_system
    threads = sorted((sum(spent(t)) for t in after if t not in ("all", pid)), reverse=True)
    busiest = ", ".join("%.2f" % cpu for cpu in threads[:3] if cpu >= 0.05)
    return (
        "node %d: main thread %.2f s user + %.2f s system; other threads %.2f s "
        "(busiest live ones %s) in %.0f s"
        % (pid, main_user, main_system, rest, busiest or "-", seconds)
    )


def aggregate(raw_path: Path, top: int) -> str:
    """py-spy's raw output (one folded stack and its count a line) as two rankings."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        frames = [re.sub(r" \((.*?):\d+\)", r" (\1)", frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        if frames:
            own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return "py-spy recorded no samples"
    lines = ["py-spy of node 1, %d samples holding the GIL" % total]
    for title, counter in (("with callees", inclusive), ("own", own)):
        lines.append("  -- %s" % title)
        # Leave out the trunk every sample shares (the event loop, the command line).
        ranked = [(name, n) for name, n in counter.most_common() if n < TRUNK_SHARE * total]
        lines += ["  %5.1f%%  %s" % (100 * n / total, name) for name, n in ranked[:top]]
    return "\n".join(lines)


def perf_table(data: Path, options: list[str], top: int) -> list[str]:
    """The first `top` rows of a `perf report --stdio` of `data`, without its comments."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "-g", "none", *options],
        capture_output=True, text=True, check=False,
    ).stdout
    rows = [line for line in report.splitlines() if re.match(r"\s+\d+\.\d+%", line)
            and not re.search(r"\] (0x)?[0-9a-f]+$", line)]  # frames it could not name
    return ["  " + row.strip() for row in rows[:top]]


def perf_summary(data: Path, main_tid: int, top: int) -> str:
    lines = ["perf of node 2: share of its samples by thread and shared object"]
    lines += perf_table(data, ["--no-children", "--sort", "pid,dso"], top)
    lines.append("  -- its main thread, by symbol with what it calls (self in the second column)")
    lines += perf_table(data, ["--tid", str(main_tid), "--children", "--sort", "sym"], top)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1600, help="offered gifts per second")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds of load first")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds measured")
    parser.add_argument("--tokens", type=int, help="tokens prepared (default: bench.py's)")
    parser.add_argument("--py-spy", action="store_true", help="also sample node 1's Python")
    parser.add_argument("--perf", action="store_true", help="also record node 2 with perf")
    parser.add_argument("--top", type=int, default=25, help="rows listed by --py-spy, --perf")
    parser.add_argument("--stacks", type=Path, metavar="FILE",
                        help="with --py-spy, keep its folded stacks in FILE (for flame graphs)")
    args = parser.parse_args()
    if args.py_spy and shutil.which("py-spy") is None:
        parser.error("--py-spy needs py-spy on the PATH (pip install py-spy)")
    if args.stacks is not None and not args.py_spy:
        parser.error("--stacks needs --py-spy")
    if args.perf and shutil.which("perf") is None:
        parser.error("--perf needs perf on the PATH (apt-get install linux-perf)")
    with tempfile.TemporaryDirectory(prefix="yuxi-profile-") as scratch:  # gone on any exit
        return profile(args, Path(scratch))


def profile(args: argparse.Namespace, scratch: Path) -> int:
    """Run the bench and measure its nodes, writing the samplers' files into `scratch`."""
    raw = (args.stacks or scratch / "node1.raw") if args.py_spy else None
    perf_data = scratch / "node2.perf" if args.perf else None
    duration = args.warmup + args.seconds + 10
    bench = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--only", "max", "--json",
         "--rate", str(args.rate), "--duration", str(duration)]
        + ([] if args.tokens is None else ["--tokens", str(args.tokens)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    ready = threading.Event()
    log: list[str] = []

    def follow_stderr() -> None:
        assert bench.stderr is not None
        for line in bench.stderr:
            log.append(line)
            if READY_LINE in line:
                ready.set()

    threading.Thread(target=follow_stderr, daemon=True).start()
    try:
        while not ready.wait(1.0):
            if bench.poll() is not None:
                print("".join(log), file=sys.stderr)
                print("the bench ended before its load started", file=sys.stderr)
                return 1
        time.sleep(args.warmup)
        pids = node_pids(bench.pid)
        if not pids:
            print("no validator processes found under the bench", file=sys.stderr)
            return 1
        before = {pid: process_times(pid) for pid in pids}
        started = time.monotonic()
        perf = None if perf_data is None else subprocess.Popen(
            ["perf", "record", "-g", "-F", "499", "-p", str(pids[1]), "-o", str(perf_data),
             "--", "sleep", str(args.seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if raw is not None:
            subprocess.run(
                ["py-spy", "record", "--gil", "--format", "raw", "--rate", "250",
                 "--duration", str(int(args.seconds)), "--pid", str(pids[0]),
                 "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )
        time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
        after = {pid: process_times(pid) for pid in pids}
        elapsed = time.monotonic() - started
        if perf is not None:
            perf.wait(timeout=60)
        assert bench.stdout is not None  # (stderr is the follower thread's to read)
        output = bench.stdout.read()
        bench.wait(timeout=60)
    finally:
        if bench.poll() is None:
            bench.terminate()
            bench.wait()
    run = json.loads(output.strip().splitlines()[-1])["runs"][0]
    for pid in pids:
        print(thread_report(pid, before[pid], after[pid], elapsed))
    node_cpu = sum(sum(after[p]["all"]) - sum(before[p]["all"]) for p in pids)
    print("bench: %.1f committed/s at %d offered, p99 %.0f ms; measured window: %.0f µs of CPU "
          "per committed transaction per node" % (
              run["committed_tps"], args.rate, run["latency_p99_ms"],
              node_cpu / len(pids) / (run["committed_tps"] * elapsed) * 1e6))
    if raw is not None:
        print(aggregate(raw, args.top) if raw.exists() else "py-spy wrote nothing (ptrace rights?)")
    if perf_data is not None:
        print(perf_summary(perf_data, pids[1], args.top) if perf_data.exists()
              else "perf wrote nothing (perf_event_paranoid?)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
