"""Errors, one class per way a call can fail.

::

    SinergiError
    ├── WebhookVerificationError       a webhook's signature or timestamp does not check out
    └── APIError                       a call failed; .request
        ├── APIConnectionError         the service could not be reached (or the reply was cut)
        │   └── APITimeoutError        no reply within the timeout
        ├── TokenError                 the token endpoint refused the client (RFC 6749 §5.2)
        └── APIStatusError             a problem+json reply; .status_code, .problem, .request_id
            ├── BadRequestError                 400
            ├── AuthenticationError             401
            ├── PermissionDeniedError           403
            ├── NotFoundError                   404
            ├── ConflictError                   409
            ├── PreconditionFailedError         412 (the ETag sent is stale: read it again)
            ├── PayloadTooLargeError            413
            ├── UnprocessableEntityError        422; .errors [{field, message}]
            ├── PreconditionRequiredError       428 (no If-Match was sent)
            ├── RateLimitError                  429; .retry_after
            └── InternalServerError             5xx
                └── OutcomeUnknownError         503 /problems/outcome-unknown
"""

from __future__ import annotations

from typing import Any

import httpx

from sinergi_client.models import FieldError, Problem

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "RateLimitError",
    "SinergiError",
    "TokenError",
    "UnprocessableEntityError",
    "WebhookVerificationError",
]


class SinergiError(Exception):
    pass


class WebhookVerificationError(SinergiError):
    pass


class APIError(SinergiError):
    def __init__(self, message: str, request: httpx.Request) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    def __init__(self, request: httpx.Request, message: str = "Connection error") -> None:
        super().__init__(message, request)


class APITimeoutError(APIConnectionError):
    def __init__(self, request: httpx.Request) -> None:
        super().__init__(request, "Request timed out")


class TokenError(APIError):
    """``POST /oauth/token`` refused: ``error`` is the RFC 6749 code (``invalid_client``,
    ``invalid_scope``, ...)."""

    def __init__(self, response: httpx.Response) -> None:
        body: dict[str, Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                body = parsed
        except ValueError:
            pass
        self.response = response
        self.status_code = response.status_code
        self.error: str = str(body.get("error") or f"http_{response.status_code}")
        self.error_description: str | None = body.get("error_description")
        text = f"{self.error}: {self.error_description}" if self.error_description else self.error
        super().__init__(text, response.request)


class APIStatusError(APIError):
    """A reply with a 4xx or 5xx status; the problem+json body is in :attr:`problem`."""

    def __init__(self, response: httpx.Response, problem: Problem) -> None:
        self.response = response
        self.status_code = response.status_code
        self.problem = problem
        self.request_id: str | None = response.headers.get("x-request-id")
        text = f"{response.status_code} {problem.title or response.reason_phrase}"
        if problem.detail:
            text += f": {problem.detail}"
        super().__init__(text, response.request)

    @property
    def type(self) -> str | None:
        return self.problem.type

    @property
    def title(self) -> str | None:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def body(self) -> dict[str, Any]:
        return self.problem.model_dump(exclude_none=True)


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class PreconditionFailedError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    @property
    def errors(self) -> list[FieldError]:
        return self.problem.errors or []


class PreconditionRequiredError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class InternalServerError(APIStatusError):
    pass


class OutcomeUnknownError(InternalServerError):
    """The server could not tell whether the change was committed: retry it only under the
    same ``Idempotency-Key`` (the client does so by itself)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    428: PreconditionRequiredError,
    429: RateLimitError,
}

OUTCOME_UNKNOWN = "/problems/outcome-unknown"


def parse_problem(response: httpx.Response) -> Problem:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        try:
            return Problem.model_validate(body)
        except ValueError:
            pass
    return Problem(status=response.status_code, title=response.reason_phrase, detail=response.text[:500] or None)


def is_outcome_unknown(problem: Problem) -> bool:
    return bool(problem.type and problem.type.endswith(OUTCOME_UNKNOWN))


def status_error(response: httpx.Response) -> APIStatusError:
    problem = parse_problem(response)
    if response.status_code >= 500:
        cls: type[APIStatusError] = OutcomeUnknownError if is_outcome_unknown(problem) else InternalServerError
    else:
        cls = _BY_STATUS.get(response.status_code, APIStatusError)
    return cls(response, problem)
