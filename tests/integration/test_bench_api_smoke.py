"""The API load benchmark (``python -m bench.api``) at its tiny size, end to end on the real Redis,
RabbitMQ and PostgreSQL: every point runs, in both modes, with no error, and the results, the
report and the figure have what they should. No timing is asserted (the machine is shared; the
figures are for docs/benchmarks/api.md, not for CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from amqp.exceptions import ChannelError
from kombu import Connection
from sqlalchemy import create_engine, make_url, text

from api.keys.settings import DatabaseSettings
from bench.api.__main__ import LEVELS, run
from core.settings import AtelierSettings
from tests.integration.services import require_services

pytestmark = pytest.mark.slow


def bench_databases() -> set[str]:
    server = make_url(DatabaseSettings().database_url.get_secret_value())
    engine = create_engine(server.set(database="postgres"))
    try:
        with engine.connect() as connection:
            query = text("SELECT datname FROM pg_database WHERE datname LIKE 'atelier_bench_%'")
            rows = connection.execute(query)
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def test_api_benchmark_runs_tiny_and_cleans_up(tmp_path: Path) -> None:
    require_services()
    settings = AtelierSettings()
    databases_before = bench_databases()

    results = run("tiny", results_path=tmp_path / "results.json", docs=tmp_path / "docs")

    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert [(p["concurrency"], p["mode"]) for p in results["points"]] == [
        (level, mode) for level in LEVELS for mode in ("direct", "api")
    ]
    for point in results["points"]:
        assert point["errors"] == 0, point["first_error"]
        assert point["submits"] > 0 and point["submits_per_s"] > 0
        latency = point["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
        cpu = point["cpu_ms_per_submit"]  # the clients' process, and the API's where there is one
        assert cpu["client"] > 0
        assert (cpu["server"] is not None and cpu["server"] > 0) == (point["mode"] == "api")
    assert [row["concurrency"] for row in results["ratios"]] == list(LEVELS)
    for row in results["ratios"]:
        assert row["p99_ratio"] > 0 and isinstance(row["meets_target"], bool)
    report = (tmp_path / "docs" / "api.md").read_text()
    assert "API p99 / direct p99" in report and "## Target" in report and "## Where the CPU goes" in report
    assert (tmp_path / "docs" / "api.png").stat().st_size > 0

    # nothing is left behind: the namespace's Redis keys and queues, the key store's database
    space = results["namespace"]
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        assert not list(client.scan_iter(match=f"{space}:*"))
    finally:
        client.close()
    assert bench_databases() == databases_before
    with Connection(settings.broker_url.get_secret_value()) as connection:
        channel = connection.channel()
        with pytest.raises(ChannelError, match="NOT_FOUND"):
            channel.queue_declare(queue=f"{space}.listing", passive=True)
