"""Text that other agencies will read: no bidirectional controls.

A name, a summary or a note written by one agency is shown to others (in their systems, in
lists, in the audit trail). The Unicode bidirectional embedding, override and isolate
characters (U+202A–U+202E, U+2066–U+2069) make such text display in another order than it is
stored ("Trojan Source", CVE-2021-42574): ``"Siti \u202eanimA"`` shows as a different name, a
note can hide a word. They have no place in the names and short texts of this service, so they
are refused (422 naming the field), not stripped: the sender learns that its text was not what
it looked like.

:data:`SafeText` is the type for pydantic models (``full_name: SafeText = Field(...)``);
:func:`refuse_bidi` is the same check as a plain validator, for the SQLModel-based record
(``field_validator("full_name")(refuse_bidi)``) whose fields are declared in ``models``.
"""

from __future__ import annotations

from typing import Annotated, overload

from pydantic import AfterValidator

#: LRE RLE PDF LRO RLO, LRI RLI FSI PDI.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_MESSAGE = ("text may not contain bidirectional embedding, override or isolate characters "
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
        raise ValueError(_MESSAGE)
    return value


#: A name or short text shown to other agencies: a ``str`` without bidirectional controls.
SafeText = Annotated[str, AfterValidator(refuse_bidi)]
