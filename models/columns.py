"""Column types for enum values: the model attribute is the enum, the database keeps the string.

A column whose value is one of a :class:`~enum.StrEnum` is declared with :func:`str_enum`: its
attribute reads back as the enum member, and the database column stays what it was, a
``VARCHAR(n)`` holding the member's value (``"in-progress"``, not the name ``in_progress``),
without a CHECK constraint or a native enum type. So adding a member needs no migration, and
rows written by the batch path's raw statements (plain strings) read back as members.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa


def _values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


def str_enum(enum: type[StrEnum], length: int) -> sa.Enum:
    """``VARCHAR(length)`` holding ``enum``'s values, read back as its members."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=_values,
        validate_strings=False,
    )


class EnumList(sa.TypeDecorator[list[Any]]):
    """A JSON list of one enum's values (``["threats", "debt_bondage"]``), read back as members."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: list[Any] | None, dialect: sa.Dialect) -> Any:
        return None if value is None else [str(v) for v in value]

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else [self.enum(v) for v in value]
