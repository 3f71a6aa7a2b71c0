"""The protocol ``sinergi serve`` runs uvicorn with: :class:`api.http.server.BoundedProtocol`
with its bounds from the settings. uvicorn imports it by name in each worker process, so the
bounds are read there, from the same environment as the application's settings."""

from __future__ import annotations

from typing import Any

from api.core.settings import Settings, get_settings
from api.http.server import BoundedProtocol, Bounds


def bounds_of(settings: Settings) -> Bounds:
    return Bounds(header_timeout=settings.header_timeout, max_header_bytes=settings.max_header_bytes,
                  max_concurrency=settings.max_concurrency)


class ServeProtocol(BoundedProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bounds = bounds_of(get_settings())  # type: ignore[misc]


PROTOCOL = f"{__name__}:{ServeProtocol.__name__}"
