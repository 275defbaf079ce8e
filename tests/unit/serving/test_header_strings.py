"""SharedStrings: header names and common values decoded once, within a bound."""

from __future__ import annotations

from sockjet.serving.header_strings import MAX_SHARED, SharedStrings


def test_names_are_lower_cased_and_shared() -> None:
    strings = SharedStrings()
    first = strings.name(b"User-Agent")
    assert first == "user-agent"
    assert strings.name(b"User-Agent") is first


def test_values_of_repeating_headers_are_shared_others_not() -> None:
    strings = SharedStrings()
    agent = strings.value("user-agent", b"Mozilla/5.0")
    assert strings.value("user-agent", b"Mozilla/5.0") is agent
    key = strings.value("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")
    assert key == "dGhlIHNhbXBsZSBub25jZQ=="
    assert strings.value("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==") is not key
    assert len(strings) == 1  # the key was never kept


def test_latin1_bytes_decode_as_latin1() -> None:
    assert SharedStrings().value("host", b"caf\xe9") == "caf\xe9"


def test_the_table_is_bounded_and_still_decodes_past_it() -> None:
    strings = SharedStrings()
    for i in range(MAX_SHARED + 100):
        assert strings.name(b"X-Made-Up-%d" % i) == f"x-made-up-{i}"
    assert len(strings) == MAX_SHARED
    assert strings.value("host", b"new.example") == "new.example"
    assert strings.share("transport") == "transport"
    assert len(strings) == MAX_SHARED


def test_long_strings_are_not_kept() -> None:
    strings = SharedStrings()
    strings.value("user-agent", b"x" * 1000)
    strings.share("y" * 1000)
    assert len(strings) == 0


def test_share_returns_the_first_equal_string() -> None:
    strings = SharedStrings()
    first = "".join(["web", "socket"])
    second = "".join(["webs", "ocket"])
    assert strings.share(first) is first
    assert strings.share(second) is first
