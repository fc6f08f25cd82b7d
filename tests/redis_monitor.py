"""The commands a client sends to the real Redis, seen through ``MONITOR``: how tests count
round trips on the shared Redis (other clients' commands are told apart by a marker)."""

from __future__ import annotations

import threading

import redis

from core.settings import AtelierSettings


class RedisCommands:
    """The commands Redis receives that name ``marker``, collected in a thread until :meth:`stop`;
    commands a script runs inside Redis come as ``lua`` and are left out: only what a client sent
    counts."""

    def __init__(self, settings: AtelierSettings, marker: str) -> None:
        self.client = redis.Redis.from_url(settings.redis_url.get_secret_value())
        self.monitor = self.client.monitor().__enter__()
        self.marker = marker
        self.commands: list[str] = []
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        while True:
            seen = self.monitor.next_command()
            if seen["command"] == "ECHO STOP-MONITOR":
                return
            if self.marker in seen["command"] and seen.get("client_type") != "lua":
                self.commands.append(seen["command"].split()[0])

    def stop(self) -> list[str]:
        """Stop collecting; the command names seen, in order."""
        self.client.execute_command("ECHO", "STOP-MONITOR")
        self.thread.join(10)
        self.client.close()
        return self.commands
