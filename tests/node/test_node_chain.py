"""Four real `yuxi` validator processes on loopback: commits, a SIGKILL under load, catch-up, restart, follower."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_test_helpers import (
    block_hash,
    free_base_port,
    http_json,
    register,
    rpc_height,
    signed,
    start_node_process,
    stop_process,
    user_key,
    wait_until,
)

from contracts.genesis import devnet_authority_key, devnet_validator_key
from node.config import render_config
from node.keys import write_key_file
from node.testnet import prepare_testnet

pytestmark = pytest.mark.slow
AUTHORITY = devnet_authority_key()
COUNT = 4


class Chain:
    def __init__(self, directory: Path) -> None:
        self.base_port = free_base_port(COUNT + 1)
        self.homes = prepare_testnet(COUNT, directory, self.base_port)
        self.urls = ["http://127.0.0.1:%d" % (self.base_port + i) for i in range(COUNT)]
        self.processes: dict[int, object] = {}
        self.nonce = 0

    def start(self, index: int) -> None:
        self.processes[index] = start_node_process(self.homes[index])

    def stop(self, index: int) -> int:
        return stop_process(self.processes.pop(index))  # type: ignore[arg-type]

    def kill(self, index: int) -> None:
        process = self.processes.pop(index)
        process.kill()  # type: ignore[attr-defined]
        process.wait()  # type: ignore[attr-defined]

    def stop_all(self) -> list[int]:
        return [self.stop(index) for index in sorted(self.processes)]

    def submit_registration(self, node_index: int, label: str) -> str:
        status, answer = http_json(
            self.urls[node_index] + "/v1/transactions",
            register(AUTHORITY, self.nonce, user_key(label).public_key),
        )
        assert status == 202, answer
        self.nonce += 1
        return answer["id"]  # type: ignore[index]

    def committed(self, url: str, tx_id: str) -> bool:
        try:
            status, answer = http_json(url + "/v1/transactions/" + tx_id)
        except (OSError, ValueError):
            return False  # the node is not up (yet)
        return status == 200 and answer["status"] == "committed"  # type: ignore[index]

    def log_tail(self) -> str:
        return "\n".join(
            "== %s\n%s" % (home.name, (home / "node.log").read_text()[-3000:])
            for home in self.homes
            if (home / "node.log").exists()
        )


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    chain = Chain(tmp_path / "net")
    try:
        yield chain
    finally:
        for index in list(chain.processes):
            stop_process(chain.processes.pop(index), timeout_s=5)  # type: ignore[arg-type]


def test_chain_commits_survives_a_kill_catches_up_and_resumes(chain: Chain, tmp_path: Path) -> None:
    """Txs sent to any node commit; with one node SIGKILLed under load the rest go on; it catches up; all resume."""
    for index in range(COUNT):
        chain.start(index)
    assert wait_until(lambda: all(rpc_height(url) >= 1 for url in chain.urls), 30), chain.log_tail()

    # A transaction submitted to any node gets committed, and every node sees it.
    ids = [chain.submit_registration(index, "any-%d" % index) for index in range(COUNT)]
    assert wait_until(
        lambda: all(chain.committed(url, tx_id) for url in chain.urls for tx_id in ids), 30
    ), chain.log_tail()

    # Load on three nodes while the fourth is killed with SIGKILL.
    stop_load = threading.Event()
    load_ids: list[str] = []

    def load() -> None:
        for step in range(400):
            if stop_load.is_set():
                return
            try:
                load_ids.append(chain.submit_registration(step % 3, "load-%d" % step))
            except (OSError, AssertionError):
                pass
            time.sleep(0.02)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    time.sleep(0.5)
    chain.kill(3)
    height_at_kill = max(rpc_height(url) for url in chain.urls[:3])
    assert wait_until(
        lambda: all(rpc_height(url) >= height_at_kill + 5 for url in chain.urls[:3]), 40
    ), chain.log_tail()
    stop_load.set()
    loader.join(timeout=10)
    assert load_ids
    assert wait_until(lambda: chain.committed(chain.urls[0], load_ids[-1]), 30), chain.log_tail()

    # The killed node comes back, catches up and agrees on every block hash.
    chain.start(3)
    target = rpc_height(chain.urls[0])
    assert wait_until(lambda: rpc_height(chain.urls[3]) >= target, 60), chain.log_tail()
    for height in range(1, target + 1):
        hashes = {block_hash(url, height) for url in chain.urls}
        assert len(hashes) == 1 and None not in hashes, (height, hashes)
    assert all(chain.committed(chain.urls[3], tx_id) for tx_id in load_ids[-5:])

    # A non-voting follower verifies and re-executes the chain and serves the same reads.
    follower_home = tmp_path / "follower"
    follower_home.mkdir()
    (follower_home / "genesis.json").write_text((chain.homes[0] / "genesis.json").read_text())
    follower_port = chain.base_port + COUNT
    (follower_home / "config.toml").write_text(
        render_config(
            mode="follower",
            moniker="follower",
            rpc_listen="127.0.0.1:%d" % follower_port,
            peer_listen="127.0.0.1:%d" % (follower_port + 100),
            follow=chain.urls[1],
        )
    )
    chain.homes.append(follower_home)
    follower = start_node_process(follower_home)
    chain.processes[COUNT] = follower
    follower_url = "http://127.0.0.1:%d" % follower_port
    assert wait_until(lambda: rpc_height(follower_url) >= target, 60), chain.log_tail()
    assert block_hash(follower_url, target) == block_hash(chain.urls[0], target)
    assert http_json(follower_url + "/v1/accounts/" + user_key("any-0").public_key)[0] == 200
    status, answer = http_json(
        follower_url + "/v1/transactions",
        register(AUTHORITY, chain.nonce, user_key("via-follower").public_key),
    )
    assert status == 202
    chain.nonce += 1
    forwarded = answer["id"]  # type: ignore[index]
    assert wait_until(lambda: chain.committed(follower_url, forwarded), 30), chain.log_tail()
    assert chain.stop(COUNT) == 0

    # The whole chain stops cleanly and resumes from its data.
    height_before = max(rpc_height(url) for url in chain.urls)
    hash_before = block_hash(chain.urls[0], height_before - 1)
    assert chain.stop_all() == [0, 0, 0, 0]
    for index in range(COUNT):
        chain.start(index)
    assert wait_until(
        lambda: all(rpc_height(url) >= height_before + 2 for url in chain.urls), 60
    ), chain.log_tail()
    assert block_hash(chain.urls[2], height_before - 1) == hash_before
    after = chain.submit_registration(2, "after-restart")
    assert wait_until(lambda: chain.committed(chain.urls[0], after), 30), chain.log_tail()


def test_whole_chain_killed_with_sigkill_mid_load_restarts_consistent(chain: Chain) -> None:
    """Every validator SIGKILLed while transactions flow restarts, resumes, and all agree on every block."""
    for index in range(COUNT):
        chain.start(index)
    assert wait_until(lambda: all(rpc_height(url) >= 1 for url in chain.urls), 30), chain.log_tail()
    for round_number in range(2):
        for step in range(25):
            last_accepted = chain.submit_registration(
                step % COUNT, "crash-%d-%d" % (round_number, step)
            )
            time.sleep(0.01)
        time.sleep(0.1 * round_number)
        for index in list(chain.processes):
            chain.kill(index)
        for index in range(COUNT):
            chain.start(index)
        # What a node answered 202 for before the crash is kept and still gets committed.
        assert wait_until(lambda tx_id=last_accepted: chain.committed(chain.urls[0], tx_id), 40), (
            chain.log_tail()
        )
        # Node 0 can report it before the others answer again (the transaction may have
        # committed before the kill); the next round submits to every node.
        assert wait_until(lambda: all(rpc_height(url) >= 0 for url in chain.urls), 30), (
            chain.log_tail()
        )
    target = max(rpc_height(url) for url in chain.urls) + 3
    assert wait_until(lambda: all(rpc_height(url) >= target for url in chain.urls), 40), (
        chain.log_tail()
    )
    for height in range(1, target + 1):
        hashes = {block_hash(url, height) for url in chain.urls}
        assert len(hashes) == 1 and None not in hashes, (height, hashes)


def test_a_validator_added_by_governance_catches_up_and_votes(chain: Chain) -> None:
    """After add_validator executes, a fresh fifth node syncs from genesis and its vote is needed and given."""
    for index in range(COUNT):
        chain.start(index)
    assert wait_until(lambda: all(rpc_height(url) >= 1 for url in chain.urls), 30), chain.log_tail()
    newcomer = devnet_validator_key(COUNT)
    peer_port = chain.base_port + 100 + COUNT
    args = {
        "pubkey": newcomer.public_key,
        "name": "validator-4",
        "endpoint": "127.0.0.1:%d" % peer_port,
    }
    proposal = signed(AUTHORITY, "propose", 0, {"action": "add_validator", "args": args})
    status, answer = http_json(chain.urls[0] + "/v1/transactions", proposal)
    assert status == 202
    assert wait_until(lambda: chain.committed(chain.urls[0], answer["id"]), 30), chain.log_tail()  # type: ignore[index]
    assert wait_until(
        lambda: len(http_json(chain.urls[0] + "/v1/status")[1]["validators"]) == 5, 20
    )  # type: ignore[index]

    home = chain.homes[0].parent / "node-4"
    home.mkdir()
    shutil.copy(chain.homes[0] / "genesis.json", home / "genesis.json")
    write_key_file(home / "node_key.json", newcomer)
    rpc_port = chain.base_port + COUNT
    (home / "config.toml").write_text(
        render_config(
            mode="validator",
            moniker="node-4",
            rpc_listen="127.0.0.1:%d" % rpc_port,
            peer_listen="127.0.0.1:%d" % peer_port,
        )
    )
    chain.homes.append(home)
    chain.processes[COUNT] = start_node_process(home)
    newcomer_url = "http://127.0.0.1:%d" % rpc_port
    target = rpc_height(chain.urls[0])
    assert wait_until(lambda: rpc_height(newcomer_url) >= target, 40), chain.log_tail()

    # With five validators a quorum is four: once one original stops, the newcomer's vote is needed.
    chain.kill(1)
    before = rpc_height(chain.urls[0])
    assert wait_until(lambda: rpc_height(chain.urls[0]) >= before + 3, 40), chain.log_tail()
    assert block_hash(newcomer_url, before + 2) == block_hash(chain.urls[0], before + 2)
