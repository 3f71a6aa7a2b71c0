from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from api.core.unit import unit_of
from api.http import auth, idempotency
from api.http.params import DEFAULT_LIMIT, Cursor, Limit
from api.http.session import SessionDep
from api.webhooks import service
from api.webhooks.schemas import (
    DELIVERIES,
    EVENT_DATA,
    WEBHOOKS,
    AttemptPublic,
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
    event_body_model,
)
from models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _location(webhook_id: object) -> str:
    return f"/v1/webhooks/{webhook_id}"


def _public(w: Webhook) -> WebhookPublic:
    return WebhookPublic(id=w.id, agency=w.agency_code, url=w.url, event_types=w.event_types.split(),
                         description=w.description, status=w.status, disabled_reason=w.disabled_reason,
                         disabled_at=w.disabled_at, created_at=w.created_at, updated_at=w.updated_at)


def _delivery(d: WebhookDelivery, log: list[WebhookAttempt]) -> DeliveryPublic:
    return DeliveryPublic(
        id=str(d.id), event_id=d.event_id, event_type=d.event_type, status=d.status, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == DeliveryStatus.pending else None,
        last_status_code=d.last_status_code, last_error=d.last_error, created_at=d.created_at,
        delivered_at=d.delivered_at,
        log=[AttemptPublic(attempt=a.attempt, started_at=a.started_at, status_code=a.status_code,
                           latency_ms=a.latency_ms, error=a.error, next_attempt_at=a.next_attempt_at) for a in log],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated, name="webhook.create",
             dependencies=[idempotency.KEY],
             responses={422: {"description": "the URL is not http(s), or resolves to an address that is not public"}})
async def create_webhook(
    caller: auth.WebhooksManage, session: SessionDep, request: Request, response: Response, body: WebhookCreate
) -> WebhookCreated | Response:
    """Subscribe a URL to event types. The subscription receives, signed (Standard Webhooks
    v1), the events committed from now on that the caller would see on its feed
    (``GET /v1/events``; subscribing needs ``events:read`` too). The reply shows the signing
    secret (``whsec_…``) once."""
    idem = await idempotency.begin(session, caller, request)
    if idem.replay is not None:
        return idem.replay
    webhook, secret = await service.create(session, caller, body)
    reply = WebhookCreated(**_public(webhook).model_dump(), secret=secret)
    idem.remember(session, status.HTTP_201_CREATED, reply.model_dump(mode="json"))
    response.headers["Location"] = _location(webhook.id)
    return reply


@router.get("", response_model=WebhookList, name="webhook.list")
async def list_webhooks(caller: auth.WebhooksManage, session: SessionDep, limit: Limit = DEFAULT_LIMIT,
                        cursor: Cursor = None) -> WebhookList:
    """The subscriptions of the caller's agency, newest first."""
    settings = unit_of(session).settings
    page = await service.list_webhooks(session, caller, after=WEBHOOKS.open(settings, cursor), limit=limit)
    return WebhookList(items=[_public(w) for w in page.items], next_cursor=WEBHOOKS.seal(settings, page.next))


@router.get("/{id}", response_model=WebhookPublic, name="webhook.get")
async def get_webhook(caller: auth.WebhooksManage, session: SessionDep, id: uuid.UUID) -> WebhookPublic:
    """One subscription of the caller's agency (its secret is never shown again)."""
    return _public(await service.get(session, caller, id))


@router.delete("/{id}", response_model=WebhookPublic, name="webhook.delete")
async def delete_webhook(caller: auth.WebhooksManage, session: SessionDep, id: uuid.UUID) -> WebhookPublic:
    """Unsubscribe: nothing more is posted, and the delivery log goes with it. Replies with
    the subscription as it was."""
    return _public(await service.delete(session, caller, id))


@router.post("/{id}/enable", response_model=WebhookPublic, name="webhook.enable")
async def enable_webhook(caller: auth.WebhooksManage, session: SessionDep, id: uuid.UUID) -> WebhookPublic:
    """Re-enable a subscription disabled after a ``410 Gone`` or a spent retry budget: its
    failed deliveries are tried again and what it missed meanwhile is delivered."""
    return _public(await service.enable(session, caller, id))


@router.get("/{id}/deliveries", response_model=DeliveryList, name="webhook.deliveries")
async def list_deliveries(
    caller: auth.WebhooksManage,
    session: SessionDep,
    id: uuid.UUID,
    status: DeliveryStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> DeliveryList:
    """The delivery log: the subscription's deliveries, newest first, each with every attempt
    (status code, latency, error, when it is tried next)."""
    settings = unit_of(session).settings
    page, log = await service.deliveries(session, caller, id, status=status, after=DELIVERIES.open(settings, cursor),
                                         limit=limit)
    return DeliveryList(items=[_delivery(d, log[d.id]) for d in page.items],
                        next_cursor=DELIVERIES.seal(settings, page.next))


@router.post("/{id}/deliveries/{delivery_id}/redeliver", status_code=status.HTTP_202_ACCEPTED,
             response_model=DeliveryPublic, name="webhook.redeliver")
async def redeliver(caller: auth.WebhooksManage, session: SessionDep, id: uuid.UUID,
                    delivery_id: uuid.UUID) -> DeliveryPublic:
    """Post a delivery again, with the same ``webhook-id`` and body and a fresh retry budget."""
    detail = await service.redeliver(session, caller, id, delivery_id)
    return _delivery(detail.delivery, detail.log)


# --- what a subscriber receives: the `webhooks` of the OpenAPI document -----------------------

events = APIRouter()

_HEADERS = (
    "Headers (Standard Webhooks v1): `webhook-id` (the delivery's id, the same on every retry: "
    "de-duplicate by it), `webhook-timestamp` (seconds since the epoch, of this attempt), "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\" "
    "keyed with the secret's bytes after `whsec_`>`). Answer 2xx to acknowledge; `410 Gone` disables "
    "the subscription; anything else (a redirect too: none is followed) is retried with growing backoff."
)


_HEADER_PARAMETERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "the delivery's id: the same on every retry of it; de-duplicate by it"},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "integer"},
     "description": "when this attempt was signed, in seconds since the epoch"},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "`v1,` and the base64 of HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`"},
]


def _document(event_type: str) -> None:
    model = event_body_model(event_type)
    _, summary = EVENT_DATA[event_type]

    async def receive(body: BaseModel) -> None:
        """documentation only"""

    receive.__annotations__ = {"body": model, "return": None}  # the annotations are strings (future import)

    receive.__doc__ = f"{summary[0].upper()}{summary[1:]}.\n\n{_HEADERS}"
    events.add_api_route(event_type, receive, methods=["POST"], name=f"event {event_type}", summary=event_type,
                         operation_id=f"event_{event_type.replace('.', '_')}",
                         status_code=200, response_class=Response, openapi_extra={"parameters": _HEADER_PARAMETERS},
                         responses={200: {"description": "received (any 2xx)"},
                                    410: {"description": "gone: disables the subscription"},
                                    "default": {"description": "anything else (a redirect too): tried again later"}})


for _event_type in EVENT_DATA:
    _document(_event_type)
