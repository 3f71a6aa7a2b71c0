"""Replies of ``/v1/stats``: counts only, never a record or a personal field."""

from __future__ import annotations

from pydantic import BaseModel, Field

Cell = str | int | bool | None


class StatsReply(BaseModel):
    group_by: list[str] = Field(description="the dimensions of each row, in the order asked")
    threshold: int = Field(description="cells with a true count from 1 to threshold - 1 are suppressed")
    rounding_base: int = Field(
        description="every published count is a multiple of it: the true count rounded up or down, at random "
        "but the same for the same cell in every reply (a cell key), so that no suppressed count can be "
        "recovered by subtraction; the configured suppression threshold"
    )
    rows: list[dict[str, Cell]] = Field(
        description="one row per combination of the dimensions that has data: the dimension values, "
        "`count` (rounded; null when suppressed) and `suppressed`; referral rows also carry `overdue` (rounded "
        "on its own, never above `count`)"
    )
    total: int | None = Field(
        description="the count of all records, rounded as a cell of its own (rows need not add up to it); "
        "null when it is itself under the threshold"
    )
