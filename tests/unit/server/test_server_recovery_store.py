"""RecoveryStore: offsets, sessions, pruning by age and count (an injected clock, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from sockjet.server.recovery import (
    ConnectionStateRecovery,
    PersistedSession,
    RecoveryStore,
    RestoredSession,
)
from sockjet.server.targets import BroadcastOptions

ALL = BroadcastOptions()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(clock: Clock, **options: Any) -> RecoveryStore:
    return RecoveryStore(ConnectionStateRecovery(**options), clock)


def record(s: RecoveryStore, event: str, opts: BroadcastOptions = ALL) -> str:
    data: list[Any] = [event]
    s.stamp(data)
    s.record(data, opts)
    offset = data[-1]
    assert isinstance(offset, str)
    return offset


def session(s: RecoveryStore, pid: str = "p", rooms: tuple[str, ...] = ("sid",)) -> None:
    s.persist(PersistedSession("sid", pid, list(rooms), {"k": 1}, since=s.position))


def names(restored: RestoredSession | None) -> list[str]:
    assert restored is not None
    return [data[0] for data in restored.missed]


def test_offsets_are_unique_and_missed_packets_follow_the_offset() -> None:
    clock = Clock()
    s = store(clock)
    offsets = [record(s, f"e{i}") for i in range(3)]
    assert len(set(offsets)) == 3
    session(s)
    record(s, "e3")
    restored = s.restore("p", offsets[0])
    assert names(restored) == ["e1", "e2", "e3"]
    assert restored is not None and restored.sid == "sid" and restored.data == {"k": 1}


def test_without_offset_recovery_starts_where_the_socket_connected() -> None:
    s = store(Clock())
    record(s, "before")
    since = s.position
    record(s, "after")
    s.persist(PersistedSession("sid", "p", ["sid"], None, since))
    assert names(s.restore("p", None)) == ["after"]


def test_only_packets_meant_for_the_sessions_rooms() -> None:
    s = store(Clock())
    start = record(s, "start")
    record(s, "to-a", BroadcastOptions(frozenset({"a"})))
    record(s, "to-b", BroadcastOptions(frozenset({"b"})))
    record(s, "all-but-a", BroadcastOptions(except_=frozenset({"a"})))
    record(s, "b-but-a", BroadcastOptions(frozenset({"b"}), frozenset({"a"})))
    record(s, "to-own-id", BroadcastOptions(frozenset({"sid"})))
    session(s, rooms=("sid", "a"))
    assert names(s.restore("p", start)) == ["to-a", "to-own-id"]


def test_sessions_expire_after_the_max_disconnection_duration() -> None:
    clock = Clock()
    s = store(clock, max_disconnection_duration=60)
    offset = record(s, "e")
    session(s, "old")
    clock.now += 30
    session(s, "young")
    clock.now += 31  # "old" disconnected 61 s ago, "young" 31 s ago
    assert s.restore("old", offset) is None
    assert names(s.restore("young", offset)) == []


def test_packets_older_than_the_duration_are_pruned_and_offsets_into_them_refused() -> None:
    clock = Clock()
    s = store(clock, max_disconnection_duration=60)
    offset = record(s, "old")
    record(s, "missed")
    clock.now += 59
    session(s)
    clock.now += 2  # both are 61 s old: "missed" is gone, so recovering would lose it
    record(s, "new")
    assert s.restore("p", offset) is None


def test_a_count_limit_prunes_the_oldest_packets() -> None:
    s = store(Clock(), max_packets=3)
    first = record(s, "e0")
    second = record(s, "e1")
    session(s, "p1")
    session(s, "p2")
    for i in range(2, 5):
        record(s, f"e{i}")
    assert s.restore("p1", first) is None  # e1 is gone
    assert names(s.restore("p2", second)) == ["e2", "e3", "e4"]


@pytest.mark.parametrize(
    "forge",
    [
        lambda o: "0123abcd-0",  # another store's prefix
        lambda o: o.rsplit("-", 1)[0] + "-",
        lambda o: o.rsplit("-", 1)[0] + "-zz",
        lambda o: o.rsplit("-", 1)[0] + "-+1",
        lambda o: o.rsplit("-", 1)[0] + "-00",
        lambda o: o.rsplit("-", 1)[0] + "-A",
        lambda o: o.rsplit("-", 1)[0] + "-" + "f" * 17,
        lambda o: o.rsplit("-", 1)[0] + "-ff",  # ours in form, but never issued
    ],
)
def test_offsets_not_issued_by_this_store_are_refused(forge: Any) -> None:
    s = store(Clock())
    for _ in range(11):
        offset = record(s, "e")
    session(s)
    assert s.restore("p", forge(offset)) is None


def test_unknown_sessions_and_second_restores() -> None:
    s = store(Clock())
    assert s.restore("nobody", None) is None
    session(s)
    assert s.restore("p", None) is not None
    assert s.restore("p", None) is None


@pytest.mark.parametrize("options", [{"max_disconnection_duration": 0}, {"max_packets": 0}])
def test_options_are_checked(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ConnectionStateRecovery(**options)


def test_a_stamped_packet_that_is_not_recorded_gives_its_offset_to_the_next() -> None:
    s = store(Clock())
    failed: list[Any] = ["unencodable"]
    s.stamp(failed)  # the encoding failed: never recorded
    offset = record(s, "next")
    assert offset == failed[-1]
    session(s)
    assert names(s.restore("p", None)) == []
