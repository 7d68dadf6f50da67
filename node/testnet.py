"""`yuxi testnet`: a local development chain of N validator processes, supervised.

Each validator is a separate OS process (`python -m node node run --home
DIR/node-<i>`), so the chain behaves like a real deployment on one machine.
The homes are written once; running the command again resumes the chain from
their data. A node that dies is restarted with backoff. Ctrl-C or SIGTERM
stops every node with SIGTERM (SIGKILL after a grace period) and returns.
Each node's output goes to its home's node.log, rotated once it passes
LOG_MAX_BYTES (checked every LOG_CHECK_S), with LOG_BACKUPS older files kept
(node.log.1 is the newest of them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from node.config import render_config
from node.errors import NodeSetupError
from node.keys import write_key_file

STOP_GRACE_S = 10.0
POLL_S = 0.2
RESTART_BACKOFF_MAX_S = 10.0
LOG_MAX_BYTES = 64 * 1024 * 1024
LOG_BACKUPS = 2
LOG_CHECK_S = 5.0


def prepare_testnet(count: int, directory: Path, base_port: int) -> list[Path]:
    """Create the homes (genesis, keys, config) unless they exist; return them."""
    from contracts.genesis import devnet_genesis, devnet_validator_key, load_genesis

    directory = Path(directory)
    homes = [directory / ("node-%d" % i) for i in range(count)]
    existing = [home for home in homes if (home / "genesis.json").exists()]
    if existing and len(existing) != count:
        raise NodeSetupError(
            "%s holds %d of %d node homes; use the same --validators as before or a new --dir"
            % (directory, len(existing), count)
        )
    if existing:
        genesis = json.loads((homes[0] / "genesis.json").read_text())
        if len(genesis.get("validators", [])) != count:
            raise NodeSetupError(
                "%s is a chain of %d validators, not %d"
                % (directory, len(genesis.get("validators", [])), count)
            )
        first_peer_port = int(str(genesis["validators"][0]["endpoint"]).rpartition(":")[2])
        if first_peer_port != base_port + 100:
            raise NodeSetupError(
                "%s was made with --base-port %d; run with that, or use a new --dir"
                % (directory, first_peer_port - 100)
            )
        return homes
    genesis_obj = devnet_genesis(count, time.time_ns() // 1_000_000, base_port)
    load_genesis(genesis_obj)
    text = json.dumps(genesis_obj, indent=2, sort_keys=True) + "\n"
    for i, home in enumerate(homes):
        home.mkdir(parents=True, exist_ok=True)
        (home / "genesis.json").write_text(text)
        write_key_file(home / "node_key.json", devnet_validator_key(i), overwrite=True)
        (home / "config.toml").write_text(
            render_config(
                mode="validator",
                moniker="node-%d" % i,
                rpc_listen="127.0.0.1:%d" % (base_port + i),
                peer_listen="127.0.0.1:%d" % (base_port + 100 + i),
            )
        )
    return homes


def rotate_log(path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> bool:
    """Once `path` has grown past `max_bytes`, shift it into path.1 (path.1 into path.2 ...,
    the oldest dropped) and empty it. Copied, then truncated, not renamed: the node
    appends to the file it was started with, and O_APPEND writes land at the new end.
    Lines written between the copy and the truncation are lost (as with logrotate's
    copytruncate). Returns whether it rotated."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for index in range(backups - 1, 0, -1):
        older = path.with_name("%s.%d" % (path.name, index))
        if older.exists():
            os.replace(older, path.with_name("%s.%d" % (path.name, index + 1)))
    if backups > 0:
        shutil.copyfile(path, path.with_name(path.name + ".1"))
    os.truncate(path, 0)
    return True


def _rpc_address(home: Path) -> str:
    from node.config import load_config

    config = load_config(home)
    return "http://%s:%d" % (config.rpc_host, config.rpc_port)


def _stop_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM if the supervisor dies (even by
    SIGKILL), so no orphaned validator keeps the ports of the next `yuxi testnet`."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class _Child:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.next_start_s = 0.0

    def start(self) -> None:
        with open(self.home / "node.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "node", "node", "run", "--home", str(self.home)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C goes to us; we stop the children in order
                preexec_fn=_stop_with_parent,
            )


def run_testnet(count: int, directory: Path, base_port: int) -> int:
    homes = prepare_testnet(count, directory, base_port)
    children = [_Child(home) for home in homes]
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for child in children:
        child.start()
    print(
        "Yuxi development chain (%d validators) in %s" % (count, Path(directory).resolve()),
        flush=True,
    )
    for child in children:
        print(
            "  %s  rpc %s  log %s"
            % (child.home.name, _rpc_address(child.home), child.home / "node.log"),
            flush=True,
        )
    print("Ctrl-C stops all nodes; run the same command again to resume.", flush=True)
    logs_checked_s = time.monotonic()
    try:
        while not stopping:
            time.sleep(POLL_S)
            now_s = time.monotonic()
            if now_s - logs_checked_s >= LOG_CHECK_S:
                logs_checked_s = now_s
                for child in children:
                    log_path = child.home / "node.log"
                    try:
                        rotate_log(log_path)
                    except OSError as exc:  # a full disk, say: the chain goes on regardless
                        print("could not rotate %s: %s" % (log_path, exc), flush=True)
            for child in children:
                process = child.process
                if process is not None and process.poll() is None:
                    continue
                if process is not None:
                    child.restarts += 1
                    delay_s = min(RESTART_BACKOFF_MAX_S, 0.5 * 2 ** min(child.restarts, 5))
                    print(
                        "%s exited with status %s; restarting in %.1fs (see %s)"
                        % (child.home.name, process.returncode, delay_s, child.home / "node.log"),
                        flush=True,
                    )
                    child.process = None
                    child.next_start_s = now_s + delay_s
                elif now_s >= child.next_start_s:
                    child.start()
    finally:
        _stop_all(children)
    print("all nodes stopped", flush=True)
    return 0


def _stop_all(children: list[_Child]) -> None:
    running = [
        child.process
        for child in children
        if child.process is not None and child.process.poll() is None
    ]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline_s = time.monotonic() + STOP_GRACE_S
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
