"""``atelier ops`` parsing and exit codes (typer's CliRunner, with the services faked), and the
default model version: how it is stored, cached, refused and applied to a request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ops.model_versions as model_versions
import worker.model_versions as worker_versions
from core.errors import VersionRefused
from core.jobs import StoreUnavailable
from core.model_versions import DefaultVersions, parse_version
from core.topology import CALLBACK_TASK, LISTING_TASK, TRYON_TASK
from core.worker_settings import WorkerSettings
from ops import checks
from ops.broker import QueueStats, WorkerStats
from ops.checks import Check, Report
from ops.model_versions import ModelState, set_default_version
from producer.cli import app
from worker.model_versions import DefaultVersionCache, with_default_version

runner = CliRunner()


def settings(**values: Any) -> WorkerSettings:
    return WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]


# --- the commands ---


def test_ops_queues_lists_every_queue_and_marks_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = [
        QueueStats("listing", "atelier.listing", 7, 1),
        QueueStats("dead_letter", "atelier.dead_letter", None, None),
    ]
    monkeypatch.setattr("ops.cli.queue_stats", lambda s: stats)
    result = runner.invoke(app, ["ops", "queues"])
    assert result.exit_code == 0 and "atelier.listing" in result.stdout and "not declared" in result.stdout
    rows = json.loads(runner.invoke(app, ["ops", "queues", "--json"]).stdout)
    assert rows[0] == {
        "role": "listing",
        "name": "atelier.listing",
        "messages": 7,
        "consumers": 1,
        "exists": True,
    }
    assert rows[1]["exists"] is False


def test_ops_workers_passes_timeout_and_all(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake(s: Any, *, timeout_s: float, every: bool) -> list[WorkerStats]:
        seen.update(timeout_s=timeout_s, every=every)
        return [WorkerStats("listing@h", ["atelier.listing"], ["atelier.listing.generate[j1]"], 2, "prefork")]

    monkeypatch.setattr("ops.cli.worker_stats", fake)
    result = runner.invoke(app, ["ops", "workers", "--all", "--timeout", "2.5"])
    assert result.exit_code == 0, result.output
    assert seen == {"timeout_s": 2.5, "every": True}
    assert "listing@h" in result.stdout and "1 workers answered" in result.stdout
    rows = json.loads(runner.invoke(app, ["ops", "workers", "--json"]).stdout)
    assert "[j1]" in result.stdout  # a task id in brackets is shown, not read as markup
    assert rows[0]["active"] == ["atelier.listing.generate[j1]"] and rows[0]["concurrency"] == 2
    assert seen["every"] is False


def test_ops_health_exits_1_when_a_service_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    report = Report((Check("redis", True, "PONG", 0.01), Check("triton", False, "ConnectError", 0.1)))
    monkeypatch.setattr("ops.checks.run_checks", lambda probes: report)
    result = runner.invoke(app, ["ops", "health"])
    assert result.exit_code == 1 and "down" in result.stdout and "ConnectError" in result.stdout
    as_json = runner.invoke(app, ["ops", "health", "--json"])
    assert json.loads(as_json.stdout)["ok"] is False and as_json.exit_code == 1
    monkeypatch.setattr("ops.checks.run_checks", lambda probes: Report((report.checks[0],)))
    assert runner.invoke(app, ["ops", "health"]).exit_code == 0


def test_ops_health_without_the_s3_sdk_says_in_one_line_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "minio", None)  # as on a base install: `import minio` fails
    monkeypatch.setattr("ops.checks.run_checks", lambda probes: pytest.fail("checked without the SDK"))
    result = runner.invoke(app, ["ops", "health"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "atelier ops health: the s3 check needs the minio package: pip install 'atelier[ops]'"
    ]


def test_the_s3_probe_without_its_sdk_fails_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minio", None)
    with pytest.raises(
        ImportError, match=r"^the s3 check needs the minio package: pip install 'atelier\[ops\]'$"
    ):
        checks.check_s3(settings())
    report = checks.run_checks(checks.service_probes(settings(), ["s3"]))
    assert not report.ok and "pip install 'atelier[ops]'" in report.checks[0].detail


def test_the_operator_commands_run_on_a_base_install() -> None:
    """No SDK of an extra is imported to start `atelier`, nor to run `ops` commands but health."""
    extras_only = ["minio", "tritonclient", "httpx", "tenacity", "prometheus_client", "structlog", "torch"]
    code = (
        "import sys\n"
        f"for name in {extras_only!r}: sys.modules[name] = None\n"
        "from typer.testing import CliRunner\n"
        "from producer.cli import app\n"
        "for args in (['ops', '--help'], ['dlq', '--help'], ['ops', 'health']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    print(result.exit_code, repr(result.exception), result.stderr.strip())\n"
    )
    root = Path(__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    hint = "atelier ops health: the s3 check needs the minio package: pip install 'atelier[ops]'"
    assert done.stdout.splitlines() == ["0 None ", "0 None ", f"1 SystemExit(1) {hint}"], done.stderr


def test_set_default_version_parses_model_and_version_and_refusals_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str]] = []

    def fake(s: Any, model: str, version: str) -> int:
        calls.append((model, version))
        if version == "9":
            raise VersionRefused("product_cgan version 9 is not loaded and ready in Triton (ready: 1)")
        return int(version)

    monkeypatch.setattr(model_versions, "set_default_version", fake)
    ok = runner.invoke(app, ["ops", "set-default-version", "product_cgan", "2"])
    assert ok.exit_code == 0 and "default version 2" in ok.stdout
    refused = runner.invoke(app, ["ops", "set-default-version", "product_cgan", "9"])
    assert refused.exit_code == 2 and "not loaded and ready" in refused.output
    assert calls == [("product_cgan", "2"), ("product_cgan", "9")]
    assert runner.invoke(app, ["ops", "set-default-version", "product_cgan"]).exit_code == 2  # missing arg


def test_default_version_shows_each_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_versions, "default_versions", lambda s: {"product_cgan": 2, "tryon_cvae": None})
    result = runner.invoke(app, ["ops", "default-version"])
    assert result.exit_code == 0
    assert "product_cgan: 2" in result.stdout and "tryon_cvae: not set" in result.stdout


def test_ops_models_marks_the_default_version(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [ModelState("product_cgan", "1", "READY"), ModelState("product_cgan", "2", "READY")]
    monkeypatch.setattr(model_versions, "repository_index", lambda s: rows)
    monkeypatch.setattr(model_versions, "default_versions", lambda s: {"product_cgan": 2, "tryon_cvae": None})
    result = runner.invoke(app, ["ops", "models", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["defaults"] == {"product_cgan": 2, "tryon_cvae": None}


# --- the stored default ---


class FakeRedis:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.down = False

    def get(self, key: str) -> str | None:
        if self.down:
            from redis.exceptions import ConnectionError

            raise ConnectionError("down")
        return self.data.get(key)

    def set(self, key: str, value: str) -> None:
        self.data[key] = value

    def delete(self, key: str) -> int:
        return 1 if self.data.pop(key, None) is not None else 0


def test_parse_version_takes_whole_numbers_from_one() -> None:
    assert parse_version(" 3 ") == 3 and parse_version(2) == 2
    for bad in ("0", "-1", "latest", "1.5", ""):
        with pytest.raises(ValueError):
            parse_version(bad)


def test_defaults_are_stored_under_the_namespace_prefix() -> None:
    fake = FakeRedis()
    defaults = DefaultVersions(settings(redis_key_prefix="ns-1:"), client=fake)  # type: ignore[arg-type]
    defaults.set("product_cgan", 2)
    assert fake.data == {"ns-1:default_version:product_cgan": "2"}
    assert defaults.get("product_cgan") == 2 and defaults.get("tryon_cvae") is None
    assert defaults.clear("product_cgan") and not defaults.clear("product_cgan")
    fake.down = True
    with pytest.raises(StoreUnavailable):
        defaults.get("product_cgan")


def test_the_cache_reads_each_model_once_per_period() -> None:
    reads: list[str] = []
    now = [0.0]
    stored = {"product_cgan": 2}

    def read(model: str) -> int | None:
        reads.append(model)
        return stored.get(model)

    cache = DefaultVersionCache(read, ttl_s=5, clock=lambda: now[0])
    assert cache.get("product_cgan") == 2 and cache.get("tryon_cvae") is None
    stored["product_cgan"] = 3
    now[0] = 4.0
    assert cache.get("product_cgan") == 2
    now[0] = 5.0
    assert cache.get("product_cgan") == 3
    assert reads == ["product_cgan", "tryon_cvae", "product_cgan"]


class Ctx:
    """What ``with_default_version`` reads of a worker context: its settings."""

    def __init__(self, prefix: str) -> None:
        self.settings = settings(redis_key_prefix=prefix, default_version_cache_s=0)


def test_a_request_without_a_version_gets_its_model_s_default_and_a_pinned_one_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_versions, "_caches", {})
    fake: Any = FakeRedis()
    on_fake: Any = lambda settings: DefaultVersions(settings, client=fake)  # noqa: E731
    monkeypatch.setattr(worker_versions, "DefaultVersions", on_fake)
    ctx: Any = Ctx("ns-2:")
    listing = {"listing_id": "SKU-1"}
    assert with_default_version(LISTING_TASK, listing, ctx) is listing  # no default set
    fake.data["ns-2:default_version:product_cgan"] = "2"
    fake.data["ns-2:default_version:tryon_cvae"] = "5"
    assert with_default_version(LISTING_TASK, listing, ctx) == {"listing_id": "SKU-1", "model_version": 2}
    assert with_default_version(TRYON_TASK, {}, ctx) == {"model_version": 5}
    assert with_default_version(LISTING_TASK, {"model_version": 1}, ctx) == {"model_version": 1}
    assert with_default_version(CALLBACK_TASK, {"job_id": "j"}, ctx) == {"job_id": "j"}
    fake.down = True
    assert with_default_version(LISTING_TASK, listing, ctx) is listing  # Redis down: unchanged


def test_setting_a_default_is_refused_unless_triton_has_that_version_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [
        ModelState("product_cgan", "1", "READY"),
        ModelState("product_cgan", "2", "UNAVAILABLE", "unloaded"),
        ModelState("tryon_cvae", "3", "READY"),
    ]
    monkeypatch.setattr(model_versions, "repository_index", lambda s: rows)
    stored: dict[str, int] = {}

    class Defaults:
        def __init__(self, s: Any) -> None:
            pass

        def set(self, model: str, version: int) -> None:
            stored[model] = version

        def close(self) -> None:
            pass

    monkeypatch.setattr(model_versions, "DefaultVersions", Defaults)
    s = settings()
    with pytest.raises(VersionRefused, match=r"version 2 is not loaded and ready.*ready: 1"):
        set_default_version(s, "product_cgan", "2")
    with pytest.raises(VersionRefused, match="version 3 is not loaded"):
        set_default_version(s, "product_cgan", 3)  # READY, but another model's
    with pytest.raises(VersionRefused, match="unknown model"):
        set_default_version(s, "resnet", 1)
    with pytest.raises(VersionRefused, match="whole number"):
        set_default_version(s, "product_cgan", "latest")
    assert stored == {}
    assert set_default_version(s, "product_cgan", "1") == 1
    assert stored == {"product_cgan": 1}
