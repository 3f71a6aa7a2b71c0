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
* **Display** (:data:`SafeText`, :func:`refuse_bidi`): names and short texts shown to other
  agencies hold no bidirectional embedding, override or isolate character (below).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, overload

from pydantic import AfterValidator

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

# --- display: no bidirectional controls ---------------------------------------------------
#
# Text that other agencies will read: no bidirectional controls.
#
# A name, a summary or a note written by one agency is shown to others (in their systems, in
# lists, in the audit trail). The Unicode bidirectional embedding, override and isolate
# characters (U+202A–U+202E, U+2066–U+2069) make such text display in another order than it is
# stored ("Trojan Source", CVE-2021-42574): ``"Siti \u202eanimA"`` shows as a different name, a
# note can hide a word. They have no place in the names and short texts of this service, so they
# are refused (422 naming the field), not stripped: the sender learns that its text was not what
# it looked like.
#
# :data:`SafeText` is the type for pydantic models (``full_name: SafeText = Field(...)``);
# :func:`refuse_bidi` is the same check as a plain validator, for the SQLModel-based record
# (``field_validator("full_name")(refuse_bidi)``) whose fields are declared in ``models``.

#: LRE RLE PDF LRO RLO, LRI RLI FSI PDI.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_BIDI_MESSAGE = ("text may not contain bidirectional embedding, override or isolate characters "
            "(U+202A to U+202E, U+2066 to U+2069): they make it display otherwise than it is")


def has_bidi_controls(value: str) -> bool:
    return not value.isascii() and not BIDI_CONTROLS.isdisjoint(value)


@overload
def refuse_bidi(value: str) -> str: ...
@overload
def refuse_bidi(value: None) -> None: ...
def refuse_bidi(value: str | None) -> str | None:
    """``value`` unchanged, or :class:`ValueError` when it holds a bidirectional control
    character (``None`` passes: for optional fields)."""
    if isinstance(value, str) and has_bidi_controls(value):
        raise ValueError(_BIDI_MESSAGE)
    return value


#: A name or short text shown to other agencies: a ``str`` without bidirectional controls.
SafeText = Annotated[str, AfterValidator(refuse_bidi)]
