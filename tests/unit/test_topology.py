"""The shared broker topology: quorum queues, dead-lettering, topic exchanges, routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from pydantic import SecretStr

from core.contracts.jobs import JobKind
from core.settings import AtelierSettings
from core.topology import (
    CALLBACK_TASK,
    LISTING_TASK,
    TASK_FOR_KIND,
    TRYON_TASK,
    broker_transport_options,
    build_topology,
    celery_config,
)


@pytest.fixture
def settings() -> AtelierSettings:
    return AtelierSettings(broker_url=SecretStr("amqp://guest:guest@127.0.0.1:5672//"))


def test_default_names(settings: AtelierSettings) -> None:
    topology = build_topology(settings)
    names = [q.name for q in topology.all_queues]
    assert names == ["atelier.listing", "atelier.tryon", "atelier.callbacks", "atelier.dead_letter"]
    assert topology.exchange.name == "atelier"
    assert topology.dead_letter_exchange.name == "atelier.dlx"


def test_work_queues_are_durable_quorum_with_delivery_limit_and_dead_letter_exchange(
    settings: AtelierSettings,
) -> None:
    for queue in build_topology(settings).task_queues:
        assert queue.durable
        assert queue.queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": 5,
            "x-dead-letter-exchange": "atelier.dlx",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


def test_exchanges_are_topic_so_native_delayed_retries_work(settings: AtelierSettings) -> None:
    topology = build_topology(settings)
    assert topology.exchange.type == "topic" and topology.exchange.durable
    assert topology.dead_letter_exchange.type == "topic"
    for queue in topology.task_queues:
        assert queue.exchange is topology.exchange or queue.exchange.name == topology.exchange.name
        assert queue.routing_key == queue.name


def test_dead_letter_queue_catches_every_routing_key(settings: AtelierSettings) -> None:
    dead_letter = build_topology(settings).dead_letter
    assert dead_letter.exchange.name == "atelier.dlx" and dead_letter.routing_key == "#"
    assert dead_letter.durable and dead_letter.queue_arguments == {"x-queue-type": "quorum"}


def test_each_task_has_its_own_queue(settings: AtelierSettings) -> None:
    topology = build_topology(settings)
    assert topology.queue_for(LISTING_TASK).name == "atelier.listing"
    assert topology.queue_for(TRYON_TASK).name == "atelier.tryon"
    assert topology.queue_for(CALLBACK_TASK).name == "atelier.callbacks"
    assert TASK_FOR_KIND == {JobKind.LISTING: LISTING_TASK, JobKind.TRYON: TRYON_TASK}
    with pytest.raises(KeyError):
        topology.queue_for("atelier.unknown")


def test_names_follow_settings_so_tests_can_isolate() -> None:
    isolated = AtelierSettings(
        exchange="t1",
        listing_queue="t1.listing",
        tryon_queue="t1.tryon",
        callback_queue="t1.callbacks",
        dead_letter_exchange="t1.dlx",
        dead_letter_queue="t1.dead",
        delivery_limit=3,
    )
    topology = build_topology(isolated)
    assert [q.name for q in topology.all_queues] == ["t1.listing", "t1.tryon", "t1.callbacks", "t1.dead"]
    assert topology.listing.queue_arguments["x-delivery-limit"] == 3
    assert topology.listing.queue_arguments["x-dead-letter-exchange"] == "t1.dlx"
    assert topology.task_routes[LISTING_TASK] == {"queue": "t1.listing"}


def test_building_twice_gives_identical_declarations(settings: AtelierSettings) -> None:
    first, second = build_topology(settings), build_topology(settings)
    for a, b in zip(first.all_queues, second.all_queues, strict=True):
        assert (a.name, a.queue_arguments, a.routing_key, a.exchange.name) == (
            b.name,
            b.queue_arguments,
            b.routing_key,
            b.exchange.name,
        )


def test_celery_routes_each_task_to_its_queue(settings: AtelierSettings) -> None:
    app = Celery("t", set_as_current=False)
    app.conf.update(celery_config(settings))
    for task, queue in [
        (LISTING_TASK, "atelier.listing"),
        (TRYON_TASK, "atelier.tryon"),
        (CALLBACK_TASK, "atelier.callbacks"),
    ]:
        route = app.amqp.router.route({}, task)
        assert route["queue"].name == queue
        assert route["queue"].queue_arguments["x-queue-type"] == "quorum"
        assert route["queue"].exchange.type == "topic"


def test_amqp_brokers_get_publisher_confirms(settings: AtelierSettings) -> None:
    config = celery_config(settings)
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]


def test_filesystem_broker_gets_its_folders(tmp_path: Path) -> None:
    settings = AtelierSettings(broker_url=SecretStr("filesystem://"), broker_data_dir=tmp_path / "broker")
    options = broker_transport_options(settings)
    assert options["data_folder_in"] == options["data_folder_out"]
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir()
    assert "confirm_publish" not in options


def test_producer_never_imports_worker_at_run_time() -> None:
    """`lint-imports` (pyproject.toml) checks the import statements; this checks what actually loads,
    which also catches imports by name (Celery's ``include``/``imports`` settings, importlib)."""
    code = (
        "import sys, producer.client, producer.cli, core.topology, core.jobs;"
        "leaked = [m for m in sys.modules if m == 'worker' or m.startswith('worker.')];"
        "assert not leaked, leaked"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
