"""Write schemas/decision_trace_v1.json from ``TraceRecord`` in sheratan/decide/trace.py.

Run after changing the trace record (or an event Struct it is built from):
``.venv/bin/python scripts/gen_trace_schema.py``. tests/test_trace_schema.py fails while the
file differs from what this writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from sheratan.decide.trace import published_schema

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "decision_trace_v1.json"


def render() -> str:
    return json.dumps(published_schema(), indent=2) + "\n"


def main() -> None:
    SCHEMA.write_text(render())


if __name__ == "__main__":
    main()
