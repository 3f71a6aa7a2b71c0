"""QR codes drawn on the server as inline SVG (``segno``, pure Python): the TOTP secret's
``otpauth://`` URI for an authenticator app to scan, with no script and nothing from elsewhere."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import segno
from markupsafe import Markup


def svg(data: str, title: str) -> Markup:
    """``data`` as an inline ``<svg>`` (black on white, its quiet zone included), titled ``title``."""
    code = segno.make(data, error="m")
    return Markup(code.svg_inline(scale=5, dark="#000", light="#fff", title=title, svgclass="qr"))


def grouped(secret: str) -> str:
    """A base32 secret in groups of four, as a person types it (apps ignore the spaces)."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def otpauth_secret(uri: str) -> str:
    """The secret of an ``otpauth://`` URI."""
    return parse_qs(urlsplit(uri).query).get("secret", [""])[0]
