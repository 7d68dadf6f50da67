"""Transaction signature checks in a process pool, ahead of execution.

Ed25519 verification is the replay's heaviest cost, so it runs on every core
while the main process executes earlier blocks. libsodium (PyNaCl) verifies
about twice as fast as OpenSSL; it is also stricter about a few degenerate
encodings (small-order points), so a signature libsodium refuses is checked
again with the node's own verifier (primitives.crypto) before it is called bad.
The auditor therefore accepts exactly what the node's verifier accepts.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from primitives.crypto import SigningKey, is_hex, verify

# One job is a list of (public key, message, signature) as hex/bytes/hex.
SignatureJob = list[tuple[str, bytes, str]]

CHUNK_SIGNATURES = 512


def verify_one(public_key: str, message: bytes, signature: str) -> bool:
    if not is_hex(public_key, 32) or not is_hex(signature, 64):
        return False
    try:
        crypto_sign_open(bytes.fromhex(signature) + message, bytes.fromhex(public_key))
        return True
    except (BadSignatureError, ValueError, TypeError):
        # The fallback keeps us exactly as permissive as the node (OpenSSL).
        return verify(public_key, message, signature)


def verify_chunk(job: SignatureJob) -> list[int]:
    """Indexes (within the chunk) of signatures that do not verify."""
    return [index for index, (key, message, signature) in enumerate(job) if not verify_one(key, message, signature)]


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
    count = 0
    started = time.perf_counter()
    elapsed = 0.0
    while elapsed < duration_s and count < max_samples:
        for _ in range(100):
            verify_one(public_key, message, signature)
        count += 100
        elapsed = time.perf_counter() - started
    return VerifyRate(int(count / elapsed), "libsodium (PyNaCl)", count)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class SignatureChecker:
    """Submits signature jobs to a process pool (or checks inline with workers=0)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 0:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)

    def submit(self, job: SignatureJob) -> list[Future[list[int]]]:
        """Split a block's signatures into chunks; each future gives its bad indexes."""
        futures: list[Future[list[int]]] = []
        for start in range(0, len(job), CHUNK_SIGNATURES):
            chunk = job[start : start + CHUNK_SIGNATURES]
            if self._pool is None:
                future: Future[list[int]] = Future()
                future.set_result(verify_chunk(chunk))
            else:
                future = self._pool.submit(verify_chunk, chunk)
            futures.append(future)
        return futures

    @staticmethod
    def bad_indexes(futures: list[Future[list[int]]]) -> list[int]:
        bad: list[int] = []
        for chunk_number, future in enumerate(futures):
            bad.extend(chunk_number * CHUNK_SIGNATURES + index for index in future.result())
        return bad

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
