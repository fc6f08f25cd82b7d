"""TLS to the broker, S3 and Triton is a matter of settings; the clients take what they say."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from core.topology import broker_ssl, celery_config
from core.worker_settings import WorkerSettings
from worker.inference import InferenceClient
from worker.storage import ImageStore


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, s3_secret_key="s3-secret", **values)  # type: ignore[call-arg]


def test_plain_amqp_has_no_tls_and_amqps_always_checks_the_certificate_and_host() -> None:
    assert celery_config(settings())["broker_use_ssl"] is False
    system = broker_ssl(settings(broker_url="amqps://u:p@rabbit.internal:5671//"))
    assert system == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "rabbit.internal"}
    mutual = settings(
        broker_url="amqps://u:p@rabbit.internal:5671//",
        broker_ca_cert=Path("/etc/atelier/ca.pem"),
        broker_client_cert=Path("/etc/atelier/client.pem"),
        broker_client_key=Path("/etc/atelier/client.key"),
    )
    assert celery_config(mutual)["broker_use_ssl"] == {
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": "rabbit.internal",
        "ca_certs": "/etc/atelier/ca.pem",
        "certfile": "/etc/atelier/client.pem",
        "keyfile": "/etc/atelier/client.key",
    }


def test_s3_over_https_verifies_against_the_configured_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")  # only the path is read here
    store = ImageStore(settings(s3_endpoint="s3.internal:443", s3_secure=True, s3_ca_cert=ca))
    url, _ = store.presigned_url("listing/abc/0.png")
    assert url.startswith("https://s3.internal/")
    pool = store.client._http  # the urllib3 pool the SDK sends through
    assert pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
    assert pool.connection_pool_kw["ca_certs"] == str(ca)


def test_triton_grpc_over_tls_gets_the_certificates(monkeypatch: Any, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("worker.inference.grpcclient.InferenceServerClient", lambda **kw: seen.update(kw))
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "key", "chain")}
    InferenceClient(
        settings(
            triton_ssl=True,
            triton_root_certificates=files["ca"],
            triton_private_key=files["key"],
            triton_certificate_chain=files["chain"],
        )
    )._connect()
    assert seen == {
        "url": "127.0.0.1:8001",
        "ssl": True,
        "root_certificates": str(files["ca"]),
        "private_key": str(files["key"]),
        "certificate_chain": str(files["chain"]),
    }
