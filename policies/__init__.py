"""Shipped policy files (package data, read through importlib.resources)."""
