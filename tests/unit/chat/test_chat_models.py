"""Message ids are unique and not clock values; timestamps are ISO 8601 UTC with a Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sockjet.chat.models import ChatMessage, format_timestamp, new_message_id, utc_now


def test_timestamp_is_iso_utc_with_milliseconds() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-03-04T05:06:07.891Z"
    paris = timezone(timedelta(hours=1))
    assert format_timestamp(datetime(2026, 3, 4, 6, 0, tzinfo=paris)) == "2026-03-04T05:00:00.000Z"
    assert datetime.fromisoformat(format_timestamp(moment)) == moment.replace(microsecond=891_000)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


def test_default_clock_is_utc() -> None:
    assert utc_now().utcoffset() == timedelta(0)


def test_ids_are_random_uuids() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", i)
        for i in ids
    )


def test_event_shape() -> None:
    m = ChatMessage("i", "room", "u", "Ann", "hi", "2026-01-01T00:00:00.000Z")
    assert m.to_event() == {
        "id": "i",
        "userId": "u",
        "username": "Ann",
        "message": "hi",
        "timestamp": "2026-01-01T00:00:00.000Z",
    }
