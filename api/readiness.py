"""What ``/readyz`` checks: Redis (the job store) and the broker answer, each within
``health_timeout_s`` and all at once (``ops.checks``, the same probes as ``atelier ops health``).
The answer says which is down, never why (an error may name hosts or users): the logs do."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from core.settings import ServiceSettings
from ops.checks import Probe, run_checks, service_probes

log = logging.getLogger(__name__)

#: what the API needs to take and read jobs (it never calls Triton or S3: links are signed locally)
READY_CHECKS = ("redis", "broker")


class Readiness:
    """Parameters: ``settings``; ``probes`` (keyword-only), checks by name (default: the
    ``READY_CHECKS`` of ``ops.checks`` on ``settings``)."""

    def __init__(self, settings: ServiceSettings, *, probes: Mapping[str, Probe] | None = None) -> None:
        self.probes = dict(probes) if probes is not None else service_probes(settings, READY_CHECKS)

    def check(self) -> dict[str, str]:
        """``{"redis": "ok", "broker": "unavailable"}``."""
        report = run_checks(self.probes)
        for check in report.checks:
            if not check.ok:
                log.warning("readiness: %s is down: %s", check.name, check.detail)
        return {check.name: "ok" if check.ok else "unavailable" for check in report.checks}
