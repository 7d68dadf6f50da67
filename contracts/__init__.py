"""The collectible ledger as a pure, deterministic state transition (PROTOCOL §1–§5, §7).

Nothing in here touches a clock, a disk or a socket: the node passes the block
context in, reads the write set out, and commits it.
"""
