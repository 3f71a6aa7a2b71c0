from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class OfficerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "petugas@dp3a.bengkayangkab.go.id", "name": "Petugas DP3A Bengkayang",
        "scopes": ["notices:read", "notices:ack"]}]})

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=20)
    password: str | None = Field(default=None, min_length=12, max_length=200,
                                 description="omit to have one generated (returned once)")


class OfficerCreated(BaseModel):
    id: uuid.UUID
    agency: str
    email: str
    scopes: list[str]
    password: str | None = Field(description="the generated password, in this reply only (null if one was given)")
    totp_uri: str | None = Field(description="otpauth:// URI of the second factor, in this reply only "
                                             "(null unless the agency requires one)")
