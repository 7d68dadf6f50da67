"""The `yuxi` command line: keygen, genesis, clear one-line setup errors, and the supervised testnet."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from node_test_helpers import REPO, free_base_port, rpc_height, wait_until, yuxi_command

from node.config import render_config
from node.testnet import prepare_testnet, rotate_log


def run_yuxi(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        yuxi_command(*args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_keygen_writes_a_private_key_file_and_prints_the_public_key(tmp_path: Path) -> None:
    """keygen writes a mode-0600 key file, prints its public key, and will not overwrite it."""
    out = tmp_path / "keys" / "validator.json"
    result = run_yuxi("keygen", "--out", str(out))
    assert result.returncode == 0, result.stderr
    public_key = result.stdout.strip()
    assert len(public_key) == 64 and json.loads(out.read_text())["public_key"] == public_key
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = run_yuxi("keygen", "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_genesis_from_key_files_and_the_dev_chain(tmp_path: Path) -> None:
    """genesis builds a valid file from validator and role keys, or the development chain with --dev."""
    keys = []
    for name in ("v1", "v2", "authority"):
        result = run_yuxi("keygen", "--out", str(tmp_path / (name + ".json")))
        keys.append(result.stdout.strip())
    out = tmp_path / "genesis.json"
    result = run_yuxi(
        "genesis",
        "--out",
        str(out),
        "--chain-id",
        "acme-main",
        "--validator",
        "%s,alpha,10.0.0.1:8700" % (tmp_path / "v1.json"),
        "--validator",
        "%s,beta,10.0.0.2:8700" % keys[1],
        "--role",
        "governor=%s" % keys[2],
        "--role",
        "kyc_authority=%s" % (tmp_path / "authority.json"),
        "--param",
        "min_age_years=16",
    )
    assert result.returncode == 0, result.stderr
    genesis = json.loads(out.read_text())
    assert [v["pubkey"] for v in genesis["validators"]] == keys[:2]
    assert genesis["accounts"] == [{"account": keys[2], "roles": ["governor", "kyc_authority"]}]
    dev = run_yuxi("genesis", "--dev", "--out", str(tmp_path / "dev.json"))
    assert (
        dev.returncode == 0
        and json.loads((tmp_path / "dev.json").read_text())["chain_id"] == "yuxi-devnet"
    )
    bad = run_yuxi(
        "genesis", "--out", str(tmp_path / "bad.json"), "--chain-id", "x", "--validator", "nonsense"
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "problem",
    [
        "no_home",
        "no_config",
        "broken_config",
        "no_key",
        "broken_key",
        "broken_genesis",
        "port_in_use",
    ],
)
def test_node_run_explains_setup_problems_in_one_line(tmp_path: Path, problem: str) -> None:
    """A missing or broken config, key or genesis, or a port in use, stops `node run` with one clear line."""
    base_port = free_base_port(1)
    home = prepare_testnet(1, tmp_path / "net", base_port)[0]
    expected = {
        "no_home": "does not exist",
        "no_config": "config file",
        "broken_config": "not valid TOML",
        "no_key": "key file",
        "broken_key": "key file",
        "broken_genesis": "genesis file",
        "port_in_use": "cannot be opened",
    }[problem]
    blocker = None
    if problem == "no_home":
        home = tmp_path / "missing"
    elif problem == "no_config":
        (home / "config.toml").unlink()
    elif problem == "broken_config":
        (home / "config.toml").write_text("mode = [unclosed\n")
    elif problem == "no_key":
        (home / "node_key.json").unlink()
    elif problem == "broken_key":
        (home / "node_key.json").write_text('{"type": "yuxi-ed25519-v1", "seed": "zz"}')
    elif problem == "broken_genesis":
        (home / "genesis.json").write_text('{"chain_id": ')
    else:
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", base_port))
        blocker.listen()
    try:
        result = run_yuxi("node", "run", "--home", str(home), timeout_s=30)
    finally:
        if blocker is not None:
            blocker.close()
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and expected in last_line, result.stderr
    assert "Traceback" not in result.stderr


def test_follower_config_needs_a_follow_url(tmp_path: Path) -> None:
    """A follower without `follow` is refused with a clear line."""
    home = prepare_testnet(1, tmp_path / "net", free_base_port(1))[0]
    (home / "config.toml").write_text(
        render_config(
            mode="follower", moniker="f", rpc_listen="127.0.0.1:1", peer_listen="127.0.0.1:2"
        )
    )
    result = run_yuxi("node", "run", "--home", str(home))
    assert result.returncode == 1 and "follow" in result.stderr


@pytest.mark.slow
def test_testnet_runs_processes_stops_on_sigterm_and_resumes(tmp_path: Path) -> None:
    """`yuxi testnet` prints each RPC address, stops every node on SIGTERM, and resumes the chain when run again."""
    base_port = free_base_port(4)
    directory = tmp_path / "chain"
    urls = ["http://127.0.0.1:%d" % (base_port + i) for i in range(4)]

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            yuxi_command("testnet", "--dir", str(directory), "--base-port", str(base_port)),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    process = start()
    try:
        assert wait_until(lambda: all(rpc_height(url) >= 2 for url in urls), 40)
        # The supervisor restarts a node that dies.
        victim = _pid_of_node(directory / "node-1")
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: rpc_height(urls[1]) == -1, 10)
        assert wait_until(lambda: rpc_height(urls[1]) >= 2, 40)
        assert _pid_of_node(directory / "node-1") != victim
        reached = min(rpc_height(url) for url in urls)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        for url in urls:
            assert url in output
        assert "all nodes stopped" in output
        assert all(rpc_height(url) == -1 for url in urls)
        assert (directory / "node-3" / "data").is_dir()
        process = start()
        assert wait_until(lambda: all(rpc_height(url) >= reached + 2 for url in urls), 40)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _pid_of_node(home: Path) -> int:
    """The pid of the `node run --home HOME` process (from /proc, Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in arguments and str(home).encode() in arguments:
            return int(entry.name)
    raise AssertionError("no node process for %s" % home)


def test_testnet_logs_rotate_under_a_writer_that_keeps_appending(tmp_path: Path) -> None:
    """A node's log past its bound moves into node.log.1 (older ones shift, the oldest
    goes) and starts empty, while the node goes on writing through the handle it has."""
    log = tmp_path / "node.log"
    assert not rotate_log(log, max_bytes=10, backups=2)  # no log yet
    with open(log, "ab", buffering=0) as writer:  # as the supervisor hands it to a node
        for generation in (b"first ", b"second ", b"third "):
            writer.write(generation * 4)
            assert not rotate_log(log, max_bytes=1000, backups=2)
            assert rotate_log(log, max_bytes=10, backups=2)
            assert log.stat().st_size == 0
        writer.write(b"after")
    assert log.read_bytes() == b"after"
    assert (tmp_path / "node.log.1").read_bytes() == b"third " * 4
    assert (tmp_path / "node.log.2").read_bytes() == b"second " * 4
    assert not (tmp_path / "node.log.3").exists()
