"""Binary Merkle root over an ordered list of byte strings (tx_root, results_root).

Leaves and inner nodes are domain-separated so a leaf can never pass for a node;
an odd node at the end of a level is carried up unchanged. The root of an empty
list is SHA-256 of the empty string.

merkle_root is compiled (primitives/_native.c); reference_root is the same tree in
Python, which the compiled one is tested against.
"""

from __future__ import annotations

import hashlib

from primitives._native import merkle_root

_LEAF = b"\x00"
_NODE = b"\x01"


def reference_root(leaves: list[bytes]) -> str:
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(_LEAF + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [
            hashlib.sha256(_NODE + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


__all__ = ["merkle_root", "reference_root"]
