"""Removing a job's objects from S3, for ``DELETE /v1/tryons/{id}`` (erasure).

A job's images live under ``{kind}/{job_id}/`` in ``s3_bucket`` (the worker's key layout,
``worker.storage.image_key``). Erasure removes every object under that prefix, so an image a
failed or redelivered attempt stored without recording it goes too, and every image the record
names, wherever it is. The API never imports the worker, so this is its own small client over
the same ``minio`` SDK and ``s3_*`` settings (the internal ``s3_endpoint``, never the public one).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.error import MinioException, S3Error

from core.contracts.jobs import JobKind, StoredImage
from core.errors import ErrorCode, RetryableError
from core.settings import ServiceSettings


class StorageUnavailable(RetryableError):
    """S3 did not answer or refused a removal; nothing is reported erased."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORAGE_UNAVAILABLE, message)


class ObjectEraser(Protocol):
    """Removes a job's objects."""

    def erase_job_objects(self, kind: JobKind, job_id: str, images: Iterable[StoredImage]) -> int:
        """Remove the objects under the job's prefix and ``images``; how many were removed."""
        ...


class S3ObjectEraser:
    """Removes with ``minio`` on ``s3_endpoint``; the client is made on the first removal, so an
    API without S3 credentials still serves everything else.

    Parameters: ``settings`` (``s3_endpoint``, credentials, ``s3_bucket``, ``s3_secure``,
    ``s3_ca_cert``, ``s3_region``, ``s3_timeout_s``); keyword-only ``client``, a ``Minio`` to use.
    """

    def __init__(self, settings: ServiceSettings, *, client: Minio | None = None) -> None:
        self.settings = settings
        self._client = client

    def _minio(self) -> Minio:
        if self._client is None:
            s = self.settings
            http = urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=s.s3_timeout_s, read=s.s3_timeout_s),
                cert_reqs="CERT_REQUIRED",
                ca_certs=str(s.s3_ca_cert) if s.s3_ca_cert else None,
                retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            )
            self._client = Minio(
                s.s3_endpoint,
                access_key=s.s3_access_key,
                secret_key=s.s3_secret_key.get_secret_value(),
                secure=s.s3_secure,
                region=s.s3_region,
                http_client=http,
            )
        return self._client

    def erase_job_objects(self, kind: JobKind, job_id: str, images: Iterable[StoredImage]) -> int:
        client = self._minio()
        bucket = self.settings.s3_bucket
        found = {(image.bucket, image.key) for image in images}
        try:
            found |= {
                (bucket, str(item.object_name))
                for item in _listed(client, bucket, f"{kind.value}/{job_id}/")
                if item.object_name is not None
            }
            for object_bucket, key in sorted(found):
                client.remove_object(object_bucket, key)  # S3: removing a missing key succeeds
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as error:
            raise StorageUnavailable(f"could not remove the job's objects: {type(error).__name__}") from None
        return len(found)


def _listed(client: Minio, bucket: str, prefix: str) -> list[Object]:
    """Every object under ``prefix``; none when the bucket was never made (no job stored any)."""
    try:
        return list(client.list_objects(bucket, prefix=prefix, recursive=True))
    except S3Error as error:
        if error.code == "NoSuchBucket":
            return []
        raise
