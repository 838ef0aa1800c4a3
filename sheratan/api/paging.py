"""Cursor paging of the API's lists: oldest first, an opaque cursor, a bounded page.

A cursor names the last item of the page before (its creation time and id, the list's sort
key), not an offset, so items created meanwhile never shift a page or repeat one. It is opaque
to clients (base64 of JSON): a cursor the API did not give is refused with 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, TypeVar
from uuid import UUID

import msgspec
from litestar.exceptions import ClientException
from litestar.params import Parameter

#: The most items one page holds, and how many a page holds unless asked.
MAX_PAGE_ITEMS = 500
DEFAULT_PAGE_ITEMS = 100

Limit = Annotated[
    int,
    Parameter(ge=1, le=MAX_PAGE_ITEMS, description=f"Items per page (at most {MAX_PAGE_ITEMS})."),
]
Cursor = Annotated[
    str | None,
    Parameter(max_length=200, description="The `next_cursor` of the page before (opaque)."),
]

T = TypeVar("T")
SortKey = tuple[datetime, UUID]
#: What a cursor holds; its time must carry a zone (the items' times do: UTC).
_CursorKey = tuple[Annotated[datetime, msgspec.Meta(tz=True)], UUID]


def page(
    items: Iterable[T], key: Callable[[T], SortKey], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of ``items`` in ``key`` order after ``cursor``, and the next page's cursor
    (None on the last page)."""
    ordered = sorted(items, key=key)
    if cursor is not None:
        after = _decode(cursor)
        ordered = [item for item in ordered if key(item) > after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return chosen, _encode(key(chosen[-1])) if more else None


def _encode(key: SortKey) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def _decode(cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=_CursorKey)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ClientException(detail=f"cursor {cursor!r} is not one this API gave") from None
