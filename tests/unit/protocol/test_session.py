"""The sans-I/O Engine.IO session machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from sockjet.protocol.engineio import PacketType
from sockjet.protocol.session import Action, Phase, SessionMachine, Upgrade

INTERVAL = 25.0
TIMEOUT = 20.0


def machine(
    now: float = 0.0, *, upgradable: bool = True, upgrade_timeout: float = 10.0
) -> SessionMachine:
    return SessionMachine(
        now,
        ping_interval=INTERVAL,
        ping_timeout=TIMEOUT,
        upgradable=upgradable,
        upgrade_timeout=upgrade_timeout,
        close_timeout=30.0,
    )


def drain_timer(m: SessionMachine, now: float) -> list[Action]:
    actions = []
    while (action := m.on_timer(now)) is not Action.NONE:
        actions.append(action)
    return actions


# -- heartbeat ---------------------------------------------------------------------------------


def test_first_ping_after_one_interval() -> None:
    m = machine(100.0)
    assert m.phase is Phase.OPEN
    assert m.deadline == 125.0
    assert m.on_timer(124.9) is Action.NONE
    assert m.on_timer(125.0) is Action.SEND_PING
    # then waiting for the pong
    assert m.deadline == 145.0
    assert m.on_timer(125.0) is Action.NONE


def test_pong_schedules_next_ping_from_the_pong() -> None:
    m = machine()
    assert m.on_timer(25.0) is Action.SEND_PING
    assert m.receive(PacketType.PONG, 30.0) is Action.NONE
    assert m.deadline == 55.0
    assert m.on_timer(45.0) is Action.NONE  # the old pong deadline passes harmlessly
    assert m.on_timer(55.0) is Action.SEND_PING


def test_no_pong_closes_with_ping_timeout() -> None:
    m = machine()
    assert m.on_timer(25.0) is Action.SEND_PING
    assert m.on_timer(44.9) is Action.NONE
    assert m.on_timer(45.0) is Action.CLOSE
    assert m.phase is Phase.CLOSED
    assert m.close_reason == "ping timeout"
    assert m.deadline is None
    assert m.on_timer(1000.0) is Action.NONE


def test_unsolicited_pong_does_not_postpone_the_ping() -> None:
    m = machine()
    assert m.receive(PacketType.PONG, 10.0) is Action.NONE
    assert m.deadline == 25.0


def test_deadline_prefers_the_earliest() -> None:
    m = SessionMachine(
        0.0, ping_interval=1.0, ping_timeout=5.0, upgradable=True, upgrade_timeout=3.0
    )
    assert m.deadline == 1.0
    assert m.start_upgrade(0.0)
    assert m.deadline == 1.0  # ping before upgrade timeout
    assert m.on_timer(1.0) is Action.SEND_PING
    assert m.deadline == 3.0  # upgrade timeout before pong deadline (6.0)
    assert drain_timer(m, 3.0) == [Action.ABORT_UPGRADE]
    assert m.deadline == 6.0


def test_late_timer_runs_everything_due_one_action_at_a_time() -> None:
    m = machine()
    assert m.start_upgrade(0.0)
    # far past every deadline: the upgrade gives up, then the ping goes out
    assert m.on_timer(100.0) is Action.ABORT_UPGRADE
    assert m.on_timer(100.0) is Action.SEND_PING
    assert m.on_timer(100.0) is Action.NONE
    assert m.on_timer(120.0) is Action.CLOSE


# -- packets from the client ----------------------------------------------------------------


def test_message_is_delivered() -> None:
    assert machine().receive(PacketType.MESSAGE, 1.0) is Action.DELIVER


def test_noop_is_ignored() -> None:
    m = machine()
    assert m.receive(PacketType.NOOP, 1.0) is Action.NONE
    assert m.phase is Phase.OPEN


def test_close_packet_is_transport_close() -> None:
    m = machine()
    assert m.receive(PacketType.CLOSE, 1.0) is Action.CLOSE
    assert (m.phase, m.close_reason) == (Phase.CLOSED, "transport close")


@pytest.mark.parametrize("packet_type", [PacketType.OPEN, PacketType.PING, PacketType.UPGRADE])
def test_out_of_state_packet_is_parse_error(packet_type: PacketType) -> None:
    m = machine()
    assert m.receive(packet_type, 1.0) is Action.CLOSE
    assert m.close_reason == "parse error"
    assert m.deadline is None


def test_nothing_is_received_once_not_open() -> None:
    m = machine()
    m.close("forced close", 1.0, drain=True)
    assert m.receive(PacketType.MESSAGE, 2.0) is Action.NONE
    assert m.receive(PacketType.PING, 2.0) is Action.NONE
    assert m.phase is Phase.CLOSING


# -- upgrade ----------------------------------------------------------------------------------


def test_probe_then_upgrade() -> None:
    m = machine()
    assert m.start_upgrade(1.0)
    assert m.upgrade is Upgrade.PROBING
    assert m.deadline == 11.0
    assert m.receive_probe(PacketType.PING, "probe") is Action.SEND_PROBE_PONG
    assert m.upgrade is Upgrade.PROBED
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.UPGRADE
    assert m.upgrade is Upgrade.DONE
    assert m.deadline == 25.0
    assert not m.start_upgrade(2.0)  # never twice


def test_upgrade_without_probe_is_accepted_like_node() -> None:
    m = machine()
    assert m.start_upgrade(0.0)
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.UPGRADE


@pytest.mark.parametrize(
    ("packet_type", "data"),
    [(PacketType.PING, "nope"), (PacketType.MESSAGE, "hi"), (PacketType.CLOSE, "")],
)
def test_anything_else_on_the_probe_aborts_the_upgrade(packet_type: PacketType, data: str) -> None:
    m = machine()
    assert m.start_upgrade(0.0)
    assert m.receive_probe(packet_type, data) is Action.ABORT_UPGRADE
    assert m.upgrade is Upgrade.NONE
    assert m.phase is Phase.OPEN
    assert m.start_upgrade(1.0)  # a later attempt may try again


def test_upgrade_timeout_aborts_the_upgrade_only() -> None:
    m = machine(upgrade_timeout=5.0)
    assert m.start_upgrade(0.0)
    assert m.receive_probe(PacketType.PING, "probe") is Action.SEND_PROBE_PONG
    assert m.on_timer(5.0) is Action.ABORT_UPGRADE
    assert (m.phase, m.upgrade) == (Phase.OPEN, Upgrade.NONE)


def test_probe_packets_without_an_upgrade_abort() -> None:
    m = machine()
    assert m.receive_probe(PacketType.PING, "probe") is Action.ABORT_UPGRADE
    m.fail("transport close")
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.ABORT_UPGRADE


def test_probe_after_close_aborts() -> None:
    m = machine()
    assert m.start_upgrade(0.0)
    m.fail("transport error")
    assert m.upgrade is Upgrade.NONE
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.ABORT_UPGRADE


def test_upgrade_refused_when_not_upgradable_or_not_open() -> None:
    assert not machine(upgradable=False).start_upgrade(0.0)
    m = machine()
    m.close("forced close", 0.0, drain=True)
    assert not m.start_upgrade(0.0)


def test_abort_upgrade_outside_an_upgrade_changes_nothing() -> None:
    m = machine()
    m.abort_upgrade()
    assert m.upgrade is Upgrade.NONE
    assert m.start_upgrade(0.0)
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.UPGRADE
    m.abort_upgrade()
    assert m.upgrade is Upgrade.DONE


def test_upgrade_may_complete_while_closing() -> None:
    m = machine()
    assert m.start_upgrade(0.0)
    m.close("forced close", 1.0, drain=True)
    assert m.receive_probe(PacketType.UPGRADE, "") is Action.UPGRADE
    assert m.drained() is Action.CLOSE
    assert (m.phase, m.close_reason, m.upgrade) == (Phase.CLOSED, "forced close", Upgrade.DONE)


# -- closing ----------------------------------------------------------------------------------


def test_close_without_drain_is_immediate_and_idempotent() -> None:
    m = machine()
    assert m.close("forced close", 1.0, drain=False) is Action.CLOSE
    assert (m.phase, m.close_reason) == (Phase.CLOSED, "forced close")
    assert m.close("forced server close", 1.0, drain=False) is Action.NONE
    assert m.close_reason == "forced close"
    assert m.fail("transport error") is Action.NONE
    assert m.drained() is Action.NONE


def test_close_with_drain_waits_then_completes() -> None:
    m = machine()
    assert m.close("forced close", 1.0, drain=True) is Action.NONE
    assert m.phase is Phase.CLOSING
    assert m.deadline == 31.0  # close_timeout; no heartbeat while closing
    assert m.close("other", 2.0, drain=True) is Action.NONE
    assert m.on_timer(30.0) is Action.NONE
    assert m.drained() is Action.CLOSE
    assert (m.phase, m.close_reason) == (Phase.CLOSED, "forced close")
    assert m.drained() is Action.NONE


def test_drain_that_never_completes_gives_up_after_close_timeout() -> None:
    m = machine()
    m.close("forced close", 1.0, drain=True)
    assert m.on_timer(31.0) is Action.CLOSE
    assert (m.phase, m.close_reason) == (Phase.CLOSED, "forced close")


def test_drained_while_open_does_nothing() -> None:
    m = machine()
    assert m.drained() is Action.NONE
    assert m.phase is Phase.OPEN


def test_fail_while_closing_keeps_the_server_reason() -> None:
    m = machine()
    m.close("forced close", 1.0, drain=True)
    assert m.fail("transport error") is Action.CLOSE
    assert m.close_reason == "forced close"


def test_fail_while_open() -> None:
    m = machine()
    assert m.fail("transport error") is Action.CLOSE
    assert (m.phase, m.close_reason, m.deadline) == (Phase.CLOSED, "transport error", None)
