from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.core.pagination import Keyset, Page
from api.core.params import Region
from api.core.scopes import Scope
from api.core.text import SafeText
from models import AgencyKind


class AgencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "code": "POLRES-BENGKAYANG", "name": "Polres Bengkayang", "kind": "police", "jurisdiction": "61.07"}]})

    code: str = Field(min_length=2, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9_-]*$",
                      examples=["POLRES-BENGKAYANG"])
    name: SafeText = Field(min_length=2, max_length=200)
    kind: AgencyKind = AgencyKind.other
    jurisdiction: Region = Field(examples=["61.07"], description="Kemendagri region code (GET /v1/regions)")


class AgencyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    kind: AgencyKind
    jurisdiction: str
    created_at: datetime


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "scopes": ["referrals:read", "referrals:respond"], "name": "case management system"}]})

    scopes: list[str] = Field(min_length=1, examples=[["referrals:read", "referrals:respond"]])
    name: SafeText = Field(default="", max_length=200)

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return v.split() if isinstance(v, str) else v

    @field_validator("scopes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        known = {s.value for s in Scope}
        unknown = [s for s in v if s not in known]
        if unknown:
            raise ValueError(f"unknown scopes: {' '.join(unknown)}")
        return sorted(set(v))


class ClientCreated(BaseModel):
    client_id: str
    client_secret: str = Field(description="shown once; only its hash is stored")
    agency: str
    scopes: list[str]


class AgencyList(Page[AgencyPublic]):
    pass


AGENCIES = Keyset("agencies", (str,))  # by code
