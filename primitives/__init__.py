"""Leaf pieces every room may use: canonical encoding, hashing, signatures, Merkle roots."""
