"""Output links signed afresh on every read.

A job record keeps each image's bucket and key; the link stored at job end expires (after
``presign_expiry_s``), and a caller holds no S3 credentials to sign another. So every
``GET /v1/jobs/{id}`` signs a new GET link with the API's own S3 credentials
(``core.settings.ServiceSettings``: ``s3_*``, ``presign_expiry_s``). Signing is local (HMAC):
no request reaches S3. The API never imports the worker, so this is its own small signer over
the same ``minio`` SDK and settings the worker's storage uses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from minio import Minio

from core.contracts.jobs import StoredImage
from core.jobs import utcnow
from core.settings import ServiceSettings


class Presigner(Protocol):
    """Signs a GET link to one stored object."""

    def sign(self, image: StoredImage) -> StoredImage:
        """``image`` with a fresh ``url`` and ``url_expires_at``."""
        ...


class S3Presigner:
    """Presigns with ``minio`` (no network: the region is given, so no bucket-location lookup).

    Links name ``s3_public_endpoint`` when set (requesters reach S3 by another address than the
    API does), else ``s3_endpoint``; they last ``presign_expiry_s``. The SDK client is made on
    the first signature, so an API without S3 credentials still serves jobs that have no outputs.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._expiry = timedelta(seconds=settings.presign_expiry_s)
        self._client: Minio | None = None

    def _minio(self) -> Minio:
        if self._client is not None:
            return self._client
        settings = self.settings
        endpoint, secure = settings.s3_endpoint, settings.s3_secure
        if settings.s3_public_endpoint:
            public = settings.s3_public_endpoint
            parts = urlsplit(public if "://" in public else f"{'https' if secure else 'http'}://{public}")
            endpoint, secure = parts.netloc, parts.scheme == "https"
        self._client = Minio(
            endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=secure,
            region=settings.s3_region,
        )
        return self._client

    def sign(self, image: StoredImage) -> StoredImage:
        now: datetime = utcnow()
        url = self._minio().presigned_get_object(
            image.bucket, image.key, expires=self._expiry, request_date=now
        )
        return image.model_copy(update={"url": url, "url_expires_at": now + self._expiry})
