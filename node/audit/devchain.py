"""Build a real development chain in-process: contracts execute every block and the
devnet validator keys sign every commit certificate directly (no running node).

Used by the auditor's tests (an honest chain to tamper with) and by
scripts/bench_replay.py. Everything is deterministic: keys come from fixed seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consensus.types import ValidatorSet, commit_payload, header_hash
from contracts.block import seal_block
from contracts.genesis import (
    devnet_authority_key,
    devnet_genesis,
    devnet_validator_key,
    genesis_header,
    genesis_writes,
    load_genesis,
)
from contracts.queries import validator_set_at
from contracts.state import DictView
from contracts.state_tree import EMPTY_ROOT, MemoryNodeStore, apply_changes
from contracts.transactions import parse_tx, sign_tx
from node.audit.sources import SourceBlock
from primitives.crypto import SigningKey, sha256

DEVNET_GENESIS_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_MS = 1_000
DAY_MS = 86_400_000


def user_key(index: int) -> SigningKey:
    """A deterministic key for test and benchmark users."""
    return SigningKey(sha256(b"yuxi audit user " + str(index).encode()))


@dataclass
class DevChain:
    """An honest chain under construction; `blocks` is what an honest node serves."""

    validator_count: int = 4
    genesis_time_ms: int = DEVNET_GENESIS_TIME_MS
    genesis_obj: dict[str, Any] = field(init=False)
    blocks: list[SourceBlock] = field(init=False, default_factory=list)
    full_results: list[list[dict[str, Any]]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.genesis_obj = devnet_genesis(self.validator_count, self.genesis_time_ms)
        self.genesis = load_genesis(self.genesis_obj)
        self.chain_id = self.genesis.chain_id
        self.view = DictView()
        self.store = MemoryNodeStore()
        writes = genesis_writes(self.genesis)
        root, nodes, *_ = apply_changes(self.store, EMPTY_ROOT, writes)
        self.store.put_nodes(nodes)
        self.view.apply(writes)
        self.head = genesis_header(self.genesis)
        if self.head["state_root"] != root:
            raise RuntimeError("genesis root differs between genesis_header and apply_changes")
        self.authority = devnet_authority_key()
        self.validator_keys = {
            key.public_key: key
            for key in (devnet_validator_key(i) for i in range(self.validator_count))
        }
        self.extra_signing_keys: dict[str, SigningKey] = {}
        self.nonces: dict[str, int] = {}

    @property
    def height(self) -> int:
        return int(self.head["height"])

    @property
    def time_ms(self) -> int:
        return int(self.head["time"])

    def tx(
        self, key: SigningKey, tx_type: str, body: dict[str, Any], nonce: int | None = None
    ) -> dict[str, Any]:
        """A signed transaction from `key` with its next nonce (counted locally)."""
        if nonce is None:
            nonce = self.nonces.get(key.public_key, 0)
            self.nonces[key.public_key] = nonce + 1
        unsigned = {
            "chain_id": self.chain_id,
            "type": tx_type,
            "sender": key.public_key,
            "nonce": nonce,
            "body": body,
        }
        return sign_tx(unsigned, key)

    def add_block(
        self,
        txs: list[dict[str, Any]],
        *,
        time_ms: int | None = None,
        view: int = 0,
        signers: list[str] | None = None,
    ) -> SourceBlock:
        """Execute and seal a block on the head, certify it with a quorum of the validators
        in force at its height, and append it."""
        height = self.height + 1
        time_ms = self.time_ms + BLOCK_INTERVAL_MS if time_ms is None else time_ms
        validators = ValidatorSet(
            tuple(item["pubkey"] for item in validator_set_at(self.view, height))
        )
        proposer = validators.leader(height, view)
        parsed = [parse_tx(tx) for tx in txs]
        header, outcome, tree = seal_block(
            self.view, self.store, self.head, parsed, self.chain_id, height, time_ms, proposer
        )
        self.store.put_nodes(tree.new_nodes)
        self.view.apply(outcome.writes)
        self.head = header
        block = SourceBlock(
            header=header,
            txs=list(txs),
            results=[result.code for result in outcome.results],
            commit=self.sign_commit(header, validators, view, signers),
            claimed_hash=None,
        )
        self.blocks.append(block)
        self.full_results.append([result.to_dict() for result in outcome.results])
        return block

    def signing_key(self, pubkey: str) -> SigningKey:
        return self.validator_keys.get(pubkey) or self.extra_signing_keys[pubkey]

    def sign_commit(
        self,
        header: dict[str, Any],
        validators: ValidatorSet,
        view: int,
        signers: list[str] | None = None,
    ) -> dict[str, Any]:
        """A commit certificate over `header`: a quorum of `validators`, or the named `signers`."""
        block_hash = header_hash(header)
        chosen = list(validators.validators[: validators.quorum]) if signers is None else signers
        payload = commit_payload(self.chain_id, header["height"], view, block_hash)
        return {
            "view": view,
            "signatures": [
                {"validator": pubkey, "signature": self.signing_key(pubkey).sign(payload)}
                for pubkey in sorted(chosen)
            ],
        }


def build_demo_chain(users: int = 6) -> DevChain:
    """A short chain that exercises every transaction type, some rule failures, a sanction
    issued and lifted, a parameter change and a validator added by governance."""
    chain = DevChain()
    authority = chain.authority
    people = [user_key(index) for index in range(users)]
    chain.add_block(
        [
            chain.tx(
                authority,
                "register_account",
                {
                    "account": person.public_key,
                    "birth_date": "1990-05-%02d" % (index + 1),
                    "kyc_ref": "%064x" % index,
                },
            )
            for index, person in enumerate(people)
        ]
    )
    chain.add_block(
        [
            chain.tx(
                authority,
                "create_collection",
                {
                    "collection": "moon-rabbit",
                    "name": "Moon Rabbit",
                    "max_supply": 1000,
                    "transferable": True,
                },
            ),
            chain.tx(
                people[0],
                "create_collection",
                {
                    "collection": "not-mine",
                    "name": "Refused",
                    "max_supply": 5,
                    "transferable": True,
                },
            ),
        ]
    )
    chain.add_block(
        [
            chain.tx(
                authority,
                "mint",
                {
                    "collection": "moon-rabbit",
                    "items": [
                        {
                            "serial": serial,
                            "owner": people[serial % users].public_key,
                            "content_hash": "%064x" % (1000 + serial),
                        }
                        for serial in range(1, 13)
                    ],
                },
            )
        ]
    )
    # Gifting too early: holding_period, with eligible_at.
    chain.add_block(
        [chain.tx(people[1], "gift", {"token": "moon-rabbit:1", "to": people[2].public_key})]
    )
    later = chain.time_ms + 181 * DAY_MS
    chain.add_block(
        [
            chain.tx(people[1], "gift", {"token": "moon-rabbit:1", "to": people[2].public_key}),
            chain.tx(people[2], "gift", {"token": "moon-rabbit:2", "to": people[3].public_key}),
            chain.tx(
                people[3], "gift", {"token": "moon-rabbit:1", "to": people[4].public_key}
            ),  # not_owner
            chain.tx(
                authority,
                "sanction",
                {
                    "account": people[4].public_key,
                    "kind": "transfer_freeze",
                    "reason": "court order 17",
                    "until": 0,
                },
            ),
        ],
        time_ms=later,
    )
    chain.add_block(
        [
            chain.tx(
                people[4], "gift", {"token": "moon-rabbit:4", "to": people[5].public_key}
            ),  # sender_frozen
            chain.tx(
                authority,
                "lift_sanction",
                {"account": people[4].public_key, "kind": "transfer_freeze"},
            ),
            chain.tx(people[4], "gift", {"token": "moon-rabbit:4", "to": people[5].public_key}),
        ]
    )
    new_validator = user_key(10_000)
    chain.extra_signing_keys[new_validator.public_key] = new_validator
    chain.add_block(
        [
            chain.tx(
                authority, "propose", {"action": "set_params", "args": {"daily_gift_limit": 5}}
            ),
            chain.tx(
                authority,
                "propose",
                {
                    "action": "add_validator",
                    "args": {
                        "pubkey": new_validator.public_key,
                        "name": "validator-new",
                        "endpoint": "127.0.0.1:9999",
                    },
                },
            ),
        ]
    )
    # The new validator is in force from two blocks later: certificates must follow.
    for _ in range(3):
        chain.add_block([])
    # The newcomer signs this block's certificate, with three of the genesis validators.
    genesis_signers = sorted(chain.validator_keys)[:3]
    chain.add_block(
        [chain.tx(people[5], "gift", {"token": "moon-rabbit:5", "to": people[0].public_key})],
        signers=genesis_signers + [new_validator.public_key],
    )
    return chain
