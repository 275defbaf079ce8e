"""Bounded JSON on orjson: what every Socket.IO text payload goes through.

Decoding is bounded so that no client-sent JSON can cost more than linear time or build a
structure the rest of the stack cannot handle:

- **Nesting depth** is capped at :data:`MAX_DEPTH` arrays/objects. orjson alone accepts 1024
  levels but only re-encodes 254, and Python code that walks the data recursively (attachment
  reconstruction, application handlers) should never approach the interpreter's recursion limit.
  The check costs two ``str.count`` calls for any document longer than ``2 * MAX_DEPTH``
  characters, and a walk over the containers only when those counts could allow a deeper
  document.
- **Integer digits** are bounded by orjson itself: it never builds a Python ``int`` beyond 64 bits
  (so there is no quadratic big-integer conversion). Longer integer literals become floats, as
  ``JSON.parse`` does in JavaScript, and literals beyond the float range (about 309 digits) are
  refused.
- Invalid UTF-8 and lone surrogates (``"\\ud800"``) are refused.

:func:`loads` raises only :class:`~sockjet.errors.InvalidPacket`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from sockjet.errors import InvalidPacket

__all__ = ["DUMPS_OPTIONS", "MAX_DEPTH", "depth_within", "dumps", "loads"]

MAX_DEPTH: Final = 128
"""Most arrays/objects one decoded document may nest (the Socket.IO args array counts as one)."""

DUMPS_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
"""orjson options for every encode: non-``str`` dict keys (ints...) become strings, as in JS."""

# A document nesting d containers is at least 2*d characters long ("[[]]"), so anything this
# short cannot be too deep and skips even the bracket count.
_SHORT: Final = 2 * MAX_DEPTH


def dumps(obj: Any) -> str:
    """Encode ``obj`` as compact JSON text.

    Raises :class:`TypeError` (``orjson.JSONEncodeError``) for values JSON cannot carry: bytes,
    integers beyond 64 bits, unsupported objects, nesting deeper than orjson's limit.
    """
    return orjson.dumps(obj, option=DUMPS_OPTIONS).decode()


def loads(data: str | bytes) -> Any:
    """Decode one JSON document, refusing invalid, too deep or out-of-range input.

    Raises :class:`~sockjet.errors.InvalidPacket` and nothing else.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidPacket(f"invalid JSON: {exc}") from None
    if len(data) > _SHORT:
        if isinstance(data, str):
            opening = data.count("[") + data.count("{")
        else:
            opening = data.count(b"[") + data.count(b"{")
        # Brackets inside strings only make this an overestimate: the walk then decides.
        if opening > MAX_DEPTH and not _depth_ok(value):
            raise InvalidPacket(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests at most ``limit`` lists/dicts (a scalar nests none)."""
    t = type(value)
    if t is list:
        children = value
    elif t is dict:
        children = value.values()
    else:
        return True
    if limit <= 0:
        return False
    for child in children:
        ct = type(child)
        if (ct is list or ct is dict) and not depth_within(child, limit - 1):
            return False
    return True


def _depth_ok(value: Any) -> bool:
    try:
        return depth_within(value)
    except RecursionError:  # only when the caller's own stack is already nearly exhausted
        return False
