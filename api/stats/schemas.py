"""Replies of ``/v1/stats``: counts only, never a record or a personal field."""

from __future__ import annotations

from pydantic import BaseModel, Field

Cell = str | int | bool | None


class StatsReply(BaseModel):
    group_by: list[str] = Field(description="the dimensions of each row, in the order asked")
    threshold: int = Field(description="cells with a count from 1 to threshold - 1 are suppressed")
    rows: list[dict[str, Cell]] = Field(
        description="one row per combination of the dimensions that has data: the dimension values, "
        "`count` (null when suppressed) and `suppressed`; referral rows also carry `overdue`"
    )
    total: int | None = Field(description="the sum of all cells; null when it is itself under the threshold")
