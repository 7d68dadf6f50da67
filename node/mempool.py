"""Transactions admitted but not yet committed.

Admission runs the checks of PROTOCOL §2 in order (malformed, too_large,
wrong_chain, bad_signature, unknown_sender, stale_nonce, nonce_gap) and
answers a known transaction as if it were new. Each sender's transactions are
kept by nonce; a block takes them in nonce order from the account's nonce and
stops at a gap, so a transaction with a missing predecessor waits. The pool is
bounded per sender and in total (503 mempool_full past either bound).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, Protocol

from contracts.transactions import SignedTx, TxError, check_admission_static, decode_tx, parse_tx
from node.bounded import BoundedCache
from node.rpc_support import RpcError
from primitives.crypto import sha256
from primitives.encoding import encode_trusted

MAX_NONCE_AHEAD = 1024
SIGNATURE_CACHE_SIZE = 100_000  # twice the default mempool (`[mempool] max_txs`)

AccountNonce = Callable[[str], "int | None"]


class PendingStore(Protocol):
    """Where admitted transactions are kept so a restart does not lose them."""

    def pending_put_many(self, txs: Mapping[str, bytes]) -> None: ...

    def pending_delete(self, tx_ids: list[str]) -> None: ...

    def pending_all(self) -> list[bytes]: ...


class MempoolFull(Exception):
    pass


class SignatureCache:
    """Transactions whose signature this node already checked (bounded, oldest out).

    Each is remembered by the SHA-256 of its id and signature, so a different signature
    is checked anew; 32 bytes instead of the 192 characters of the hex halve the memory
    (~170 bytes an entry, 17 MB when full). An entry spares the second check when the
    transaction comes back in a proposal, so it need only outlive the mempool's turnover:
    the node sizes it at twice the mempool's bound."""

    def __init__(self, capacity: int = SIGNATURE_CACHE_SIZE) -> None:
        self._checked: BoundedCache[bytes, None] = BoundedCache(capacity)

    @property
    def capacity(self) -> int:
        return self._checked.capacity

    def __contains__(self, tx: object) -> bool:
        return isinstance(tx, SignedTx) and self._key(tx) in self._checked

    @staticmethod
    def _key(tx: SignedTx) -> bytes:
        return sha256((tx.id + (tx.signature or "")).encode())

    def check(self, tx: SignedTx, chain_id: str) -> None:
        """check_admission_static, skipped for a transaction already checked."""
        key = self._key(tx)
        if key in self._checked:
            if tx.chain_id != chain_id:
                raise TxError("wrong_chain", "transaction is for chain %r" % tx.chain_id)
            return
        check_admission_static(tx, chain_id)
        self._checked.put(key, None)


class Admitted(NamedTuple):  # one per admission: a tuple costs half a frozen dataclass
    tx: SignedTx
    is_new: bool


class Mempool:
    def __init__(
        self,
        *,
        chain_id: str,
        account_nonce: AccountNonce,
        signatures: SignatureCache,
        max_txs: int,
        max_per_sender: int,
        store: PendingStore | None = None,
    ) -> None:
        self._store = store
        self._chain_id = chain_id
        self._account_nonce = account_nonce
        self._signatures = signatures
        self._max_txs = max_txs
        self._max_per_sender = max_per_sender
        self._by_id: dict[str, SignedTx] = {}
        # sender -> nonce -> ids (first one is proposed; later ones are evicted once stale)
        self._by_sender: dict[str, dict[int, list[str]]] = {}
        # Whether some transaction is ready to propose; None = unknown until the next scan.
        # Kept so the replica's frequent has_pending() does not read every sender's account.
        self._ready: bool | None = False
        self._by_signature: dict[str, str] = {}
        # Admitted but not yet in the store: save_pending() writes them in one batch, so
        # a request or gossip frame of many transactions costs one write, not one each.
        self._unsaved: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    def get(self, tx_id: str) -> SignedTx | None:
        return self._by_id.get(tx_id)

    def admit(self, obj: object, *, is_committed: Callable[[str], bool]) -> Admitted:
        """Run the admission checks; raise RpcError with the protocol code when refused."""
        try:
            tx = parse_tx(obj)
        except TxError as exc:
            raise RpcError(400, exc.code, exc.message) from None
        return self.admit_parsed(tx, is_committed=is_committed)

    def admit_parsed(self, tx: SignedTx, *, is_committed: Callable[[str], bool]) -> Admitted:
        """admit() for a transaction already parsed (gossip arrives as canonical bytes)."""
        if tx.id in self._by_id or is_committed(tx.id):
            return Admitted(self._by_id.get(tx.id, tx), is_new=False)
        # Before the signature: past capacity every node would otherwise spend a check
        # (most of admission) on each transaction it then refuses.
        if len(self._by_id) >= self._max_txs:
            raise RpcError(
                503,
                "mempool_full",
                "the mempool holds %d transactions; try again shortly" % self._max_txs,
            )
        try:
            self._signatures.check(tx, self._chain_id)
        except TxError as exc:
            raise RpcError(400, exc.code, exc.message) from None
        account_nonce = self._account_nonce(tx.sender)
        if account_nonce is None:
            raise RpcError(400, "unknown_sender", "no account %s" % tx.sender)
        if tx.nonce < account_nonce:
            raise RpcError(
                400,
                "stale_nonce",
                "nonce %d is below the account's nonce %d" % (tx.nonce, account_nonce),
            )
        if tx.nonce > account_nonce + MAX_NONCE_AHEAD:
            raise RpcError(
                400,
                "nonce_gap",
                "nonce %d is more than %d above the account's nonce %d"
                % (tx.nonce, MAX_NONCE_AHEAD, account_nonce),
            )
        pending = self._by_sender.get(tx.sender, {})
        if sum(len(ids) for ids in pending.values()) >= self._max_per_sender:
            raise RpcError(
                503,
                "mempool_full",
                "sender %s already has %d pending transactions"
                % (tx.sender[:16], self._max_per_sender),
            )
        self._by_id[tx.id] = tx
        self._by_sender.setdefault(tx.sender, {}).setdefault(tx.nonce, []).append(tx.id)
        if tx.signature is not None:
            self._by_signature[tx.signature] = tx.id
        if self._store is not None:
            self._unsaved[tx.id] = tx.encoded
        if tx.nonce == account_nonce:
            self._ready = True
        return Admitted(tx, is_new=True)

    def save_pending(self) -> None:
        """Write the transactions admitted since the last call to the store. Call it before
        answering that a transaction is pending, so a killed process does not lose it."""
        if self._unsaved and self._store is not None:
            unsaved, self._unsaved = self._unsaved, {}
            self._store.pending_put_many(unsaved)

    def known_parsed(self, obj: object) -> SignedTx | None:
        """The pending transaction equal to `obj` (a block's transaction map), if any: spares
        re-encoding a transaction this node already parsed and checked on admission."""
        if not isinstance(obj, dict):
            return None
        signature = obj.get("signature")
        if not isinstance(signature, str):
            return None
        tx_id = self._by_signature.get(signature)
        tx = self._by_id.get(tx_id) if tx_id is not None else None
        if tx is not None and _encodes_to(obj, tx.encoded):
            return tx
        return None

    def restore(self, is_committed: Callable[[str], bool]) -> int:
        """Re-admit the transactions kept before a restart; drop those committed or stale since."""
        if self._store is None:
            return 0
        gone: list[str] = []
        restored = 0
        for encoded in self._store.pending_all():
            try:
                tx = decode_tx(encoded)
                if self.admit_parsed(tx, is_committed=is_committed).is_new:
                    restored += 1
                    continue
            except (TxError, RpcError):
                pass
            gone.append(parse_id(encoded))
        self._unsaved.clear()  # what was restored is in the store already
        self._store.pending_delete([tx_id for tx_id in gone if tx_id and tx_id not in self._by_id])
        return restored

    def has_ready(self) -> bool:
        """Whether some sender has a transaction at its account's nonce."""
        if self._ready is None:
            self._ready = any(
                self._account_nonce(sender) in by_nonce
                for sender, by_nonce in self._by_sender.items()
            )
        return self._ready

    def reap(self, max_txs: int, max_bytes: int | None = None) -> list[SignedTx]:
        """Transactions for the next block: per sender, consecutive nonces from the account's;
        at most `max_txs` of them and, past the first, at most `max_bytes` encoded bytes."""
        chosen: list[SignedTx] = []
        budget = max_bytes if max_bytes is not None else -1
        used = 0
        for sender, by_nonce in self._by_sender.items():
            nonce = self._account_nonce(sender)
            if nonce is None:
                continue
            while len(chosen) < max_txs and nonce in by_nonce:
                tx = self._by_id[by_nonce[nonce][0]]
                if budget >= 0 and chosen and used + len(tx.encoded) > budget:
                    return chosen
                used += len(tx.encoded)
                chosen.append(tx)
                nonce += 1
            if len(chosen) >= max_txs:
                break
        return chosen

    def remove_committed(self, tx_ids: Iterable[str], senders: Iterable[str]) -> None:
        """Drop committed transactions and any the new nonces made stale."""
        self._ready = None
        dropped: list[str] = []
        for tx_id in tx_ids:
            tx = self._by_id.get(tx_id)
            if tx is not None:
                self._drop(tx)
                dropped.append(tx_id)
        for sender in set(senders):
            by_nonce = self._by_sender.get(sender)
            if not by_nonce:
                continue
            account_nonce = self._account_nonce(sender) or 0
            for nonce in [n for n in by_nonce if n < account_nonce]:
                for tx_id in list(by_nonce[nonce]):
                    self._drop(self._by_id[tx_id])
                    dropped.append(tx_id)
        if self._store is not None and dropped:
            self._store.pending_delete(dropped)

    def _drop(self, tx: SignedTx) -> None:
        self._by_id.pop(tx.id, None)
        self._unsaved.pop(tx.id, None)
        if tx.signature is not None and self._by_signature.get(tx.signature) == tx.id:
            del self._by_signature[tx.signature]
        by_nonce = self._by_sender.get(tx.sender)
        if by_nonce is None:
            return
        ids = by_nonce.get(tx.nonce)
        if ids is not None and tx.id in ids:
            ids.remove(tx.id)
            if not ids:
                del by_nonce[tx.nonce]
        if not by_nonce:
            del self._by_sender[tx.sender]


def parse_id(encoded: bytes) -> str:
    """The id of a stored transaction, or "" when it no longer decodes."""
    try:
        return decode_tx(encoded).id
    except TxError:
        return ""


def _encodes_to(obj: dict, encoded: bytes) -> bool:
    """Whether `obj` is the value `encoded` holds, types included (plain == says True == 1,
    and a proposer could use that to slip in a transaction whose encoding differs). For what
    MessagePack decodes (a block's transactions), equal canonical bytes mean equal values
    of equal types all the way down; the compiled encoder makes this a few microseconds
    where a walk comparing types was 2% of a loaded validator."""
    try:
        return encode_trusted(obj) == encoded
    except TypeError:  # not encodable (ormsgpack's errors are TypeErrors): not equal
        return False
