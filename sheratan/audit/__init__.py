"""Provable history: Merkle tree heads over the log, signed checkpoints and their proofs."""
