"""S3 through the ``minio`` SDK: one private bucket, deterministic keys, presigned links.

Keys are a function of the job and the variant (``image_key``), so a redelivered job writes
the same keys again and overwrites, never duplicates. Object metadata (``x-amz-meta-*``) says
which job, model, version, seed and attributes made each image. Failures leave as typed
errors: unreachable or 5xx -> ``RetryableError("storage_unavailable")``; a missing object ->
``PermanentError("object_not_found")``; refused credentials or requests ->
``PermanentError("storage_rejected")``.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from core.contracts.jobs import JobKind, StoredImage
from core.errors import ErrorCode, PermanentError, RetryableError
from core.worker_settings import WorkerSettings
from worker.encoding import Format, extension

#: S3 error codes worth retrying (the store is busy or restarting)
RETRYABLE_S3_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "OperationAborted"}
)
#: S3 error codes that mean the object is not there
MISSING_S3_CODES = frozenset({"NoSuchKey", "NoSuchObject"})
#: codes that mean the bucket already exists (a concurrent ``ensure_bucket`` won the race)
BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
#: retries inside one S3 call (urllib3), before the task's own retry policy takes over
HTTP_RETRIES = 2

#: what names an object's metadata among a request's headers
AMZ_META = "x-amz-meta-"

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def image_key(kind: JobKind | str, job_id: str, variant: int, fmt: Format) -> str:
    """``{kind}/{job_id}/{variant}.{ext}``, e.g. ``listing/3f2a.../0.png``: one key per image."""
    return f"{job_prefix(kind, job_id)}{_variant(variant)}.{extension(fmt)}"


def job_prefix(kind: JobKind | str, job_id: str) -> str:
    """``{kind}/{job_id}/``: every object of one job."""
    kind = JobKind(kind).value
    if not _SAFE_ID.match(job_id) or ".." in job_id:
        raise ValueError(f"job id {job_id!r} is not safe in an object key")
    return f"{kind}/{job_id}/"


def _variant(variant: int) -> int:
    if not isinstance(variant, int) or isinstance(variant, bool) or not 0 <= variant < 1000:
        raise ValueError(f"variant must be an int in [0, 1000), got {variant!r}")
    return variant


def metadata_headers(metadata: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """Metadata as ``x-amz-meta-*`` values: lower-case keys; non-ASCII or non-str values as JSON.

    HTTP headers carry ASCII only, so ``{"style": {"fit": "évasé"}}`` is stored as the JSON text
    ``{"fit":"\\u00e9vas\\u00e9"}``; read it back with ``json.loads``. ``prefix`` goes before
    each name (``put_image`` passes ``x-amz-meta-``, so the SDK passes them through unconverted).
    """
    headers: dict[str, str] = {}
    for key, value in metadata.items():
        name = prefix + _header_name(key)
        if isinstance(value, str) and value.isascii() and value.isprintable():
            headers[name] = value
        elif type(value) is int:  # what json.dumps writes for an int, without its encoder
            headers[name] = str(value)
        else:
            headers[name] = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return headers


@functools.lru_cache(maxsize=256)
def _header_name(key: str) -> str:
    """``key`` as a header name (``job_id`` -> ``job-id``); the same few keys come every time."""
    name = key.lower().replace("_", "-")
    if not _META_KEY.match(name):
        raise ValueError(f"metadata key {key!r} must be letters, digits, '-' or '_'")
    return name


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Map what the SDK and urllib3 raise inside the block to the worker's typed errors."""
    try:
        yield
    except S3Error as error:
        message = f"{what}: {error.code}: {error.message}"
        if error.code in MISSING_S3_CODES:
            raise PermanentError(ErrorCode.OBJECT_NOT_FOUND, message) from error
        if error.code in RETRYABLE_S3_CODES:
            raise RetryableError(ErrorCode.STORAGE_UNAVAILABLE, message) from error
        raise PermanentError(ErrorCode.STORAGE_REJECTED, message) from error
    except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, OSError) as error:
        raise RetryableError(
            ErrorCode.STORAGE_UNAVAILABLE, f"{what}: {type(error).__name__}: {error}"
        ) from error


class ImageStore:
    """The worker's one S3 bucket.

    Parameters: ``settings`` (endpoint, credentials, bucket, TLS, timeouts, link expiry);
    keyword-only ``client`` (default: a ``Minio`` built from settings; tests may pass their own).
    Presigned links are signed for ``s3_public_endpoint`` when set (no network call).
    """

    def __init__(self, settings: WorkerSettings, *, client: Minio | None = None) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.client = client or self._client(settings.s3_endpoint)
        public = settings.s3_public_endpoint
        if public and public != settings.s3_endpoint:
            parsed = urllib3.util.parse_url(public)
            secure = parsed.scheme == "https" if parsed.scheme else settings.s3_secure
            self._signer = self._client(parsed.netloc or public, secure=secure)
        else:
            self._signer = self.client

    def _client(self, endpoint: str, *, secure: bool | None = None) -> Minio:
        s = self.settings
        if not s.s3_secret_key.get_secret_value():
            raise ValueError("set ATELIER_S3_SECRET_KEY (and ATELIER_S3_ACCESS_KEY)")
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=s.s3_timeout_s, read=s.s3_timeout_s),
            retries=urllib3.Retry(
                total=HTTP_RETRIES, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(s.s3_ca_cert) if s.s3_ca_cert else None,
            maxsize=10,
        )
        return Minio(
            endpoint,
            access_key=s.s3_access_key,
            secret_key=s.s3_secret_key.get_secret_value(),
            secure=s.s3_secure if secure is None else secure,
            region=s.s3_region,
            http_client=http,
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if missing. New buckets are private: no policy is ever attached."""
        with storage_errors(f"bucket {self.bucket}"):
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket, location=self.settings.s3_region)
            except S3Error as error:
                if error.code not in BUCKET_EXISTS_CODES:
                    raise

    def put_image(
        self, key: str, data: bytes, content_type: str, metadata: Mapping[str, Any], *, variant: int
    ) -> StoredImage:
        """Write (or overwrite) ``key`` with its metadata; return it with a fresh presigned link."""
        # already named x-amz-meta-*: the SDK then sends them as they are, rather than guess
        # which are metadata, prefix and re-check each one (15 headers a listing image)
        headers: dict[str, str | list[str] | tuple[str]] = {**metadata_headers(metadata, prefix=AMZ_META)}
        with storage_errors(f"put {key}"):
            self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata=headers
            )
        url, expires_at = self.presigned_url(key)
        return StoredImage(
            variant=variant,
            bucket=self.bucket,
            key=key,
            content_type=content_type,
            url=url,
            url_expires_at=expires_at,
        )

    def presigned_url(self, key: str) -> tuple[str, datetime]:
        """A GET link for ``key`` and when it stops working (``presign_expiry_s`` from now)."""
        expiry = timedelta(seconds=self.settings.presign_expiry_s)
        now = datetime.now(UTC).replace(microsecond=0)
        with storage_errors(f"presign {key}"):
            url = self._signer.presigned_get_object(self.bucket, key, expires=expiry, request_date=now)
        return url, now + expiry

    def get_bytes(self, key: str) -> bytes:
        """The object's content; ``PermanentError("object_not_found")`` if there is none."""
        with storage_errors(f"get {key}"):
            response = self.client.get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

    def metadata(self, key: str) -> dict[str, str]:
        """The object's ``x-amz-meta-*`` values by lower-case name, plus ``content-type``."""
        with storage_errors(f"stat {key}"):
            stat = self.client.stat_object(self.bucket, key)
        found = {
            k.lower()[len(AMZ_META) :]: v
            for k, v in (stat.metadata or {}).items()
            if k.lower().startswith(AMZ_META)
        }
        found["content-type"] = stat.content_type or ""
        return found

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        with storage_errors(f"list {prefix}"):
            return sorted(
                str(o.object_name)
                for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name is not None
            )

    def remove_job_images(self, kind: JobKind | str, job_id: str) -> int:
        """Delete every object of the job (a canceled job keeps none); how many there were."""
        keys = self.list_keys(job_prefix(kind, job_id))
        if keys:
            with storage_errors(f"remove {job_prefix(kind, job_id)}"):
                errors = list(self.client.remove_objects(self.bucket, [DeleteObject(key) for key in keys]))
            if errors:
                raise RetryableError(ErrorCode.STORAGE_UNAVAILABLE, f"could not remove {errors[0].name}")
        return len(keys)

    def get_listing_image(self, job_id: str, variant: int) -> bytes:
        """The stored image of a listing job's variant (any format): a try-on's garment.

        ``PermanentError("garment_not_found")`` when that job stored no such variant.
        """
        prefix = f"{job_prefix(JobKind.LISTING, job_id)}{_variant(variant)}."
        keys = self.list_keys(prefix)
        if not keys:
            raise PermanentError(
                ErrorCode.GARMENT_NOT_FOUND, f"listing job {job_id} has no image for variant {variant}"
            )
        try:
            return self.get_bytes(keys[0])
        except PermanentError as error:
            raise PermanentError(ErrorCode.GARMENT_NOT_FOUND, error.message) from error
