"""Smoke tests of the side-by-side benchmarks: every load scenario, in --quick mode against the
sockjet server, produces a row with all of its figures (no timing assertions: these only prove
the harness, the load generator and the contract server work together)."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest
from bench import __main__ as bench_main
from bench import binary, connect, echo, fanout, harness, polling, rooms, scale

pytestmark = pytest.mark.timeout(60)


def _args(module: ModuleType, name: str, *extra: str) -> object:
    parser = bench_main.build_parser()
    return parser.parse_args(
        [name, "--quick", "--no-pin", "--no-save", "--servers", "sockjet", *extra]
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        (fanout, "fanout"),
        (rooms, "rooms"),
        (polling, "polling"),
        (echo, "echo"),
        (binary, "binary"),
        (connect, "connect"),
        (scale, "scale"),
    ],
)
def test_scenario_produces_a_row_for_sockjet(module: ModuleType, name: str) -> None:
    args = _args(module, name)
    if module in (echo, binary, scale):
        metrics = module.METRICS
    else:
        metrics = connect.metrics(args) if module is connect else fanout.metrics(args)
    measure = fanout.measure if module in (rooms, polling) else module.measure
    status, data = harness.run_scenario(name, name, metrics, measure, args)
    assert status == 0
    # echo, connect and the room scenario (the joins) measure both generator modes by default
    both = module in (echo, connect, rooms)
    assert list(data["modes"]) == (["per-message", "batched"] if both else ["per-message"])
    for mode in data["modes"].values():
        assert mode["errors"] == {}
        row = mode["medians"]["sockjet"]
        assert set(row) == {m.key for m in metrics}
        throughput = next(iter(row.values()))  # the first figure is always a rate
        assert throughput > 0 and math.isfinite(throughput)


def test_every_registered_scenario_has_a_command() -> None:
    parser = bench_main.build_parser()
    for name in bench_main.SCENARIOS:
        args = parser.parse_args([name])
        assert args.scenario == name


def test_unknown_server_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(echo, "echo")
    args.servers = "nope"  # type: ignore[attr-defined]
    status, data = harness.run_scenario("echo", "echo", echo.METRICS, echo.measure, args)
    assert status == 2 and data == {}
    assert "unknown servers: nope" in capsys.readouterr().out


def test_results_are_written_as_json(tmp_path: Path) -> None:
    from bench import write_results

    path = write_results("smoke", {"a": 1}, tmp_path)
    assert path.parent == tmp_path and path.read_text().strip().startswith("{")


def test_several_scenarios_run_in_turn_with_shared_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["echo", "binary", "--quick", "--no-pin", "--no-save", "--servers", "sockjet"]
    assert bench_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "## Echo with acks" in out and "## 64 KiB binary echo" in out


def test_scale_is_cut_to_the_open_files_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(name: str, title: str, *rest: object, settings: dict[str, object]) -> tuple:
        seen.update(title=title, settings=settings)
        return 0, {}

    monkeypatch.setattr(scale, "raise_nofile", lambda: 1_000 + scale.FILES_HEADROOM)
    monkeypatch.setattr(scale, "run_scenario", fake_run)
    args = bench_main.build_parser().parse_args(["scale", "--clients", "50000"])
    assert scale.main(args) == 0
    assert seen["settings"] == {"clients": 1_000, "requested_clients": 50_000, "broadcasts": 5}
    assert str(seen["title"]).startswith("1,000 idle")
