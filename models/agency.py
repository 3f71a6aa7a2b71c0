"""Agencies and their API clients."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column, utcnow
from models.columns import str_enum


class AgencyKind(StrEnum):
    migrant_protection = "migrant_protection"  # BP3MI
    police = "police"
    women_child_protection = "women_child_protection"  # DP3A / DPPPA
    social_services = "social_services"  # Dinas Sosial
    task_force = "task_force"  # Gugus Tugas TPPO: oversight of its jurisdiction
    inspectorate = "inspectorate"
    health = "health"
    operator = "operator"
    other = "other"


OVERSIGHT_KINDS = frozenset({AgencyKind.task_force})


class Agency(SQLModel, table=True):
    __tablename__ = "agency"

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    kind: AgencyKind = Field(sa_type=str_enum(AgencyKind, 32))
    jurisdiction: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    # its officers must sign in to the console with a second factor (TOTP)
    requires_totp: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


class ApiClient(SQLModel, table=True):
    __tablename__ = "api_client"

    client_id: str = Field(primary_key=True, max_length=64)
    agency_code: str = Field(foreign_key="agency.code", index=True, max_length=64)
    name: str = Field(default="", max_length=200)
    scopes: str = Field(max_length=1000)  # space-separated allowed scopes
    secret_hash: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())
