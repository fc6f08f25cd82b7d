"""One way to assemble a running stack: servers, a private namespace, a callback receiver, workers.

:class:`Stack` is what the demo, both benchmark rigs and the integration tests start. On entry
it starts, from the calling thread (a child is SIGTERMed when the thread that started it exits,
see ``embedded.process``): a private Redis if asked, a SeaweedFS S3 server and Triton (launched
together, then each waited for), the worker settings of a private namespace
(``embedded.namespace``), the manifests of its model repository's versions registered in that
namespace (``core.model_registry``: requests are checked against the version they run on), the
callback receiver, then the worker pools, each waited for until it consumes. On exit, also after
an error half-way, it stops everything it started, in reverse, and removes its namespace. A part
handed in instead of started (an ``S3Server``, a ``CallbackReceiver``, a Triton URL) is used and
left running: the benchmarks share one Triton, S3 server and receiver between many stacks.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from pydantic import SecretStr

from core.model_registry import ModelRegistry, register_repository
from core.settings import AtelierSettings
from core.worker_settings import WorkerSettings, new_webhook_secret
from embedded.namespace import delete_keys, delete_topology, namespace
from embedded.process import HOST, ROOT, ChildServer, free_port
from embedded.receiver import CallbackReceiver, Received
from embedded.redis import RedisServer
from embedded.s3 import S3Server
from embedded.services import ApiServer, SweeperProcess
from embedded.triton import DEFAULT_REPOSITORY, TritonServer
from embedded.workers import WORKER_APP, CeleryWorker
from producer.client import Producer

#: worker role -> the settings field naming its queue
QUEUE_FIELDS = {"listing": "listing_queue", "tryon": "tryon_queue", "callbacks": "callback_queue"}
#: a client's deadline for one Triton call (longer than the default: stacks share busy machines)
TRITON_TIMEOUT_S = 60.0
#: how often the stack's producer reads a watched job's record
WATCH_POLL_INTERVAL_S = 0.2
#: variables every worker process gets unless its pool says otherwise: one torch thread per
#: process, as pools of several processes share the machine's cores
WORKER_ENV = {"OMP_NUM_THREADS": "1"}
#: broker URL schemes whose queues live on a broker outside the stack (deleted on exit)
SHARED_BROKER_SCHEMES = ("amqp", "pyamqp")


@dataclass(frozen=True)
class Pool:
    """One ``celery worker`` process (a pool of ``concurrency`` processes) a stack starts.

    ``role`` names it: its node name, its log (``workdir/logs/worker-<role>.log``) and its key in
    ``Stack.workers``. Keyword-only: ``queues`` (roles whose queues it consumes, among
    ``listing``, ``tryon``, ``callbacks``; default its own ``role``), ``concurrency`` (default 1),
    ``app`` (default ``worker.app``), ``env`` (more variables, over ``WORKER_ENV``),
    ``settings`` (values for this worker only, e.g. its metrics port), ``nice`` (default 0),
    ``loglevel`` (default ``INFO``), ``source`` (the source tree it runs from, default this
    checkout: ``bench.perf --before`` runs an earlier commit's worker).
    """

    role: str
    _: KW_ONLY
    queues: tuple[str, ...] = ()
    concurrency: int = 1
    app: str = WORKER_APP
    env: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    nice: int = 0
    loglevel: str = "INFO"
    source: Path | None = None


class Stack:
    """A running stack; a context manager. Parameters, all keyword-only:

    - ``tag`` (required): names the namespace (``atelier-<tag>-<hex>``) and the bucket
      (``atelier-<tag>``)
    - ``workdir`` (required): logs (``workdir/logs``), S3 data, the ``filesystem://`` broker's folder
    - ``triton_repository``: start Triton serving this model repository; or ``triton_grpc_url``:
      use that running Triton; neither: the settings' Triton as configured
    - ``s3``: ``True`` (default) starts a private SeaweedFS server; an ``S3Server`` is used as it
      is; ``False``: none
    - ``redis``: ``"shared"`` (default, ``ATELIER_REDIS_URL``) or ``"private"`` (a server of its own)
    - ``broker_url``: default the shared broker (``ATELIER_BROKER_URL``); ``filesystem://`` keeps
      the messages in ``workdir/broker``
    - ``receiver``: ``True`` (default) starts a callback receiver (on a fixed port, so it can be
      stopped and started again at the same URL) that verifies with the settings' secrets; a
      ``CallbackReceiver`` is used, and the settings sign with its secrets; ``False``: none
    - ``answer``: the started receiver's status code for a verified POST (default 204)
    - ``workers``: the pools started on entry (more with :meth:`start_workers`)
    - ``settings``: more worker settings values, over the stack's own
    - ``model_repository``: whose versions' manifests are registered on entry (default
      ``triton_repository``, else the committed ``triton_models/``)

    Once entered: ``settings``, ``redis``, ``s3``, ``triton`` (``None`` where not started here),
    ``receiver``, ``workers`` (role -> ``CeleryWorker``), ``producer`` (opened on first use);
    ``sweeper`` and ``api`` once :meth:`start_sweeper` and :meth:`start_api` started them
    (stopped on exit before the workers, in reverse order of starting).
    """

    settings: WorkerSettings

    def __init__(
        self,
        *,
        tag: str,
        workdir: Path,
        triton_repository: Path | None = None,
        triton_grpc_url: str | None = None,
        s3: bool | S3Server = True,
        redis: Literal["shared", "private"] = "shared",
        broker_url: str | None = None,
        receiver: bool | CallbackReceiver = True,
        answer: Callable[[Received], int] | None = None,
        workers: Sequence[Pool] = (),
        settings: Mapping[str, Any] | None = None,
        model_repository: Path | None = None,
    ) -> None:
        if triton_repository is not None and triton_grpc_url is not None:
            raise ValueError("give triton_repository (start one) or triton_grpc_url (use one), not both")
        self.tag = tag
        self.workdir = Path(workdir)
        self.logs = self.workdir / "logs"
        self._triton_repository = triton_repository
        self._triton_grpc_url = triton_grpc_url
        self._s3 = s3
        self._redis = redis
        self._broker_url = broker_url
        self._receiver = receiver
        self._answer = answer
        self._initial_pools = list(workers)
        self._overrides = dict(settings or {})
        self._model_repository = model_repository or triton_repository or DEFAULT_REPOSITORY
        self.redis: RedisServer | None = None
        self.s3: S3Server | None = s3 if isinstance(s3, S3Server) else None
        self.triton: TritonServer | None = None
        self.receiver: CallbackReceiver | None = receiver if isinstance(receiver, CallbackReceiver) else None
        self.workers: dict[str, CeleryWorker] = {}
        self.sweeper: SweeperProcess | None = None
        self.api: ApiServer | None = None
        self._pools: dict[str, Pool] = {}
        self._incarnations: dict[str, int] = {}
        self._exit = contextlib.ExitStack()

    # --- lifecycle ---

    def __enter__(self) -> Self:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._start_servers()
            self.settings = self._build_settings()
            self._exit.callback(self._remove_namespace)
            self._register_versions()
            self._start_receiver()
            self._exit.callback(self._stop_workers)
            if self._initial_pools:
                self.start_workers(*self._initial_pools)
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._exit.close()

    def _start_servers(self) -> None:
        """Launch Redis, S3 and Triton as asked, then wait for each (they start side by side)."""
        servers: list[ChildServer] = []
        if self._redis == "private":
            self.redis = RedisServer(state_dir=self.workdir, log_path=self.logs / "redis.log")
            servers.append(self.redis)
        if self._s3 is True:
            self.s3 = S3Server(
                access_key=f"atelier-{self.tag}",
                secret_key=secrets.token_urlsafe(24),
                data_dir=self.workdir / "s3",
                state_dir=self.workdir,
                log_path=self.logs / "s3.log",
            )
            servers.append(self.s3)
        if self._triton_repository is not None:
            self.triton = TritonServer(
                self._triton_repository, state_dir=self.workdir, log_path=self.logs / "tritonserver.log"
            )
            servers.append(self.triton)
        for server in servers:
            self._exit.callback(server.stop)  # registered first: a failed launch stops it too
            server.launch()
        for server in servers:
            server.wait_ready()

    def _build_settings(self) -> WorkerSettings:
        shared = AtelierSettings()
        values: dict[str, Any] = {
            **namespace(self.tag),
            "broker_url": self._broker_url or shared.broker_url,
            "broker_data_dir": self.workdir / "broker",
            "redis_url": self.redis.url if self.redis is not None else shared.redis_url,
            "callback_secret": new_webhook_secret(),
        }
        if self.triton is not None:
            values |= {"triton_grpc_url": self.triton.grpc_url, "triton_http_url": self.triton.http_url}
        elif self._triton_grpc_url is not None:
            values["triton_grpc_url"] = self._triton_grpc_url
        if self.triton is not None or self._triton_grpc_url is not None:
            values["triton_timeout_s"] = TRITON_TIMEOUT_S
        if self.s3 is not None:
            values |= {
                "s3_endpoint": self.s3.endpoint,
                "s3_access_key": self.s3.access_key,
                "s3_secret_key": self.s3.secret_key,
                "s3_bucket": f"atelier-{self.tag}",
            }
        if self._receiver is not False:  # callbacks go to 127.0.0.1 over plain HTTP
            values |= {"callback_allow_http": True, "callback_allowed_hosts": [HOST]}
        if self.receiver is not None:  # a receiver handed in: sign with what it verifies
            values |= receiver_secrets(self.receiver)
        return WorkerSettings(_env_file=None, **{**values, **self._overrides})  # type: ignore[call-arg]

    def _register_versions(self) -> None:
        """Register the model repository's versions in the stack's namespace, as an operator does
        with ``atelier ops register-versions`` (in the namespace's Redis keys, removed on exit)."""
        registry = ModelRegistry.from_settings(self.settings)
        try:
            register_repository(registry, self._model_repository)
        finally:
            registry.close()

    def _start_receiver(self) -> None:
        if self._receiver is not True:
            return
        settings = self.settings
        receiver = CallbackReceiver(
            secrets={name: settings.signing_secrets(name) for name in settings.callback_secrets},
            default_secret=settings.callback_secret.get_secret_value() if settings.callback_secret else None,
            answer=self._answer,
            port=free_port(),
        )
        self.receiver = self._exit.enter_context(receiver)

    def _remove_namespace(self) -> None:
        """Delete the stack's queues (on a broker outside the stack) and Redis keys (shared Redis)."""
        if self.settings.broker_url.get_secret_value().startswith(SHARED_BROKER_SCHEMES):
            delete_topology(self.settings)
        if self.redis is None:
            delete_keys(self.settings)

    # --- workers ---

    def start_workers(self, *pools: Pool) -> None:
        """Start ``pools`` (all launched, then each waited for until it consumes)."""
        launched = [self._launch(pool) for pool in pools]
        for worker in launched:
            worker.wait_ready()

    def restart_worker(self, role: str, *, env: Mapping[str, str] | None = None) -> CeleryWorker:
        """Stop ``role``'s worker (warm shutdown; a killed one is reaped) and start a new one, with
        ``env`` over its pool's from now on; wait until it consumes."""
        self.workers[role].stop()
        pool = self._pools[role]
        if env:
            pool = replace(pool, env={**pool.env, **env})
        return self._launch(pool).wait_ready()

    def stop_worker(self, role: str) -> None:
        """Stop ``role``'s worker (warm shutdown: its running task finishes first)."""
        self.workers[role].stop()

    def _launch(self, pool: Pool) -> CeleryWorker:
        running = self.workers.get(pool.role)
        if running is not None and running.is_alive():
            raise ValueError(f"a worker {pool.role!r} is running already")
        settings = self.settings.model_copy(update=dict(pool.settings)) if pool.settings else self.settings
        n = self._incarnations[pool.role] = self._incarnations.get(pool.role, 0) + 1
        suffix = "" if n == 1 else f"-{n}"
        worker = CeleryWorker(
            settings=settings,
            queues=queue_names(settings, pool.queues or (pool.role,)),
            name=f"{pool.role}{suffix}-{self.settings.exchange}",
            log_path=self.logs / f"worker-{pool.role}{suffix}.log",
            concurrency=pool.concurrency,
            loglevel=pool.loglevel,
            env={**WORKER_ENV, **pool.env},
            app=pool.app,
            nice=pool.nice,
            source=pool.source or ROOT,
        )
        self.workers[pool.role] = worker
        self._pools[pool.role] = pool
        return worker.launch()

    def _stop_workers(self) -> None:
        """Stop every worker, each even if stopping another failed."""
        with contextlib.ExitStack() as stops:
            for worker in self.workers.values():
                stops.callback(worker.stop)

    # --- sweeper and API ---

    def start_sweeper(self) -> SweeperProcess:
        """Start ``python -m worker.sweeper`` on the stack's settings; wait until it serves /metrics."""
        sweeper = SweeperProcess(settings=self.settings, log_path=self.logs / "sweeper.log")
        self._exit.callback(sweeper.stop)
        self.sweeper = sweeper.start()
        return sweeper

    def start_api(
        self, *, database_url: str, key_pepper: SecretStr | str, port: int | None = None
    ) -> ApiServer:
        """Start ``atelier api serve`` on the stack's settings with its key store at ``database_url``
        (``port``: default a free one); wait until ``/readyz`` answers 200."""
        api = ApiServer(
            settings=self.settings,
            log_path=self.logs / "api.log",
            database_url=database_url,
            key_pepper=key_pepper,
            port=port,
        )
        self._exit.callback(api.stop)
        self.api = api.start()
        return api

    # --- clients ---

    @cached_property
    def producer(self) -> Producer:
        """A producer on the stack's settings (opened on first use, closed on exit)."""
        return self._exit.enter_context(Producer(self.settings, watch_poll_interval_s=WATCH_POLL_INTERVAL_S))


def queue_names(settings: AtelierSettings, roles: Sequence[str]) -> list[str]:
    """The queue each role (``listing``, ``tryon``, ``callbacks``) consumes under ``settings``."""
    unknown = [role for role in roles if role not in QUEUE_FIELDS]
    if unknown:
        raise ValueError(f"no queue for {unknown}: queues are named by role, one of {sorted(QUEUE_FIELDS)}")
    return [str(getattr(settings, QUEUE_FIELDS[role])) for role in roles]


def receiver_secrets(receiver: CallbackReceiver) -> dict[str, Any]:
    """Settings values that sign callbacks with the secrets ``receiver`` verifies."""
    values: dict[str, Any] = {
        "callback_secrets": {
            requester: [found] if isinstance(found, str) else list(found)
            for requester, found in receiver.secrets.items()
        }
    }
    if receiver.default_secret:
        values["callback_secret"] = receiver.default_secret
    return values
