"""sinergi-client: the typed Python client of the Sinergi API.

::

    from sinergi_client import Sinergi

    with Sinergi("https://sinergi.example", client_id, client_secret) as client:
        result = client.returnees.push(records, idempotency_key="manifest-2025-06-12:1")
        for referral in client.referrals.list(role="received", status="requested"):
            client.referrals.receive(referral)          # sends If-Match: the referral's ETag
        raw = client.referrals.with_raw_response.get(referral.id)
        raw.etag, raw.request_id, raw.parse()
"""

from sinergi_client._base_client import NOT_GIVEN, APIResponse, AsyncPage, AsyncPager, Page, RequestOptions, SyncPage
from sinergi_client._client import AsyncSinergi, Sinergi
from sinergi_client._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RateLimitError,
    SinergiError,
    TokenError,
    UnprocessableEntityError,
    WebhookVerificationError,
)
from sinergi_client._version import __version__
from sinergi_client.webhook import Webhook

__all__ = [
    "NOT_GIVEN", "APIConnectionError", "APIError", "APIResponse", "APIStatusError", "APITimeoutError",
    "AsyncPage", "AsyncPager", "AsyncSinergi", "AuthenticationError", "BadRequestError", "ConflictError",
    "InternalServerError", "NotFoundError", "OutcomeUnknownError", "Page", "PayloadTooLargeError",
    "PermissionDeniedError", "PreconditionFailedError", "PreconditionRequiredError", "RateLimitError",
    "RequestOptions", "Sinergi", "SinergiError", "SyncPage", "TokenError", "UnprocessableEntityError", "Webhook",
    "WebhookVerificationError", "__version__",
]
