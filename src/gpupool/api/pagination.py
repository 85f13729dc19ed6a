"""Paging of list endpoints: `limit` and `cursor` in, `next_cursor` and `has_more` out.

A cursor is the decimal position key of the last item of a page (a claim's arrival number, an
event id, a device's place in the inventory); clients treat it as opaque and pass it back. Any
value of the documented form is a valid cursor, so a stale one just starts past that point.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

CURSOR_PATTERN = r"^[0-9]{1,18}$"

CursorQuery = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page; omit for the first page"),
]


def limit_query(default: int, maximum: int) -> object:
    """A `limit` query parameter: items per page."""
    return Query(ge=1, le=maximum, description=f"items per page (default {default}, at most {maximum})")


def cursor_value(cursor: str | None) -> int | None:
    return None if cursor is None else int(cursor)
