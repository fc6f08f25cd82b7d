"""The security headers of every page: what a page may load, and who may frame it.

A page holds a key and writes server messages into itself, so it runs under a strict Content
Security Policy: scripts and stylesheets from this origin only (no inline script at all; one
``<style>`` block per page carries the response's nonce), requests (``fetch``) to this origin
only, images from this origin and from where output links point (``s3_public_endpoint``, else
``s3_endpoint``: the presigned links of ``api.presign``), no framing, no ``<base>``, forms
posted nowhere. No ``Referer`` leaves the page, so a signed image link is not told where the
shopper was.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from core.settings import ServiceSettings


def new_nonce() -> str:
    """A fresh CSP nonce for one response (128 random bits)."""
    return secrets.token_urlsafe(16)


def image_origin(settings: ServiceSettings) -> str:
    """The origin output links name, as ``api.presign.S3Presigner`` signs them."""
    public = settings.s3_public_endpoint
    scheme = "https" if settings.s3_secure else "http"
    if public:
        parts = urlsplit(public if "://" in public else f"{scheme}://{public}")
        return f"{parts.scheme}://{parts.netloc}"
    return f"{scheme}://{settings.s3_endpoint}"


def page_headers(settings: ServiceSettings, nonce: str) -> dict[str, str]:
    """The headers every page answer carries (``nonce``: the one its ``<style>`` block names)."""
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            f"img-src 'self' data: {image_origin(settings)}",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
