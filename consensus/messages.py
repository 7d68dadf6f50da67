"""The consensus wire format: canonical MessagePack maps, signed with the sender's Ed25519 key.

Every message is a map with a `kind`. Votes and proposals carry the sender's key and a
signature over a domain-separated payload; the commit vote signs exactly the PROTOCOL §5
payload, so a quorum of commit votes is a commit certificate as it stands. Catch-up
messages are unsigned: what they carry (blocks with certificates) proves itself.

Decoding is strict (exact key sets, types, lengths, counts) and raises only MessageError.
Signatures are not checked here (that needs the validator set); `signature_valid` does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

from consensus.types import HEADER_FIELDS, Block, CertificateError, CommitCertificate, commit_payload
from primitives.crypto import SigningKey, is_hex, verify
from primitives.encoding import EncodingError, canonical_bytes, decode_canonical

# A block may hold max_block_txs (5000) transactions of up to 16 KiB each: 80 MiB.
MAX_MESSAGE_BYTES = 96 * 1024 * 1024
MAX_VALIDATORS = 1024
MAX_BLOCK_TXS = 10_000
MAX_HEADER_FIELDS = 32
MAX_SYNC_ENTRIES = 256
MAX_CHAIN_ID_CHARS = 64

PROPOSAL = "proposal"
PREPARE = "prepare"
COMMIT = "commit"
VIEW_CHANGE = "view_change"
SYNC_REQUEST = "sync_request"
SYNC_RESPONSE = "sync_response"

PROPOSAL_DOMAIN = b"yuxi-proposal-v1\n"
PREPARE_DOMAIN = b"yuxi-prepare-v1\n"
VIEW_CHANGE_DOMAIN = b"yuxi-view-change-v1\n"


class MessageError(ValueError):
    """Bytes that are not a well-formed consensus message."""


@dataclass(frozen=True)
class PreparedCertificate:
    """2f+1 prepare signatures for one block in one view: the block may have been committed."""

    view: int
    block: str
    signatures: tuple[tuple[str, str], ...]  # (validator, signature), sorted by validator

    def to_wire(self) -> dict[str, Any]:
        return {
            "view": self.view,
            "block": self.block,
            "signatures": [{"validator": v, "signature": s} for v, s in self.signatures],
        }


@dataclass(frozen=True)
class Vote:
    """A prepare or commit vote for a block hash at (height, view)."""

    kind: str
    sender: str
    height: int
    view: int
    block: str
    signature: str


@dataclass(frozen=True)
class ViewChange:
    """The sender gives up on views below `view`, reporting its highest prepared certificate.

    `block` is an unsigned attachment: the body of the prepared block, so that the new
    leader can re-propose it. It is checked against the certificate's hash."""

    sender: str
    height: int
    view: int
    prepared: PreparedCertificate | None
    signature: str
    block: Block | None = None


@dataclass(frozen=True)
class Proposal:
    """The leader's block for (height, view); for view > 0 `justification` holds the
    view changes (at least a quorum) that entitle it to propose this block."""

    sender: str
    height: int
    view: int
    block: Block
    justification: tuple[ViewChange, ...]
    signature: str


@dataclass(frozen=True)
class SyncRequest:
    """Ask a peer for committed blocks from `from_height` on."""

    from_height: int


@dataclass(frozen=True)
class SyncResponse:
    """Committed blocks with their certificates, in height order."""

    entries: tuple[tuple[Block, CommitCertificate], ...]


Message = Union[Proposal, Vote, ViewChange, SyncRequest, SyncResponse]
SignedMessage = Union[Proposal, Vote, ViewChange]


# ---------------------------------------------------------------- signing payloads


def _payload(domain: bytes, chain_id: str, height: int, view: int, block_hash: str) -> bytes:
    return domain + canonical_bytes(
        {"chain_id": chain_id, "height": height, "view": view, "block": block_hash}
    )


def vote_payload(chain_id: str, kind: str, height: int, view: int, block_hash: str) -> bytes:
    """What a proposal, prepare or commit signature covers."""
    if kind == PROPOSAL:
        return _payload(PROPOSAL_DOMAIN, chain_id, height, view, block_hash)
    if kind == PREPARE:
        return _payload(PREPARE_DOMAIN, chain_id, height, view, block_hash)
    if kind == COMMIT:
        return commit_payload(chain_id, height, view, block_hash)
    raise MessageError("no vote kind %r" % kind)


def view_change_payload(
    chain_id: str, height: int, view: int, prepared: PreparedCertificate | None
) -> bytes:
    return VIEW_CHANGE_DOMAIN + canonical_bytes(
        {
            "chain_id": chain_id,
            "height": height,
            "view": view,
            "prepared": [] if prepared is None else [prepared.to_wire()],
        }
    )


def signing_payload(chain_id: str, message: SignedMessage) -> bytes:
    if isinstance(message, Proposal):
        return vote_payload(chain_id, PROPOSAL, message.height, message.view, message.block.hash)
    if isinstance(message, Vote):
        return vote_payload(chain_id, message.kind, message.height, message.view, message.block)
    return view_change_payload(chain_id, message.height, message.view, message.prepared)


@lru_cache(maxsize=1 << 16)
def cached_verify(public_key: str, payload: bytes, signature: str) -> bool:
    """Ed25519 verification is pure, so a message seen twice (duplicates, relays, the
    view changes inside a new-view) is checked once."""
    return verify(public_key, payload, signature)


def signature_valid(chain_id: str, message: SignedMessage) -> bool:
    return cached_verify(message.sender, signing_payload(chain_id, message), message.signature)


# ---------------------------------------------------------------- building messages


def make_vote(chain_id: str, signer: SigningKey, kind: str, height: int, view: int, block_hash: str) -> Vote:
    signature = signer.sign(vote_payload(chain_id, kind, height, view, block_hash))
    return Vote(kind, signer.public_key, height, view, block_hash, signature)


def make_view_change(
    chain_id: str,
    signer: SigningKey,
    height: int,
    view: int,
    prepared: PreparedCertificate | None,
    block: Block | None,
) -> ViewChange:
    signature = signer.sign(view_change_payload(chain_id, height, view, prepared))
    return ViewChange(signer.public_key, height, view, prepared, signature, block)


def make_proposal(
    chain_id: str,
    signer: SigningKey,
    height: int,
    view: int,
    block: Block,
    justification: tuple[ViewChange, ...],
) -> Proposal:
    signature = signer.sign(vote_payload(chain_id, PROPOSAL, height, view, block.hash))
    return Proposal(signer.public_key, height, view, block, justification, signature)


# ---------------------------------------------------------------- encoding


def _view_change_wire(message: ViewChange, with_block: bool) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "kind": VIEW_CHANGE,
        "sender": message.sender,
        "height": message.height,
        "view": message.view,
        "signature": message.signature,
    }
    if message.prepared is not None:
        wire["prepared"] = message.prepared.to_wire()
    if with_block and message.block is not None:
        wire["attachment"] = message.block.to_dict()
    return wire


def to_wire(message: Message) -> dict[str, Any]:
    if isinstance(message, Vote):
        return {
            "kind": message.kind,
            "sender": message.sender,
            "height": message.height,
            "view": message.view,
            "block": message.block,
            "signature": message.signature,
        }
    if isinstance(message, ViewChange):
        return _view_change_wire(message, with_block=True)
    if isinstance(message, Proposal):
        return {
            "kind": PROPOSAL,
            "sender": message.sender,
            "height": message.height,
            "view": message.view,
            "block": message.block.to_dict(),
            # The proposal carries the block once; the view changes travel without bodies.
            "justification": [_view_change_wire(item, with_block=False) for item in message.justification],
            "signature": message.signature,
        }
    if isinstance(message, SyncRequest):
        return {"kind": SYNC_REQUEST, "from_height": message.from_height}
    return {
        "kind": SYNC_RESPONSE,
        "entries": [
            {"block": block.to_dict(), "certificate": certificate.to_dict()}
            for block, certificate in message.entries
        ],
    }


def encode(message: Message) -> bytes:
    return canonical_bytes(to_wire(message))


# ---------------------------------------------------------------- strict decoding


def _map(value: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MessageError("%s is not a map" % what)
    keys = set(value)
    missing = required - keys
    if missing:
        raise MessageError("%s lacks %s" % (what, ", ".join(sorted(missing))))
    unknown = keys - required - optional
    if unknown:
        raise MessageError("%s has unknown fields %s" % (what, ", ".join(sorted(unknown))))
    return value


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MessageError("%s is not an integer" % what)
    return value


def _hash(value: Any, what: str) -> str:
    if not is_hex(value, 32):
        raise MessageError("%s is not 32 bytes of lowercase hex" % what)
    return str(value)


def _signature(value: Any, what: str) -> str:
    if not is_hex(value, 64):
        raise MessageError("%s is not 64 bytes of lowercase hex" % what)
    return str(value)


def _list(value: Any, what: str, max_items: int) -> list[Any]:
    if not isinstance(value, list):
        raise MessageError("%s is not a list" % what)
    if len(value) > max_items:
        raise MessageError("%s has %d items, at most %d allowed" % (what, len(value), max_items))
    return value


def decode_block(value: Any) -> Block:
    wire = _map(value, "block", {"header", "txs"})
    header = wire["header"]
    if not isinstance(header, dict) or len(header) > MAX_HEADER_FIELDS:
        raise MessageError("block header is not a map of at most %d fields" % MAX_HEADER_FIELDS)
    missing = set(HEADER_FIELDS) - set(header)
    if missing:
        raise MessageError("block header lacks %s" % ", ".join(sorted(missing)))
    chain_id = header["chain_id"]
    if not isinstance(chain_id, str) or not 0 < len(chain_id) <= MAX_CHAIN_ID_CHARS:
        raise MessageError("header chain_id is not a short string")
    _int(header["height"], "header height")
    _int(header["time"], "header time")
    for name in ("parent", "proposer", "tx_root", "results_root", "state_root"):
        _hash(header[name], "header " + name)
    txs = _list(wire["txs"], "block txs", MAX_BLOCK_TXS)
    return Block(header=dict(header), txs=tuple(txs))


def _signatures(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    items = _list(value, what, MAX_VALIDATORS)
    pairs = []
    for item in items:
        entry = _map(item, what + " entry", {"validator", "signature"})
        pairs.append((_hash(entry["validator"], "validator"), _signature(entry["signature"], "signature")))
    validators = [validator for validator, _ in pairs]
    if validators != sorted(set(validators)):
        raise MessageError("%s are not sorted by validator without repeats" % what)
    return tuple(pairs)


def _prepared(value: Any) -> PreparedCertificate:
    wire = _map(value, "prepared certificate", {"view", "block", "signatures"})
    return PreparedCertificate(
        view=_int(wire["view"], "prepared view"),
        block=_hash(wire["block"], "prepared block"),
        signatures=_signatures(wire["signatures"], "prepare signatures"),
    )


_SIGNED = {"kind", "sender", "height", "view", "signature"}


def _view_change(wire: dict[str, Any], allow_block: bool) -> ViewChange:
    optional = frozenset({"prepared", "attachment"} if allow_block else {"prepared"})
    _map(wire, "view change", _SIGNED, optional)
    if wire["kind"] != VIEW_CHANGE:
        raise MessageError("justification holds a %r, not a view change" % (wire["kind"],))
    prepared = _prepared(wire["prepared"]) if "prepared" in wire else None
    block = decode_block(wire["attachment"]) if "attachment" in wire else None
    if block is not None and (prepared is None or block.hash != prepared.block):
        raise MessageError("view change attaches a block it did not prepare")
    view = _int(wire["view"], "view")
    if prepared is not None and prepared.view >= view:
        raise MessageError("prepared certificate is not from a lower view")
    return ViewChange(
        sender=_hash(wire["sender"], "sender"),
        height=_int(wire["height"], "height"),
        view=view,
        prepared=prepared,
        signature=_signature(wire["signature"], "signature"),
        block=block,
    )


def _decode_wire(wire: Any) -> Message:
    if not isinstance(wire, dict) or not isinstance(wire.get("kind"), str):
        raise MessageError("not a map with a kind")
    kind = wire["kind"]
    if kind in (PREPARE, COMMIT):
        _map(wire, kind, _SIGNED | {"block"})
        return Vote(
            kind=kind,
            sender=_hash(wire["sender"], "sender"),
            height=_int(wire["height"], "height"),
            view=_int(wire["view"], "view"),
            block=_hash(wire["block"], "block"),
            signature=_signature(wire["signature"], "signature"),
        )
    if kind == PROPOSAL:
        _map(wire, kind, _SIGNED | {"block", "justification"})
        justification = tuple(
            _view_change(item, allow_block=False)
            for item in _list(wire["justification"], "justification", MAX_VALIDATORS)
        )
        return Proposal(
            sender=_hash(wire["sender"], "sender"),
            height=_int(wire["height"], "height"),
            view=_int(wire["view"], "view"),
            block=decode_block(wire["block"]),
            justification=justification,
            signature=_signature(wire["signature"], "signature"),
        )
    if kind == VIEW_CHANGE:
        return _view_change(wire, allow_block=True)
    if kind == SYNC_REQUEST:
        _map(wire, kind, {"kind", "from_height"})
        return SyncRequest(from_height=_int(wire["from_height"], "from_height"))
    if kind == SYNC_RESPONSE:
        _map(wire, kind, {"kind", "entries"})
        entries = []
        for item in _list(wire["entries"], "entries", MAX_SYNC_ENTRIES):
            entry = _map(item, "sync entry", {"block", "certificate"})
            certificate_wire = _map(entry["certificate"], "certificate", {"height", "view", "block", "signatures"})
            try:
                certificate = CommitCertificate(
                    height=_int(certificate_wire["height"], "certificate height"),
                    view=_int(certificate_wire["view"], "certificate view"),
                    block=_hash(certificate_wire["block"], "certificate block"),
                    signatures=_signatures(certificate_wire["signatures"], "certificate signatures"),
                )
            except CertificateError as exc:
                raise MessageError(str(exc)) from None
            entries.append((decode_block(entry["block"]), certificate))
        return SyncResponse(entries=tuple(entries))
    raise MessageError("unknown kind %r" % kind)


def decode(data: bytes) -> Message:
    """Decode one message strictly; raise MessageError (never anything else) if malformed."""
    try:
        wire = decode_canonical(data, max_bytes=MAX_MESSAGE_BYTES)
    except EncodingError as exc:
        raise MessageError(str(exc)) from None
    try:
        return _decode_wire(wire)
    except MessageError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MessageError("malformed message: %s" % exc) from None
