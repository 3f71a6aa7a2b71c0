"""Opaque keyset cursors: urlsafe base64 of a small JSON object."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from api.core.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except Exception:
        raise BadRequest("The cursor is not valid; use next_cursor from a previous reply") from None
    if not isinstance(data, dict):
        raise BadRequest("The cursor is not valid; use next_cursor from a previous reply")
    return data
