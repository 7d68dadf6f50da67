#!/usr/bin/env python3
"""A day on a local Yuxi development chain, told as it happens.

Start the chain first (`yuxi testnet`), then run `python scripts/tour.py`.
The tour registers users, creates a collection, mints, shows the holding
period in action, advances the development clock on every validator, gifts a
token, sanctions an account and lifts the sanction, printing every step and
the answer the chain gave. It needs nothing but the RPC of PROTOCOL §6 and the
well-known development keys, and can be run again on the same chain.

    python scripts/tour.py [--rpc http://127.0.0.1:8600] [--validators 4]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.transactions import sign_tx
from primitives.crypto import SigningKey

CHAIN_ID = "yuxi-devnet"
DAY_MS = 86_400_000
AUTHORITY = SigningKey(hashlib.sha256(b"yuxi devnet authority").digest())
WAIT_S = 30.0


class Tour:
    def __init__(self, rpc: str, validators: int) -> None:
        self.rpc = rpc.rstrip("/")
        host, _, port = self.rpc.rpartition(":")
        self.all_rpcs = ["%s:%d" % (host, int(port) + i) for i in range(validators)]
        self.nonces: dict[str, int] = {}

    # ---- RPC --------------------------------------------------------------
    def call(self, path: str, body: Any = None, url: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            (url or self.rpc) + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def next_nonce(self, key: SigningKey) -> int:
        if key.public_key not in self.nonces:
            status, account = self.call("/v1/accounts/" + key.public_key)
            self.nonces[key.public_key] = account["nonce"] if status == 200 else 0
        nonce = self.nonces[key.public_key]
        self.nonces[key.public_key] += 1
        return nonce

    def send(self, key: SigningKey, tx_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Submit, wait until committed, and return the result."""
        tx = sign_tx(
            {
                "chain_id": CHAIN_ID,
                "type": tx_type,
                "sender": key.public_key,
                "nonce": self.next_nonce(key),
                "body": body,
            },
            key,
        )
        status, answer = self.call("/v1/transactions", tx)
        if status != 202:
            raise SystemExit("the node refused a %s: %s" % (tx_type, answer))
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            status, found = self.call("/v1/transactions/" + answer["id"])
            if status == 200 and found["status"] == "committed":
                return {"height": found["height"], **found["result"]}
            time.sleep(0.2)
        raise SystemExit("transaction %s was not committed within %ds" % (answer["id"], WAIT_S))

    def check(self, key: SigningKey, tx_type: str, body: dict[str, Any]) -> dict[str, Any]:
        unsigned = {
            "chain_id": CHAIN_ID,
            "type": tx_type,
            "sender": key.public_key,
            "nonce": self.nonces.get(key.public_key, 0),
            "body": body,
        }
        return self.call("/v1/transactions/check", unsigned)[1]["result"]

    def chain_time_ms(self) -> int:
        status, block = self.call("/v1/blocks/latest")
        return block["header"]["time"] if status == 200 else int(time.time() * 1000)

    def advance_clocks_to(self, target_ms: int) -> None:
        offset_ms = max(0, target_ms - int(time.time() * 1000))
        for url in self.all_rpcs:
            status, answer = self.call("/v1/dev/clock", {"offset_ms": offset_ms}, url=url)
            if status != 200:
                raise SystemExit("cannot move the clock of %s: %s" % (url, answer))
        deadline = time.monotonic() + WAIT_S
        while self.chain_time_ms() < target_ms and time.monotonic() < deadline:
            time.sleep(0.2)


def show(step: str, outcome: dict[str, Any] | str) -> None:
    if isinstance(outcome, dict):
        code = outcome.get("code")
        detail = outcome.get("message") or ""
        where = " (block %d)" % outcome["height"] if "height" in outcome else ""
        outcome = "%s%s%s" % (code, where, " - " + detail if detail and code != "ok" else "")
    print("  %-58s -> %s" % (step, outcome))


def when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(
        ms / 1000, datetime.timezone(datetime.timedelta(hours=8))
    ).strftime("%Y-%m-%d %H:%M CST")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rpc", default="http://127.0.0.1:8600", help="RPC of validator 0")
    parser.add_argument(
        "--validators",
        type=int,
        default=4,
        help="validators whose dev clocks to advance (RPC ports P..P+N-1)",
    )
    args = parser.parse_args()
    tour = Tour(args.rpc, args.validators)
    try:
        _, info = tour.call("/v1/status")
    except OSError as exc:
        raise SystemExit(
            "no node at %s (%s); start one with `yuxi testnet`" % (args.rpc, exc)
        ) from None
    print(
        "Chain %s at height %d, %d validators; block time %s"
        % (info["chain_id"], info["height"], len(info["validators"]), when(tour.chain_time_ms()))
    )

    run = secrets.token_hex(3)
    people = {
        name: SigningKey(hashlib.sha256(("tour %s %s" % (run, name)).encode()).digest())
        for name in ("alice", "bob", "carol")
    }
    collection = "moon-rabbit-" + run

    print("\nMorning: the KYC authority registers three people")
    show(
        "register alice (born 1995-03-08)",
        tour.send(
            AUTHORITY,
            "register_account",
            {
                "account": people["alice"].public_key,
                "birth_date": "1995-03-08",
                "kyc_ref": "aa" * 32,
            },
        ),
    )
    show(
        "register bob (born 2001-11-20)",
        tour.send(
            AUTHORITY,
            "register_account",
            {"account": people["bob"].public_key, "birth_date": "2001-11-20", "kyc_ref": "bb" * 32},
        ),
    )
    teen_birthday = (datetime.date.today() - datetime.timedelta(days=365 * 12)).isoformat()
    show(
        "register carol (born %s, twelve years old)" % teen_birthday,
        tour.send(
            AUTHORITY,
            "register_account",
            {
                "account": people["carol"].public_key,
                "birth_date": teen_birthday,
                "kyc_ref": "cc" * 32,
            },
        ),
    )

    print("\nMid-morning: the museum shop (an issuer) launches a collection")
    show(
        "create collection %s (100 pieces)" % collection,
        tour.send(
            AUTHORITY,
            "create_collection",
            {
                "collection": collection,
                "name": "Moon Rabbit, Mid-Autumn edition",
                "max_supply": 100,
                "transferable": True,
            },
        ),
    )
    items = [
        {
            "serial": serial,
            "owner": people["alice"].public_key,
            "content_hash": hashlib.sha256(b"rabbit %d" % serial).hexdigest(),
        }
        for serial in (1, 2, 3)
    ]
    show(
        "mint #1-#3 to alice",
        tour.send(AUTHORITY, "mint", {"collection": collection, "items": items}),
    )
    show(
        "mint #4 to carol (too young)",
        tour.send(
            AUTHORITY,
            "mint",
            {
                "collection": collection,
                "items": [
                    {"serial": 4, "owner": people["carol"].public_key, "content_hash": "dd" * 32}
                ],
            },
        ),
    )

    print("\nNoon: alice wants to give #1 to bob")
    gift = {"token": "%s:1" % collection, "to": people["bob"].public_key}
    result = tour.check(people["alice"], "gift", gift)
    show("dry run of the gift", result)
    eligible_at = result.get("eligible_at")
    if eligible_at:
        print("  (a minted token is held %d days first: eligible at %s)" % (180, when(eligible_at)))
        print("\nThe development clock jumps forward on all %d validators" % args.validators)
        tour.advance_clocks_to(eligible_at + 1000)
        print("  block time is now %s" % when(tour.chain_time_ms()))
    show("alice gifts #1 to bob", tour.send(people["alice"], "gift", gift))
    show(
        "bob gifts #1 straight back (held by gift: 730 days)",
        tour.check(
            people["bob"], "gift", {"token": "%s:1" % collection, "to": people["alice"].public_key}
        ),
    )

    print("\nAfternoon: compliance freezes bob's transfers")
    show(
        "sanction bob: transfer_freeze",
        tour.send(
            AUTHORITY,
            "sanction",
            {
                "account": people["bob"].public_key,
                "kind": "transfer_freeze",
                "reason": "inquiry 2024-118",
                "until": 0,
            },
        ),
    )
    show(
        "alice gifts #2 to bob",
        tour.send(
            people["alice"], "gift", {"token": "%s:2" % collection, "to": people["bob"].public_key}
        ),
    )
    show(
        "lift bob's transfer_freeze",
        tour.send(
            AUTHORITY,
            "lift_sanction",
            {"account": people["bob"].public_key, "kind": "transfer_freeze"},
        ),
    )
    show(
        "alice gifts #2 to bob again",
        tour.send(
            people["alice"], "gift", {"token": "%s:2" % collection, "to": people["bob"].public_key}
        ),
    )

    print("\nEvening: what the ledger says")
    for name, key in people.items():
        account = tour.call("/v1/accounts/" + key.public_key)[1]
        tokens = tour.call("/v1/accounts/%s/tokens" % key.public_key)[1]["tokens"]
        print(
            "  %-6s authenticated=%s tokens=%s"
            % (name, account["authenticated"], ", ".join(tokens) or "-")
        )
    token = tour.call("/v1/tokens/%s/1" % collection)[1]
    print("  history of %s:" % token["token"])
    for entry in token["history"]:
        owner = next(
            (n for n, k in people.items() if k.public_key == entry["owner"]), entry["owner"][:8]
        )
        print(
            "    block %-4d %-5s to %-6s at %s"
            % (entry["height"], entry["acquired_by"], owner, when(entry["at"]))
        )
    print(
        "  collection: minted %d of %d"
        % (tour.call("/v1/collections/" + collection)[1]["minted"], 100)
    )


if __name__ == "__main__":
    main()
