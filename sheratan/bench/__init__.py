"""Benchmarks that measure Sheratan against its anchors in the same run (see DESIGN.md)."""

from sheratan.bench.store import run_store_bench

__all__ = ["run_store_bench"]
