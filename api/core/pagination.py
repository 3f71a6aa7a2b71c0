"""Keyset pagination: one page type, one way to page a statement, one cursor format.

A list is read in the order of its keyset, columns that together are unique (``seq``;
``(updated_at, id)``...). A page is ``WHERE (k1, k2) > (:v1, :v2) ORDER BY k1, k2 LIMIT n + 1``
(``<`` and descending for lists that run newest first), and the extra row only says that
there is a next page. Unlike OFFSET, a row written or deleted meanwhile never shifts a page,
and the hundredth page costs what the first does. :func:`paged` builds the statement,
:func:`cut` turns its rows into a :class:`Slice`, :func:`read_page` does both.

Services and repositories take and return positions (a tuple of the keyset's values, domain
values); routes turn them into cursors and back with the list's :class:`Keyset`. A cursor is
opaque and sealed: the position is encrypted and authenticated (AES-256-GCM) with a key
derived from the data key, the list's name bound as associated data. So a cursor reveals
nothing (not a feed position, not when a record was last changed), cannot be forged or
edited, and a cursor of one list, or of one sort order, does not open on another. Whatever
does not open, or opens to values that are not of the list's types, is the same 400 problem:
a cursor is never a 500, and its reply says nothing about why it was refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar, overload

import orjson
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core.errors import BadRequest
from api.core.settings import Settings

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

BAD_CURSOR = "The cursor is not valid; use next_cursor from a previous reply"

Position = tuple[Any, ...]
T = TypeVar("T")

_VERSION = b"sinergi/cursor/v1"
_NONCE = 12
_TAG = 16
_MAX_CURSOR = 512  # characters; the longest keyset (a time and an id) seals to about 130
_URLSAFE = re.compile(r"^[A-Za-z0-9_-]+$")
_INT64 = 2**63
_TYPES = (str, int, datetime, uuid.UUID)


# --- the page type ---------------------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    """Every list reply: a page of items, and the cursor of the next page (``null`` after the
    last). Resources subclass it with their item type (``class NoticeList(Page[NoticeSummary])``)
    so the OpenAPI document keeps one named schema per list."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # both are always sent

    items: list[T]
    next_cursor: str | None = None


# --- paging a statement ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """A page of rows and where the next one starts (``None``: this was the last)."""

    items: list[T]
    next: Position | None


def paged(
    stmt: Any,
    keys: Sequence[Any],
    after: Position | None,
    limit: int,
    *,
    descending: bool = False,
) -> Any:
    """``stmt`` after the position ``after`` in the order of ``keys`` (columns that together
    are unique), ordered by them and limited to ``limit + 1`` rows."""
    if after is not None:
        if len(after) != len(keys):  # pragma: no cover - a Keyset only opens to its own length
            raise ValueError("the position does not match the keyset")
        values = [sa.literal(v, type_=k.type) for k, v in zip(keys, after, strict=True)]
        left: Any = keys[0] if len(keys) == 1 else sa.tuple_(*keys)
        right: Any = values[0] if len(keys) == 1 else sa.tuple_(*values)
        stmt = stmt.where(left < right if descending else left > right)
    return stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit + 1)


def position_of(row: Any, keys: Sequence[Any]) -> Position:
    """The keyset values of ``row`` (an ORM object or a result row with the keys' names)."""
    return tuple(getattr(row, k.key) for k in keys)


def cut(rows: Sequence[T], keys: Sequence[Any], limit: int) -> Slice[T]:
    """The rows of a :func:`paged` statement as a page: at most ``limit`` of them, and the
    position of the last one when the extra row says there are more."""
    items = list(rows[:limit])
    more = len(rows) > limit and items
    return Slice(items, position_of(items[-1], keys) if more else None)


async def read_page(
    session: AsyncSession,
    stmt: SelectOfScalar[T],
    keys: Sequence[Any],
    after: Position | None,
    limit: int,
    *,
    descending: bool = False,
) -> Slice[T]:
    """Run :func:`paged` ``stmt`` and :func:`cut` its rows."""
    rows = (await session.exec(paged(stmt, keys, after, limit, descending=descending))).all()
    return cut(rows, keys, limit)


# --- cursors ---------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _aead(data_key: bytes) -> AESGCM:
    """The cursor cipher of this data key: its own key (HKDF), so a cursor is never a
    ciphertext of the data key itself."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_VERSION).derive(data_key)
    return AESGCM(key)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a keyset time must be aware")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a keyset value cannot be a {type(value).__name__}")
    return value


def _decode(kind: type, value: Any) -> Any:
    """``value`` as ``kind``, or :class:`ValueError`."""
    if kind is int:
        if type(value) is not int or not -_INT64 <= value < _INT64:
            raise ValueError
        return value
    if not isinstance(value, str):
        raise ValueError
    if kind is str:
        return value
    if kind is uuid.UUID:
        return uuid.UUID(hex=value)
    at = datetime.fromisoformat(value)  # kind is datetime
    if at.tzinfo is None:
        raise ValueError
    return at.astimezone(UTC)  # an OverflowError near the ends of the calendar: caught by open()


@dataclass(frozen=True, slots=True)
class Keyset:
    """A list's cursor format: its name (bound into each cursor, so a cursor opens only on
    the list, and the sort order, that made it) and the types of its position's values (of
    ``str``, ``int``, ``datetime`` (aware), ``uuid.UUID``)."""

    kind: str
    types: tuple[type, ...]

    def __post_init__(self) -> None:
        unknown = [t.__name__ for t in self.types if t not in _TYPES]
        if unknown or not self.types:
            raise TypeError(f"a keyset is of {', '.join(t.__name__ for t in _TYPES)}, not {unknown}")

    def _aad(self) -> bytes:
        return _VERSION + b"/" + self.kind.encode()

    @overload
    def seal(self, settings: Settings, position: Position) -> str: ...
    @overload
    def seal(self, settings: Settings, position: None) -> None: ...
    @overload
    def seal(self, settings: Settings, position: Position | None) -> str | None: ...

    def seal(self, settings: Settings, position: Position | None) -> str | None:
        """The cursor of ``position`` (``None`` for none: the last page)."""
        if position is None:
            return None
        if len(position) != len(self.types):
            raise ValueError(f"a {self.kind} position has {len(self.types)} values")
        plain = orjson.dumps([_encode(v) for v in position])
        nonce = os.urandom(_NONCE)
        sealed = nonce + _aead(settings.data_key_bytes).encrypt(nonce, plain, self._aad())
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, settings: Settings, cursor: str | None) -> Position | None:
        """The position in ``cursor`` (``None`` for none: the first page), or a 400
        :class:`~api.core.errors.BadRequest` when it is not a cursor of this list."""
        if cursor is None or cursor == "":
            return None
        try:
            if len(cursor) > _MAX_CURSOR or not _URLSAFE.match(cursor):
                raise ValueError
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            if len(raw) < _NONCE + _TAG:
                raise ValueError
            plain = _aead(settings.data_key_bytes).decrypt(raw[:_NONCE], raw[_NONCE:], self._aad())
            values = orjson.loads(plain)
            if not isinstance(values, list) or len(values) != len(self.types):
                raise ValueError
            return tuple(_decode(kind, v) for kind, v in zip(self.types, values, strict=True))
        except (ValueError, TypeError, OverflowError, InvalidTag, binascii.Error, orjson.JSONDecodeError):
            raise BadRequest(BAD_CURSOR) from None
