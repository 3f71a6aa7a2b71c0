"""Webhook subscriptions, their deliveries and the delivery log.

A subscription (``webhook``) belongs to the API client that made it (and its agency); it
keeps a position in its feed (``feed_key``, ``position``: the event positions of
:mod:`models.event`, in commit order). The worker turns the events after the position that the
owner may see into deliveries (``webhook_delivery``, one per event, its id the
``webhook-id`` header of every attempt), and each attempt into a row of the delivery log
(``webhook_attempt``, unique per delivery and attempt number).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import new_id, ts_column, utcnow
from models.columns import str_enum


class WebhookStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class DeliveryStatus(StrEnum):
    pending = "pending"  # waiting for its next attempt (or its first)
    succeeded = "succeeded"  # a 2xx came back
    failed = "failed"  # given up: 410 Gone, or its retry budget spent


class Webhook(SQLModel, table=True):
    __tablename__ = "webhook"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agency_code: str = Field(foreign_key="agency.code", index=True, max_length=64)
    client_id: str = Field(foreign_key="api_client.client_id", index=True, max_length=64)
    url: str = Field(max_length=2000)
    event_types: str = Field(default="", max_length=2000)  # space-separated; empty: every type
    description: str = Field(default="", max_length=200)
    scopes: str = Field(max_length=1000)  # the scopes of the token that subscribed (capped by the client's)
    secret_enc: str = Field(max_length=200)  # whsec_..., encrypted (api.core.crypto)
    feed_key: str = Field(max_length=16)
    position: int = Field(default=0, sa_type=sa.BigInteger)  # events up to here are turned into deliveries
    status: WebhookStatus = Field(default=WebhookStatus.active, sa_type=str_enum(WebhookStatus, 16), index=True)
    disabled_reason: str | None = Field(default=None, max_length=200)
    disabled_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    lease_until: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))  # fan-out claim
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("webhook_id", "event_id"),
        sa.Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_delivery_webhook_id_created_at", "webhook_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)  # the webhook-id of every attempt
    webhook_id: uuid.UUID = Field(sa_column=sa.Column(
        sa.Uuid(), sa.ForeignKey("webhook.id", ondelete="CASCADE"), nullable=False))
    event_id: uuid.UUID
    event_pos: int = Field(sa_type=sa.BigInteger)
    event_type: str = Field(max_length=64)
    body: str  # the JSON posted, the same on every attempt
    status: DeliveryStatus = Field(default=DeliveryStatus.pending, sa_type=str_enum(DeliveryStatus, 16))
    attempts: int = 0  # attempts made (claimed) so far
    last_attempt: int = 0  # the attempt number after which it is given up (the retry budget)
    next_attempt_at: datetime = Field(sa_column=ts_column(nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
    lease_owner: str | None = Field(default=None, max_length=64)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=ts_column(nullable=False))
    delivered_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))


class WebhookAttempt(SQLModel, table=True):
    """One attempt of a delivery: the delivery log."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (sa.UniqueConstraint("delivery_id", "attempt"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    delivery_id: uuid.UUID = Field(sa_column=sa.Column(
        sa.Uuid(), sa.ForeignKey("webhook_delivery.id", ondelete="CASCADE"), nullable=False))
    attempt: int
    worker: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=ts_column(nullable=False))
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = Field(default=None, max_length=300)
    next_attempt_at: datetime | None = Field(default=None, sa_column=ts_column(nullable=True))
