"""Transaction checks in a process pool, ahead of execution: strict parsing, chain id
and the sender's signature.

Ed25519 verification is the replay's heaviest cost, so it runs on every core
while the main process executes earlier blocks; parsing (contracts.parse_tx,
the same strict schema the node applies) rides along in the same workers. The
verifier is the node's own (primitives.crypto.verify), so the auditor accepts
exactly the signatures the validators accept.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import ormsgpack

from contracts.transactions import SignedTx, TxError, parse_tx
from primitives.crypto import SigningKey, verify

CHUNK_TXS = 512
# The checks run far ahead (node.audit.replay.LOOKAHEAD_TXS), so the workers yield the cores
# to execution and the state tree, which cannot run ahead, and take what those leave.
WORKER_NICENESS = 5

# What a worker sends back for the transactions that passed: their ids, in order. The
# replay needs nothing else from the worker (see signed_tx_from), and a list of strings
# crosses the pipe for a fraction of what tuples of bytes cost.
Checked = list[str]


@dataclass(frozen=True)
class TxProblem:
    """The first transaction of a chunk that fails; index is within the block."""

    index: int
    check: str  # "transaction" (malformed, too large, wrong chain) or "signature"
    message: str
    tx_id: str | None


# Every type ormsgpack would otherwise convert (to a map, a string, an array) is refused
# instead, so what the worker unpacks is exactly what was packed.
_EXACT_ONLY = (
    ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_UUID
)


def pack_chunk(objs: list[Any]) -> bytes | list[Any]:
    """A chunk for a worker: as MessagePack, which packs and unpacks at a fraction of pickle's
    cost, unless it holds what MessagePack cannot carry exactly (integers beyond 64 bits,
    non-string keys, tuples, other types): then pickle carries it, and parse_tx judges it."""
    try:
        return ormsgpack.packb(objs, option=_EXACT_ONLY)
    except TypeError:  # ormsgpack.MsgpackEncodeError
        return objs


def check_chunk(
    chain_id: str, first_index: int, chunk: bytes | list[Any]
) -> tuple[Checked, TxProblem | None]:
    """Parse, check the chain and verify the signature of each transaction in order;
    stop at the first that fails."""
    objs = ormsgpack.unpackb(chunk) if isinstance(chunk, bytes) else chunk
    checked: Checked = []
    for offset, obj in enumerate(objs):
        index = first_index + offset
        try:
            tx = parse_tx(obj)
        except TxError as exc:
            return checked, TxProblem(index, "transaction", "transaction is %s" % exc, None)
        if tx.chain_id != chain_id:
            message = "transaction is for chain %r, the chain is %r" % (tx.chain_id, chain_id)
            return checked, TxProblem(index, "transaction", message, tx.id)
        if tx.signature is None or not verify(tx.sender, tx.payload, tx.signature):
            message = (
                "signature does not verify for sender %s (the transaction was altered or forged)"
                % tx.sender
            )
            return checked, TxProblem(index, "signature", message, tx.id)
        checked.append(tx.id)
    return checked, None


def signed_tx_from(obj: dict[str, Any], tx_id: str) -> SignedTx:
    """The transaction a worker checked, rebuilt in the main process from the object it was
    sent. Its encoding is left empty: the worker checked the signature over it and the
    replay (execution, roots, observers) does not need it again, so it is not sent back."""
    return SignedTx(
        chain_id=obj["chain_id"],
        type=obj["type"],
        sender=obj["sender"],
        nonce=obj["nonce"],
        body=obj["body"],
        signature=obj.get("signature"),
        id=tx_id,
        encoded=b"",
    )


@dataclass(frozen=True)
class VerifyRate:
    signatures_per_second_per_core: int
    library: str
    samples: int


def measure_verify_rate(duration_s: float = 0.25, max_samples: int = 20_000) -> VerifyRate:
    """This machine's single-core Ed25519 verification rate with the verifier replay uses."""
    key = SigningKey(bytes(range(32)))
    message = b"yuxi-tx-v1\n" + bytes(180)
    signature = key.sign(message)
    public_key = key.public_key
    # CPU time, not wall time: on a shared machine other processes take the core away, and
    # the rate of one core is what the replay's budget is made of.
    count = 0
    started = time.process_time()
    elapsed = 0.0
    while elapsed < duration_s and count < max_samples:
        for _ in range(100):
            verify(public_key, message, signature)
        count += 100
        elapsed = time.process_time() - started
    return VerifyRate(int(count / max(elapsed, 1e-9)), "libsodium (PyNaCl)", count)


def process_context() -> Any:
    """Workers come from a fork server, not from a fork of this process: the replay runs
    threads (fetching, the state tree), and forking a threaded process is unsafe. The
    server preloads the contracts, so each worker starts in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["node.audit.signatures"])
    return context


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class SignatureChecker:
    """Submits transaction checks to a process pool (or checks inline with workers=0)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=process_context(),
                initializer=os.nice,
                initargs=(WORKER_NICENESS,),
            )

    def submit(
        self, chain_id: str, objs: list[Any]
    ) -> list[Future[tuple[Checked, TxProblem | None]]]:
        """Split a block's transactions into chunks, each checked by a worker."""
        futures: list[Future[tuple[Checked, TxProblem | None]]] = []
        for start in range(0, len(objs), CHUNK_TXS):
            chunk = objs[start : start + CHUNK_TXS]
            if self._pool is None:
                future: Future[tuple[Checked, TxProblem | None]] = Future()
                future.set_result(check_chunk(chain_id, start, chunk))
            else:
                future = self._pool.submit(check_chunk, chain_id, start, pack_chunk(chunk))
            futures.append(future)
        return futures

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
