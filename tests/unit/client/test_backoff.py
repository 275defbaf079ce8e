"""The reconnection backoff: socket.io-client's formula, compared with its own code."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sockjet.client.backoff import Backoff

JS_BACKOFF = (
    Path(__file__).resolve().parents[2]
    / "js"
    / "node_modules"
    / "socket.io-client"
    / "build"
    / "cjs"
    / "contrib"
    / "backo2.js"
)


def draws(*values: float) -> Iterator[float]:
    yield from values


def test_without_jitter_the_delay_doubles_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.duration() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.attempts == 5


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 10.0)
    backoff.duration()
    backoff.duration()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.duration() == 0.5


def test_jitter_subtracts_on_even_tenths_and_adds_on_odd_ones() -> None:
    rand = draws(0.25, 0.15, 0.0)
    backoff = Backoff(1.0, 5.0, jitter=0.5, random=lambda: next(rand))
    # 1000 ms, r=0.25: deviation floor(125) = 125, floor(2.5) = 2 is even: 875 ms
    assert backoff.duration() == 0.875
    # 2000 ms, r=0.15: deviation 150, floor(1.5) = 1 is odd: 2150 ms
    assert backoff.duration() == 2.15
    # 4000 ms, r=0: no deviation
    assert backoff.duration() == 4.0


def test_jitter_never_exceeds_the_cap() -> None:
    backoff = Backoff(1.0, 5.0, jitter=1.0, random=lambda: 0.95)  # odd: +95 %
    assert [backoff.duration() for _ in range(4)] == [1.95, 3.9, 5.0, 5.0]


def test_a_jitter_out_of_range_means_none_as_in_js() -> None:
    assert Backoff(jitter=1.5).jitter == 0
    assert Backoff(jitter=-0.1).jitter == 0
    assert Backoff(jitter=1.0).jitter == 1.0


def test_delays_are_whole_milliseconds() -> None:
    backoff = Backoff(0.0015, 1.0)
    assert backoff.duration() == 0.001  # 1.5 ms truncated, like JS's `| 0`


def test_thousands_of_attempts_stay_at_the_cap() -> None:
    backoff = Backoff(1.0, 5.0, jitter=0.5, random=lambda: 0.99)
    backoff.attempts = 5000
    assert backoff.duration() == 5.0


@pytest.mark.skipif(
    shutil.which("node") is None or not JS_BACKOFF.is_file(), reason="node or npm packages missing"
)
def test_same_delays_as_the_js_backoff() -> None:
    randoms = [i / 97 for i in range(97)]
    script = f"""
    const {{ Backoff }} = require({json.dumps(str(JS_BACKOFF))});
    const randoms = {json.dumps(randoms)};
    let i = 0;
    Math.random = () => randoms[i++ % randoms.length];
    const out = [];
    for (const [min, max, jitter] of [[1000, 5000, 0.5], [100, 30000, 1], [250, 1000, 0]]) {{
      const b = new Backoff({{ min, max, jitter }});
      for (let n = 0; n < 40; n++) {{ if (n % 13 === 12) b.reset(); out.push(b.duration()); }}
    }}
    console.log(JSON.stringify(out));
    """
    expected = json.loads(
        subprocess.run(
            ["node", "-e", script], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    )
    index = 0

    def rand() -> float:
        nonlocal index
        value = randoms[index % len(randoms)]
        index += 1
        return value

    ours: list[int] = []
    for low, high, jitter in [(1.0, 5.0, 0.5), (0.1, 30.0, 1.0), (0.25, 1.0, 0.0)]:
        backoff = Backoff(low, high, jitter=jitter, random=rand)
        for n in range(40):
            if n % 13 == 12:
                backoff.reset()
            ours.append(round(backoff.duration() * 1000))
    assert ours == expected
