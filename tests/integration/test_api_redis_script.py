"""The limits' lean Redis client (``api.redis_script.PipelinedScript``) against a private, real
``redis-server`` (``embedded.redis.RedisServer``), so flushing its scripts, setting a password,
pausing or restarting it touches no other test: concurrent calls each get their own reply over the
one connection; a flushed script cache is recovered from; the URL's password and database are
used; a reply that does not come in time fails with a timeout and the next call works again; a
restart of Redis costs no failed call."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.redis_script import PipelinedScript
from embedded.redis import RedisServer

#: counts calls per key and answers ``{the count, ARGV[1]}``
COUNTING = "return {redis.call('INCR', KEYS[1]), tonumber(ARGV[1])}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(state_dir=tmp_path) as running:
        yield running


def client(server: RedisServer, db: int = 0, password: str | None = None) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, db=db, password=password)


def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(server: RedisServer) -> None:
    script = PipelinedScript(server.url, COUNTING, timeout_s=5)

    async def scenario() -> list[object]:
        replies = await asyncio.gather(*(script([f"k{i % 3}"], [i]) for i in range(60)))
        await script.close()
        return list(replies)

    replies = asyncio.run(scenario())
    assert [reply[1] for reply in replies] == list(range(60))  # type: ignore[index]
    assert sorted(reply[0] for reply in replies) == sorted(list(range(1, 21)) * 3)  # type: ignore[index]
    info = client(server).info("clients")
    assert info["connected_clients"] == 1  # only the checking client is left: the script's closed


def test_a_flushed_script_cache_is_recovered_from_by_sending_the_script(server: RedisServer) -> None:
    script = PipelinedScript(server.url, COUNTING, timeout_s=5)

    async def scenario() -> list[object]:
        first = await script(["k"], [1])
        client(server).script_flush()
        again = await script(["k"], [2])
        third = await script(["k"], [3])
        return [first, again, third]

    assert asyncio.run(scenario()) == [[1, 1], [2, 2], [3, 3]]


def test_the_urls_password_and_database_are_used_and_a_wrong_password_is_refused(server: RedisServer) -> None:
    client(server).config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/3"

    assert asyncio.run(PipelinedScript(url, COUNTING, timeout_s=5)(["in-db-3"], [7])) == [1, 7]
    assert client(server, db=3, password="s3cret").get("in-db-3") == b"1"
    assert client(server, db=0, password="s3cret").get("in-db-3") is None

    wrong = f"redis://:wrong@127.0.0.1:{server.port}/3"
    with pytest.raises(RedisConnectionError, match="refused"):
        asyncio.run(PipelinedScript(wrong, COUNTING, timeout_s=5)(["k"], [1]))


def test_a_script_error_is_a_response_error_and_the_connection_goes_on(server: RedisServer) -> None:
    failing = PipelinedScript(server.url, "return redis.call('INCR', KEYS[1], 'extra')", timeout_s=5)

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ResponseError):
                await failing(["k"], [])

    asyncio.run(scenario())


def test_a_reply_that_does_not_come_in_time_fails_and_the_next_call_connects_again(
    server: RedisServer,
) -> None:
    script = PipelinedScript(server.url, COUNTING, timeout_s=0.3)

    async def scenario() -> object:
        await script(["k"], [1])
        client(server).client_pause(1000)  # Redis holds every client's commands for a second
        with pytest.raises(RedisTimeoutError):
            await script(["k"], [2])
        await asyncio.sleep(1.0)
        return await script(["k"], [3])

    # the timed-out call may or may not have run in Redis: only the reply's pairing matters
    reply = asyncio.run(scenario())
    assert isinstance(reply, list) and reply[1] == 3


def test_a_restart_of_redis_costs_no_failed_call(server: RedisServer) -> None:
    script = PipelinedScript(server.url, COUNTING, timeout_s=5)

    async def scenario() -> list[object]:
        first = await script(["k"], [1])
        server.stop()
        server.start()  # the same port: the script's connection is gone, its cache empty
        return [first, await script(["k"], [2]), await script(["k"], [3])]

    assert asyncio.run(scenario()) == [[1, 1], [1, 2], [2, 3]]
