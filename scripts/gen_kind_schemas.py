"""Write schemas/kinds/<kind>.json from the payload Structs in sheratan/workers/kinds.py.

Run after changing a payload shape: ``.venv/bin/python scripts/gen_kind_schemas.py``.
tests/test_inputs.py fails while a file differs from what this writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from sheratan.workers.kinds import PAYLOAD_SHAPES, payload_schema

KINDS_DIR = Path(__file__).resolve().parent.parent / "schemas" / "kinds"


def render(kind: str) -> str:
    return json.dumps(payload_schema(kind), indent=2) + "\n"


def main() -> None:
    KINDS_DIR.mkdir(exist_ok=True)
    for kind in PAYLOAD_SHAPES:
        (KINDS_DIR / f"{kind}.json").write_text(render(kind))


if __name__ == "__main__":
    main()
