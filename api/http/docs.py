"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their assets served by the service.

FastAPI's own pages load their scripts, styles, fonts and icon from CDNs, so on a machine
without internet (an agency's network, the operator's laptop in the field) they are blank.
Here the assets come from the ``fastapi-offline`` package (Swagger UI and ReDoc bundles, kept
up to date with their releases) and are served under :data:`ASSETS`; the pages name no other
host (no web fonts, no online validator badge, and ReDoc's attribution logo, which its bundle
loads from its CDN, pointed at the local icon).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
DOCS, REDOC, OAUTH2_REDIRECT = "/docs", "/redoc", "/docs/oauth2-redirect"


def asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


REDOC_JS = "redoc.standalone.js"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _redoc_script() -> bytes:
    """The packaged ReDoc bundle with its one remote image (the attribution logo) made local."""
    text = (asset_dir() / REDOC_JS).read_text("utf-8")
    return text.replace(_REDOC_LOGO, f"{ASSETS}/favicon.png").encode()


def install(app: FastAPI) -> None:
    """Add the two pages and their assets (the app is made with ``docs_url=None, redoc_url=None``)."""
    title = f"{app.title}: dokumentasi API"

    @app.get(f"{ASSETS}/{REDOC_JS}", include_in_schema=False, name="redoc_js")
    async def redoc_js() -> Response:  # before the mount, which serves the other assets as they are
        return Response(_redoc_script(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount(ASSETS, StaticFiles(directory=asset_dir()), name="docs_assets")

    @app.get(DOCS, include_in_schema=False, name="swagger_ui_html")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False, name="swagger_ui_redirect")
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False, name="redoc_html")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{ASSETS}/{REDOC_JS}",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
