"""Bench only: the service with auditing switched off, the baseline of the audited-read row.

``python -m uvicorn bench.noaudit:app`` serves exactly ``api.main:app``, except that a unit of
work records no audit entry (:meth:`api.core.unit.Unit.audit` does nothing), so a request's
transaction writes no audit subject and does not touch the chain's head; everything else
(token check, the readable-set query, the reply, the transaction itself) is the same. Never
part of the product: the service has no setting that turns its audit off.
"""

from api.core.unit import Unit


def _no_audit(self: Unit, *args: object, **kwargs: object) -> None:
    return None


Unit.audit = _no_audit  # type: ignore[method-assign]

from api.main import app  # noqa: E402

__all__ = ["app"]
