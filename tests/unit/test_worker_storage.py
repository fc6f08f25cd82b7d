"""worker.storage without a server: key naming, metadata headers, error classification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import urllib3
from minio.error import S3Error, ServerError

from core.errors import AtelierError, PermanentError, RetryableError
from worker.storage import image_key, job_prefix, metadata_headers, storage_errors

JOB = "3f2a9c0d4b5e6f708192a3b4c5d6e7f8"


def s3_error(code: str) -> S3Error:
    return S3Error(None, code, f"{code} happened", "/bucket/key", "req-1", "host-1")  # type: ignore[arg-type]


def test_keys_are_a_function_of_job_variant_and_format() -> None:
    assert image_key("listing", JOB, 0, "png") == f"listing/{JOB}/0.png"
    assert image_key("tryon", JOB, 7, "jpeg") == f"tryon/{JOB}/7.jpg"
    assert image_key("listing", JOB, 3, "webp") == image_key("listing", JOB, 3, "webp")
    assert job_prefix("tryon", JOB) == f"tryon/{JOB}/"


@pytest.mark.parametrize("job_id", ["", "../etc", "a/b", "a..b", " x"])
def test_unsafe_job_ids_never_reach_a_key(job_id: str) -> None:
    with pytest.raises(ValueError, match="not safe"):
        image_key("listing", job_id, 0, "png")


def test_unknown_kinds_and_bad_variants_are_refused() -> None:
    with pytest.raises(ValueError):
        image_key("thumbnails", JOB, 0, "png")
    with pytest.raises(ValueError, match="variant"):
        image_key("listing", JOB, -1, "png")
    with pytest.raises(ValueError, match="variant"):
        image_key("listing", JOB, True, "png")


def test_metadata_becomes_ascii_header_values() -> None:
    headers = metadata_headers(
        {"job_id": JOB, "Model": "product_cgan", "seed": 42, "attributes": {"colour": "navy", "fit": "évasé"}}
    )
    assert headers == {
        "job-id": JOB,
        "model": "product_cgan",
        "seed": "42",
        "attributes": '{"colour":"navy","fit":"\\u00e9vas\\u00e9"}',
    }
    assert all(v.isascii() for v in headers.values())
    with pytest.raises(ValueError, match="metadata key"):
        metadata_headers({"bad key!": "x"})


def test_metadata_headers_for_a_put_are_named_as_the_sdk_sends_them_and_ints_stay_json() -> None:
    headers = metadata_headers(
        {"Job_Id": JOB, "seed": 42, "gate_tries": 1, "passed": True}, prefix="x-amz-meta-"
    )
    assert headers == {
        "x-amz-meta-job-id": JOB,
        "x-amz-meta-seed": "42",
        "x-amz-meta-gate-tries": "1",
        "x-amz-meta-passed": "true",  # a bool is JSON, not Python's "True"
    }
    with pytest.raises(ValueError, match="metadata key"):
        metadata_headers({"bad key!": "x"}, prefix="x-amz-meta-")


@pytest.mark.parametrize(
    ("raised", "kind", "code"),
    [
        (s3_error("NoSuchKey"), PermanentError, "object_not_found"),
        (s3_error("SignatureDoesNotMatch"), PermanentError, "storage_rejected"),
        (s3_error("AccessDenied"), PermanentError, "storage_rejected"),
        (s3_error("SlowDown"), RetryableError, "storage_unavailable"),
        (s3_error("InternalError"), RetryableError, "storage_unavailable"),
        (ServerError("503 from the gateway", 503), RetryableError, "storage_unavailable"),
        (urllib3.exceptions.MaxRetryError(None, "/", None), RetryableError, "storage_unavailable"),  # type: ignore[arg-type]
        (ConnectionRefusedError(111, "refused"), RetryableError, "storage_unavailable"),
    ],
)
def test_storage_failures_are_typed(raised: Exception, kind: type[AtelierError], code: str) -> None:
    with pytest.raises(kind) as caught, storage_errors("put listing/x/0.png"):
        raise raised
    assert caught.value.code == code
    assert "put listing/x/0.png" in caught.value.message


def test_presigned_links_name_the_public_endpoint_without_a_network_call() -> None:
    from core.worker_settings import WorkerSettings
    from worker.storage import ImageStore

    values: dict[str, object] = {
        "_env_file": None,
        "s3_endpoint": "s3.internal:9000",
        "s3_public_endpoint": "https://images.example.com",
        "s3_secret_key": "secret",
        "presign_expiry_s": 600,
    }
    store = ImageStore(WorkerSettings(**values))  # type: ignore[arg-type]
    url, expires_at = store.presigned_url(f"listing/{JOB}/0.png")
    assert url.startswith(f"https://images.example.com/atelier-images/listing/{JOB}/0.png?")
    assert "X-Amz-Expires=600" in url and "secret" not in url
    assert 599 <= (expires_at - datetime.now(UTC)).total_seconds() <= 600
