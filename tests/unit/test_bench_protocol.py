"""Smoke test of the protocol benchmark (bench/protocol.py): tiny batches, no timing assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ lives at the repository root, outside src/
    sys.path.insert(0, str(ROOT))

from bench import __main__ as bench_main  # noqa: E402
from bench import protocol  # noqa: E402

IMPLEMENTATIONS = {"sockjet", "python-socketio"}


def test_run_measures_every_case_op_and_implementation() -> None:
    report = protocol.run(rounds=2, iterations=2, cases=list(protocol.CASES))

    assert [(row.case, row.op) for row in report.rows] == [
        (case, op) for case in protocol.CASES for op in protocol.OPS
    ]
    for row in report.rows:
        assert set(row.median_ns) == IMPLEMENTATIONS
        assert all(ns > 0 for ns in row.median_ns.values())
        assert row.ratio == row.median_ns["python-socketio"] / row.median_ns["sockjet"]
    assert len(report.measurements) == len(protocol.CASES) * len(protocol.OPS) * 2
    assert all(len(m.samples) == 2 and m.iterations == 2 for m in report.measurements)
    # ASCII JSON, same msgpack key order: both sides put the very same bytes on the wire.
    assert all(check.wire_identical for check in report.checks.values())
    assert report.checks["binary-64kb"].wire_bytes["sockjet"] > 64 * 1024


def test_table_has_a_line_per_case_and_op() -> None:
    report = protocol.run(rounds=1, iterations=1, cases=["small"])
    lines = report.table().splitlines()

    assert "sockjet ns/op" in lines[0] and "python-socketio ns/op" in lines[0]
    assert [line.split("|")[2].strip() for line in lines[2:]] == list(protocol.OPS)


def test_equivalence_check_catches_a_side_that_decodes_differently() -> None:
    case = protocol.CASES["small"]
    impls = [protocol.Sockjet(), protocol.PythonSocketIO()]
    ref = protocol.reference_wire(case, impls[1])
    ops = {impl.name: impl.ops(case, ref) for impl in impls}
    assert protocol.check_case(case, impls, ops, ref).wire_identical
    ops["sockjet"]["decode"] = lambda: SimpleNamespace(nsp="/", data=["chat", "other"])

    with pytest.raises(protocol.EquivalenceError, match="small/decode: sockjet"):
        protocol.check_case(case, impls, ops, ref)


def test_unknown_case_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown case"):
        protocol.run(rounds=1, iterations=1, cases=["nope"])


def test_command_line_quick_run_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = bench_main.main(
        ["protocol", "--quick", "--cases", "small,polling-100", "--output", str(tmp_path)]
    )

    assert status == 0
    out = capsys.readouterr().out
    assert "| small event" in out and "| polling payload, 100 messages" in out
    (path,) = tmp_path.glob("protocol-*.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["settings"]["rounds"] == 1 and data["settings"]["fixed_iterations"] == 3
    assert {"python", "cpu_count", "platform"} <= set(data["machine"])
    assert {(r["case"], r["op"]) for r in data["rows"]} == {
        (case, op) for case in ("small", "polling-100") for op in protocol.OPS
    }
    assert {m["impl"] for m in data["measurements"]} == IMPLEMENTATIONS


def test_command_line_rejects_non_positive_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["protocol", "--rounds", "0", "--no-save"]) == 2
    assert "positive" in capsys.readouterr().err


def test_case_groups_expand_without_duplicates() -> None:
    assert protocol._select_cases("default") == list(protocol.DEFAULT_CASES)
    assert protocol._select_cases("small,all") == [
        "small",
        *(name for name in protocol.CASES if name != "small"),
    ]
    assert all(
        protocol.CASES[name].parser == "msgpack" for name in protocol._select_cases("msgpack")
    )
