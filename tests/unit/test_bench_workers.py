"""The workers benchmark (``python -m bench workers``): its projection's arithmetic, and a
smoke run of sockjet with two workers (no timing assertions)."""

from __future__ import annotations

import math

import pytest
from bench import __main__ as bench_main
from bench import workers

pytestmark = pytest.mark.timeout(60)


def test_the_projection_follows_its_formulas() -> None:
    medians = {
        "sockjet fanout N=1 one-core": {"rate": 500_000.0, "server_us_per_unit": 2.0},
        "sockjet bus N=1 one-core": {"server_us_per_unit": 10.0},
        "sockjet bus N=2 one-core": {"server_us_per_unit": 30.0},
        "sockjet echo N=1 one-core": {"rate": 100_000.0, "server_us_per_unit": 10.0},
        "sockjet echo N=2 one-core": {"server_us_per_unit": 12.5},
        "sockjet polling N=1 one-core": {"rate": 5_000.0, "server_us_per_unit": 100.0},
        "sockjet polling N=2 one-core": {
            "server_us_per_unit": 110.0,
            "handoffs_per_request": 0.5,
        },
    }
    loads = workers.project(medians, clients=1000, cores=16)["loads"]["sockjet"]
    # fan-out: C*d = 2000 us a broadcast, beta = 20 us a worker: E = 2000 / (2000 + 15 * 20)
    assert loads["fanout"]["efficiency"] == pytest.approx(2000 / 2300)
    assert loads["fanout"]["projected_rate"] == pytest.approx(16 * 500_000 * 2000 / 2300)
    assert loads["echo"]["efficiency"] == pytest.approx(0.8)
    # polling: h = (110 - 100) / 0.5 = 20 us, E = 100 / (100 + 20 * 15 / 16)
    assert loads["polling"]["handoff_us"] == pytest.approx(20.0)
    assert loads["polling"]["efficiency"] == pytest.approx(100 / (100 + 20 * 15 / 16))


def test_a_quick_run_of_two_workers() -> None:
    parser = bench_main.build_parser()
    args = parser.parse_args(
        [
            "workers",
            "--quick",
            "--no-save",
            "--no-pin",
            "--servers",
            "sockjet",
            "--workers",
            "1,2",
            "--placements",
            "one-core",
            "--loads",
            "bus,polling",
        ]
    )
    assert workers.main(args) == 0


def test_a_measurement_has_its_figures() -> None:
    parser = bench_main.build_parser()
    args = parser.parse_args(["workers", "--quick", "--no-pin"])
    args.pollers, args.duration = 2, 0.2
    result = workers._run_one(workers.IMPLEMENTATIONS["sockjet"], 2, "one-core", "polling", args)
    assert result["rate"] > 0 and math.isfinite(result["server_us_per_unit"])
    assert 0.0 <= result["handoffs_per_request"] <= 1.0
