"""The query-string parser gives exactly what urllib's parse_qsl gives."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sockjet.serving.query_string import parse_query


@pytest.mark.parametrize(
    "query",
    [
        "",
        "EIO=4&transport=polling&t=PzX9a1b&sid=AbCdEfGhIjKlMnOpQrSt",
        "a=1&&b=&c",
        "=&=x&y=",
        "name=J%C3%BCrgen+M&x=%zz&y=%E2%82",
        "a=b=c&a=d",
        "sp+ace=%20%2B+",
    ],
)
def test_same_pairs_as_parse_qsl(query: str) -> None:
    assert parse_query(query) == parse_qsl(query, keep_blank_values=True)


@given(st.text(alphabet="ab=&%+2fC3é;x ", max_size=40))
def test_same_pairs_as_parse_qsl_for_any_query(query: str) -> None:
    assert parse_query(query) == parse_qsl(query, keep_blank_values=True)
