#!/usr/bin/env python3
"""Cost of one block's state update at 10^4, 10^5 and 10^6 tokens.

For each size N the state holds N minted tokens (each with its history entry)
spread over 1,000 adult accounts, plus the devnet genesis records. A block of
gifts (default 500, each touching the token, a new history entry and two
accounts) is executed and applied to the state tree. The block's tree update
should grow with log16(N) (the tree's depth), not with N: compare the columns.

    python scripts/bench_state.py           # 10^4, 10^5, 10^6 (10^6 takes a minute or two)
    python scripts/bench_state.py --sizes 10000 100000 --gifts 200
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.context import BlockContext
from contracts.execution import execute_block
from contracts.genesis import devnet_genesis, genesis_writes, load_genesis
from contracts.params import DAY_MS
from contracts.state import account_key, collection_key, token_history_key, token_key
from contracts.state_tree import EMPTY_ROOT, MemoryNodeStore, apply_changes, prove, verify_proof
from contracts.transactions import parse_tx, sign_tx
from primitives.crypto import SigningKey, sha256

ACCOUNTS = 1000
T0 = 1_717_171_200_000
CONTENT = "c0" * 32


class CountingStore:
    """A node store that counts reads, to show how many nodes a block touches."""

    def __init__(self, inner: MemoryNodeStore) -> None:
        self.inner = inner
        self.reads = 0

    def get_node(self, node_hash: bytes) -> bytes | None:
        self.reads += 1
        return self.inner.get_node(node_hash)


class SyntheticView:
    """The N-token state without holding it all as Python dicts: values are made on demand."""

    def __init__(self, base: dict[str, Any], tokens: int, owners: list[str]) -> None:
        self.base = base
        self.tokens = tokens
        self.owners = owners
        self.owner_index = {owner: index for index, owner in enumerate(owners)}

    def token(self, serial: int) -> dict[str, Any]:
        return {
            "owner": self.owners[serial % ACCOUNTS],
            "content_hash": CONTENT,
            "acquired_by": "mint",
            "held_since": T0,
            "history_length": 1,
        }

    def history(self, serial: int) -> dict[str, Any]:
        return {
            "owner": self.owners[serial % ACCOUNTS],
            "acquired_by": "mint",
            "at": T0,
            "height": 1,
            "tx": CONTENT,
        }

    def account(self, index: int) -> dict[str, Any]:
        count = self.tokens // ACCOUNTS + (1 if index < self.tokens % ACCOUNTS else 0)
        return {
            "nonce": 0,
            "authenticated": True,
            "roles": [],
            "token_count": count,
            "gift_day": 0,
            "gift_count": 0,
            "birth_date": "1990-01-01",
            "kyc_ref": CONTENT,
        }

    def serial_of(self, key: str, prefix: str) -> int | None:
        if not key.startswith(prefix):
            return None
        serial = int(key[len(prefix) :].split("/")[0])
        return serial if 1 <= serial <= self.tokens else None

    def get(self, key: str) -> Any | None:
        if key in self.base:
            return self.base[key]
        serial = self.serial_of(key, "token/bench:")
        if serial is not None:
            return self.token(serial)
        if key.startswith("token_history/bench:") and key.endswith("/0"):
            serial = self.serial_of(key, "token_history/bench:")
            return None if serial is None else self.history(serial)
        if key.startswith("account/"):
            index = self.owner_index.get(key[len("account/") :])
            return None if index is None else self.account(index)
        return None

    def all_items(self, chunk: int) -> Any:
        """Every key and value, in chunks, to build the tree without one giant dict."""
        yield dict(self.base)
        yield {account_key(owner): self.account(index) for index, owner in enumerate(self.owners)}
        for start in range(1, self.tokens + 1, chunk):
            batch: dict[str, Any] = {}
            for serial in range(start, min(start + chunk, self.tokens + 1)):
                batch[token_key("bench:%d" % serial)] = self.token(serial)
                batch[token_history_key("bench:%d" % serial, 0)] = self.history(serial)
            yield batch


def bench_size(tokens: int, gifts: int, keys: list[SigningKey]) -> dict[str, float]:
    genesis = load_genesis(devnet_genesis(4, T0))
    base = genesis_writes(genesis)
    base[collection_key("bench")] = {
        "collection": "bench",
        "name": "Bench",
        "max_supply": 10_000_000,
        "transferable": True,
        "issuer": genesis.accounts[0]["account"],
        "minted": tokens,
    }
    view = SyntheticView(base, tokens, [key.public_key for key in keys])

    started = time.perf_counter()
    store = MemoryNodeStore()
    root = EMPTY_ROOT
    for batch in view.all_items(200_000):
        root, nodes, *_ = apply_changes(store, root, batch)
        store.put_nodes(nodes)
    build_s = time.perf_counter() - started

    # One gift per sender (distinct owners), each to the next account, after every hold has ended.
    rng = random.Random(tokens)
    senders = rng.sample(range(ACCOUNTS), gifts)
    txs = []
    for index in senders:
        serial = index + ACCOUNTS * rng.randrange(max(1, tokens // ACCOUNTS))
        serial = serial if 1 <= serial <= tokens else index or ACCOUNTS
        owner = keys[serial % ACCOUNTS]
        body = {"token": "bench:%d" % serial, "to": keys[(serial + 1) % ACCOUNTS].public_key}
        unsigned = {
            "chain_id": genesis.chain_id,
            "type": "gift",
            "sender": owner.public_key,
            "nonce": 0,
            "body": body,
        }
        txs.append(parse_tx(sign_tx(unsigned, owner)))

    ctx = BlockContext(genesis.chain_id, 2, T0 + 800 * DAY_MS)
    started = time.perf_counter()
    outcome = execute_block(view, txs, ctx)
    execute_s = time.perf_counter() - started
    accepted = sum(result.ok for result in outcome.results)

    counting = CountingStore(store)
    started = time.perf_counter()
    new_root, new_nodes, *_ = apply_changes(counting, root, outcome.writes)
    update_s = time.perf_counter() - started

    store.put_nodes(new_nodes)
    started = time.perf_counter()
    sample = list(outcome.writes)[:100]
    proofs = [prove(store, new_root, key) for key in sample]
    prove_s = (time.perf_counter() - started) / len(sample)
    assert all(
        verify_proof(new_root, key, outcome.writes[key], proof)
        for key, proof in zip(sample, proofs, strict=True)
    )
    depth = max(len(proof["nodes"]) for proof in proofs)
    return {
        "tokens": tokens,
        "leaves": 2 * tokens + ACCOUNTS + len(base),
        "build_s": build_s,
        "gifts_ok": accepted,
        "keys_touched": len(outcome.writes),
        "execute_ms": execute_s * 1000,
        "update_ms": update_s * 1000,
        "node_reads": counting.reads,
        "nodes_written": len(new_nodes),
        "depth": depth,
        "prove_us": prove_s * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--gifts", type=int, default=500, help="gifts per block (at most %d)" % ACCOUNTS
    )
    arguments = parser.parse_args()
    if not 1 <= arguments.gifts <= ACCOUNTS:
        parser.error("--gifts must be in 1..%d" % ACCOUNTS)
    keys = [SigningKey(sha256(b"bench account %d" % index)) for index in range(ACCOUNTS)]
    columns = [
        "tokens",
        "leaves",
        "build_s",
        "gifts_ok",
        "keys_touched",
        "execute_ms",
        "update_ms",
        "node_reads",
        "nodes_written",
        "depth",
        "prove_us",
    ]
    print(" ".join("%13s" % column for column in columns))
    for size in arguments.sizes:
        row = bench_size(size, arguments.gifts, keys)
        print(
            " ".join(
                "%13s" % (("%.1f" % row[c]) if isinstance(row[c], float) else row[c])
                for c in columns
            ),
            flush=True,
        )
    print(
        "\nupdate_ms, node_reads and nodes_written are one block's tree update; they follow"
        "\nthe tree's depth (log16 of the leaves), not the number of tokens."
        "\nbuild_s is the one-off initial load."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
