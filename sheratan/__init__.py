"""Sheratan: an event-sourced ledger engine for a job system that shows its reasoning."""
