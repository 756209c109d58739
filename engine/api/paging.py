"""Pages of the API's listings, none of which can near gRPC's message limit.

Every listing (containers, entities, an entity's journal) answers one page:
at most the page size asked for, and never more than :data:`PAGE_BYTES` of
items, so that a response always fits in what a client accepts (4 MiB by
default) however many or however large the items are. A client goes on
while ``next_page_token`` is set; the token says where the page ended, so
a page is never repeated or skipped when items come and go between calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from engine.errors import InvalidParameter

__all__ = ["PAGE_BYTES", "fill", "page_size"]

T = TypeVar("T")

PAGE_BYTES = 3 * 1024 * 1024
"""A page's items at most: below 4 MiB by more than the largest item the caps let in."""

_FRAMING = 8  # a repeated field's tag and length, per item


def page_size(value: int, *, most: int | None = None) -> int | None:
    """The page size a request asks for: None for 0 (as many as fit); at most ``most``."""
    if value < 0 or (most is not None and value > most):
        bound = f"between 1 and {most}" if most is not None else "positive"
        raise InvalidParameter(f"page_size must be {bound}, got {value}")
    return value or None


def fill(items: Iterable[T], size: Callable[[T], int], limit: int | None) -> tuple[list[T], bool]:
    """The first items that fit in one page, at most ``limit``; whether any are left over.

    ``size`` is an item's encoded size. The first item always goes in: the
    caps on what a request may store keep any one item well under a page.
    """
    page: list[T] = []
    total = 0
    for item in items:
        if limit is not None and len(page) >= limit:
            return page, True
        n = size(item) + _FRAMING
        if page and total + n > PAGE_BYTES:
            return page, True
        page.append(item)
        total += n
    return page, False
