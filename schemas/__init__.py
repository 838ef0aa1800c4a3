"""Shipped JSON Schemas (package data, read through importlib.resources)."""
