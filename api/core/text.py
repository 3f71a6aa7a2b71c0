"""What text a caller may send, and how what it sends is kept in the audit chain.

Two rules, used by the HTTP layer (which refuses input) and by the audit chain (which records
it, however bad):

* **Acceptance** (:func:`fault`): no text a caller sends holds NUL or another control
  character (C0, DEL, C1) or a lone surrogate. JSON strings may hold tab, line feed and carriage
  return (notes have paragraphs); query values, path values, headers and form fields hold none.
  Every string is bounded: :data:`MAX_TEXT` characters, :data:`MAX_PATH_VALUE` for a path value
  (ids and codes). A schema's own ``max_length`` is stricter where it has one.
* **Recording** (:func:`bounded`, :func:`is_identifier`): what a caller claims (a client id it
  has not proven, the ids in the path, its own request id) enters an entry only bounded to a
  fixed small size, with control characters shown as ``\\uXXXX`` escapes, so the chain never
  grows by more than a few hundred bytes per request whatever was sent, and its append can never
  fail on a value the database refuses (PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import hashlib
import re

MAX_TEXT = 4096
"""Characters in any string a caller sends: a JSON string, a query value, a form value (a
signed checkpoint or a token, the longest legitimate values, are about 1,000)."""

MAX_PATH_VALUE = 128
"""Characters in a path value: the path holds ids (a UUID is 36) and codes (64 at most)."""

MAX_ID = 64
"""Characters of a claimed identifier kept in an audit entry (a client id, a path value)."""

MAX_DETAIL_TEXT = 256
"""Characters of any other text kept in an audit entry's detail (a filter, a reason)."""

MAX_DETAIL_ITEMS = 32
"""Items of a list or an object kept in an audit entry's detail."""

# C0 controls, DEL, C1 controls, and surrogates (only a lone one can be in a str; the database
# cannot encode it).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[!-~]+")  # printable ASCII, no space


def fault(value: str, *, limit: int = MAX_TEXT, multiline: bool = False) -> str | None:
    """Why ``value`` is not acceptable input, or ``None``. ``multiline`` admits tab, line feed
    and carriage return (JSON strings); everything else admits no control character at all."""
    if len(value) > limit:
        return f"at most {limit} characters"
    found = (_CONTROL_BUT_WHITESPACE if multiline else _CONTROL).search(value)
    if found is not None:
        return f"control character U+{ord(found.group()):04X} is not allowed"
    return None


def is_identifier(value: object, width: int) -> bool:
    """Whether ``value`` may stand in an indexed column of the chain as it is: printable ASCII
    without spaces, 1 to ``width`` characters (every id and code the service makes is)."""
    return isinstance(value, str) and 0 < len(value) <= width and _IDENTIFIER.fullmatch(value) is not None


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def bounded(value: str, limit: int) -> str:
    """``value`` as an audit entry keeps it: control characters and lone surrogates written as
    ``\\uXXXX``, and anything longer than ``limit`` cut there and marked with its full length
    and the start of its SHA-256 (two floods of the same value can still be told apart from
    two different ones)."""
    shown = _CONTROL.sub(_escape, value)
    if len(shown) <= limit:
        return shown
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{shown[:limit]}…[{len(value)} chars, sha256 {digest}]"
