"""The images waiting for people across one tenant, a page at a time: what
``GET /v1/review/images`` reads.

The job store keeps, per requester, an index of its jobs awaiting review, oldest first (scored by
when each entered that state; ``scripts/write_change.lua`` keeps it), so a page reads only such
jobs, never every job of the tenant. Within a job the images come in variant order. A cursor is
the place of the last image returned (or of the last job looked at), so a page may stop inside a
job and the next go on from there. A page looks at no more than ``scan_limit`` jobs: a filter
that matches rarely answers a short page with a cursor rather than reading the whole index.

Filters: the image's review status (default ``pending``), the request's category, and whether
the quality gate flagged the image (``core.jobs.review.flagged``). An index entry whose record
expired is dropped from the index as it is met.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

from core.contracts.jobs import ImageDecision, JobRecord, JobState, StoredImage
from core.jobs import IndexEntry, InvalidCursor
from core.jobs.review import flagged, status_of

#: most index entries (jobs) one page looks at, matching or not
DEFAULT_SCAN_LIMIT: Final = 500


class ReviewIndex(Protocol):
    """What a page needs from a job store (``JobStore`` and ``MemoryJobStore`` both offer it)."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def get_request(self, job_id: str) -> dict[str, Any] | None: ...

    def awaiting_review_index(
        self, requester: str, *, after: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]: ...

    def forget_awaiting_review(self, requester: str, job_id: str) -> None: ...


@dataclass(frozen=True)
class ImageFilter:
    status: ImageDecision = ImageDecision.PENDING
    category: str | None = None
    flagged: bool | None = None

    def wants_job(self, request: Mapping[str, Any]) -> bool:
        attributes = request.get("attributes") or {}
        return self.category is None or attributes.get("category") == self.category

    def wants_image(self, image: StoredImage) -> bool:
        return status_of(image) is self.status and (self.flagged is None or flagged(image) is self.flagged)


class Position(NamedTuple):
    """Where a page stopped: a job of the index and, inside it, the last variant returned
    (``None``: the whole job was looked at)."""

    entry: IndexEntry
    variant: int | None


@dataclass(frozen=True)
class Waiting:
    """One image waiting for people, with its job's record and request."""

    record: JobRecord
    request: dict[str, Any]
    image: StoredImage


@dataclass(frozen=True)
class WaitingPage:
    images: list[Waiting]
    #: where the next page starts, or ``None`` when nothing is left
    next_cursor: str | None


def encode_cursor(position: Position) -> str:
    variant = "" if position.variant is None else str(position.variant)
    text = f"{position.entry.created!r}|{position.entry.job_id}|{variant}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor resumes after; raises ``core.jobs.InvalidCursor``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id, variant = text.split("|")
        position = Position(IndexEntry(float(created), job_id), int(variant) if variant else None)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    if not job_id or len(job_id) > 64 or position.entry.created != position.entry.created:  # NaN
        raise InvalidCursor()
    return position


def waiting_images(
    store: ReviewIndex,
    requester: str,
    *,
    filters: ImageFilter = ImageFilter(),
    limit: int = 50,
    cursor: str | None = None,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> WaitingPage:
    """Up to ``limit`` of ``requester``'s images waiting for people that match ``filters``,
    oldest job first, after ``cursor``; raises ``core.jobs.InvalidCursor``."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    found: list[Waiting] = []
    resume = decode_cursor(cursor) if cursor is not None else None
    after = resume.entry if resume is not None else None
    if resume is not None and resume.variant is not None:
        stopped = _take(store, requester, resume.entry, filters, found, limit, after_variant=resume.variant)
        if stopped is not None:
            return WaitingPage(found, _next(store, requester, stopped))
    scanned = 0
    while len(found) < limit and scanned < scan_limit:
        count = min(100, scan_limit - scanned)
        batch = store.awaiting_review_index(requester, after=after, count=count)
        for entry in batch:
            scanned += 1
            after = entry
            stopped = _take(store, requester, entry, filters, found, limit)
            if stopped is not None:
                return WaitingPage(found, _next(store, requester, stopped))
        if len(batch) < count:
            return WaitingPage(found, None)
    if after is None:
        return WaitingPage(found, None)
    return WaitingPage(found, _next(store, requester, Position(after, None)))


def _take(
    store: ReviewIndex,
    requester: str,
    entry: IndexEntry,
    filters: ImageFilter,
    found: list[Waiting],
    limit: int,
    *,
    after_variant: int = -1,
) -> Position | None:
    """Add the job's matching images past ``after_variant`` to ``found``; the position of the
    image that filled the page, or ``None`` while there is room."""
    for waiting in _job_images(store, requester, entry, filters):
        if waiting.image.variant <= after_variant:
            continue
        found.append(waiting)
        if len(found) == limit:
            return Position(entry, waiting.image.variant)
    return None


def _job_images(
    store: ReviewIndex, requester: str, entry: IndexEntry, filters: ImageFilter
) -> Iterator[Waiting]:
    record = store.get(entry.job_id)
    if record is None:
        store.forget_awaiting_review(requester, entry.job_id)
        return
    if record.requester != requester or record.state is not JobState.AWAITING_REVIEW:
        return  # left review since the index was read
    request = store.get_request(entry.job_id) or {}
    if not filters.wants_job(request):
        return
    for image in sorted(record.results, key=lambda image: image.variant):
        if filters.wants_image(image):
            yield Waiting(record, request, image)


def _next(store: ReviewIndex, requester: str, position: Position) -> str | None:
    """A cursor at ``position``, unless nothing can follow it."""
    record = store.get(position.entry.job_id) if position.variant is not None else None
    later_in_job = record is not None and any(i.variant > (position.variant or 0) for i in record.results)
    if later_in_job or store.awaiting_review_index(requester, after=position.entry, count=1):
        return encode_cursor(position)
    return None
