from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.core.pagination import Keyset, Page
from api.core.text import SafeText

# What a password someone chooses must be (the console's forms, the API's create); a
# generated one is longer.
PASSWORD_MIN, PASSWORD_MAX = 12, 200


class OfficerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "email": "petugas@dp3a.bengkayangkab.go.id", "name": "Petugas DP3A Bengkayang",
        "scopes": ["notices:read", "notices:ack"]}]})

    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: SafeText = Field(default="", max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=20)
    password: str | None = Field(default=None, min_length=PASSWORD_MIN, max_length=PASSWORD_MAX,
                                 description="omit to have one generated (returned once)")


class OfficerCreated(BaseModel):
    id: uuid.UUID
    agency: str
    email: str
    scopes: list[str]
    password: str | None = Field(description="the generated password, in this reply only (null if one was given)")
    totp_uri: str | None = Field(description="otpauth:// URI of the second factor, in this reply only "
                                             "(null unless the agency requires one)")


class OfficerPublic(BaseModel):
    """An officer account as its managers see it: never a password hash or a second factor's secret."""

    id: uuid.UUID
    agency: str
    email: str
    name: str
    scopes: list[str]
    second_factor: bool = Field(description="a TOTP second factor is enrolled")
    second_factor_required: bool = Field(description="the agency requires a second factor (an officer without "
                                                     "one enrols it at the next sign-in)")
    password_must_change: bool = Field(description="the password was reset: the next sign-in asks for a new one")
    disabled: bool
    disabled_at: datetime | None
    locked_until: datetime | None = Field(description="locked after failed sign-ins until then (null: not locked)")
    last_signin_at: datetime | None
    created_at: datetime


class OfficerList(Page[OfficerPublic]):
    pass


OFFICERS = Keyset("officers", (str,))  # by e-mail address


class OfficerUpdate(BaseModel):
    """What a manager changes of an officer: any of these, at least one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "scopes": ["notices:read", "notices:ack", "referrals:read"], "name": "Petugas DP3A Bengkayang",
        "disabled": False}]})

    scopes: list[str] | None = Field(default=None, min_length=1, max_length=20,
                                     description="the officer's scopes: a subset of the agency's")
    name: SafeText | None = Field(default=None, max_length=200)
    disabled: bool | None = Field(default=None, description="true: no more sign-ins, and the officer's sessions "
                                                            "end at once; false: the account works again")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.scopes is None and self.name is None and self.disabled is None:
            raise ValueError("give at least one of scopes, name, disabled")
        return self


class PasswordReset(BaseModel):
    id: uuid.UUID
    email: str
    password: str = Field(description="a new one-time password, in this reply only; the officer chooses their "
                                      "own at the next sign-in")


class TotpReset(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enrol_at_sign_in": False}]})

    enrol_at_sign_in: bool = Field(default=False, description="false: a new secret now, its URI in the reply; "
                                   "true: the secret is removed and the officer enrols one of their own at the "
                                   "next sign-in (where the agency requires a second factor)")


class TotpIssued(BaseModel):
    id: uuid.UUID
    email: str
    totp_uri: str | None = Field(description="otpauth:// URI of the new secret, in this reply only (null when the "
                                             "officer enrols at the next sign-in)")


class PasswordChange(BaseModel):
    """An officer's own new password (the console's forms)."""

    new_password: str = Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)
    confirm: str = Field(max_length=PASSWORD_MAX)

    @model_validator(mode="after")
    def _same(self) -> Self:
        if self.new_password != self.confirm:
            raise ValueError("the two passwords differ")
        return self
