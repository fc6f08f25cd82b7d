"""Can the services a deployment needs be reached? The checks behind ``atelier ops health``
and each worker's ``/readyz`` (``worker.health``).

Each check opens (and closes) one connection and raises when the service is not usable:
the broker, Redis, Triton (server and models ready) and S3 (the bucket reachable). Checks run
concurrently (:func:`run_checks`), each within ``health_timeout_s``.

Triton is asked over HTTP (``/v2/health/ready``, ``/v2/models/<name>/ready`` at
``triton_http_url``), never gRPC: these checks run in a worker's main process, which forks
the pool processes, and a gRPC channel opened before a fork can hang the children's own.
The S3 check needs the ``minio`` SDK (the ``ops`` or ``worker`` extra); without it, that check
fails with an ``ImportError`` whose message names the extra to install (``ops.extras``).
"""

from __future__ import annotations

import functools
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu import Connection

from core.settings import ServiceSettings
from core.topology import broker_ssl
from ops.extras import require
from serving_contract.tensors import MODELS

#: the optional SDK each check needs beyond the base install (``ops.extras``), by check name
CHECK_SDKS: dict[str, str] = {"s3": "minio"}
#: Triton's default HTTP port, used when ``triton_http_url`` is empty
TRITON_HTTP_PORT = 8000
#: a check: returns what it saw (shown as the detail), raises when the service is not usable
Probe = Callable[[], str]


@dataclass(frozen=True)
class Check:
    """One service's verdict: ``ok``, what was seen or what failed, and how long it took."""

    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class Report:
    """Every check of one round; ``ok`` when all passed."""

    checks: tuple[Check, ...]
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": {
                c.name: {"ok": c.ok, "detail": c.detail, "seconds": round(c.seconds, 3)} for c in self.checks
            },
        }


# --- the services ---


def check_broker(settings: ServiceSettings) -> str:
    """Open (and close) a connection to the broker."""
    url = settings.broker_url.get_secret_value()
    with Connection(url, connect_timeout=settings.health_timeout_s, ssl=broker_ssl(settings)) as connection:
        connection.connect()
        return f"connected ({connection.transport_cls})"


def check_redis(settings: ServiceSettings) -> str:
    """``PING`` the status store."""
    timeout = settings.health_timeout_s
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return "PONG"


def triton_http_base(settings: ServiceSettings) -> str:
    """``http[s]://host:port`` of Triton's HTTP endpoint (``triton_http_url``, else the gRPC
    host on port 8000)."""
    scheme = "https" if settings.triton_ssl else "http"
    address = settings.triton_http_url
    if not address:
        host = settings.triton_grpc_url.rsplit(":", 1)[0]
        address = f"{host}:{TRITON_HTTP_PORT}"
    return address if "://" in address else f"{scheme}://{address}"


def triton_opener(settings: ServiceSettings) -> urllib.request.OpenerDirector:
    """urllib, not httpx: a probe every few seconds must not log a line per request; no proxy
    from the environment; TLS (and mutual TLS) from the Triton settings."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if settings.triton_ssl:
        cafile = os.fspath(settings.triton_root_certificates) if settings.triton_root_certificates else None
        context = ssl.create_default_context(cafile=cafile)
        if settings.triton_certificate_chain and settings.triton_private_key:
            context.load_cert_chain(settings.triton_certificate_chain, settings.triton_private_key)
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def check_triton(settings: ServiceSettings, models: Sequence[str] | None = None) -> str:
    """Triton's server is ready and so is each model (default: every model of the serving contract)."""
    names = list(models) if models is not None else [spec.name for spec in MODELS]
    base = triton_http_base(settings)
    opener = triton_opener(settings)

    def ready(path: str) -> bool:
        try:
            with opener.open(f"{base}{path}", timeout=settings.health_timeout_s) as response:
                return int(response.status) == 200
        except urllib.error.HTTPError:  # 4xx/5xx: not ready
            return False

    try:
        if not ready("/v2/health/ready"):
            raise RuntimeError(f"{base}: the server is not ready")
        not_ready = [name for name in names if not ready(f"/v2/models/{name}/ready")]
    except (OSError, ValueError) as error:  # URLError, timeouts, refused connections
        raise RuntimeError(f"{base}: {error}") from error
    if not_ready:
        raise RuntimeError(f"{base}: model not ready: {', '.join(not_ready)}")
    return f"{base}: server and {', '.join(names)} ready"


def check_s3(settings: ServiceSettings) -> str:
    """The image bucket answers (one request, no retry). A missing bucket still passes: the
    worker creates it on first use."""
    require_sdks(["s3"])
    import urllib3  # comes with minio
    from minio import Minio

    timeout = settings.health_timeout_s
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=str(settings.s3_ca_cert) if settings.s3_ca_cert else None,
    )
    try:
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        exists = client.bucket_exists(settings.s3_bucket)
    finally:
        http.clear()
    state = "reachable" if exists else "not created yet (made on first use)"
    return f"bucket {settings.s3_bucket} {state}"


#: every check ``atelier ops health`` runs, by name
SERVICE_CHECKS: dict[str, Callable[[ServiceSettings], str]] = {
    "broker": check_broker,
    "redis": check_redis,
    "triton": check_triton,
    "s3": check_s3,
}


# --- running them ---


def run_checks(probes: Mapping[str, Probe]) -> Report:
    """Run every probe at once (each bounds its own time) and collect the verdicts."""

    def timed(name: str, probe: Probe) -> Check:
        started = time.monotonic()
        try:
            detail, ok = probe(), True
        except Exception as error:
            detail, ok = f"{type(error).__name__}: {error}"[:300], False
        return Check(name, ok, detail, time.monotonic() - started)

    if not probes:
        return Report(())
    with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="atelier-health") as pool:
        futures = [pool.submit(timed, name, probe) for name, probe in probes.items()]
        return Report(tuple(future.result() for future in futures))


def require_sdks(names: Sequence[str] | None = None) -> None:
    """Raise ``ImportError`` naming the extra if a check (default: every one) lacks its SDK."""
    for name in names if names is not None else list(SERVICE_CHECKS):
        if name in CHECK_SDKS:
            require(CHECK_SDKS[name], needed_for=f"the {name} check")


def service_probes(settings: ServiceSettings, names: Sequence[str] | None = None) -> dict[str, Probe]:
    """``SERVICE_CHECKS`` (or the ones named) bound to ``settings``."""
    chosen = names if names is not None else list(SERVICE_CHECKS)
    return {name: functools.partial(SERVICE_CHECKS[name], settings) for name in chosen}
