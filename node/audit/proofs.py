"""State proofs: served over RPC by a node, checked offline by an auditor.

A proof document (docs/AUDIT.md) anchors one state value (or its absence) in a
committed block: the value, the state-tree proof from the header's state_root,
the header, its hash and its commit certificate. Checking it needs only the
genesis file: certificate -> header hash -> state_root -> value.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from consensus.types import CertificateError, CommitCertificate, ValidatorSet, header_hash
from contracts.state import account_key, token_key
from contracts.state_tree import prove, verify_proof
from contracts.transactions import split_token_id
from node.rpc_support import RpcError
from primitives.crypto import is_account_id
from primitives.encoding import EncodingError

PROOF_FORMAT = "yuxi-state-proof-v1"
CONSISTENT_READ_TRIES = 5


class ProofError(ValueError):
    """A proof document that does not prove what it claims; the message says which step fails."""


class SubjectError(ValueError):
    """A proof request for something that is not an account id or a token id."""


def subject_key(subject: Any) -> str:
    """The state key a proof subject names; SubjectError if the subject is malformed."""
    if not isinstance(subject, dict):
        raise SubjectError("subject must be a map")
    kind = subject.get("kind")
    if kind == "account":
        account = subject.get("id")
        if set(subject) != {"kind", "id"} or not is_account_id(account):
            raise SubjectError('an account subject is {"kind": "account", "id": <64 hex>}')
        return account_key(str(account))
    if kind == "token":
        collection, serial = subject.get("collection"), subject.get("serial")
        if (
            set(subject) != {"kind", "collection", "serial"}
            or not isinstance(serial, int)
            or isinstance(serial, bool)
        ):
            raise SubjectError('a token subject is {"kind": "token", "collection", "serial": int}')
        token_id = "%s:%d" % (collection, serial)
        if split_token_id(token_id) is None:
            raise SubjectError("%r is not a token id" % token_id)
        return token_key(token_id)
    raise SubjectError("subject kind must be 'account' or 'token'")


def build_proof_document(storage: Any, subject: dict[str, Any]) -> dict[str, Any] | None:
    """A proof of `subject` at the storage's latest committed block (None before block 1).

    `storage` is node.storage.Storage (height, block, certificate, state_get, get_node).
    Reads repeat until the height is the same before and after, so the value, the
    proof and the header always come from one committed state."""
    key = subject_key(subject)
    for _ in range(CONSISTENT_READ_TRIES):
        height = storage.height()
        if height == 0:
            return None
        block = storage.block(height)
        certificate = storage.certificate(height)
        if block is None or certificate is None:
            return None
        value = storage.state_get(key)
        proof = prove(storage, block.header["state_root"], key)
        if storage.height() == height:
            commit = certificate.to_dict()
            return {
                "format": PROOF_FORMAT,
                "subject": subject,
                "key": key,
                "value": value,
                "proof": proof,
                "height": height,
                "header": block.header,
                "hash": block.hash,
                "commit": {"view": commit["view"], "signatures": commit["signatures"]},
            }
    raise RuntimeError("the chain moved on during %d reads in a row" % CONSISTENT_READ_TRIES)


def verify_proof_document(
    document: Any, genesis: Any, validators: list[str] | None = None
) -> dict[str, Any]:
    """Check a proof document offline against a loaded Genesis; ProofError names the failing step.

    The certificate is checked against the genesis validators, or against
    `validators` when given (the set in force at the proof's height, e.g. from a
    replay: the genesis alone cannot vouch for a set that changed later)."""
    if not isinstance(document, dict):
        raise ProofError("a proof document is a JSON object")
    missing = [
        name
        for name in ("subject", "key", "value", "proof", "header", "hash", "commit")
        if name not in document
    ]
    if missing:
        raise ProofError("proof document lacks %s" % ", ".join(missing))
    try:
        key = subject_key(document["subject"])
    except SubjectError as exc:
        raise ProofError("subject: %s" % exc) from None
    if document["key"] != key:
        raise ProofError(
            "the proof is for key %r but its subject is key %r" % (document["key"], key)
        )
    header = document["header"]
    if not isinstance(header, dict):
        raise ProofError("header is not a map")
    try:
        computed_hash = header_hash(header)
    except EncodingError as exc:
        raise ProofError("header is not canonical: %s" % exc) from None
    if document["hash"] != computed_hash:
        raise ProofError(
            "header hashes to %s, the document says %s" % (computed_hash, document["hash"])
        )
    if header.get("chain_id") != genesis.chain_id:
        raise ProofError(
            "header is for chain %r, the genesis is %r" % (header.get("chain_id"), genesis.chain_id)
        )
    height = header.get("height")
    if not isinstance(height, int) or isinstance(height, bool) or height < 1:
        raise ProofError("header height %r is not a block height" % (height,))
    commit = document["commit"]
    try:
        certificate = CommitCertificate.from_dict(
            {**commit, "height": height, "block": computed_hash}
        )
    except (CertificateError, TypeError) as exc:
        raise ProofError("commit: %s" % exc) from None
    keys = validators if validators is not None else [item["pubkey"] for item in genesis.validators]
    try:
        certificate.verify(genesis.chain_id, ValidatorSet(tuple(keys)), computed_hash)
    except CertificateError as exc:
        hint = (
            ""
            if validators is not None
            else (
                " (checked against the genesis validators; if the set changed before height %d, "
                "pass the set in force there with --validators)" % height
            )
        )
        raise ProofError("certificate: %s%s" % (exc, hint)) from None
    state_root = header.get("state_root")
    if not isinstance(state_root, str) or not verify_proof(
        state_root, key, document["value"], document["proof"]
    ):
        raise ProofError(
            "the state proof does not show %s %s under state_root %s"
            % (key, "absent" if document["value"] is None else "with this value", state_root)
        )
    return {
        "ok": True,
        "key": key,
        "present": document["value"] is not None,
        "value": document["value"],
        "height": height,
        "hash": computed_hash,
        "state_root": state_root,
        "signers": [validator for validator, _ in certificate.signatures],
    }


def register_audit_routes(app: Any, service: Any) -> None:
    """Add GET /v1/proofs/accounts/{id}, /v1/proofs/tokens/{collection}/{serial} and
    /v1/genesis to a node's aiohttp app; `service` is node.service.NodeService."""

    def answer(subject: dict[str, Any]) -> web.Response:
        try:
            document = build_proof_document(service.storage, subject)
        except SubjectError as exc:
            raise RpcError(400, "bad_request", str(exc)) from None
        if document is None:
            raise RpcError(404, "not_found", "no block committed yet: nothing to anchor a proof in")
        return web.json_response(document)

    async def account_proof(request: web.Request) -> web.Response:
        return answer({"kind": "account", "id": request.match_info["id"]})

    async def token_proof(request: web.Request) -> web.Response:
        serial = request.match_info["serial"]
        if not serial.isdigit() or len(serial) > 8:
            raise RpcError(400, "bad_request", "serial must be a positive integer")
        return answer(
            {"kind": "token", "collection": request.match_info["collection"], "serial": int(serial)}
        )

    async def genesis_file(request: web.Request) -> web.Response:
        try:
            value = json.loads(service.config.genesis_file.read_text())
        except (OSError, ValueError):
            raise RpcError(503, "unavailable", "the node cannot read its genesis file") from None
        return web.json_response(value)

    app.router.add_get("/v1/proofs/accounts/{id}", account_proof)
    app.router.add_get("/v1/proofs/tokens/{collection}/{serial}", token_proof)
    app.router.add_get("/v1/genesis", genesis_file)
