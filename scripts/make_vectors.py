"""Write the operation vectors: state before, one transaction, result and state after.

    python scripts/make_vectors.py            # rewrite tests/vectors/*.json
    python scripts/make_vectors.py --check    # exit 1 if the files differ from what the code gives

Each file tests/vectors/<type>.json holds {"format", "vectors": [...]}; a vector is
{"name", "description", "context": {"chain_id", "height", "time_ms"},
 "pre": {state key: value}, "pre_root", "tx": the signed transaction,
 "result": {"code", "message", "eligible_at"?}, "post": {state key: value}, "post_root"}.
Another implementation loads `pre`, executes `tx` in a block with `context`, and must
produce `result` and `post` (for a rejection: `pre` with only the sender's nonce moved,
or nothing at all for bad_nonce). Roots follow docs/STATE.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts.context import BlockContext  # noqa: E402
from contracts.execution import execute_block  # noqa: E402
from contracts.genesis import devnet_authority_key, devnet_genesis, genesis_writes, load_genesis  # noqa: E402
from contracts.params import DAY_MS  # noqa: E402
from contracts.state import DictView, account_key  # noqa: E402
from contracts.state_tree import compute_root  # noqa: E402
from contracts.transactions import parse_tx, sign_tx  # noqa: E402
from primitives.crypto import SigningKey, sha256  # noqa: E402

VECTOR_DIR = ROOT / "tests" / "vectors"
FORMAT = "yuxi-operation-vectors-v1"
# 2024-06-01 00:00 in UTC+8 (the chain's default zone).
T0 = 1_717_171_200_000
HASH = "c0" * 32


def person(name: str) -> SigningKey:
    return SigningKey(sha256(b"yuxi vector " + name.encode()))


AUTHORITY = devnet_authority_key()
ALICE, BOB, CAROL, DAVE = person("alice"), person("bob"), person("carol"), person("dave")
GOV2, GOV3 = person("governor two"), person("governor three")


class Scenario:
    """A one-validator devnet whose blocks run one transaction each, one second apart."""

    def __init__(self, genesis_time_ms: int = T0, params: dict[str, int] | None = None) -> None:
        obj = devnet_genesis(1, genesis_time_ms)
        obj["params"].update(params or {})
        self.genesis = load_genesis(obj)
        self.view = DictView(genesis_writes(self.genesis))
        self.height = 0
        self.time_ms = genesis_time_ms
        self.last_tx_id = ""

    def signed(
        self, sender: SigningKey, tx_type: str, body: dict[str, Any], nonce: int | None = None
    ) -> dict[str, Any]:
        if nonce is None:
            account = self.view.get(account_key(sender.public_key))
            nonce = account["nonce"] if account is not None else 0
        unsigned = {
            "chain_id": self.genesis.chain_id,
            "type": tx_type,
            "sender": sender.public_key,
            "nonce": nonce,
            "body": body,
        }
        return sign_tx(unsigned, sender)

    def execute(self, tx_object: dict[str, Any], time_ms: int | None) -> Any:
        self.time_ms = self.time_ms + 1000 if time_ms is None else time_ms
        self.height += 1
        ctx = BlockContext(self.genesis.chain_id, self.height, self.time_ms)
        tx = parse_tx(tx_object)
        self.last_tx_id = tx.id
        outcome = execute_block(self.view, [tx], ctx)
        self.view.apply(outcome.writes)
        return ctx, outcome.results[0]

    def step(
        self, sender: SigningKey, tx_type: str, body: dict[str, Any], time_ms: int | None = None
    ) -> Scenario:
        _, result = self.execute(self.signed(sender, tx_type, body), time_ms)
        if not result.ok:
            raise RuntimeError("vector set-up step %s failed: %s" % (tx_type, result))
        return self

    def vector(
        self,
        name: str,
        description: str,
        sender: SigningKey,
        tx_type: str,
        body: dict[str, Any],
        time_ms: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        pre = dict(sorted(self.view.values.items()))
        tx_object = self.signed(sender, tx_type, body, nonce)
        ctx, result = self.execute(tx_object, time_ms)
        post = dict(sorted(self.view.values.items()))
        return {
            "name": name,
            "description": description,
            "context": {"chain_id": ctx.chain_id, "height": ctx.height, "time_ms": ctx.time_ms},
            "pre": pre,
            "pre_root": compute_root(pre),
            "tx": tx_object,
            "result": result.to_dict(),
            "post": post,
            "post_root": compute_root(post),
        }

    # Set-up helpers.

    def register(self, who: SigningKey, birth_date: str = "2000-01-01") -> Scenario:
        return self.step(
            AUTHORITY,
            "register_account",
            {"account": who.public_key, "birth_date": birth_date, "kyc_ref": HASH},
        )

    def collection(self, collection: str = "moon-rabbit", **options: Any) -> Scenario:
        body = {
            "collection": collection,
            "name": "Moon Rabbit",
            "max_supply": 100,
            "transferable": True,
            **options,
        }
        return self.step(AUTHORITY, "create_collection", body)

    def mint(self, owner: SigningKey, serial: int = 1, time_ms: int | None = None) -> Scenario:
        items = [{"serial": serial, "owner": owner.public_key, "content_hash": HASH}]
        return self.step(AUTHORITY, "mint", {"collection": "moon-rabbit", "items": items}, time_ms)

    def sanction(self, who: SigningKey, kind: str, until: int) -> Scenario:
        return self.step(
            AUTHORITY,
            "sanction",
            {"account": who.public_key, "kind": kind, "reason": "order 7", "until": until},
        )

    def propose(self, action: str, args: dict[str, Any]) -> Scenario:
        return self.step(AUTHORITY, "propose", {"action": action, "args": args})


def gift_scene(**params: int) -> Scenario:
    """Alice (adult) holds moon-rabbit:1 minted at T0 + 5 s; Bob and Carol are adults."""
    scene = Scenario(params=params).register(ALICE).register(BOB).register(CAROL).collection()
    return scene.mint(ALICE, time_ms=T0 + 5000)


HOLD_END = T0 + 5000 + 180 * DAY_MS


def gift(to: SigningKey = BOB, token: str = "moon-rabbit:1") -> dict[str, Any]:
    return {"token": token, "to": to.public_key}


def gift_vectors() -> list[dict[str, Any]]:
    vectors = [
        gift_scene().vector(
            "ok",
            "gift on the millisecond the 180-day first hold ends",
            ALICE,
            "gift",
            gift(),
            HOLD_END,
        ),
        gift_scene().vector(
            "holding_period",
            "one millisecond before the hold ends; eligible_at names it",
            ALICE,
            "gift",
            gift(),
            HOLD_END - 1,
        ),
        gift_scene().vector(
            "token_not_found",
            "no such serial",
            ALICE,
            "gift",
            gift(token="moon-rabbit:2"),
            HOLD_END,
        ),
        gift_scene().vector(
            "not_owner", "Carol does not own the token", CAROL, "gift", gift(), HOLD_END
        ),
        gift_scene().vector(
            "self_transfer", "Alice gifts to herself", ALICE, "gift", gift(to=ALICE), HOLD_END
        ),
        gift_scene().vector(
            "recipient_not_authenticated",
            "Dave was never registered",
            ALICE,
            "gift",
            gift(to=DAVE),
            HOLD_END,
        ),
        gift_scene().vector(
            "bad_nonce",
            "a nonce ahead of the account changes nothing at all",
            ALICE,
            "gift",
            gift(),
            HOLD_END,
            nonce=3,
        ),
    ]
    scene = (
        Scenario()
        .register(ALICE)
        .register(BOB)
        .collection(transferable=False)
        .mint(ALICE, time_ms=T0 + 5000)
    )
    vectors.append(
        scene.vector(
            "collection_not_transferable",
            "the collection is not transferable",
            ALICE,
            "gift",
            gift(),
            HOLD_END,
        )
    )
    scene = gift_scene().step(
        AUTHORITY, "revoke_account", {"account": ALICE.public_key, "reason": "identity withdrawn"}
    )
    vectors.append(
        scene.vector(
            "sender_not_authenticated",
            "Alice's account was revoked",
            ALICE,
            "gift",
            gift(),
            HOLD_END,
        )
    )
    scene = gift_scene().propose("set_params", {"min_age_years": 25})
    vectors.append(
        scene.vector(
            "sender_under_age", "min age raised to 25; Alice is 24", ALICE, "gift", gift(), HOLD_END
        )
    )
    for name, birth, description in (
        (
            "recipient_under_age",
            "2010-11-29",
            "Bob turns 14 the day after the gift's date (2024-11-28 in UTC+8)",
        ),
        ("recipient 14th birthday", "2010-11-28", "Bob turns 14 on the gift's date"),
    ):
        scene = (
            Scenario()
            .register(ALICE)
            .register(BOB, birth)
            .collection()
            .mint(ALICE, time_ms=T0 + 5000)
        )
        vectors.append(scene.vector(name, description, ALICE, "gift", gift(), HOLD_END))
    vectors.append(
        gift_scene()
        .sanction(ALICE, "transfer_freeze", HOLD_END + 1)
        .vector("sender_frozen", "freeze ends 1 ms after the gift", ALICE, "gift", gift(), HOLD_END)
    )
    vectors.append(
        gift_scene()
        .sanction(ALICE, "transfer_freeze", HOLD_END)
        .vector(
            "freeze expired",
            "freeze until exactly the block time is no longer active",
            ALICE,
            "gift",
            gift(),
            HOLD_END,
        )
    )
    vectors.append(
        gift_scene()
        .sanction(BOB, "transfer_freeze", 0)
        .vector("recipient_frozen", "Bob is frozen until lifted", ALICE, "gift", gift(), HOLD_END)
    )
    scene = gift_scene(daily_gift_limit=1).mint(ALICE, serial=2, time_ms=T0 + 6000)
    scene.step(ALICE, "gift", gift(), HOLD_END)
    vectors.append(
        scene.vector(
            "daily_gift_limit",
            "second gift on the same UTC+8 day with a limit of 1",
            ALICE,
            "gift",
            gift(token="moon-rabbit:2"),
            HOLD_END + 1000,
        )
    )
    scene = gift_scene().step(ALICE, "gift", gift(), HOLD_END)
    vectors.append(
        scene.vector(
            "later hold",
            "Bob, who received by gift, holds 730 days; one ms short",
            BOB,
            "gift",
            gift(to=CAROL),
            HOLD_END + 730 * DAY_MS - 1,
        )
    )
    return vectors


def mint_body(*items: tuple[int, SigningKey], collection: str = "moon-rabbit") -> dict[str, Any]:
    return {
        "collection": collection,
        "items": [
            {"serial": serial, "owner": owner.public_key, "content_hash": HASH}
            for serial, owner in items
        ],
    }


def mint_scene() -> Scenario:
    return Scenario().register(ALICE).register(BOB).collection(max_supply=3, per_account_limit=2)


def mint_vectors() -> list[dict[str, Any]]:
    vectors = [
        mint_scene().vector(
            "ok", "two items to two owners", AUTHORITY, "mint", mint_body((1, ALICE), (3, BOB))
        ),
        mint_scene().vector(
            "unauthorized", "Alice is no issuer", ALICE, "mint", mint_body((1, ALICE))
        ),
        mint_scene().vector(
            "collection_not_found",
            "no such collection",
            AUTHORITY,
            "mint",
            mint_body((1, ALICE), collection="sun-crow"),
        ),
        mint_scene().vector(
            "serial_out_of_range",
            "item 1 is above max_supply 3",
            AUTHORITY,
            "mint",
            mint_body((1, ALICE), (4, BOB)),
        ),
        mint_scene().vector(
            "token_exists",
            "item 1 repeats serial 2 of item 0: nothing is minted",
            AUTHORITY,
            "mint",
            mint_body((2, ALICE), (2, BOB)),
        ),
        mint_scene().vector(
            "recipient_not_authenticated",
            "Dave was never registered",
            AUTHORITY,
            "mint",
            mint_body((1, DAVE)),
        ),
        mint_scene().vector(
            "per_account_limit",
            "a third token for Alice with a limit of 2",
            AUTHORITY,
            "mint",
            mint_body((1, ALICE), (2, ALICE), (3, ALICE)),
        ),
    ]
    scene = mint_scene().step(
        AUTHORITY,
        "propose",
        {"action": "grant_role", "args": {"account": GOV2.public_key, "role": "issuer"}},
    )
    scene.step(
        GOV2,
        "create_collection",
        {"collection": "sun-crow", "name": "Sun Crow", "max_supply": 9, "transferable": True},
    )
    vectors.append(
        scene.vector(
            "not_collection_issuer",
            "sun-crow belongs to another issuer",
            AUTHORITY,
            "mint",
            mint_body((1, ALICE), collection="sun-crow"),
        )
    )
    vectors.append(
        mint_scene()
        .sanction(ALICE, "purchase_ban", 0)
        .vector(
            "recipient_purchase_banned",
            "Alice may not receive mints",
            AUTHORITY,
            "mint",
            mint_body((1, ALICE)),
        )
    )
    leap_start = 1_645_977_600_000  # 2022-02-28 00:00 UTC+8, a common year
    for name, time_ms, description in (
        ("recipient_under_age", leap_start + 3000, "born 2008-02-29: still 13 on 28 Feb 2022"),
        (
            "29 February birthday",
            leap_start + DAY_MS,
            "born 2008-02-29: 14 on 1 March 2022 (UTC+8 midnight)",
        ),
    ):
        scene = Scenario(genesis_time_ms=leap_start).register(ALICE, "2008-02-29").collection()
        vectors.append(
            scene.vector(name, description, AUTHORITY, "mint", mint_body((1, ALICE)), time_ms)
        )
    return vectors


def account_vectors() -> list[dict[str, Any]]:
    register = {"account": ALICE.public_key, "birth_date": "2000-01-01", "kyc_ref": HASH}
    revoke = {"account": ALICE.public_key, "reason": "identity withdrawn"}
    revoked = Scenario().register(ALICE).step(AUTHORITY, "revoke_account", revoke)
    return [
        Scenario().vector(
            "register ok",
            "the KYC authority registers Alice",
            AUTHORITY,
            "register_account",
            register,
        ),
        Scenario()
        .register(BOB)
        .vector(
            "register unauthorized", "Bob is no KYC authority", BOB, "register_account", register
        ),
        Scenario()
        .register(ALICE)
        .vector(
            "account_exists",
            "Alice is already authenticated",
            AUTHORITY,
            "register_account",
            register,
        ),
        revoked.vector(
            "re-register",
            "a revoked account is authenticated again, keeping its nonce",
            AUTHORITY,
            "register_account",
            register,
        ),
        Scenario()
        .register(ALICE)
        .vector(
            "revoke ok", "Alice is no longer authenticated", AUTHORITY, "revoke_account", revoke
        ),
        Scenario().vector(
            "account_not_found", "revoking an unknown account", AUTHORITY, "revoke_account", revoke
        ),
    ]


def collection_vectors() -> list[dict[str, Any]]:
    body = {
        "collection": "moon-rabbit",
        "name": "Moon Rabbit",
        "max_supply": 100,
        "transferable": True,
        "first_hold_days": 365,
        "metadata_uri": "ipfs://moon",
    }
    return [
        Scenario().vector(
            "ok", "a collection with a longer first hold", AUTHORITY, "create_collection", body
        ),
        Scenario()
        .collection()
        .vector("collection_exists", "the id is taken", AUTHORITY, "create_collection", body),
        Scenario().vector(
            "invalid_policy",
            "179 first-hold days is below the chain's 180",
            AUTHORITY,
            "create_collection",
            {**body, "first_hold_days": 179},
        ),
    ]


def sanction_vectors() -> list[dict[str, Any]]:
    body = {
        "account": ALICE.public_key,
        "kind": "transfer_freeze",
        "reason": "court order 12",
        "until": T0 + DAY_MS,
    }
    lift = {"account": ALICE.public_key, "kind": "transfer_freeze"}
    expiring = Scenario().register(ALICE).sanction(ALICE, "transfer_freeze", T0 + 3000)
    return [
        Scenario()
        .register(ALICE)
        .vector("sanction ok", "a freeze for a day", AUTHORITY, "sanction", body),
        Scenario().vector(
            "sanction account_not_found", "unknown account", AUTHORITY, "sanction", body
        ),
        Scenario()
        .register(ALICE)
        .sanction(ALICE, "transfer_freeze", 0)
        .vector("lift ok", "the freeze is lifted", AUTHORITY, "lift_sanction", lift),
        expiring.vector(
            "no_such_sanction",
            "a freeze until exactly the block time has expired",
            AUTHORITY,
            "lift_sanction",
            lift,
            T0 + 3000,
        ),
    ]


def governance_vectors() -> list[dict[str, Any]]:
    grant = {"action": "grant_role", "args": {"account": GOV2.public_key, "role": "governor"}}
    set_limit = {"action": "set_params", "args": {"daily_gift_limit": 5}}
    # Two governors (threshold 2) and a pending proposal the authority made and approved.
    pending = Scenario().propose("grant_role", {"account": GOV2.public_key, "role": "governor"})
    pending.step(AUTHORITY, "propose", set_limit)
    proposal = {"proposal": pending.last_tx_id}
    vectors = [
        Scenario().vector(
            "propose executes at once",
            "a single governor's proposal reaches 1 of 1",
            AUTHORITY,
            "propose",
            grant,
        ),
        Scenario()
        .propose("grant_role", {"account": GOV2.public_key, "role": "governor"})
        .vector(
            "propose pending",
            "with two governors the threshold is 2",
            AUTHORITY,
            "propose",
            set_limit,
        ),
        Scenario().vector(
            "invalid_params",
            "an unknown parameter",
            AUTHORITY,
            "propose",
            {"action": "set_params", "args": {"fee": 1}},
        ),
        Scenario().vector(
            "invalid_action",
            "no such action",
            AUTHORITY,
            "propose",
            {"action": "print_money", "args": {}},
        ),
        Scenario().vector(
            "revoke last governor",
            "the only governor cannot lose the role",
            AUTHORITY,
            "propose",
            {
                "action": "revoke_role",
                "args": {"account": AUTHORITY.public_key, "role": "governor"},
            },
        ),
        Scenario()
        .register(ALICE)
        .vector("propose unauthorized", "Alice is no governor", ALICE, "propose", grant),
        Scenario().vector(
            "proposal_not_found", "no such proposal", AUTHORITY, "approve", {"proposal": "ab" * 32}
        ),
        pending.vector(
            "already_approved", "the proposer approves again", AUTHORITY, "approve", proposal
        ),
        pending.vector(
            "approve executes",
            "the second governor's approval executes set_params",
            GOV2,
            "approve",
            proposal,
        ),
    ]
    # A third governor joins after the execution, then approves the executed proposal.
    pending.step(
        AUTHORITY,
        "propose",
        {"action": "grant_role", "args": {"account": GOV3.public_key, "role": "governor"}},
    )
    pending.step(GOV2, "approve", {"proposal": pending.last_tx_id})
    vectors.append(
        pending.vector("proposal_executed", "approving after execution", GOV3, "approve", proposal)
    )
    return vectors


def build_vectors() -> dict[str, dict[str, Any]]:
    """File name -> file content, for every vector file."""
    groups = {
        "gift": gift_vectors(),
        "mint": mint_vectors(),
        "accounts": account_vectors(),
        "collections": collection_vectors(),
        "sanctions": sanction_vectors(),
        "governance": governance_vectors(),
    }
    return {
        "%s.json" % name: {"format": FORMAT, "vectors": vectors} for name, vectors in groups.items()
    }


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    arguments = parser.parse_args()
    files = build_vectors()
    if arguments.check:
        stale = [
            name
            for name, content in files.items()
            if not (VECTOR_DIR / name).exists()
            or (VECTOR_DIR / name).read_text() != render(content)
        ]
        for name in stale:
            print("stale: tests/vectors/%s" % name)
        return 1 if stale else 0
    VECTOR_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (VECTOR_DIR / name).write_text(render(content))
        print("wrote tests/vectors/%s (%d vectors)" % (name, len(content["vectors"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
