"""Auditor tools: replay the chain from genesis, check state proofs, export provenance.

Nothing here trusts the node it reads from: every block is checked against the
genesis file (certificates, parent links, signatures) and re-executed with the
same contracts the validators run.
"""
