"""Smoke test of the cross-node fan-out benchmark (bench/cluster.py) in quick mode: a real
Redis and two real sockjet nodes, tiny counts, no assertions on speed."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import __main__ as bench_main  # noqa: E402
from bench import cluster  # noqa: E402

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cluster.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_scenario_is_registered() -> None:
    assert bench_main.SCENARIOS["cluster"][0] == "bench.cluster"
    assert set(cluster.DEFAULT_SERVERS) <= set(cluster.CLUSTERS)
    assert {"sockjet", "node"} <= set(cluster.DEFAULT_SERVERS)


def test_node_specs_name_the_redis_url() -> None:
    spec = cluster.CLUSTERS["sockjet"].node("redis://127.0.0.1:6400")

    assert spec.name == "sockjet"
    assert "redis://127.0.0.1:6400" in spec.argv and "{port}" in spec.argv


def test_unknown_implementation_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster.main(_args("--servers", "sockjet,nope", "--no-save")) == 2
    assert "unknown servers: nope" in capsys.readouterr().out


@needs_redis
def test_quick_run_measures_a_sockjet_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = bench_main.main(
        ["cluster", "--quick", "--no-pin", "--servers", "sockjet", "--output", str(tmp_path)]
    )

    out = capsys.readouterr().out
    assert status == 0, out
    assert "| sockjet " in out and "deliveries/s" in out
    (path,) = tmp_path.glob("cluster-*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["errors"] == {}
    assert data["settings"]["quick"] and data["settings"]["rounds"] == 1
    (result,) = data["raw"]["sockjet"]
    assert set(result) == {m.key for m in cluster.METRICS}
    assert result["deliveries_per_s"] > 0 and result["server_us_per_delivery"] > 0
    assert result["remote_p50_ms"] > 0  # node B's clients got node A's broadcasts
