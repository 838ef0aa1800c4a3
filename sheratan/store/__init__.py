"""Sheratan's ledger engine: an eventsourcing persistence module over hash-chained JSONL.

Select it with ``PERSISTENCE_MODULE=sheratan.store``; the home folder comes from
``SHERATAN_HOME`` (default ``./.sheratan``). See docs/ledger.md for the on-disk format.
"""

from sheratan.store.factory import Factory
from sheratan.store.ledger import CorruptLogError, Ledger
from sheratan.store.recorders import (
    JsonlAggregateRecorder,
    JsonlApplicationRecorder,
    JsonlProcessRecorder,
    JsonlTrackingRecorder,
)

__all__ = [
    "CorruptLogError",
    "Factory",
    "JsonlAggregateRecorder",
    "JsonlApplicationRecorder",
    "JsonlProcessRecorder",
    "JsonlTrackingRecorder",
    "Ledger",
]
